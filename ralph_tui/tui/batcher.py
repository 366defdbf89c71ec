"""Coalesce the engine's event stream so widgets are touched a few dozen times a second.

The engine calls the sink inline for every ``TextDelta``; a fast agent emits thousands a second.
Touching a widget per delta would starve the UI, so the sink only appends here (cheap), and the
app drains the queue on a short timer, with consecutive text deltas merged into one.
"""

from __future__ import annotations

from collections.abc import Callable

from ralph_tui.events import Event, TextDelta


class _TextRun:
    """Consecutive deltas, joined once at drain time (repeated ``+=`` would be quadratic)."""

    __slots__ = ("parts", "ts", "worker")

    def __init__(self, first: TextDelta) -> None:
        self.parts = [first.text]
        self.ts = first.ts
        self.worker = first.worker  # parallel runs: only one worker's deltas are merged


class EventBatcher:
    def __init__(self, on_first: Callable[[], None] | None = None) -> None:
        self._pending: list[Event | _TextRun] = []
        self._on_first = on_first
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
