"""What a face drives: a run assembled by ``ralph_tui.runs``, or a remote run.

``RalphApp`` and ``run_headless`` only need these members, so the same app can be attached to a
run in another process (``server.client.RemoteRun``) without a second UI, and never needs to
know which engine or executor runs the stories.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any, Literal, Protocol

from ralph_tui.events import EventSink
from ralph_tui.git.repo import FileDiff
from ralph_tui.prd.model import Prd, Story
from ralph_tui.supervisor import Supervisor


class StoreLike(Protocol):
    def load(self) -> Prd: ...

    def move_story(self, story_id: str, direction: Literal["up", "down"]) -> Prd: ...

    def update_story(self, story_id: str, changes: Mapping[str, Any]) -> Prd: ...

    def add_story(self, fields: Mapping[str, Any]) -> Story: ...


class DiffSource(Protocol):
    def diff(self) -> list[FileDiff]: ...


class RunHandle(Protocol):
    @property
    def store(self) -> StoreLike: ...

    @property
    def git(self) -> DiffSource: ...

    @property
    def skipped(self) -> Collection[str]: ...

    @property
    def paused(self) -> bool: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def request_stop(self) -> None: ...

    def open_approval(self, story_id: str) -> bool:
        """Show ``story_id``'s waiting approval next (parallel runs); False when it is not
        waiting. Which stories wait is told by ``ApprovalsWaiting`` events."""
        ...

    async def story_diff(self, story_id: str | None = None) -> list[FileDiff]:
        """``story_id``'s change as it is now, wherever its checkout is (a worktree, a Ray
        node); ``None``: the main checkout's uncommitted change."""
        ...

    async def run(self) -> int: ...


# builds the run a face drives from the face's own supervisor and sink
RunFactory = Callable[[Supervisor, EventSink], RunHandle]
