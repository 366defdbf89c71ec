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
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import ValidationError
from watchfiles import Change, awatch

from ralph_tui import json_text
from ralph_tui.errors import UsageError
from ralph_tui.prd import Prd, Story, title_from_description

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

_BOM = "\ufeff"
_TYPE_WORDS = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
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


def _loads(text: str, path: Path) -> Any:
    """json.loads that turns every way hostile or odd JSON can fail into one PrdError line."""
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise PrdError(f"{path}:{e.lineno}:{e.colno}: {e.msg}") from None
    except _DuplicateKey as e:
        # json.loads would keep the last one and a rewrite would drop the other: refuse instead
        raise PrdError(f"{path}: duplicate key {e.key!r} in one JSON object") from None
    except _BadConstant as e:
        raise PrdError(f"{path}: {e.word} is not a JSON number") from None
    except RecursionError:
        raise PrdError(f"{path}: JSON nested too deeply to read") from None
    except ValueError as e:  # e.g. an integer longer than Python's int/str conversion limit
        raise PrdError(f"{path}: unreadable number ({_first_line(str(e))})") from None


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else "error"


class _BadConstant(Exception):
    def __init__(self, word: str) -> None:
        super().__init__(word)
        self.word = word


def _no_constant(word: str) -> Any:
    raise _BadConstant(word)


def _parse(text: str, path: Path) -> tuple[Any, Prd]:
    if text.startswith(_BOM):
        text = text[1:]
    if not text.strip():
        raise PrdError(f"{path}: file is empty (expected a JSON object with userStories)")
    raw = _loads(text, path)
    if not isinstance(raw, dict | list):
        raise PrdError(
            f"{path}: top level must be a JSON object or an array of stories, not {_json_kind(raw)}"
        )
    return raw, _validate(raw, path, text=text)


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


# ---- the shapes a PRD comes in


def stories_key(raw: Any) -> str | None:
    """Where the stories live: "userStories", "stories", or None for a top-level array."""
    if isinstance(raw, list):
        return None
    if "userStories" not in raw and "stories" in raw:
        return "stories"
    return "userStories"


def raw_stories(raw: Any) -> list[Any]:
    """The file's own list of story entries (the one a write changes)."""
    key = stories_key(raw)
    stories = raw if key is None else raw.get(key)
    assert isinstance(stories, list)  # only called on validated documents
    return stories


def normalise(raw: Any) -> dict[str, Any]:
    """The document in the model's shape, as a copy: ``userStories`` whatever the file says.

    Items of a top-level array get their 1-based position as id and the first line of their
    description as title when they have none; the file itself is never changed by this.
    """
    if isinstance(raw, list):
        stories: list[Any] = []
        for position, item in enumerate(raw, start=1):
            if isinstance(item, dict):
                item = dict(item)
                item.setdefault("id", position)
                if not isinstance(item.get("title"), str):
                    title = title_from_description(item)
                    if title is not None:
                        item["title"] = title
            stories.append(item)
        return {"userStories": stories}
    key = stories_key(raw)
    data = dict(raw)
    if key == "stories":
        data["userStories"] = data.pop("stories")
    if "project" not in data and isinstance(data.get("name"), str):
        data["project"] = data["name"]
    return data


def _raw_path(raw: Any, loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """A model location (always under userStories) as a path in the file itself."""
    if loc and loc[0] == "userStories":
        key = stories_key(raw)
        return loc[1:] if key is None else (key, *loc[1:])
    return loc


def _render_path(path: tuple[int | str, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _validate(raw: Any, path: Path, suffix: str = "", *, text: str | None = None) -> Prd:
    """Validate a raw document; errors name the field (and its line:col when the text is known)."""
    data = normalise(raw)
    try:
        prd = Prd.model_validate(data)
    except ValidationError as e:
        loc, message = _describe(e, data)
        duplicate = _duplicate_id(data) if not loc else None
        if duplicate is not None:
            index, first, key = duplicate
            loc = ("userStories", index, "id")
            other = _render_path(_raw_path(raw, ("userStories", first)))
            message = f"duplicate id {key!r} (same as {other})"
        where = _render_path(_raw_path(raw, loc))
        raise PrdError(
            f"{_where(path, text, raw, loc)}{where}{': ' if where else ''}{message}{suffix}"
        ) from None
    except RecursionError:
        raise PrdError(f"{path}: JSON nested too deeply to read") from None
    problem = prd.dependency_problem()
    if problem is not None:
        index, field, message = problem
        loc = ("userStories", index, field)
        raise PrdError(
            f"{_where(path, text, raw, loc)}{_render_path(_raw_path(raw, loc))}: {message}{suffix}"
        )
    return prd


def validate_prd(raw: Any, path: Path) -> Prd:
    """Validate a document built in memory (import, draft) with the same rules as the file."""
    if not isinstance(raw, dict | list):
        raise PrdError(f"{path}: top level must be a JSON object or an array of stories")
    return _validate(raw, path)


def _where(path: Path, text: str | None, raw: Any, loc: tuple[int | str, ...]) -> str:
    """`file:line:col: ` of the value at `loc`, or `file: ` when there is no text to point into."""
    if text is None:
        return f"{path}: "
    try:
        node = json_text.locate(json_text.index(text), _raw_path(raw, loc))
    except ValueError:
        return f"{path}: "
    if node is None:
        return f"{path}: "
    line, col = json_text.line_col(text, node.start)
    return f"{path}:{line}:{col}: "


def _describe(error: ValidationError, data: dict[str, Any]) -> tuple[tuple[int | str, ...], str]:
    """The first problem's location and message, plus how many more there are."""
    groups: dict[tuple[int | str, ...], list[dict[str, Any]]] = {}
    for item in error.errors():
        groups.setdefault(_field_loc(item["loc"], data), []).append(dict(item))
    problems = [(loc, _problem(loc, items, data)) for loc, items in groups.items()]
    loc, first = problems[0]
    return loc, first if len(problems) == 1 else f"{first} (+{len(problems) - 1} more)"


def _field_loc(loc: tuple[int | str, ...], raw: Any) -> tuple[int | str, ...]:
    """A pydantic location cut to the data's own keys, dropping union-member tags like `.str`."""
    out: list[int | str] = []
    node = raw
    for part in loc:
        if isinstance(node, list) and isinstance(part, int):
            out.append(part)
            node = node[part] if 0 <= part < len(node) else None
        elif isinstance(node, dict) and isinstance(part, str):
            out.append(part)
            node = node.get(part)
        else:
            break  # below a scalar: pydantic's tags for union members, not fields
    return tuple(out)


def _problem(loc: tuple[int | str, ...], items: list[dict[str, Any]], data: dict[str, Any]) -> str:
    first = items[0]
    kind = first["type"]
    if len(items) > 1 and all(i["type"] in _TYPE_WORDS for i in items):
        words = " or ".join(dict.fromkeys(_TYPE_WORDS[i["type"]] for i in items))
        message = f"Input should be {words}"
    elif kind == "string_too_short" and first.get("ctx", {}).get("min_length") == 1:
        message = "must not be empty"
    elif kind == "string_pattern_mismatch" and first.get("ctx", {}).get("pattern") == r"\S":
        message = "must not be blank"
    elif kind in ("model_type", "model_attributes_type", "dict_type"):
        message = "Input should be an object"
    else:
        message = str(first["msg"]).removeprefix("Value error, ")
    if kind != "missing" and loc:
        message += f" (got {_preview(first.get('input'))})"
    return message


def _duplicate_id(data: dict[str, Any]) -> tuple[int, int, str] | None:
    """(index, index of the first use, id) of the first repeated story id."""
    seen: dict[str, int] = {}
    stories = data.get("userStories")
    if not isinstance(stories, list):
        return None
    for index, entry in enumerate(stories):
        if not isinstance(entry, dict) or "id" not in entry:
            continue
        key = str(entry["id"])
        if key in seen:
            return index, seen[key], key
        seen[key] = index
    return None


def _preview(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
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
    """The PRD's JSON Schema for editors; unknown fields stay allowed, as the store keeps them.

    Three shapes are accepted: an object with ``userStories``, an object with ``stories``, or a
    top-level array of feature items (whose id is their position and whose title is the first
    line of their description when they have none).
    """
    schema = Prd.model_json_schema()
    schema.pop("title", None)
    defs = schema.pop("$defs")
    _allow_unknown(schema)
    _allow_unknown(defs)
    for node in [schema, *defs.values()]:
        for field in node.get("properties", {}).values():
            field.pop("title", None)  # generated ones ("Acceptancecriteria") help nobody
    story = defs["Story"]["properties"]
    story["id"]["description"] = (
        'Unique: "US-001" or 1. Strings and integers match by text. '
        "Items of a top-level array without an id get their 1-based position."
    )
    story["title"]["description"] = (
        "Shown on the board and in the commit subject; in a top-level array it defaults to "
        "the first line of description."
    )
    story["priority"]["description"] = (
        "Any number, lower is more urgent (0 and negatives allowed); stories without one come "
        "after every numbered story; ties go to the story earlier in the file."
    )
    story["passes"]["description"] = (
        "Set to true by ralph-tui when the story is committed (a `status` beside it follows)."
    )
    story["acceptanceCriteria"]["description"] = (
        'Strings, or objects {"id", "text", "testCommand"}: a testCommand runs as a gate.'
    )
    story["steps"]["description"] = "Verification steps of a feature item (shown as criteria)."
    for name in ("dependsOn", "dependencies", "deps"):
        story[name]["description"] = (
            "Ids this story waits for (or objects with depends_on_id); it is not picked until "
            "they all pass."
        )
    story["verificationCommand"]["description"] = "A shell command run as a gate for this story."
    story["validation"]["description"] = "Shell commands run as gates for this story."
    schema["properties"]["userStories"]["description"] = "Worked through one story at a time."
    stories_object = json.loads(json.dumps(schema))
    stories_object["properties"]["stories"] = stories_object["properties"].pop("userStories")
    stories_object["required"] = ["stories"]
    feature = json.loads(json.dumps(defs["Story"]))
    feature["required"] = ["passes"]
    defs["FeatureItem"] = feature
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "ralph-tui PRD",
        "description": "A PRD for a Ralph loop: user stories the agent works through one by one.",
        "anyOf": [
            schema,
            stories_object,
            {"type": "array", "items": {"$ref": "#/$defs/FeatureItem"}},
        ],
        "$defs": defs,
    }


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


def detect_style(text: str) -> json_text.Style:
    """How the file on disk is laid out, so new text (a new key, a new story) looks the same."""
    body = text[1:] if text.startswith(_BOM) else text
    newline = "\r\n" if "\r\n" in body else "\n"
    stripped = body.strip()
    indent: int | str | None = 2
    item_sep = ","
    if stripped and "\n" not in stripped:
        # a one-line (minified) file stays on one line
        indent = None
        item_sep = ", " if re.search(r",\s", stripped) else ","
        key_sep = ": " if re.search(r'"\s*:\s', stripped) else ":"
    else:
        key_sep = ": "
        match = re.search(r"\n([ \t]+)\S", body)
        if match:
            lead = match.group(1)
            indent = "\t" if lead.startswith("\t") else len(lead)
    # a pure-ASCII file that spells non-ASCII as \uXXXX escapes keeps doing so
    ascii_escaped = body.isascii() and re.search(r"\\u(?!00[0-7])[0-9a-fA-F]{4}", body)
    return json_text.Style(indent, item_sep, key_sep, bool(ascii_escaped), newline)


def write_new(raw: Any) -> str:
    """Text for a brand-new PRD file (import, draft): two-space indent, trailing newline."""
    return json.dumps(raw, indent=2, ensure_ascii=False) + "\n"


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
            return self.path.read_bytes()
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
        """Set some fields of one story; other stories and fields are left as they are on disk.

        Fields are named as in the model; they land where this file keeps them: ``passes``
        also moves a ``status`` beside it (in the file's own words), criteria edited as text
        keep their objects (and test commands), a feature item's criteria are its ``steps``.
        """

        def change(raw: Any, prd: Prd) -> bool:
            entry = self._raw_story(raw, prd, story_id)
            wanted = _in_file_terms(raw, entry, changes)
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
            a = _index_of(prd, key)
            b = _index_of(prd, order[j])
            pa, pb = stories[a].get("priority"), stories[b].get("priority")
            if not json_text.same(pa, pb):
                _set_or_drop(stories[a], "priority", pb)
                _set_or_drop(stories[b], "priority", pa)
                trial = Prd.model_validate(normalise(raw))
                if [s.key for s in trial.open_order()] == expected:
                    return True
            if isinstance(raw, list) and any(
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
            positional = isinstance(raw, list) and not any(
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
        target = self.path.resolve()  # keep a symlinked PRD a symlink
        with self._lock:
            for _ in range(MAX_WRITE_ATTEMPTS):
                original = self._read_bytes()
                text = self._decode(original)
                raw, prd = _parse(text, self.path)
                result = change(raw, prd)
                if result is False:
                    return prd, result
                new_prd = _validate(raw, self.path, " (change not saved)")
                new_bytes = _splice(text, raw, self.path).encode("utf-8")
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
                current = target.read_bytes()
            except FileNotFoundError:
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
            entry: dict[str, Any] = raw_stories(raw)[_index_of(prd, story_id)]
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


def _splice(text: str, raw: Any, path: Path) -> str:
    """The file's text changed to hold `raw`, touching only the values that differ."""
    bom = text.startswith(_BOM)
    body = text[1:] if bom else text
    old = _loads(body, path)
    return (_BOM if bom else "") + json_text.splice(body, old, raw, detect_style(body))


def _index_of(prd: Prd, story_id: str) -> int:
    """A story's position: the model keeps the file's order, one entry per story."""
    for index, story in enumerate(prd.userStories):
        if story.key == str(story_id):
            return index
    raise KeyError(story_id)


def _set_or_drop(entry: dict[str, Any], key: str, value: Any) -> None:
    if value is None:
        entry.pop(key, None)
    else:
        entry[key] = value


#: the usual partner of a status word, for a file where no story has the other flag yet
_STATUS_PAIRS = {
    "open": "closed", "todo": "done", "to do": "done", "pending": "completed",
    "not_started": "completed", "not-started": "completed", "in_progress": "completed",
    "in-progress": "completed", "ready": "done", "backlog": "done", "new": "done",
    "closed": "open", "done": "todo", "completed": "pending", "complete": "pending",
    "passed": "pending", "passing": "pending", "finished": "pending",
}  # fmt: skip


def _status_word(stories: list[Any], passes: bool, current: str) -> str:
    """The word this file uses for a story that passes (or does not): the most common one
    beside stories with the same flag, else the usual partner of the story's current word in
    the same letter case."""
    same = [
        e["status"]
        for e in stories
        if isinstance(e, dict) and isinstance(e.get("status"), str) and e.get("passes") is passes
    ]
    if same:
        return str(max(set(same), key=same.count))
    word = _STATUS_PAIRS.get(current.lower(), "done" if passes else "open")
    if current.isupper():
        return word.upper()
    if current[:1].isupper():
        return word.capitalize()
    return word


def _in_file_terms(raw: Any, entry: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """Model-named changes as this entry stores them."""
    out = dict(changes)
    status = entry.get("status")
    flips = "passes" in out and entry.get("passes") is not out["passes"]
    if flips and isinstance(status, str) and "status" not in out:
        out["status"] = _status_word(raw_stories(raw), bool(out["passes"]), status)
    if "acceptanceCriteria" in out:
        texts = out["acceptanceCriteria"]
        if "steps" in entry and "acceptanceCriteria" not in entry:
            out["steps"] = out.pop("acceptanceCriteria")
        elif isinstance(texts, list) and isinstance(entry.get("acceptanceCriteria"), list):
            out["acceptanceCriteria"] = _merge_criteria(entry["acceptanceCriteria"], texts)
    return out


def _merge_criteria(current: list[Any], texts: list[Any]) -> list[Any]:
    """Criteria edited as text keep their objects (id, testCommand) where the text matches or
    where an object stood at the same position."""
    by_text = {
        c["text"]: c for c in current if isinstance(c, dict) and isinstance(c.get("text"), str)
    }
    out: list[Any] = []
    for position, text in enumerate(texts):
        if not isinstance(text, str):
            out.append(text)
        elif text in by_text:
            out.append(by_text[text])
        elif position < len(current) and isinstance(current[position], dict):
            out.append({**current[position], "text": text})
        else:
            out.append(text)
    return out


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
