"""Coalesce the engine's event stream so widgets are touched a few dozen times a second.

The engine calls the sink inline for every ``TextDelta``; a fast agent emits thousands a second.
Touching a widget per delta would starve the UI, so the sink only appends here (cheap), and the
app drains the queue on a short timer, with consecutive text deltas merged into one. Events a
human acts on (an approval or escalation asked, the run's state or end) skip the timer: holding
them for the rest of an interval would only make the human wait.
"""

from __future__ import annotations

from collections.abc import Callable

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
