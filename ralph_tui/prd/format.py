"""The PRD file format: every shape real PRDs come in, read liberally and written exactly.

Reading: hostile or odd JSON (deep nesting, huge numbers, NaN, duplicate keys, bad UTF-8) is one
``PrdError`` line naming the file and the spot; the shapes (``userStories``, ``stories``, a
top-level array of feature items) are normalised for the model (``prd.Prd``) without changing
the document; validation errors carry ``path:line:col`` and the field path as the file spells
it. Writing: the file's layout (``detect_style``), changes spliced into the old text
(``json_text``), and a change named in model terms put into the file's own terms (a ``status``
beside ``passes``, ``steps`` for criteria, criteria objects kept).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ralph_tui.errors import UsageError
from ralph_tui.prd import json_text
from ralph_tui.prd.model import Prd, title_from_description
from ralph_tui.safety.text import escape_controls

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
    """A PRD that cannot be read or a change that would make it invalid; the file is untouched.

    The message is one line (the first problem, and how many more); ``more`` holds a line for
    each further problem, for ``validate`` to list them all."""

    def __init__(self, message: str, more: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.more = list(more)


# --------------------------------------------------------------------------- parsing


def parse_prd(text: str, path: Path) -> Prd:
    """Parse and validate PRD text; every problem becomes one line naming the file and the spot."""
    return parse_document(text, path)[1]


# said when a file that is not named .json is not JSON: most often a Markdown PRD or a backlog
# given to --prd or prd = ..., which `import` converts once
NOT_JSON_HINT = (
    " (a PRD is a JSON file: bring a Markdown PRD or another backlog in once with "
    "`ralph-tui import FILE`, see `ralph-tui import --list-formats`)"
)


def _loads(text: str, path: Path) -> Any:
    """json.loads that turns every way hostile or odd JSON can fail into one PrdError line.

    A key repeated in one object keeps its last value, as every JSON reader people use does
    (``duplicate_key_warnings`` names both places; writes go to the last one).
    """
    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        hint = "" if path.suffix.lower() == ".json" else NOT_JSON_HINT
        raise PrdError(f"{path}:{e.lineno}:{e.colno}: {e.msg}{hint}") from None
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


def parse_document(text: str, path: Path) -> tuple[Any, Prd]:
    if text.startswith(_BOM):
        text = text[1:]
    if not text.strip():
        raise PrdError(f"{path}: file is empty (expected a JSON object with userStories)")
    raw = _loads(text, path)
    if not isinstance(raw, dict | list):
        raise PrdError(
            f"{path}: top level must be a JSON object or an array of stories, not {_json_kind(raw)}"
        )
    return raw, validate_document(raw, path, text=text)


# ---- the shapes a PRD comes in

#: where an object keeps its stories, in the order the keys are looked for: snarktank's
#: ``userStories``, then the feature lists of long-running-agent harnesses and their forks
STORY_KEYS = ("userStories", "stories", "user_stories", "features", "items", "cards", "tasks")
#: feature-list shapes: items may go without an id (their 1-based position is one) and
#: without ``passes`` (their ``status`` or ``done`` says it, else they are open)
_FEATURE_KEYS = frozenset({"features", "items", "cards", "tasks"})
#: the words a ``status`` field uses for a finished story (compared lower-case, ``-``/space
#: as ``_``); every other word means open
DONE_WORDS = frozenset({
    "done", "complete", "completed", "closed", "passed", "passing", "pass", "finished",
    "resolved", "shipped", "verified", "merged", "implemented", "fixed",
})  # fmt: skip
#: what a model field may be called in a feature list, when the model's own name is absent
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "title": ("name", "summary"),
    "acceptanceCriteria": ("stepsToVerify", "acceptance", "acceptance_criteria", "criteria"),
    "dependsOn": ("depends_on", "blockedBy", "blocked_by"),
    "passes": ("status", "done", "completed"),
}


_PROJECT_ALIASES = ("name", "title", "projectName", "project_name")


#: priority words feature lists use instead of numbers (lower = more urgent, as in the PRD)
PRIORITY_WORDS = {
    "critical": 0, "urgent": 0, "highest": 0, "high": 1, "medium": 2, "normal": 2, "med": 2,
    "low": 3, "lowest": 4,
}  # fmt: skip


def priority_number(value: str) -> int | None:
    """``"high"`` -> 1, ``"P2"`` -> 2; None for a word that is not a priority."""
    word = value.strip().lower()
    if word in PRIORITY_WORDS:
        return PRIORITY_WORDS[word]
    match = re.fullmatch(r"p(\d)", word)
    return int(match.group(1)) if match else None


def stories_key(raw: Any) -> str | None:
    """Where the stories live (one of ``STORY_KEYS``), or None for a top-level array."""
    if isinstance(raw, list):
        return None
    present = [key for key in STORY_KEYS if key in raw]
    lists = [key for key in present if isinstance(raw[key], list)]
    return (lists or present or ["userStories"])[0]


def fills_ids(raw: Any) -> bool:
    """True for the shapes whose items may leave out their id (position is the id)."""
    return stories_key(raw) in _FEATURE_KEYS or isinstance(raw, list)


def raw_stories(raw: Any) -> list[Any]:
    """The file's own list of story entries (the one a write changes)."""
    key = stories_key(raw)
    stories = raw if key is None else raw.get(key)
    assert isinstance(stories, list)  # only called on validated documents
    return stories


def status_passes(entry: dict[str, Any]) -> bool | None:
    """What a feature item's ``status`` (or ``done``/``completed`` flag) says, if anything."""
    status = entry.get("status")
    if isinstance(status, str):
        return re.sub(r"[\s-]+", "_", status.strip().lower()) in DONE_WORDS
    for flag in ("done", "completed"):
        if isinstance(entry.get(flag), bool):
            return bool(entry[flag])
    return None


def entry_passes(entry: Any) -> bool | None:
    """The story's ``passes`` as the model sees it (``passes`` first, then ``status``)."""
    if not isinstance(entry, dict):
        return None
    if isinstance(entry.get("passes"), bool):
        return bool(entry["passes"])
    return status_passes(entry)


def _as_story(item: Any, position: int, *, feature: bool, fill_id: bool) -> Any:
    """One entry in the model's terms (a copy): aliases read, position as id where allowed."""
    if not isinstance(item, dict):
        return item
    item = dict(item)
    if fill_id:
        item.setdefault("id", position)
    if not isinstance(item.get("title"), str):
        alias = next(
            (a for a in FIELD_ALIASES["title"] if isinstance(item.get(a), str) and item[a].strip()),
            None,
        )
        title = item[alias] if alias is not None else None
        if title is None and feature:  # a feature item may be only its description
            title = title_from_description(item)
        if title is not None:
            item["title"] = title.strip()
    if "acceptanceCriteria" not in item:
        for alias in FIELD_ALIASES["acceptanceCriteria"]:
            value = item.get(alias)
            if isinstance(value, str):
                value = [ln.strip() for ln in value.splitlines() if ln.strip()]
            if isinstance(value, list):
                item["acceptanceCriteria"] = value
                break
    if not any(k in item for k in ("dependsOn", "dependencies", "deps")):
        alias = next((a for a in FIELD_ALIASES["dependsOn"] if a in item), None)
        if alias is not None:
            item["dependsOn"] = item[alias]
    if feature and isinstance(item.get("priority"), str):
        number = priority_number(item["priority"])
        if number is not None:
            item["priority"] = number  # the file keeps its word; the pick uses the number
    if "passes" not in item:
        derived = status_passes(item)
        if derived is not None:
            item["passes"] = derived
        elif feature:
            item["passes"] = False
    return item


def normalise(raw: Any) -> dict[str, Any]:
    """The document in the model's shape, as a copy: ``userStories`` whatever the file says.

    Items of a top-level array or of a feature list (``features``, ``items``, ``cards``,
    ``tasks``) get their 1-based position as id when they have none; every entry's title
    may be its ``name`` or the first line of its description, its criteria its
    ``stepsToVerify``/``acceptance``, its dependencies ``depends_on``, and ``passes`` may be
    said by a ``status`` word. The file itself is never changed by this.
    """
    key = stories_key(raw)
    fill_id = fills_ids(raw)
    feature = key in _FEATURE_KEYS or key is None
    if isinstance(raw, list):
        return {
            "userStories": [
                _as_story(item, n, feature=feature, fill_id=fill_id)
                for n, item in enumerate(raw, start=1)
            ]
        }
    data = dict(raw)
    if key is not None and key != "userStories":
        data["userStories"] = data.pop(key)
    if isinstance(data.get("userStories"), list):
        data["userStories"] = [
            _as_story(item, n, feature=feature, fill_id=fill_id)
            for n, item in enumerate(data["userStories"], start=1)
        ]
    if "project" not in data:
        for alias in _PROJECT_ALIASES:
            if isinstance(data.get(alias), str):
                data["project"] = data[alias]
                break
    if "branchName" not in data:
        for alias in ("branch_name", "branch"):
            if isinstance(data.get(alias), str):
                data["branchName"] = data[alias]
                break
    return data


def _raw_path(raw: Any, loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """A model location (always under userStories) as a path in the file itself, with a
    field named as the entry spells it (``name`` for ``title``, ``status`` for ``passes``)."""
    if loc and loc[0] == "userStories":
        key = stories_key(raw)
        if len(loc) >= 3 and isinstance(loc[1], int) and isinstance(loc[2], str):
            stories = raw if key is None else raw.get(key)
            entry = stories[loc[1]] if isinstance(stories, list) and loc[1] < len(stories) else None
            if isinstance(entry, dict) and loc[2] not in entry:
                alias = next((a for a in FIELD_ALIASES.get(loc[2], ()) if a in entry), None)
                if alias is not None:
                    loc = (*loc[:2], alias, *loc[3:])
        return loc[1:] if key is None else (key, *loc[1:])
    if loc and loc[0] == "project" and isinstance(raw, dict) and "project" not in raw:
        alias = next(
            (a for a in ("name", "title", "projectName", "project_name") if a in raw), None
        )
        return (alias, *loc[1:]) if alias else loc
    return loc


def _render_path(path: tuple[int | str, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def validate_document(
    raw: Any,
    path: Path,
    suffix: str = "",
    *,
    text: str | None = None,
    known_duplicates: Collection[str] | None = None,
) -> Prd:
    """Validate a raw document; errors name the field (and its line:col when the text is known).

    A repeated story id loads (each copy is addressed by its position, see ``Story.key``);
    a change (``known_duplicates``: the ids repeated before it) must not repeat one more.
    """
    data = normalise(raw)
    try:
        prd = Prd.model_validate(data)
    except ValidationError as e:
        lines = [
            f"{_where(path, text, raw, loc)}{where}{': ' if where else ''}{message}{suffix}"
            for loc, message in _describe(e, data)
            for where in [_render_path(_raw_path(raw, loc))]
        ]
        lines.sort(key=lambda line: _line_col(line, path))  # as they stand in the file
        first = lines[0] if len(lines) == 1 else f"{lines[0]} (+{len(lines) - 1} more)"
        raise PrdError(first, more=lines[1:]) from None
    except RecursionError:
        raise PrdError(f"{path}: JSON nested too deeply to read") from None
    if known_duplicates is not None:
        for places in prd.duplicate_ids():
            story_id = str(prd.userStories[places[0]].id)
            if story_id not in known_duplicates:
                loc = ("userStories", places[-1], "id")
                other = _render_path(_raw_path(raw, ("userStories", places[0])))
                raise PrdError(
                    f"{path}: {_render_path(_raw_path(raw, loc))}: duplicate id {story_id!r} "
                    f"(same as {other}){suffix}"
                )
    problem = prd.dependency_problem()
    if problem is not None:
        index, field, message = problem
        loc = ("userStories", index, field)
        raise PrdError(
            f"{_where(path, text, raw, loc)}{_render_path(_raw_path(raw, loc))}: {message}{suffix}"
        )
    return prd


def repeated_ids(prd: Prd) -> set[str]:
    """The story ids the file uses more than once."""
    return {str(prd.userStories[places[0]].id) for places in prd.duplicate_ids()}


def document_warnings(text: str, raw: Any, prd: Prd, path: Path) -> list[str]:
    """What loads but deserves a look, each line naming every place (``path:line:col``)."""
    body = text[1:] if text.startswith(_BOM) else text
    try:
        root = json_text.index(body)
    except ValueError:
        return []
    out = _duplicate_key_warnings(body, root, path)
    for places in prd.duplicate_ids():
        spots = []
        for index in places:
            loc = ("userStories", index, "id")
            spots.append((_where(path, body, raw, loc)[:-2], _render_path(_raw_path(raw, loc))))
        keys = ", ".join(prd.userStories[i].key for i in places)
        story_id = escape_controls(str(prd.userStories[places[0]].id), multiline=False)
        listed = "; ".join(f"{place} ({field})" for place, field in spots)
        out.append(
            f"{spots[0][0]}: warning: story id {story_id!r} is used {len(places)} times: "
            f"{listed}; each is addressed by its position: {keys}"
        )
    return out


def _duplicate_key_warnings(text: str, root: json_text.Node, path: Path) -> list[str]:
    """One line per key repeated in one object: both places, and that the last one counts."""
    out: list[str] = []
    stack: list[tuple[json_text.Node, tuple[int | str, ...]]] = [(root, ())]
    while stack:
        node, where = stack.pop()
        seen: dict[str, int] = {}
        for key, key_start, _end, value in node.members:
            if key in seen:
                first = "{}:{}".format(*json_text.line_col(text, seen[key]))
                line, col = json_text.line_col(text, key_start)
                out.append(
                    f"{path}:{line}:{col}: warning: key {_render_path((*where, key))!r} repeats "
                    f"the one at {path}:{first}; the last one counts"
                )
            seen[key] = key_start
            stack.append((value, (*where, key)))
        stack.extend((item, (*where, i)) for i, item in enumerate(node.items))
    out.sort(key=_position_order)
    return out


def _line_col(line: str, path: Path) -> tuple[int, int]:
    match = re.match(re.escape(str(path)) + r":(\d+):(\d+): ", line)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def _position_order(line: str) -> tuple[int, int]:
    match = re.search(r":(\d+):(\d+): warning", line)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def require_stories(prd: Prd, path: Path, *, tracker: bool) -> None:
    """Refuse a PRD without stories before a run (or ``validate``): "every story passes" would
    be vacuously true, and a wrong key or an empty export would look like finished work. With
    a tracker the run's sync fills it."""
    if not prd.userStories and not tracker:
        raise PrdError(
            f"{path}: no stories, nothing for a run to do (write some, or `ralph-tui import` "
            "a backlog)"
        )


def validate_prd(raw: Any, path: Path) -> Prd:
    """Validate a document built in memory (import, draft) with the same rules as the file."""
    if not isinstance(raw, dict | list):
        raise PrdError(f"{path}: top level must be a JSON object or an array of stories")
    return validate_document(raw, path)


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


def _describe(
    error: ValidationError, data: dict[str, Any]
) -> list[tuple[tuple[int | str, ...], str]]:
    """Every problem's location and message, one per field, in the document's order."""
    groups: dict[tuple[int | str, ...], list[dict[str, Any]]] = {}
    for item in error.errors():
        groups.setdefault(_field_loc(item["loc"], data), []).append(dict(item))
    return [(loc, _problem(loc, items, data)) for loc, items in groups.items()]


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

    The shapes accepted: an object with ``userStories``, an object with ``stories``, a feature
    list (an object with ``features``, ``items``, ``cards`` or ``tasks``), or a top-level array
    of feature items (a feature item's id is its position, its title its ``name`` or the first
    line of its description, its ``passes`` its ``status`` word, when it has none).
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
        '"US-001" or 1. Strings and integers match by text. A repeated id loads with a '
        "warning; each copy is then addressed as <id>@<position>. Feature items without an id "
        "get their 1-based position."
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
    feature.pop("required", None)
    feature["properties"]["priority"] = {
        "anyOf": [
            feature["properties"]["priority"],
            {"type": "string", "description": "critical, high, medium, low or P0-P4"},
        ]
    }
    feature["properties"]["status"] = {
        "type": "string",
        "description": "Instead of passes: done, completed, passing, ... pass; other words do not.",
    }
    defs["FeatureItem"] = feature
    feature_lists = [
        {
            "type": "object",
            "required": [key],
            "properties": {key: {"type": "array", "items": {"$ref": "#/$defs/FeatureItem"}}},
            "additionalProperties": True,
        }
        for key in sorted(_FEATURE_KEYS)
    ]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "ralph-tui PRD",
        "description": "A PRD for a Ralph loop: user stories the agent works through one by one.",
        "anyOf": [
            schema,
            stories_object,
            {"type": "array", "items": {"$ref": "#/$defs/FeatureItem"}},
            *feature_lists,
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


def splice_document(text: str, raw: Any, path: Path) -> str:
    """The file's text changed to hold `raw`, touching only the values that differ."""
    bom = text.startswith(_BOM)
    body = text[1:] if bom else text
    old = _loads(body, path)
    return (_BOM if bom else "") + json_text.splice(body, old, raw, detect_style(body))


#: the usual partner of a status word, for a file where no story has the other flag yet
_STATUS_PAIRS = {
    "open": "closed", "todo": "done", "to do": "done", "pending": "completed",
    "not_started": "completed", "not-started": "completed", "in_progress": "completed",
    "in-progress": "completed", "ready": "done", "backlog": "done", "new": "done",
    "closed": "open", "done": "todo", "completed": "pending", "complete": "pending",
    "passed": "pending", "passing": "failing", "finished": "pending", "failing": "passing",
    "failed": "passed", "blocked": "done",
}  # fmt: skip


def _status_word(stories: list[Any], passes: bool, current: str) -> str:
    """The word this file uses for a story that passes (or does not): the most common one
    beside stories with the same flag, else the usual partner of the story's current word in
    the same letter case."""
    same = [
        e["status"]
        for e in stories
        if isinstance(e, dict) and isinstance(e.get("status"), str) and entry_passes(e) is passes
    ]
    if same:
        return str(max(set(same), key=same.count))
    word = _STATUS_PAIRS.get(current.lower(), "done" if passes else "open")
    if current.isupper():
        return word.upper()
    if current[:1].isupper():
        return word.capitalize()
    return word


def in_file_terms(raw: Any, entry: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """Model-named changes as this entry stores them: a feature item without ``passes`` keeps
    saying it with its ``status`` word (or ``done`` flag), a field it spells another way
    (``name``, ``stepsToVerify``, ``depends_on``) is written under that name."""
    out = dict(changes)
    status = entry.get("status")
    flips = "passes" in out and entry_passes(entry) is not out["passes"]
    if "passes" in out and "passes" not in entry and status_passes(entry) is not None:
        wanted = bool(out.pop("passes"))
        if isinstance(status, str):
            if flips and "status" not in out:
                out["status"] = _status_word(raw_stories(raw), wanted, status)
        else:
            flag = next(f for f in ("done", "completed") if isinstance(entry.get(f), bool))
            out[flag] = wanted
    elif flips and isinstance(status, str) and "status" not in out:
        out["status"] = _status_word(raw_stories(raw), bool(out["passes"]), status)
    for field in ("title", "dependsOn"):
        if field in out and field not in entry:
            alias = next((a for a in FIELD_ALIASES[field] if a in entry), None)
            if alias is not None:
                out[alias] = out.pop(field)
    if "acceptanceCriteria" in out:
        texts = out["acceptanceCriteria"]
        steps = entry.get("steps")
        if "steps" in entry and "acceptanceCriteria" not in entry:
            out["steps"] = out.pop("acceptanceCriteria")
            return out
        if "acceptanceCriteria" not in entry:
            alias = next((a for a in FIELD_ALIASES["acceptanceCriteria"] if a in entry), None)
            if alias is not None:
                value = out.pop("acceptanceCriteria")
                joined = isinstance(entry[alias], str) and isinstance(value, list)
                out[alias] = "\n".join(map(str, value)) if joined else value
                return out
        if isinstance(steps, list) and isinstance(texts, list):
            # both lists are edited as one (criteria, then steps): a line that is one of the
            # entry's steps stays a step, every other line is a criterion
            current_steps = {step for step in steps if isinstance(step, str)}
            out["steps"] = [text for text in texts if text in current_steps]
            texts = [text for text in texts if text not in current_steps]
            out["acceptanceCriteria"] = texts
        if isinstance(texts, list) and isinstance(entry.get("acceptanceCriteria"), list):
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
