"""Coalesce the engine's event stream so widgets are touched a few dozen times a second.

The engine calls the sink inline for every ``TextDelta``; a fast agent emits thousands a second.
Touching a widget per delta would starve the UI, so the sink only appends here (cheap), and the
app drains the queue on a short timer, with consecutive text deltas merged into one. Events a
human acts on (an approval or escalation asked, the run's state or end) skip the timer: holding
them for the rest of an interval would only make the human wait.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any

from ralph_tui.events import (
    ApprovalNeeded,
    Escalated,
    Event,
    IterationFinished,
    RunFinished,
    RunStateChanged,
    TextDelta,
)

#: what changes what the human can or must do next: shown at once, never coalesced away
URGENT = (ApprovalNeeded, Escalated, RunStateChanged, RunFinished, IterationFinished)


class _TextRun:
    """Consecutive deltas, joined once at drain time (repeated ``+=`` would be quadratic)."""

    __slots__ = ("parts", "ts", "worker")

    def __init__(self, first: TextDelta) -> None:
        self.parts = [first.text]
        self.ts = first.ts
        self.worker = first.worker  # parallel runs: only one worker's deltas are merged


class EventBatcher:
    def __init__(
        self,
        on_first: Callable[[], None] | None = None,
        on_urgent: Callable[[], None] | None = None,
    ) -> None:
        self._pending: list[Event | _TextRun] = []
        self._on_first = on_first
        self._on_urgent = on_urgent
        self.received = 0

    def __call__(self, event: Event) -> None:
        """The engine's sink: append, and tell the app a flush is due if the queue was empty."""
        self.received += 1
        pending = self._pending
        if isinstance(event, TextDelta):
            last = pending[-1] if pending else None
            if isinstance(last, _TextRun) and last.worker == event.worker:
                last.parts.append(event.text)
                return
            pending.append(_TextRun(event))
        else:
            pending.append(event)
            if self._on_urgent is not None and isinstance(event, URGENT):
                self._on_urgent()
                return
        if len(pending) == 1 and self._on_first is not None:
            self._on_first()

    def drain(self) -> list[Event]:
        items, self._pending = self._pending, []
        return [
            TextDelta("".join(item.parts), ts=item.ts, worker=item.worker)
            if isinstance(item, _TextRun)
            else item
            for item in items
        ]

    def __len__(self) -> int:
        return len(self._pending)


#: ``set_timer(delay_s, callback)``: Textual's timer in the app, a hand-fired one in tests
SetTimer = Callable[[float, Callable[[], None]], Any]


class FlushPacer:
    """When queued events are drawn: the first event after a quiet spell at once (a human sees
    an approval or a gate result without waiting), then at most one flush per ``interval``
    while a stream goes on; an event the human acts on at once, whatever the interval says.

    Time comes from ``clock`` and delays from ``set_timer``, both injected, so tests decide
    what a quiet spell is instead of depending on how fast the machine is.
    """

    def __init__(
        self,
        flush: Callable[[], None],
        *,
        interval: float,
        clock: Callable[[], float],
        set_timer: SetTimer,
        call_soon: Callable[[Callable[[], None]], Any],
    ) -> None:
        self._flush = flush
        self.interval = interval
        self._clock = clock
        self._set_timer = set_timer
        self._call_soon = call_soon
        self._last = -math.inf  # never flushed: the first event is a quiet spell's end
        self._armed = False
        self._urgent = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The UI's loop: ``arm_soon`` and ``urgent_soon`` from other threads go through it."""
        self._loop = loop

    def arm_soon(self) -> None:
        """``arm`` from any thread (the engine's sink may be called from gate or git threads)."""
        self._on_loop(self.arm)

    def urgent_soon(self) -> None:
        """``urgent`` from any thread."""
        self._on_loop(self.urgent)

    def _on_loop(self, callback: Callable[[], None]) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not None and running is self._loop:
            callback()
        elif self._loop is not None:
            self._loop.call_soon_threadsafe(callback)

    def arm(self) -> None:
        """Events are queued: flush now after a quiet spell, else when the interval is over."""
        if self._armed:
            return
        self._armed = True
        wait = self.interval - (self._clock() - self._last)
        if wait > 0:
            self._set_timer(wait, self._flush)
        else:
            self._call_soon(self._flush)

    def urgent(self) -> None:
        """An event the human acts on is queued: flush on the next turn of the loop."""
        if not self._urgent:
            self._urgent = True
            self._call_soon(self._flush)

    def flushed(self) -> None:
        """Called by every flush (scheduled or not): the interval starts again from now."""
        self._armed = False
        self._urgent = False
        self._last = self._clock()
