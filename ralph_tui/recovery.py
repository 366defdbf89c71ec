"""Crash safety: the state file ``.ralph/state.json`` and what a restart does with it.

The engine writes the state file before each risky step:
- ``phase: iteration`` while an agent works: on restart, the leftover change is saved as a patch
  and the tree restored, so an interrupted iteration never blocks the next run.
- ``phase: committing`` from just before the PRD is marked until the commit has landed: on
  restart, if the commit landed the marker is dropped; otherwise the story's ``passes`` flag and
  the progress log entry are rolled back. A story is never left ``passes: true`` without its
  commit.

Without a sandbox the agent can write ``.ralph/`` too, so the file is validated before anything
is done with it: a known story, a HEAD that is an ancestor of the current one, a progress size
within the log, a run id in this module's own format. Paths are never built from its contents
(an interrupted change is saved under the *current* run's folder). Forged or corrupt state is
reported and ignored, and the progress log is only ever cut back by exactly one entry of the
story the marker names.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import stat
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from ralph_tui.errors import GitError, UsageError
from ralph_tui.git.repo import GitRepo
from ralph_tui.prd.progress import ProgressLog
from ralph_tui.prd.store import PrdStore, parse_prd
from ralph_tui.safety.names import safe_name

log = logging.getLogger(__name__)

RUN_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{4}$")
_SHA = re.compile(r"^[0-9a-f]{40}$")
_MAX_STATE_BYTES = 64 * 1024

Phase = Literal["iteration", "committing"]


def new_run_id() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


@dataclass(frozen=True)
class SavedState:
    """A state file that passed validation."""

    phase: Phase
    story: str
    run_id: str
    head: Any = None  # checked by validate_commit
    progress_size: Any = None
    branch: str | None = None  # the ref the interrupted run was on (None: an older state file)


class StateFile:
    """``.ralph/state.json``: written atomically (temp file, fsync, rename), never followed."""

    def __init__(self, path: Path, run_id: str) -> None:
        self.path = path
        self.run_id = run_id

    def write(self, data: dict[str, Any]) -> None:
        if self.path.parent.is_symlink():  # .ralph/ swapped for a link: never write through it
            self.path.parent.unlink()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".state.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({**data, "run_id": self.run_id, "ts": time.time()}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self.path)  # replaces a planted symlink itself, never its target

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def read_raw(self) -> Any:
        """The parsed JSON, ``None`` when there is no file; ``ValueError`` when unreadable."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ValueError(f"cannot open it ({exc.strerror})") from None
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ValueError("not a regular file")
            data = fh.read(_MAX_STATE_BYTES + 1)
        if len(data) > _MAX_STATE_BYTES:
            raise ValueError("too large")
        return json.loads(data.decode("utf-8"))


def validate(raw: Any, git: GitRepo, known_stories: Collection[str]) -> SavedState:
    """The state if every field is believable; ``ValueError`` saying which one is not.

    ``head`` and ``progress_size`` of a ``committing`` state are checked by ``validate_commit``
    once the run is back on the state's branch.
    """
    if not isinstance(raw, dict):
        raise ValueError("not a JSON object")
    phase = raw.get("phase")
    if phase not in ("iteration", "committing"):
        raise ValueError(f"unknown phase {str(phase)[:40]!r}")
    story = raw.get("story")
    if not isinstance(story, str) or story not in known_stories:
        raise ValueError(f"story {str(story)[:40]!r} is not in the PRD")
    run_id = raw.get("run_id")
    if not isinstance(run_id, str) or not RUN_ID.match(run_id):
        raise ValueError(f"run id {str(run_id)[:40]!r} is not one ralph-tui writes")
    branch = raw.get("branch")
    if branch is not None and (
        not isinstance(branch, str)
        or not branch.startswith("refs/heads/")
        or not git.ref_exists(branch)
    ):
        raise ValueError(f"branch {str(branch)[:60]!r} is not a branch of this repository")
    if phase == "iteration":
        return SavedState("iteration", story, run_id, branch=branch)
    return SavedState(
        "committing", story, run_id, raw.get("head"), raw.get("progress_size"), branch
    )


def validate_commit(state: SavedState, git: GitRepo, progress_len: int) -> None:
    head, size = state.head, state.progress_size
    if not isinstance(head, str) or not _SHA.match(head) or not git.is_ancestor(head, "HEAD"):
        raise ValueError(f"head {str(head)[:40]!r} is not an ancestor of HEAD")
    if type(size) is not int or not 0 <= size <= progress_len:
        raise ValueError(f"progress_size {str(size)[:20]!r} is not within the progress log")


def roll_back_marking(
    store: PrdStore, progress: ProgressLog, git: GitRepo, story_id: str, progress_size: int
) -> list[str]:
    """Undo ``commit_story``'s bookkeeping for a commit that never landed.

    The ``passes`` flag goes back to false only if HEAD's PRD does not already say true (so a
    story committed earlier is never reopened), and the progress log is cut back only when what
    follows ``progress_size`` is exactly one entry for this story. Returns what was not undone.
    """
    problems: list[str] = []
    prd = store.load()
    current = prd.story(story_id)
    if current is not None and current.passes and not _passes_at_head(store, git, story_id):
        store.update_story(story_id, {"passes": False})
    tail = progress.read_from(progress_size)
    if tail:
        body = tail.lstrip("\n")
        if body.startswith(f"## Task #{story_id}:") and "\n## " not in body:
            progress.truncate(progress_size)
        else:
            problems.append(
                f"{progress.path}: left as it is (the text after byte {progress_size} is not "
                f"one entry for Task #{story_id})"
            )
    return problems


def _passes_at_head(store: PrdStore, git: GitRepo, story_id: str) -> bool:
    data = git.show_file("HEAD", store.path)
    if data is None:
        return False
    try:
        committed = parse_prd(data.decode("utf-8"), store.path)
    except (UsageError, UnicodeDecodeError):
        return False
    story = committed.story(story_id)
    return story is not None and story.passes


def recover(
    state_file: StateFile,
    *,
    git: GitRepo,
    store: PrdStore,
    progress: ProgressLog,
    patch_dir: Path,
    keep: Collection[str],
    report: Callable[[str], None],
) -> None:
    """Finish or undo what a killed run left half done (see the module docstring)."""
    try:
        raw = state_file.read_raw()
    except (ValueError, UnicodeDecodeError) as exc:
        report(f"{state_file.path}: ignored ({exc})")
        state_file.clear()
        return
    if raw is None:
        return
    prd = store.load()
    try:
        state = validate(raw, git, {s.key for s in prd.userStories})
    except ValueError as exc:
        report(f"{state_file.path}: ignored, it does not look like ralph-tui's own ({exc})")
        state_file.clear()
        return
    report(f"{state_file.path}: the last run stopped during {state.phase} of Task #{state.story}")
    current = git.head_branch()
    if state.branch is not None and current != state.branch:
        name = state.branch.removeprefix("refs/heads/")
        now = current.removeprefix("refs/heads/") if current else "a detached HEAD"
        report(f"the interrupted run was on branch {name}, not {now}: recovering on {name}")
        try:
            git.checkout_branch(name, create=False)
        except GitError as exc:
            raise UsageError(
                f"{git.root}: cannot go back to branch {name} to recover the interrupted run "
                f"({exc}); check it out yourself, then start again"
            ) from None
    if state.phase == "committing":
        try:
            validate_commit(state, git, progress.size())
        except ValueError as exc:
            report(f"{state_file.path}: ignored, it does not look like ralph-tui's own ({exc})")
            state_file.clear()
            return
        if any(f"Task #{state.story}:" in s for s in git.subjects_since(state.head)):
            state_file.clear()
            return
        for problem in roll_back_marking(store, progress, git, state.story, state.progress_size):
            report(problem)
    # an iteration was interrupted: keep its work as a patch (in this run's folder), start clean
    saved = git.save_patch(patch_dir / f"interrupted-{safe_name(state.story)}.patch")
    git.restore_to_head(keep=keep)
    state_file.clear()
    if saved is not None:
        report(f"an interrupted iteration on Task #{state.story} was saved as {saved}")
