"""Reading, validating and safely rewriting the PRD file (SPEC sections 2 and 3).

The PRD is shared with the human and with other tools while a run goes on, so every write
re-reads the file, applies only the change being made to the raw JSON object (unknown fields,
key order, indentation, non-ASCII text and the trailing newline survive), validates the result,
and replaces the file atomically. A compare-and-swap just before the rename makes sure an edit
that landed on disk while we were busy is merged rather than overwritten.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import ValidationError
from watchfiles import Change, awatch

from ralph_tui.errors import UsageError
from ralph_tui.prd import Prd, Story
from ralph_tui.safe_open import BookkeepingError, open_regular

__all__ = ["PrdError", "PrdStore", "parse_prd", "prd_json_schema"]

T = TypeVar("T")

#: How often a write starts over because the file changed under it before giving up.
MAX_WRITE_ATTEMPTS = 8
#: The watcher re-checks the file this often even without events (missed events, odd filesystems).
WATCH_RECHECK_MS = 1_000

_BOM = "\ufeff"
_TYPE_WORDS = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "bool_type": "a boolean",
    "list_type": "a list",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
}


class PrdError(UsageError):
    """A PRD that cannot be read or a change that would make it invalid; the file is untouched."""


# --------------------------------------------------------------------------- parsing


def parse_prd(text: str, path: Path) -> Prd:
    """Parse and validate PRD text; every problem becomes one line naming the file and the spot."""
    return _parse(text, path)[1]


def _parse(text: str, path: Path) -> tuple[dict[str, Any], Prd]:
    if text.startswith(_BOM):
        text = text[1:]
    if not text.strip():
        raise PrdError(f"{path}: file is empty (expected a JSON object with userStories)")
    try:
        raw = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as e:
        raise PrdError(f"{path}:{e.lineno}:{e.colno}: {e.msg}") from None
    except _DuplicateKey as e:
        # json.loads would keep the last one and a rewrite would drop the other: refuse instead
        raise PrdError(f"{path}: duplicate key {e.key!r} in one JSON object") from None
    if not isinstance(raw, dict):
        raise PrdError(f"{path}: top level must be a JSON object, not {_json_kind(raw)}")
    return raw, _validate(raw, path)


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _validate(raw: dict[str, Any], path: Path, suffix: str = "") -> Prd:
    try:
        return Prd.model_validate(raw)
    except ValidationError as e:
        raise PrdError(f"{path}: {_describe(e, raw)}{suffix}") from None


def _describe(error: ValidationError, raw: dict[str, Any]) -> str:
    """The first problem as `field.path[i]: message`, plus how many more there are."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for item in error.errors():
        groups.setdefault(_field_path(item["loc"], raw), []).append(dict(item))
    problems = [_problem(where, items, raw) for where, items in groups.items()]
    first = problems[0]
    return first if len(problems) == 1 else f"{first} (+{len(problems) - 1} more)"


def _field_path(loc: tuple[int | str, ...], raw: Any) -> str:
    """Render a pydantic location against the data, dropping union-member tags like `.str`."""
    out = ""
    node = raw
    for part in loc:
        if isinstance(node, list) and isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if 0 <= part < len(node) else None
        elif isinstance(node, dict) and isinstance(part, str):
            out += f".{part}" if out else part
            node = node.get(part)
        else:
            break  # below a scalar: pydantic's tags for union members, not fields
    return out


def _problem(where: str, items: list[dict[str, Any]], raw: dict[str, Any]) -> str:
    first = items[0]
    kind = first["type"]
    if not where and kind == "value_error":
        duplicate = _duplicate_id(raw)
        if duplicate:
            return duplicate
    if len(items) > 1 and all(i["type"] in _TYPE_WORDS for i in items):
        words = " or ".join(dict.fromkeys(_TYPE_WORDS[i["type"]] for i in items))
        message = f"Input should be {words}"
    elif kind == "string_too_short" and first.get("ctx", {}).get("min_length") == 1:
        message = "must not be empty"
    elif kind == "string_pattern_mismatch" and first.get("ctx", {}).get("pattern") == r"\S":
        message = "must not be blank"
    else:
        message = str(first["msg"]).removeprefix("Value error, ")
    if kind != "missing" and where:
        message += f" (got {_preview(first.get('input'))})"
    return f"{where}: {message}" if where else message


def _duplicate_id(raw: dict[str, Any]) -> str | None:
    seen: dict[str, int] = {}
    stories = raw.get("userStories")
    if not isinstance(stories, list):
        return None
    for index, entry in enumerate(stories):
        if not isinstance(entry, dict) or "id" not in entry:
            continue
        key = str(entry["id"])
        if key in seen:
            first = seen[key]
            return f"userStories[{index}].id: duplicate id {key!r} (same as userStories[{first}])"
        seen[key] = index
    return None


def _preview(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


def prd_json_schema() -> dict[str, Any]:
    """The PRD's JSON Schema for editors; unknown fields stay allowed, as the store keeps them."""
    schema = Prd.model_json_schema()
    schema.pop("title", None)
    out: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "ralph-tui PRD",
        "description": "A PRD for a Ralph loop: user stories the agent works through one by one.",
    }
    out.update(schema)
    _allow_unknown(out)
    story = out["$defs"]["Story"]["properties"]
    for props in (out["properties"], story):
        for field in props.values():
            field.pop("title", None)  # generated ones ("Acceptancecriteria") help nobody
    story["id"]["description"] = 'Unique: "US-001" or 1. Strings and integers match by text.'
    story["priority"]["description"] = "1 = most urgent; ties go to the story earlier in the file."
    story["passes"]["description"] = "Set to true by ralph-tui when the story is committed."
    out["properties"]["userStories"]["description"] = "Worked through one story at a time."
    return out


def _allow_unknown(node: Any) -> None:
    if isinstance(node, dict):
        if node.get("type") == "object":
            node["additionalProperties"] = True
        for value in node.values():
            _allow_unknown(value)
    elif isinstance(node, list):
        for value in node:
            _allow_unknown(value)


# --------------------------------------------------------------------------- file format


@dataclass(frozen=True)
class _Format:
    """How the file on disk is laid out, so a rewrite looks like the original."""

    indent: int | str | None
    separators: tuple[str, str]
    ensure_ascii: bool
    newline: str
    trailing_newline: bool
    bom: bool

    @classmethod
    def detect(cls, text: str) -> _Format:
        bom = text.startswith(_BOM)
        body = text[1:] if bom else text
        newline = "\r\n" if "\r\n" in body else "\n"
        trailing = body.endswith("\n")
        stripped = body.strip()
        indent: int | str | None = 2
        separators = (",", ": ")
        if stripped and "\n" not in stripped:
            # a one-line (minified) file stays on one line
            indent = None
            separators = (", ", ": ") if re.search(r'"\s*:\s', stripped) else (",", ":")
        else:
            match = re.search(r"\n([ \t]+)\S", body)
            if match:
                lead = match.group(1)
                indent = "\t" if lead.startswith("\t") else len(lead)
        # a pure-ASCII file that spells non-ASCII as \uXXXX escapes keeps doing so
        ascii_escaped = body.isascii() and re.search(r"\\u(?!00[0-7])[0-9a-fA-F]{4}", body)
        return cls(indent, separators, bool(ascii_escaped), newline, trailing, bom)

    def dump(self, raw: dict[str, Any]) -> str:
        text = json.dumps(
            raw, indent=self.indent, separators=self.separators, ensure_ascii=self.ensure_ascii
        )
        if self.trailing_newline:
            text += "\n"
        if self.newline != "\n":
            text = text.replace("\n", self.newline)
        return (_BOM if self.bom else "") + text


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
        return _parse(self._decode(self._read_bytes()), self.path)[1]

    def _read_bytes(self) -> bytes:
        try:
            fd = open_regular(self.path, os.O_RDONLY)  # a symlinked PRD is refused, not followed
            with os.fdopen(fd, "rb") as fh:
                return fh.read()
        except BookkeepingError as e:
            raise PrdError(str(e)) from None
        except FileNotFoundError:
            raise PrdError(f"{self.path}: file not found (run `ralph-tui init`)") from None
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
        """Set some fields of one story; other stories and fields are left as they are on disk."""

        def change(raw: dict[str, Any], prd: Prd) -> bool:
            entry = self._raw_story(raw, story_id)
            if all(k in entry and entry[k] == v for k, v in changes.items()):
                return False
            entry.update(changes)
            return True

        return self._write(change)[0]

    def move_story(self, story_id: str, direction: Literal["up", "down"]) -> Prd:
        """Move an open story one place in pick order, swapping priority numbers with its neighbour.

        When the two share a priority number (or swapping numbers alone would also move the
        story past others with those numbers), the two stories also swap places in the file:
        the pick order is (priority, file position), so swapping both exchanges exactly these
        two and nothing else moves. Closed stories, unknown stories at the ends: no change.
        """
        if direction not in ("up", "down"):
            raise ValueError(f"direction must be 'up' or 'down', not {direction!r}")

        def change(raw: dict[str, Any], prd: Prd) -> bool:
            self._raw_story(raw, story_id)  # unknown id -> PrdError
            order = [s.key for s in prd.pick_order()]
            key = str(story_id)
            if key not in order:
                return False  # already passing: not in the pick order
            i = order.index(key)
            j = i - 1 if direction == "up" else i + 1
            if not 0 <= j < len(order):
                return False
            expected = list(order)
            expected[i], expected[j] = expected[j], expected[i]
            stories: list[dict[str, Any]] = raw["userStories"]
            a = self._raw_index(raw, key)
            b = self._raw_index(raw, order[j])
            pa, pb = stories[a]["priority"], stories[b]["priority"]
            if pa != pb:
                stories[a]["priority"], stories[b]["priority"] = pb, pa
                trial = Prd.model_validate(raw)
                if [s.key for s in trial.pick_order()] == expected:
                    return True
            stories[a], stories[b] = stories[b], stories[a]
            return True

        return self._write(change)[0]

    def add_story(self, fields: Mapping[str, Any]) -> Story:
        """Append a story; the id follows the pattern of the existing ids unless one is given."""

        def change(raw: dict[str, Any], prd: Prd) -> str:
            stories = raw.get("userStories")
            assert isinstance(stories, list)  # validated by _write before calling us
            new_id = fields["id"] if "id" in fields else _next_id(prd)
            entry: dict[str, Any] = {"id": new_id}
            defaults: dict[str, Any] = {
                "title": None,
                "description": "",
                "acceptanceCriteria": [],
                "priority": max((s.priority for s in prd.userStories), default=0) + 1,
                "passes": False,
                "notes": "",
            }
            for name, default in defaults.items():
                if name in fields:
                    entry[name] = fields[name]
                elif default is not None:
                    entry[name] = default
            for name, value in fields.items():
                entry.setdefault(name, value)
            stories.append(entry)
            return str(new_id)

        prd, key = self._write(change)
        story = prd.story(key)
        assert story is not None
        return story

    # ---- the one write path

    def _before_replace(self) -> None:
        """Called after the new file is ready and before the compare-and-swap (a seam for tests)."""

    def _write(self, change: Callable[[dict[str, Any], Prd], T]) -> tuple[Prd, T]:
        """Re-read, apply `change` to the raw object, validate, then swap the file in atomically.

        `change` may return False to mean "nothing to do" (no write happens). If the file
        changed on disk after we read it, start over from the new content, so a concurrent
        external edit is merged rather than lost.
        """
        target = self.path  # never through a symlink: _read_bytes refuses one
        with self._lock:
            for _ in range(MAX_WRITE_ATTEMPTS):
                original = self._read_bytes()
                text = self._decode(original)
                raw, prd = _parse(text, self.path)
                result = change(raw, prd)
                if result is False:
                    return prd, result
                new_prd = _validate(raw, self.path, " (change not saved)")
                new_bytes = _Format.detect(text).dump(raw).encode("utf-8")
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

    @staticmethod
    def _raw_index(raw: dict[str, Any], story_id: str) -> int:
        for index, entry in enumerate(raw["userStories"]):
            if isinstance(entry, dict) and str(entry.get("id")) == str(story_id):
                return index
        raise KeyError(story_id)

    def _raw_story(self, raw: dict[str, Any], story_id: str) -> dict[str, Any]:
        try:
            entry: dict[str, Any] = raw["userStories"][self._raw_index(raw, story_id)]
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
