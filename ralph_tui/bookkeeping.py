"""The engine owns the bookkeeping: the PRD's ``passes`` flags and the progress log.

Without a sandbox the agent can write both files. What the engine allows during an iteration:
- ``passes`` turns true only through the engine's own commit or through ralph-tui's own story
  edits (the TUI's ``e``/``n``/``+``/``-`` go through this store, which remembers them). Any
  other flip to true is reverted, with a notice. Other fields the human (or anyone) edits are
  left alone.
- The progress log only grows by the engine's own entries: at each check it must be what it was
  when the iteration started plus what the engine appended since; anything else is put back.
  So neither file ships inside a story's commit carrying the agent's own edits to them.
- A bookkeeping file replaced by a symlink (or anything but a regular file) is put back as the
  regular file it was; the link's target is never read or written.
- When the agent moved HEAD somewhere that is not ahead of where the iteration started (a
  reset), both files go back to their content at the start of the iteration (plus the engine's
  own entries): the reset rewrote them to an older commit's version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ralph_tui.prd.model import Prd, Story
from ralph_tui.prd.progress import ProgressLog
from ralph_tui.prd.store import PrdError, PrdStore
from ralph_tui.safety.safe_open import BookkeepingError, replace_regular


class GuardedPrdStore(PrdStore):
    """A ``PrdStore`` that remembers the ``passes`` values it wrote itself."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.own_passes: dict[str, bool] = {}

    def update_story(self, story_id: str, changes: Mapping[str, Any]) -> Prd:
        prd = super().update_story(story_id, changes)
        if "passes" in changes:
            self.own_passes[str(story_id)] = bool(changes["passes"])
        return prd

    def add_story(self, fields: Mapping[str, Any]) -> Story:
        story = super().add_story(fields)
        self.own_passes[story.key] = story.passes
        return story


@dataclass
class BookkeepingSnapshot:
    passes: dict[str, bool]
    prd: bytes
    progress: bytes
    written_mark: int

    @classmethod
    def take(cls, store: GuardedPrdStore, progress: ProgressLog) -> BookkeepingSnapshot:
        prd = store.load()
        store.own_passes.clear()
        return cls(
            passes={s.key: s.passes for s in prd.userStories},
            prd=store.path.read_bytes(),  # load() above refused a symlink or a non-file
            progress=progress.read_bytes(),
            written_mark=len(progress.written),
        )

    def reset_files(self, store: GuardedPrdStore, progress: ProgressLog) -> list[str]:
        """Both files as at the start of the iteration (plus the engine's own entries)."""
        replace_regular(store.path, self.prd)
        store.own_passes.clear()
        progress.replace_content(self.progress + bytes(progress.written[self.written_mark :]))
        return [f"{store.path.name} and {progress.path.name} put back as before the reset"]

    def rebase_progress(self, progress: ProgressLog) -> None:
        """The engine itself cut the log back (a commit that failed): that is the new base."""
        self.progress = progress.read_bytes()
        self.written_mark = len(progress.written)

    def enforce(self, store: GuardedPrdStore, progress: ProgressLog) -> list[str]:
        """Revert ``passes`` flips and progress log edits the engine did not make."""
        messages: list[str] = []
        prd = self._load(store, messages)
        for story in prd.userStories if prd is not None else ():
            if not story.passes or self.passes.get(story.key, False):
                continue
            if store.own_passes.get(story.key) is True:
                continue
            store.update_story(story.key, {"passes": False})
            messages.append(
                f"Task #{story.key} was marked passes: true outside ralph-tui; reverted "
                "(only an approved commit marks a story done)"
            )
        expected = self.progress + bytes(progress.written[self.written_mark :])
        try:
            current: bytes | None = progress.read_bytes()
        except BookkeepingError:
            current = None  # a symlink or a FIFO where the log was: replaced below
        if current != expected:
            progress.replace_content(expected)
            messages.append(
                f"{progress.path.name} was edited during the iteration; put back to the "
                "entries ralph-tui wrote"
            )
        return messages

    def _load(self, store: GuardedPrdStore, messages: list[str]) -> Prd | None:
        """The PRD as it is now; a symlink or non-file put back first. ``None``: unparseable
        (the loop reports that when it next reads the PRD)."""
        if store.path.is_symlink() or (store.path.exists() and not store.path.is_file()):
            replace_regular(store.path, self.prd)
            messages.append(f"{store.path.name} was replaced by a link or special file; put back")
        try:
            return store.load()
        except PrdError:
            return None
