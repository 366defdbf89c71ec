"""Which parallel worker runs which story, and whose events the detail panes show.

With ``workers > 1`` events carry a worker number. The board shows every worker's story; the
Transcript and Gates panes show one worker at a time (the one selected on the board, or the
first to start), and switching replays that worker's events since its story started. Events of
the engine itself (worker 0) always show. No textual here: the app feeds events and asks.
"""

from __future__ import annotations

from collections import deque

from ralph_tui.events import Event, IterationFinished, IterationStarted

KEEP_EVENTS = 20_000  # per worker, enough to redraw a long conversation


class WorkerTracker:
    def __init__(self, keep: int = KEEP_EVENTS) -> None:
        self.story_of: dict[int, str] = {}  # worker -> the story it runs now
        self.selected = 0  # 0: nothing selected yet (the first worker to start is taken)
        self._keep = keep
        self._history: dict[int, deque[Event]] = {}

    def observe(self, event: Event) -> None:
        worker = event.worker
        if not worker:
            return
        if isinstance(event, IterationStarted):
            self.story_of[worker] = event.story_id
            self._history[worker] = deque(maxlen=self._keep)  # a new story, a new transcript
            if self.selected == 0 or self.selected not in self.story_of:
                self.selected = worker
        self._history.setdefault(worker, deque(maxlen=self._keep)).append(event)
        if isinstance(event, IterationFinished) and self.story_of.get(worker) == event.story_id:
            del self.story_of[worker]

    def shows(self, event: Event) -> bool:
        """Whether the detail panes (Transcript, Gates) take this event now."""
        return event.worker in (0, self.selected) or self.selected == 0

    def worker_of(self, story_id: str) -> int | None:
        return next((w for w, s in self.story_of.items() if s == story_id), None)

    def running(self) -> dict[str, int]:
        """Story id -> the worker running it (the board's "running · w2")."""
        return {story: worker for worker, story in self.story_of.items()}

    def select(self, worker: int) -> list[Event]:
        """Show ``worker`` from now on; its events so far, for the panes to redraw."""
        self.selected = worker
        return list(self._history.get(worker, ()))
