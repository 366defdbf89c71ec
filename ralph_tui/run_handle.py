"""What a face drives: the engine itself, the engine served on a socket, or a remote run.

``RalphApp`` and ``run_headless`` only need these members, so the same app can be attached to a
run in another process (``server.client.RemoteRun``) without a second UI.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any, Literal, Protocol

from ralph_tui.events import EventSink
from ralph_tui.git_repo import FileDiff
from ralph_tui.prd import Prd, Story
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

    async def run(self) -> int: ...


# builds the run a face drives from the face's own supervisor and sink
RunFactory = Callable[[Supervisor, EventSink], RunHandle]
