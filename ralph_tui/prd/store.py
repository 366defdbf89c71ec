"""Reading, validating and safely rewriting the PRD file (SPEC sections 2 and 3).

The PRD is shared with the human and with other tools while a run goes on, so every write
re-reads the file, applies only the change being made to the raw document, validates the result,
splices just the changed values into the old text (``prd_format``: unknown fields, key order,
number spelling, indentation and the top-level shape survive), and replaces the file
atomically. A compare-and-swap just before the rename makes sure an edit
that landed on disk while we were busy is merged rather than overwritten.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from watchfiles import Change, awatch

from ralph_tui.prd import json_text
from ralph_tui.prd.format import (
    PrdError,
    document_warnings,
    fills_ids,
    in_file_terms,
    normalise,
    parse_document,
    parse_prd,
    prd_json_schema,
    raw_stories,
    repeated_ids,
    splice_document,
    validate_document,
    validate_prd,
    write_new,
)
from ralph_tui.prd.model import Prd, Story
from ralph_tui.safety.safe_open import BookkeepingError, open_regular

PRD_MAX_BYTES = 32 << 20  # a PRD larger than this is refused, never read whole

__all__ = [
    "PrdError",
    "PrdStore",
    "normalise",
    "parse_prd",
    "prd_json_schema",
    "raw_stories",
    "validate_prd",
    "write_new",
]

T = TypeVar("T")

#: How often a write starts over because the file changed under it before giving up.
MAX_WRITE_ATTEMPTS = 8
#: The watcher re-checks the file this often even without events (missed events, odd filesystems).
WATCH_RECHECK_MS = 1_000


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- the store


class PrdStore:
    """The one place that reads and writes a PRD file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        # Digest of the content this store last knew to be on disk: its own writes and the
        # changes the watcher already reported. The watcher reports anything else.
        self._known: str | None = None

    # ---- reading

    def load(self) -> Prd:
        return parse_document(self._decode(self._read_bytes()), self.path)[1]

    def check(self) -> tuple[Prd, list[str]]:
        """The PRD and what loads but deserves a look (repeated ids or keys, with places)."""
        text = self._decode(self._read_bytes())
        raw, prd = parse_document(text, self.path)
        return prd, document_warnings(text, raw, prd, self.path)

    def _read_bytes(self) -> bytes:
        try:
            fd = open_regular(self.path, os.O_RDONLY)  # a symlinked PRD is refused, not followed
            with os.fdopen(fd, "rb") as fh:
                data = fh.read(PRD_MAX_BYTES + 1)
            if len(data) > PRD_MAX_BYTES:
                raise PrdError(f"{self.path}: larger than {PRD_MAX_BYTES >> 20} MiB; not a PRD")
            return data
        except BookkeepingError as e:
            raise PrdError(str(e)) from None
        except FileNotFoundError:
            raise PrdError(
                f"{self.path}: file not found (create it with `ralph-tui init` or `import`, "
                "or name another with --prd or prd = ... in ralph.toml)"
            ) from None
        except IsADirectoryError:
            raise PrdError(f"{self.path}: is a folder, not a PRD file") from None
        except PermissionError:
            raise PrdError(f"{self.path}: permission denied") from None

    def _decode(self, data: bytes) -> str:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as e:
            line = data.count(b"\n", 0, e.start) + 1
            col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
            bad = data[e.start : e.start + 1].hex()
            raise PrdError(f"{self.path}:{line}:{col}: not valid UTF-8 (byte 0x{bad})") from None

    # ---- changes

    def update_story(self, story_id: str, changes: Mapping[str, Any]) -> Prd:
        """Set some fields of one story; other stories and fields are left as they are on disk.

        Fields are named as in the model; they land where this file keeps them: ``passes``
        also moves a ``status`` beside it (in the file's own words), criteria edited as text
        keep their objects (and test commands), a feature item's criteria are its ``steps``.
        """

        def change(raw: Any, prd: Prd) -> bool:
            entry = self._raw_story(raw, prd, story_id)
            wanted = in_file_terms(raw, entry, changes)
            if all(k in entry and json_text.same(entry[k], v) for k, v in wanted.items()):
                return False
            entry.update(wanted)
            return True

        return self._write(change)[0]

    def move_story(self, story_id: str, direction: Literal["up", "down"]) -> Prd:
        """Move an open story one place in pick order, swapping priority numbers with its neighbour.

        When the two share a priority number (or swapping numbers alone would also move the
        story past others with those numbers), the two stories also swap places in the file:
        the pick order is (priority, file position), so swapping both exchanges exactly these
        two and nothing else moves. A story without a number trades places the same way (its
        neighbour loses the number it gives away). Closed stories, the ends: no change.
        """
        if direction not in ("up", "down"):
            raise ValueError(f"direction must be 'up' or 'down', not {direction!r}")

        def change(raw: Any, prd: Prd) -> bool:
            self._raw_story(raw, prd, story_id)  # unknown id -> PrdError
            order = [s.key for s in prd.open_order()]
            key = str(story_id)
            if key not in order:
                return False  # already passing: not in the order
            i = order.index(key)
            j = i - 1 if direction == "up" else i + 1
            if not 0 <= j < len(order):
                return False
            expected = list(order)
            expected[i], expected[j] = expected[j], expected[i]
            stories = raw_stories(raw)
            a = prd.index_of(key)
            b = prd.index_of(order[j])
            pa, pb = stories[a].get("priority"), stories[b].get("priority")
            if not json_text.same(pa, pb):
                _set_or_drop(stories[a], "priority", pb)
                _set_or_drop(stories[b], "priority", pa)
                trial = Prd.model_validate(normalise(raw))
                if [s.key for s in trial.open_order()] == expected:
                    return True
            if fills_ids(raw) and any(
                isinstance(e, dict) and "id" not in e for e in (stories[a], stories[b])
            ):
                return False  # ids are positions here: swapping places would renumber them
            stories[a], stories[b] = stories[b], stories[a]
            return True

        return self._write(change)[0]

    def add_story(self, fields: Mapping[str, Any]) -> Story:
        """Append a story; the id follows the pattern of the existing ids unless one is given."""

        def change(raw: Any, prd: Prd) -> str:
            stories = raw_stories(raw)
            positional = fills_ids(raw) and not any(
                isinstance(e, dict) and "id" in e for e in stories
            )
            if positional:
                new_id: Any = len(stories) + 1
            else:
                new_id = fields["id"] if "id" in fields else _next_id(prd)
            entry: dict[str, Any] = {} if positional else {"id": new_id}
            defaults: dict[str, Any] = {
                "title": None,
                "description": "",
                "acceptanceCriteria": [],
                "priority": prd.next_priority(),
                "passes": False,
                "notes": "",
            }
            if positional:
                defaults.pop("notes")
            for name, default in defaults.items():
                if name in fields:
                    entry[name] = fields[name]
                elif default is not None:
                    entry[name] = default
            for name, value in fields.items():
                if not (positional and name == "id"):
                    entry.setdefault(name, value)
            if positional and "acceptanceCriteria" in entry:
                entry["steps"] = entry.pop("acceptanceCriteria")
            stories.append(entry)
            return str(new_id)

        prd, key = self._write(change)
        story = prd.story(key)
        assert story is not None
        return story

    # ---- the one write path

    def _before_replace(self) -> None:
        """Called after the new file is ready and before the compare-and-swap (a seam for tests)."""

    def _write(self, change: Callable[[Any, Prd], T]) -> tuple[Prd, T]:
        """Re-read, apply `change` to the raw document, validate, then swap the file in atomically.

        `change` may return False to mean "nothing to do" (no write happens). Only the values
        that changed are rewritten in the text (see json_text), so every other byte stays. If
        the file changed on disk after we read it, start over from the new content, so a
        concurrent external edit is merged rather than lost.
        """
        target = self.path  # never through a symlink: _read_bytes refuses one
        with self._lock:
            for _ in range(MAX_WRITE_ATTEMPTS):
                original = self._read_bytes()
                text = self._decode(original)
                raw, prd = parse_document(text, self.path)
                result = change(raw, prd)
                if result is False:
                    return prd, result
                new_prd = validate_document(
                    raw, self.path, " (change not saved)", known_duplicates=repeated_ids(prd)
                )
                new_bytes = splice_document(text, raw, self.path).encode("utf-8")
                if self._swap(target, original, new_bytes):
                    return new_prd, result
            raise PrdError(
                f"{self.path}: the file kept changing while saving; change not saved, try again"
            )

    def _swap(self, target: Path, original: bytes, new_bytes: bytes) -> bool:
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(new_bytes)
                f.flush()
                os.fsync(f.fileno())
            with contextlib.suppress(OSError):  # best effort: keep the user's permission bits
                tmp.chmod(target.stat().st_mode & 0o7777)
            self._before_replace()
            # Compare-and-swap: only replace the content we read. A writer that lands between
            # this check and the rename can still win the race, but the window is microseconds.
            try:
                current = self._read_bytes()
            except PrdError:
                current = None
            if current != original:
                return False
            merged_external = self._known is not None and self._known != _digest(original)
            tmp.replace(target)  # atomic rename within one folder
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        _fsync_dir(target.parent)
        if not merged_external:
            # our own write: the watcher stays quiet about it. If we merged an edit the watcher
            # has not reported yet, leave _known alone so it still reports one change.
            self._known = _digest(new_bytes)
        return True

    def _raw_story(self, raw: Any, prd: Prd, story_id: str) -> dict[str, Any]:
        try:
            entry: dict[str, Any] = raw_stories(raw)[prd.index_of(story_id)]
        except KeyError:
            raise PrdError(f"{self.path}: no story with id {str(story_id)!r}") from None
        return entry

    # ---- watching

    def _checked(self, digest: str | None) -> None:
        """Called each time the watcher looked at the file (a seam for tests)."""

    async def watch(self, on_change: Callable[[], None], stop: asyncio.Event) -> None:
        """Call `on_change()` whenever someone else changes the file, until `stop` is set.

        Watches the folder, not the file, so editors that save by writing a new file and
        renaming it over the old one are followed. A missing file (mid-save) is not reported;
        its reappearance with new content is.
        """
        if stop.is_set():
            return
        target = self.path.resolve()
        self._known = self._current_digest(target)
        names = {self.path.name, target.name}

        def only_prd(change: Change, changed: str) -> bool:
            return Path(changed).name in names

        folders = dict.fromkeys([target.parent, self.path.parent])
        async for _ in awatch(
            *folders,
            watch_filter=only_prd,
            stop_event=stop,
            recursive=False,
            rust_timeout=WATCH_RECHECK_MS,
            yield_on_timeout=True,
        ):
            if stop.is_set():
                return
            digest = self._current_digest(target)
            if digest is not None and digest != self._known:
                self._known = digest
                on_change()
            self._checked(digest)

    @staticmethod
    def _current_digest(target: Path) -> str | None:
        try:
            return _digest(target.read_bytes())
        except OSError:
            return None


def _set_or_drop(entry: dict[str, Any], key: str, value: Any) -> None:
    if value is None:
        entry.pop(key, None)
    else:
        entry[key] = value


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable; not every platform lets us open a folder."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # e.g. some network filesystems refuse fsync on folders; the data is already synced
    finally:
        os.close(fd)


def _next_id(prd: Prd) -> str | int:
    """Continue the existing id pattern: ints -> max+1, "US-007" -> "US-008" (padding kept)."""
    ids = [s.id for s in prd.userStories]
    taken = {str(i) for i in ids}
    if ids and isinstance(ids[-1], int):
        candidate: str | int = max(i for i in ids if isinstance(i, int)) + 1
        while str(candidate) in taken:
            candidate = int(candidate) + 1
        return candidate
    pattern = re.compile(r"^(.*?)(\d+)$")
    prefix, width, top = "US-", 3, 0
    matches = [m for i in ids if isinstance(i, str) and (m := pattern.match(i))]
    if matches:
        prefix = matches[-1].group(1)  # the newest story's pattern
        same = [m for m in matches if m.group(1) == prefix]
        width = max(len(m.group(2)) for m in same)
        top = max(int(m.group(2)) for m in same)
    number = top + 1
    while f"{prefix}{number:0{width}d}" in taken:
        number += 1
    return f"{prefix}{number:0{width}d}"
