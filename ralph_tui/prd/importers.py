"""Turning PRDs written for other tools into ralph-tui's PRD file (``ralph-tui import``).

The command picks the reader by the file's name, else by its content; the backlog formats
of other Ralph-style tools (feature lists, YAML PRDs, checkbox plans, code-task files) are
read in ``backlogs``. The two readers here:

- a Markdown PRD in the shape the popular ``prd`` skill writes: ``### US-001: Title``
  sections with ``**Description:**``, ``**Acceptance Criteria:**`` and ``- [ ]`` items, and
  optional ``**Priority:**`` / ``**Depends on:**`` lines;
- a beads file (``.beads/issues.jsonl``): one issue per line with ``id``, ``title``,
  ``description`` (checkbox lines become criteria), ``status`` (``closed`` passes),
  ``priority`` 0-4 and ``dependencies``.

Everything is built and validated in memory first; a bad input is one line naming the file
(and line), and nothing is written.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from ralph_tui.prd.backlogs import (
    FORMATS,
    Imported,
    PrdImportError,
    code_task_files,
    distinct_ids,
    import_checkbox_plan,
    import_code_tasks,
    import_json_text,
    import_yaml,
    summary,
)
from ralph_tui.prd.format import PRIORITY_WORDS, PrdError, validate_prd, write_new
from ralph_tui.prd.model import NON_BLOCKING_DEPENDENCY_TYPES
from ralph_tui.safety.names import branch_for

__all__ = ["FORMATS", "Imported", "PrdImportError", "import_prd", "read_source", "write_atomic"]

MAX_INPUT_BYTES = 20 * 1024 * 1024

_BULLET = re.compile(r"^\s*[-*+]\s+(.*\S)\s*$")
_CHECKBOX = re.compile(r"^\s*[-*+]\s+\[([ xX])\]\s*(.*\S)\s*$")


# --------------------------------------------------------------------------- markdown

_STORY_HEADING = re.compile(r"^#{2,4}\s+([A-Za-z][\w.-]*-\d+[\w.-]*|\d+)\s*[:.\-–—]\s*(.+?)\s*#*$")
_H1 = re.compile(r"^#\s+(?:PRD:\s*)?(.+?)\s*$")
_STORY_WITHOUT_ID = re.compile(r"^#{3,4}\s+(.+?)\s*#*$")
_H2 = re.compile(r"^##\s+(.+?)\s*$")
_FIELD = re.compile(r"^\*\*([^*:]+):?\*\*:?\s*(.*)$")
_PRIORITY = re.compile(r"^(?:P)?(-?\d+(?:\.\d+)?)\b", re.IGNORECASE)
_ID_LIST = re.compile(r"[A-Za-z][\w.-]*-\d+[\w.-]*|\d+")


def import_markdown(text: str, path: Path) -> Imported:
    lines = text.splitlines()
    project = ""
    overview: list[str] = []
    section = ""
    # every section that is not a story, as written (heading and body): the PRD's context
    sections: list[list[str]] = []
    stories: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    block = ""  # the bold field we are inside: description / criteria / other
    for number, line in enumerate(lines, start=1):
        heading = _STORY_HEADING.match(line)
        # a story heading someone forgot the id of, among the stories: a story all the same
        # (its text must not be merged into the story above); it gets the next free id below
        bare = None if heading or current is None else _STORY_WITHOUT_ID.match(line)
        if heading or bare:
            current = {
                "id": heading.group(1) if heading else None,
                "title": (heading.group(2) if heading else bare.group(1)).strip(),  # type: ignore[union-attr]
                "description": "",
                "acceptanceCriteria": [],
                "priority": None,
                "passes": False,
                "notes": "",
            }
            current["_line"] = number
            stories.append(current)
            block = ""
            continue
        if current is None:
            if not project and not sections and (h1 := _H1.match(line)):
                project = h1.group(1)
            elif h2 := _H2.match(line):
                section = h2.group(1).lower()
                sections.append([line])
            elif ("overview" in section or "introduction" in section) and line.strip():
                overview.append(line.strip())
            elif sections:
                sections[-1].append(line)
            continue
        if h2 := _H2.match(line):
            current = None  # a new top-level section ends the stories
            section = h2.group(1).lower()
            sections.append([line])
            continue
        fld = _FIELD.match(line.strip())
        if fld:
            name, rest = fld.group(1).strip().lower(), fld.group(2).strip()
            if name.startswith("description"):
                block = "description"
                current["description"] = rest
            elif name.startswith("acceptance"):
                block = "criteria"
            elif name.startswith("priority"):
                block = ""
                current["priority"] = _md_priority(rest, path, number)
            elif name.startswith(("depends", "dependencies", "blocked by")):
                block = ""
                ids = _ID_LIST.findall(rest)
                if ids:
                    current["dependsOn"] = ids
            else:
                block = "notes"
                current["notes"] = (current["notes"] + "\n" if current["notes"] else "") + (
                    f"{fld.group(1).strip()}: {rest}" if rest else f"{fld.group(1).strip()}:"
                )
            continue
        box = _CHECKBOX.match(line)
        if box and block in ("criteria", "description", ""):
            current["acceptanceCriteria"].append(box.group(2))
            block = "criteria"
            continue
        bullet = _BULLET.match(line)
        if bullet and block == "criteria":
            current["acceptanceCriteria"].append(bullet.group(1))
            continue
        if block == "description" and line.strip():
            joined = current["description"]
            current["description"] = f"{joined} {line.strip()}" if joined else line.strip()
        elif block == "notes" and line.strip():
            current["notes"] += "\n" + line.strip()
    if not stories:
        raise PrdImportError(
            f"{path}: no user stories found (expected headings like '### US-001: Title')"
        )
    result = Imported({}, "Markdown PRD")
    _number_stories_without_id(stories, result, path)
    distinct_ids(stories, result)
    for position, story in enumerate(stories, start=1):
        story.pop("_line")
        if story["priority"] is None:
            story["priority"] = position
        if not story["notes"]:
            del story["notes"]
        result.mapped.append(summary(story))
    doc: dict[str, Any] = {"project": project or path.stem}
    branch = branch_for(project or path.stem)
    if branch:
        doc["branchName"] = branch
    doc["description"] = " ".join(overview)[:2000]
    context = _context(sections)
    if context:
        doc["context"] = context
        names = [line.lstrip("#").strip() for line in context.splitlines() if _H2.match(line)]
        result.notes.append(f"kept for the agent, with every story: {', '.join(names)}")
    doc["userStories"] = stories
    result.doc = doc
    return result


def _context(sections: list[list[str]]) -> str:
    """The non-story sections as written (Goals, Functional Requirements, Non-Goals, ...): the
    agent gets them with every story (``Prd.context``). The overview is the description; a
    section that held only stories (``## User Stories``) is left out."""
    kept = []
    for heading, *body in sections:
        name = heading.lstrip("#").strip().lower()
        text = "\n".join(body).strip("\n")
        if "overview" in name or "introduction" in name or not text.strip():
            continue
        kept.append(f"{heading.strip()}\n{text}")
    return "\n\n".join(kept)


def _number_stories_without_id(stories: list[dict[str, Any]], result: Imported, path: Path) -> None:
    """The next free id in the file's own style (``US-003`` after ``US-002``) for each story
    heading without one, said in the import's notes with its line."""
    numbered = [re.match(r"^(.*?)(\d+)$", str(s["id"])) for s in stories if s["id"] is not None]
    matches = [m for m in numbered if m is not None]
    prefix = matches[-1].group(1) if matches else "US-"
    width = len(matches[-1].group(2)) if matches else 3
    taken = {str(s["id"]) for s in stories if s["id"] is not None}
    next_number = max((int(m.group(2)) for m in matches), default=0) + 1
    for story in stories:
        if story["id"] is not None:
            continue
        while f"{prefix}{next_number:0{width}d}" in taken:
            next_number += 1
        new_id = f"{prefix}{next_number:0{width}d}"
        story["id"] = new_id
        taken.add(new_id)
        result.notes.append(
            f"{path}:{story['_line']}: the story {story['title']!r} has no id; "
            f"imported as {story['id']}"
        )


def _md_priority(value: str, path: Path, line: int) -> int | float:
    word = value.strip().strip("*_`").lower()
    if word in PRIORITY_WORDS:
        return PRIORITY_WORDS[word]
    match = _PRIORITY.match(value.strip())
    if not match:
        raise PrdImportError(
            f"{path}:{line}: priority {value!r} is not a number (e.g. 1, P1 or high)"
        )
    number = float(match.group(1))
    return int(number) if number.is_integer() else number


# --------------------------------------------------------------------------- beads

#: beads issue types that are containers, not work for one iteration
_SKIPPED_TYPES = frozenset({"epic"})
_SKIPPED_STATUS = frozenset({"tombstone", "deleted"})


def import_beads(text: str, path: Path) -> Imported:
    issues: list[tuple[int, dict[str, Any]]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            issue = json.loads(line)
        except json.JSONDecodeError as e:
            raise PrdImportError(f"{path}:{number}:{e.colno}: not valid JSON ({e.msg})") from None
        except (RecursionError, ValueError):
            raise PrdImportError(f"{path}:{number}: JSON too deep or a number too long") from None
        if not isinstance(issue, dict):
            raise PrdImportError(f"{path}:{number}: each line must be a JSON object (an issue)")
        for key in ("id", "title"):
            if not isinstance(issue.get(key), str) or not issue[key].strip():
                raise PrdImportError(f"{path}:{number}: issue without a {key}")
        issues.append((number, issue))
    if not issues:
        raise PrdImportError(f"{path}: no issues found (expected one JSON object per line)")
    result = Imported({}, "beads issues")
    kept: list[dict[str, Any]] = []
    for number, issue in issues:
        if issue.get("issue_type") in _SKIPPED_TYPES or issue.get("status") in _SKIPPED_STATUS:
            result.notes.append(
                f"skipped {issue['id']} ({issue.get('issue_type') or issue['status']})"
            )
            continue
        kept.append(_beads_story(issue, path, number))
    distinct_ids(kept, result)
    ids = {s["id"] for s in kept}
    for story in kept:
        deps = story.get("dependencies")
        if isinstance(deps, list):
            keep = []
            for dep in deps:
                target = dep.get("depends_on_id") if isinstance(dep, dict) else dep
                if target in ids or (isinstance(dep, dict) and _non_blocking(dep)):
                    keep.append(dep)
                else:
                    result.notes.append(
                        f"dropped {story['id']}'s dependency on {target} (not among the imported)"
                    )
            story["dependencies"] = keep
        result.mapped.append(summary(story))
    if not kept:
        raise PrdImportError(f"{path}: no issues left to import (only epics or deleted issues)")
    result.doc = {"project": path.parent.parent.name or path.stem, "userStories": kept}
    return result


def _non_blocking(dep: dict[str, Any]) -> bool:
    return dep.get("type") in NON_BLOCKING_DEPENDENCY_TYPES


def _beads_story(issue: dict[str, Any], path: Path, number: int) -> dict[str, Any]:
    description = issue.get("description") or ""
    if not isinstance(description, str):
        raise PrdImportError(f"{path}:{number}: description must be text")
    criteria: list[str] = []
    rest: list[str] = []
    for line in description.splitlines():
        box = _CHECKBOX.match(line)
        if box:
            criteria.append(box.group(2))
        else:
            rest.append(line)
    extra = issue.get("acceptance_criteria")
    if isinstance(extra, str):
        for line in extra.splitlines():
            box = _CHECKBOX.match(line)
            text = box.group(2) if box else line.strip().lstrip("-*+ ").strip()
            if text:
                criteria.append(text)
    priority = issue.get("priority")
    if priority is not None and (
        isinstance(priority, bool) or not isinstance(priority, int | float)
    ):
        raise PrdImportError(f"{path}:{number}: priority must be a number (beads uses 0-4)")
    story: dict[str, Any] = {
        "id": issue["id"],
        "title": issue["title"].strip(),
        "description": "\n".join(rest).strip(),
        "acceptanceCriteria": criteria,
    }
    if priority is not None:
        story["priority"] = priority
    story["passes"] = issue.get("status") == "closed"
    skip = {"id", "title", "description", "acceptance_criteria", "priority", "passes"}
    blocked_by = issue.get("blocked_by")
    if isinstance(blocked_by, list) and "dependencies" not in issue:
        # ralph-orchestrator's runtime tasks (.ralph/agent/tasks.jsonl) say who blocks them
        story["dependencies"] = blocked_by
        skip.add("blocked_by")
    for key, value in issue.items():
        if key not in skip:
            story[key] = value
    return story


# --------------------------------------------------------------------------- the command


def _read_text(path: Path) -> str:
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise PrdImportError(f"{path}: not a regular file")
        if size > MAX_INPUT_BYTES:
            raise PrdImportError(f"{path}: too large to import ({size} bytes)")
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise PrdImportError(f"{path}: file not found") from None
    except UnicodeDecodeError as e:
        raise PrdImportError(f"{path}: not valid UTF-8 (byte {e.start})") from None
    except OSError as e:
        raise PrdImportError(f"{path}: cannot read: {e.strerror}") from None
    if "\x00" in text:
        raise PrdImportError(f"{path}: binary file (NUL bytes)")
    return text.replace("\r\n", "\n")


_CHECKBOX_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+\[[ xX]\]", re.MULTILINE)


def read_source(path: Path) -> Imported:
    """Read and convert a source; the kind is told by its name, else by its content."""
    if path.is_dir():
        files = code_task_files(path)
        return import_code_tasks([(f, _read_text(f)) for f in files], path)
    text = _read_text(path)
    name = path.name.lower()
    suffix = path.suffix.lower()
    if name.endswith(".code-task.md"):
        return import_code_tasks([(path, text)], path)
    if suffix in (".yml", ".yaml"):
        return import_yaml(text, path)
    if suffix == ".json" or (suffix != ".jsonl" and _whole_json(text)):
        return import_json_text(text, path)
    if suffix == ".jsonl" or (suffix not in (".md", ".markdown") and text.lstrip()[:1] == "{"):
        return import_beads(text, path)
    if not any(_STORY_HEADING.match(line) for line in text.splitlines()):
        if _CHECKBOX_ITEM.search(text):
            return import_checkbox_plan(text, path)
        if text.startswith("---") and re.search(r"^#\s+Task\b", text, re.MULTILINE):
            return import_code_tasks([(path, text)], path)
    return import_markdown(text, path)


def _whole_json(text: str) -> bool:
    """True when the text is one JSON document (a PRD variant), not JSON Lines."""
    if text.lstrip()[:1] not in ("{", "["):
        return False
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


def import_prd(source: Path, target: Path, *, force: bool = False) -> Imported:
    """Convert `source` and write it to `target` (refusing to overwrite unless `force`)."""
    if target.exists() and not force:
        raise PrdImportError(f"{target}: a PRD is already there (use --force to replace it)")
    imported = read_source(source)
    try:
        prd = validate_prd(imported.doc, source)
    except PrdError as e:
        raise PrdImportError(f"{e} (after import)") from None
    if not prd.userStories:
        raise PrdImportError(f"{source}: no stories found in it; nothing written to {target}")
    write_atomic(target, write_new(imported.doc))
    return imported


def write_atomic(target: Path, text: str) -> None:
    """Write a whole new file by temp file + rename: never a half-written PRD."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        Path(name).replace(target)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
