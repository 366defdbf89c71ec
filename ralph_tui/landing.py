"""Landing a story: ONE commit holding its change, ``passes: true`` and the progress entry.

The serial loop (``engine.SerialLoop.commit_story``: the change is already in the main checkout)
and the workers' merge (``parallel.ParallelLoop._land``: the change is applied from the worker's
patch) land a story the same way, here, through the run core's one ``StoryLanding``. What really
differs between them is passed in: what puts the change in place, what a failed commit also puts
back, and what the state file says afterwards (the single loop is still inside its iteration;
main has no iteration of its own in a parallel run).

Crash safety (``recovery``): the ``committing`` marker, with HEAD and the progress log's size,
is written before anything is touched, so a kill at any later point is undone at restart; a
commit that fails is undone here (``roll_back_marking``) before the error goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from ralph_tui.errors import RalphError
from ralph_tui.events import Committed, EventSink, PrdChanged
from ralph_tui.git.repo import GitRepo, display_path
from ralph_tui.prd.model import Story
from ralph_tui.prd.progress import ProgressLog
from ralph_tui.prd.store import PrdStore
from ralph_tui.recovery import StateFile, roll_back_marking
from ralph_tui.safety.text import escape_controls
from ralph_tui.safety.workspace import Redactor

log = logging.getLogger(__name__)

Marker = dict[str, object]


def commit_message(role: str, story: Story, flags: Sequence[str] = ()) -> str:
    """SPEC's message; with review flags it says what a human approved instead of claiming
    that every check passed as configured (the checks themselves were changed)."""
    head = f"[{role}] Task #{story.key}: {escape_controls(story.title, multiline=False)}\n\n"
    if not flags:
        return head + "Implemented by autonomous agent.\nAll quality checks passing.\n"
    listed = "".join(f"- {escape_controls(flag, multiline=False)}\n" for flag in flags)
    return (
        head + "Implemented by autonomous agent.\n"
        "Quality gates passed; a human approved these review flags:\n" + listed
    )


class StoryLanding:
    """The run's one way of committing a story (one per engine)."""

    def __init__(
        self,
        *,
        git: GitRepo,
        store: PrdStore,
        progress: ProgressLog,
        state: StateFile,
        redact: Redactor,
        emit: EventSink,
        role: str,
        bookkeeping: Sequence[str],
    ) -> None:
        self._git = git
        self._store = store
        self._progress = progress
        self._state = state
        self._redact = redact
        self._emit = emit
        self._role = role
        self._bookkeeping = tuple(bookkeeping)

    async def land(
        self,
        story: Story,
        learnings: Sequence[str],
        *,
        marker: Marker,
        after: Marker | None,
        user_files: Sequence[str] = (),
        put_in: Callable[[], Sequence[str]] | None = None,
        undo: Callable[[], None] | None = None,
        flags: Sequence[str] = (),
        review: Sequence[str] = (),
    ) -> str:
        """Mark the story, log it and commit; the commit's sha (``Committed`` is emitted).

        ``marker``: the state file's ``committing`` marker (HEAD and the progress log's size
        are added here). ``after``: what the state file says once the story has landed or the
        landing was undone (``None``: the file is removed). ``user_files``: the user's own
        uncommitted files (``--allow-dirty``), never committed nor listed. ``put_in`` (run in a
        thread, after the marker): puts the change in the checkout and says which files it
        changed (the progress entry lists them); if it raises, nothing was marked and the error
        goes on. Without it the change is already there, and a diff of the checkout lists them.
        ``undo`` (in a thread): what a failed commit also puts back, after the story's marking
        is rolled back. ``review``: the human's drops and line
        comments on the story (``pr_review``), for the progress entry beside the ``flags``.
        """
        git = self._git
        head = await asyncio.to_thread(git.head_sha)
        progress_size = await asyncio.to_thread(self._progress.size)
        # the marker comes first: a kill after this point is undone at restart
        marker = {**marker, "head": head, "progress_size": progress_size}
        await asyncio.to_thread(self._state.write, marker)
        if put_in is not None:
            try:
                changed = await asyncio.to_thread(put_in)
            except BaseException:
                await asyncio.to_thread(self._settle, after)
                raise
        else:
            changed = [d.path for d in await asyncio.to_thread(git.diff)]
        skip = {*self._bookkeeping, *user_files}
        files = [self._redact(display_path(path)) for path in changed if path not in skip]
        learned = [self._redact(item) for item in learnings]
        reviewed = [self._redact(f"flag approved: {flag}") for flag in flags]
        reviewed += [self._redact(line) for line in review]
        title = self._redact(story.title)
        message = self._redact(commit_message(self._role, story, flags))
        try:
            await asyncio.to_thread(self._store.update_story, story.key, {"passes": True})
            await asyncio.to_thread(
                self._progress.append_completed, story.key, title, learned, files, reviewed
            )
            sha = await asyncio.to_thread(git.commit_all, message, exclude=tuple(user_files))
        except RalphError:  # GitError (a hook said no), or a bookkeeping file not writable
            await asyncio.to_thread(self._roll_back, story, progress_size, undo, after)
            raise
        await asyncio.to_thread(self._settle, after)
        committed = await asyncio.to_thread(git.files_in_commit, sha)
        self._emit(
            Committed(
                story_id=story.key,
                sha=sha,
                message=message,
                files=tuple(display_path(f) for f in committed),
            )
        )
        self._emit(PrdChanged(source="engine"))
        return sha

    def _roll_back(
        self,
        story: Story,
        progress_size: int,
        undo: Callable[[], None] | None,
        after: Marker | None,
    ) -> None:
        for problem in roll_back_marking(
            self._store, self._progress, self._git, story.key, progress_size
        ):
            log.warning("%s", problem)
        if undo is not None:
            undo()
        self._settle(after)

    def _settle(self, after: Marker | None) -> None:
        if after is None:
            self._state.clear()
        else:
            self._state.write(after)
