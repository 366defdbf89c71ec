"""Backlogs other Ralph-style tools keep, read as PRD documents for ``ralph-tui import``.

Each reader turns one file (or a folder of task files) into a PRD document in snarktank's
shape and says, line by line, what it mapped and what it dropped, so nothing is lost
silently. The readers are deterministic: importing the same source twice writes the same
PRD. Formats (see ``FORMATS``):

- JSON PRD variants (feature lists under ``features``/``items``/``cards``/``tasks``, a
  top-level array, ``stories``): the same mapping the PRD reader uses (``prd_format``);
- YAML PRDs (``prd.yml``) in snarktank's shape, phases included (each with its own
  ``branchName`` and stories);
- checkbox plans such as frankbria's ``fix_plan.md``: ``- [ ]``/``- [x]`` items under
  headings, with HIGH/MEDIUM/LOW priorities;
- ralph-orchestrator's ``*.code-task.md`` (front matter with ``status``, numbered steps and
  criteria), one file or a folder of them.

Input is untrusted: YAML is read with the safe loader and without aliases (no expansion
bombs), every value must be plain data, and a bad file is one line naming it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ralph_tui.errors import UsageError
from ralph_tui.prd.format import (
    FIELD_ALIASES,
    PrdError,
    normalise,
    priority_number,
    status_passes,
    stories_key,
)
from ralph_tui.safety.names import branch_for


class PrdImportError(UsageError):
    """An input that cannot be imported; nothing was written."""


@dataclass
class Imported:
    """The PRD document built from a source, a line per story saying how it was mapped, and
    what the source held that the PRD does not keep."""

    doc: dict[str, Any]
    source_kind: str
    mapped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Format:
    name: str
    files: str
    what: str


#: every source ``ralph-tui import`` reads (``--list-formats`` prints this)
FORMATS = (
    Format("JSON PRD", "prd.json", "snarktank's userStories, or stories; used directly too"),
    Format(
        "feature list (JSON)",
        "feature_list.json, features.json",
        "a list under features/items/cards/tasks or a top-level array; name/title/description, "
        "steps/stepsToVerify/acceptance, status words or passes, ids optional; used directly too",
    ),
    Format("Markdown PRD", "*.md", "### US-001: Title sections (the prd skill)"),
    Format(
        "checkbox plan", "fix_plan.md, *.md", "- [ ]/- [x] items under headings, HIGH/MEDIUM/LOW"
    ),
    Format("code tasks", "*.code-task.md, a folder", "ralph-orchestrator task files"),
    Format("YAML PRD", "prd.yml, *.yaml", "snarktank's shape, phases with their own stories"),
    Format(
        "beads / runtime tasks",
        "*.jsonl (.beads/issues.jsonl, .ralph/agent/tasks.jsonl)",
        "one issue per line",
    ),
)

#: the PRD fields a story keeps; everything else an entry holds stays as an extra field
_STORY_FIELDS = (
    "id", "title", "description", "acceptanceCriteria", "priority", "passes", "notes",
    "dependsOn",
)  # fmt: skip


# --------------------------------------------------------------------------- shared


def summary(story: dict[str, Any]) -> str:
    count = len(story.get("acceptanceCriteria", []))
    bits = [f"{count} {'criterion' if count == 1 else 'criteria'}"]
    if story.get("priority") is not None:
        bits.append(f"priority {story['priority']}")
    deps = story.get("dependsOn") or story.get("dependencies")
    if deps:
        names = [d.get("depends_on_id") if isinstance(d, dict) else d for d in deps]
        bits.append("after " + ", ".join(str(n) for n in names))
    if story.get("passes"):
        bits.append("passes")
    return f"{story['id']}: {story['title']} ({', '.join(bits)})"


def distinct_ids(stories: list[dict[str, Any]], result: Imported) -> None:
    """Give every story its own id (``<id>-2`` for the second use) and say so; dependencies
    on a repeated id keep meaning its first story."""
    taken = {str(s.get("id")) for s in stories}
    seen: set[str] = set()
    for story in stories:
        key = str(story.get("id"))
        if key not in seen:
            seen.add(key)
            continue
        n = 2
        while f"{key}-{n}" in taken:
            n += 1
        new = f"{key}-{n}"
        taken.add(new)
        seen.add(new)
        story["id"] = new
        result.notes.append(f"id {key} is used more than once: {story['title']!r} is now {new}")


def _dep_target(dep: Any) -> Any:
    """The id a dependency names (beads writes ``{"depends_on_id": ..., "type": ...}``)."""
    return dep.get("depends_on_id") if isinstance(dep, dict) else dep


def finish(result: Imported, stories: list[dict[str, Any]]) -> Imported:
    distinct_ids(stories, result)
    ids = {str(s["id"]) for s in stories}
    for story in stories:
        deps = story.get("dependsOn")
        if isinstance(deps, list):
            kept = [d for d in deps if str(_dep_target(d)) in ids]
            for gone in (_dep_target(d) for d in deps if str(_dep_target(d)) not in ids):
                result.dropped.append(
                    f"{story['id']}'s dependency on {gone} (not among the imported)"
                )
            if kept:
                story["dependsOn"] = kept
            else:
                del story["dependsOn"]
        result.mapped.append(summary(story))
    result.doc["userStories"] = stories
    return result


# --------------------------------------------------------------------------- JSON variants


#: top-level fields an import keeps (under their PRD names)
_DOC_FIELDS = ("project", "name", "title", "projectName", "project_name", "branchName",
               "branch_name", "branch", "description")  # fmt: skip


def import_json_document(raw: Any, path: Path, kind: str | None = None) -> Imported:
    """A JSON (or YAML) PRD in any shape the PRD reader knows, as a snarktank PRD."""
    if not isinstance(raw, dict | list):
        raise PrdImportError(f"{path}: top level must be an object or an array of stories")
    key = stories_key(raw)
    if isinstance(raw, dict) and not isinstance(raw.get(key or ""), list):
        if isinstance(raw.get("phases"), list):
            return _import_phases(raw, path)
        raise PrdImportError(
            f"{path}: no list of stories found (expected userStories, stories, features, "
            "items, cards, tasks or phases)"
        )
    label = kind or (
        "feature list" if key not in ("userStories", "stories", "user_stories") else "JSON PRD"
    )
    result = Imported({}, label)
    data = normalise(raw)
    for name in ("project", "branchName", "description"):
        if isinstance(data.get(name), str):
            result.doc[name] = data[name]
    if isinstance(raw, dict):
        for name, value in raw.items():
            if name not in (key, *_DOC_FIELDS):
                result.dropped.append(f"top-level {name!r} ({_kind(value)})")
    result.doc.setdefault("project", path.stem)
    return finish(result, _json_stories(raw, path, result))


def _json_stories(raw: Any, path: Path, result: Imported, first: int = 1) -> list[dict[str, Any]]:
    """The stories of a document in any known shape, in PRD fields (nothing checked across
    stories yet: ``finish`` does that once for the whole import); a story without an id gets
    its place in the whole import, counted from ``first``."""
    key = stories_key(raw)
    if key != "userStories":
        where = "the top-level array" if key is None else key
        result.notes.append(f"stories from {where} -> userStories")
    items = raw if key is None else raw[key]
    data = normalise(raw)
    return [
        _entry_story(item, raw_item, position, path, result)
        for position, (item, raw_item) in enumerate(
            zip(data["userStories"], items, strict=True), start=first
        )
    ]


def _entry_story(
    item: Any, raw_item: Any, position: int, path: Path, result: Imported
) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise PrdImportError(f"{path}: story {position} is not an object")
    story: dict[str, Any] = {}
    story["id"] = raw_item["id"] if isinstance(raw_item, dict) and "id" in raw_item else position
    if not isinstance(item.get("title"), str) or not item["title"].strip():
        raise PrdImportError(f"{path}: story {position} has no title, name or description")
    story["title"] = item["title"].strip()
    if isinstance(item.get("description"), str):
        story["description"] = item["description"]
    criteria = item.get("acceptanceCriteria")
    steps = item.get("steps")
    texts = [c for c in (criteria if isinstance(criteria, list) else []) if c is not None]
    texts += [s for s in (steps if isinstance(steps, list) else []) if isinstance(s, str)]
    story["acceptanceCriteria"] = texts
    if item.get("priority") is not None:
        story["priority"] = item["priority"]
    story["passes"] = item.get("passes", False)
    if isinstance(item.get("notes"), str) and item["notes"]:
        story["notes"] = item["notes"]
    deps = next((item[k] for k in ("dependsOn", "dependencies", "deps") if k in item), None)
    if deps is not None:
        story["dependsOn"] = deps if isinstance(deps, list) else [deps]
    renamed = []
    if isinstance(raw_item, dict):
        for model_name, aliases in FIELD_ALIASES.items():
            alias = next((a for a in aliases if a in raw_item), None)
            if model_name not in raw_item and alias is not None:
                renamed.append(f"{alias} -> {model_name}")
        if "title" not in raw_item and not any(a in raw_item for a in FIELD_ALIASES["title"]):
            renamed.append("description's first line -> title")
        if "steps" in raw_item:
            renamed.append("steps -> acceptanceCriteria")
        if "id" not in raw_item:
            renamed.append(f"position -> id {position}")
        if isinstance(raw_item.get("priority"), str) and story.get("priority") is not None:
            renamed.append(f"priority {raw_item['priority']!r} -> {story['priority']}")
        used = {*_STORY_FIELDS, "steps", "dependencies", "deps"}
        used |= {a for aliases in FIELD_ALIASES.values() for a in aliases}
        for name, value in raw_item.items():
            if name not in used:
                story[name] = value  # kept beside the story: the agent and other tools see it
            elif name in ("status", "done", "completed") and "passes" not in raw_item:
                story[name] = value  # the original word stays next to passes
    if renamed:
        result.notes.append(f"{story['id']}: " + ", ".join(renamed))
    return story


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return f"an object with {len(value)} keys"
    return "a value"


# --------------------------------------------------------------------------- YAML


class _NoAliasLoader(yaml.SafeLoader):
    """The safe loader, refusing anchors and aliases (an alias bomb expands exponentially)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise PrdImportError(
                f"{self._source}:{mark.line + 1}:{mark.column + 1}: YAML aliases are not allowed"
            )
        return super().compose_node(parent, index)

    _source = "YAML"


def load_yaml(text: str, path: Path) -> Any:
    loader = _NoAliasLoader(text)
    loader._source = str(path)
    try:
        return jsonable(loader.get_single_data(), path)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        raise PrdImportError(f"{path}{where}: not valid YAML ({e.problem})") from None
    except yaml.YAMLError as e:
        raise PrdImportError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    except RecursionError:
        raise PrdImportError(f"{path}: YAML nested too deeply to read") from None
    finally:
        loader.dispose()


def jsonable(value: Any, path: Path) -> Any:
    """YAML data as JSON data: dates as ISO text, keys as text; anything else is refused."""
    if isinstance(value, dict):
        return {str(k): jsonable(v, path) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v, path) for v in value]
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, float) and value != value:
        raise PrdImportError(f"{path}: .nan is not a number a PRD can hold")
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise PrdImportError(f"{path}: unsupported YAML value {type(value).__name__}")


def import_yaml(text: str, path: Path) -> Imported:
    raw = load_yaml(text, path)
    result = import_json_document(raw, path, "YAML PRD")
    if result.source_kind == "YAML PRD":
        return result
    result.source_kind = "YAML PRD"
    return result


def _import_phases(raw: dict[str, Any], path: Path) -> Imported:
    """Phases, each with a name, a branchName and its own stories, as one list of stories."""
    result = Imported({}, "YAML PRD")
    project = next(
        (raw[k] for k in ("project", "name", "title") if isinstance(raw.get(k), str)), ""
    )
    result.doc["project"] = project or path.stem
    branch = raw.get("branchName", raw.get("branch_name"))
    stories: list[dict[str, Any]] = []
    for number, phase in enumerate(raw["phases"], start=1):
        if not isinstance(phase, dict):
            raise PrdImportError(f"{path}: phase {number} is not a mapping")
        name = str(phase.get("name") or phase.get("title") or f"Phase {number}")
        named = ("name", "title", "branchName", "branch_name")
        inner = {k: v for k, v in phase.items() if k not in named}
        key = stories_key(inner)
        items = inner.get(key or "") if key else None
        if not isinstance(items, list):
            raise PrdImportError(f"{path}: phase {name!r} has no list of stories")
        phase_branch = phase.get("branchName", phase.get("branch_name"))
        if branch is None and isinstance(phase_branch, str):
            branch = phase_branch
        elif isinstance(phase_branch, str) and phase_branch != branch:
            result.dropped.append(
                f"phase {name!r}'s branchName {phase_branch} (the run works on one branch, "
                f"{branch}; the phase name stays on each of its stories)"
            )
        for story in _json_stories({key: items}, path, result, first=len(stories) + 1):
            story["phase"] = name
            stories.append(story)
        for extra in inner:
            if extra != key:
                result.dropped.append(f"phase {name!r}'s {extra!r}")
    if isinstance(branch, str):
        result.doc["branchName"] = branch
    if isinstance(raw.get("description"), str):
        result.doc["description"] = raw["description"]
    for name in raw:
        if name not in (*_DOC_FIELDS, "phases"):
            result.dropped.append(f"top-level {name!r}")
    result.notes.append(f"{len(raw['phases'])} phases -> one list of stories (each keeps 'phase')")
    return finish(result, stories)


# --------------------------------------------------------------------------- checkbox plans

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_ITEM = re.compile(r"^(\s*)(?:[-*+]|\d+[.)])\s+\[([ xX~-])\]\s*(.*?)\s*$")
_SUB = re.compile(r"^(\s+)(?:[-*+]|\d+[.)])\s+(?:\[[ xX~-]\]\s*)?(.*?)\s*$")
_TAG = re.compile(
    r"^(?:\*\*|__)?[\[(]?(critical|high|medium|med|low|p[0-4])[\])]?(?:\*\*|__)?\s*[:\-–—]?\s+",
    re.IGNORECASE,
)
_NOT_WORK = re.compile(r"^(notes?|learnings?|discover(?:y|ies)|context|references?)\b", re.I)
_DONE_SECTION = re.compile(r"^(completed?|done|finished)\b", re.I)
#: a heading that is a priority level ("High Priority", "Priority: LOW", "P1 (urgent)")
_PRIORITY_HEADING = re.compile(
    r"^(?:(?:priority\s*[:\-–—]?\s*)?(critical|high|medium|med|normal|low|p[0-4])"
    r"|priority\s*[:\-–—]?\s*([0-4]))(?:\s+priority)?\s*(?:[:\-–—(].*)?$",
    re.IGNORECASE,
)
#: a priority tag at the end of an item ("Fix the crash (HIGH)", "... [P1]")
_TRAILING_TAG = re.compile(r"\s*[\[(](critical|high|medium|med|low|p[0-4])[\])]\s*$", re.I)


def _level(word: str) -> int:
    number = priority_number(word)
    assert number is not None  # only called with words the patterns matched
    return number


def _plain(text: str) -> str:
    """Markdown emphasis and code marks off a one-line title."""
    return re.sub(r"(\*\*|__|`)", "", text).strip()


def import_checkbox_plan(text: str, path: Path) -> Imported:
    """``- [ ]``/``- [x]`` items under headings; a priority heading (``## High Priority``)
    or tag (``[HIGH]``, ``**P1**``) sets the priority; nested bullets are criteria."""
    result = Imported({}, "checkbox plan")
    project = ""
    headings: list[tuple[int, str]] = []  # the headings the next item sits under
    stories: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    item_indent = 0
    skipped: dict[str, int] = {}
    text_lines: dict[str, int] = {}  # prose the PRD does not keep, said per heading
    for line in text.splitlines():
        heading = _HEADING.match(line)
        if heading:
            current = None
            title = _plain(heading.group(2))
            depth = len(heading.group(1))
            if depth == 1 and not project:
                project = title
                continue
            headings = [(d, t) for d, t in headings if d < depth] + [(depth, title)]
            continue
        item = _ITEM.match(line)
        if item and (current is None or len(item.group(1)) <= item_indent):
            section = headings[-1][1] if headings else ""
            if _NOT_WORK.search(section):
                skipped[section] = skipped.get(section, 0) + 1
                current = None
                continue
            levels = [
                m.group(1) or f"p{m.group(2)}"
                for _, t in headings
                if (m := _PRIORITY_HEADING.match(t))
            ]
            phases = [
                t
                for _, t in headings
                if not _PRIORITY_HEADING.match(t) and not _DONE_SECTION.search(t)
            ]
            body = item.group(3)
            level = _level(levels[-1]) if levels else None
            tag = _TAG.match(body)
            if tag:
                level = _level(tag.group(1))
                body = body[tag.end() :]
            elif trailing := _TRAILING_TAG.search(body):
                level = _level(trailing.group(1))
                body = body[: trailing.start()]
            title = _plain(body)
            if not title:
                continue
            done = item.group(2) in "xX" or any(_DONE_SECTION.search(t) for _, t in headings)
            current = {"id": f"FP-{len(stories) + 1:03d}", "title": title}
            current["description"] = ""
            current["acceptanceCriteria"] = []
            if level is not None:
                current["priority"] = level
            current["passes"] = done
            if phases:
                current["phase"] = " / ".join(phases)
            stories.append(current)
            item_indent = len(item.group(1))
            continue
        sub = _SUB.match(line)
        if sub and current is not None and len(sub.group(1)) > item_indent:
            criterion = _plain(sub.group(2))
            if criterion:
                current["acceptanceCriteria"].append(criterion)
            continue
        if line.strip() and current is not None and line.startswith((" ", "\t")):
            joined = current["description"]
            current["description"] = f"{joined} {line.strip()}".strip()
        elif line.strip() and not _ITEM.match(line):
            current = None
            where = headings[-1][1] if headings else project or "the top"
            text_lines[where] = text_lines.get(where, 0) + 1
    if not stories:
        raise PrdImportError(f"{path}: no checkbox items found (expected '- [ ] task' lines)")
    for where, count in skipped.items():
        result.dropped.append(f"{count} checkbox item(s) under {where!r} (notes, not work)")
    for where, count in text_lines.items():
        result.dropped.append(f"{count} line(s) of text under {where!r}")
    for story in stories:
        if not story["description"]:
            del story["description"]
    result.doc["project"] = project or path.stem
    branch = branch_for(project or path.stem)
    if branch:
        result.doc["branchName"] = branch
    result.notes.append("ids FP-001... in file order; [x] or a Completed heading -> passes")
    return finish(result, stories)


# --------------------------------------------------------------------------- code tasks

_FRONT = re.compile(r"\A---[ \t]*\n(.*?)\n---[ \t]*(?:\n|\Z)", re.DOTALL)
_NUMBERED = re.compile(r"^(\s*)(\d+)[.)]\s+(.*?)\s*$")
_BULLETED = re.compile(r"^(\s*)[-*+]\s+(?:\[[ xX]\]\s*)?(.*?)\s*$")
_TASK_FILE = re.compile(r"[\w.-]+\.code-task\.md")
_TASK_NUMBER = re.compile(r"\btask[\s_-]*0*(\d+)\b", re.IGNORECASE)


def code_task_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.rglob("*.code-task.md") if p.is_file())
    if not files:
        raise PrdImportError(f"{folder}: no *.code-task.md files in this folder")
    return files


def import_code_tasks(files: list[tuple[Path, str]], source: Path) -> Imported:
    """One story per task file: title from ``# Task:``, status from the front matter,
    criteria from ``## Acceptance Criteria`` (else the numbered steps)."""
    result = Imported({}, "code tasks")
    stories = [_code_task(path, text, result) for path, text in files]
    by_file = {path.name: story["id"] for (path, _), story in zip(files, stories, strict=True)}
    by_number: dict[int, str] = {}
    for story in stories:
        number = _TASK_NUMBER.search(str(story["id"]))
        if number:
            by_number.setdefault(int(number.group(1)), story["id"])
    for story in stories:
        refs: list[str] = story.pop("_deps")
        deps: list[str] = []
        for ref in refs:
            named = _TASK_FILE.search(ref)
            number = _TASK_NUMBER.search(ref)
            target = by_file.get(named.group()) if named else None
            if target is None and number:
                target = by_number.get(int(number.group(1)))
            if target is not None and target != story["id"] and target not in deps:
                deps.append(target)
            elif target is None:
                result.dropped.append(f"{story['id']}'s dependency {ref!r} (no such task file)")
        if deps:
            story["dependsOn"] = deps
    name = source.name.removesuffix(".code-task.md") if source.is_file() else source.resolve().name
    result.doc["project"] = name
    return finish(result, stories)


def _sections(body: str) -> tuple[str, dict[str, list[str]]]:
    title = ""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in body.splitlines():
        heading = _HEADING.match(line)
        if heading and len(heading.group(1)) == 1 and not title:
            title = re.sub(r"^task\s*:\s*", "", heading.group(2), flags=re.IGNORECASE).strip()
            current = None
        elif heading and len(heading.group(1)) == 2:
            current = sections.setdefault(heading.group(2).strip().lower(), [])
        elif current is not None:
            current.append(line)
    return title, sections


def _numbered_items(lines: list[str]) -> list[str]:
    """Top-level numbered (or bulleted) items; an item's indented lines are folded in
    (``**Valid login**`` + Given/When/Then -> ``Valid login: Given ...; When ...; Then ...``)."""
    items: list[tuple[str, list[str]]] = []
    for line in lines:
        numbered = _NUMBERED.match(line)
        bullet = _BULLETED.match(line)
        if numbered and not numbered.group(1):
            items.append((_plain(numbered.group(3)), []))
        elif bullet and not bullet.group(1):
            items.append((_plain(bullet.group(2)), []))
        elif items and line.strip():
            items[-1][1].append(_plain(bullet.group(2) if bullet else line.strip()))
    out = []
    for head, subs in items:
        if head and subs:
            out.append(f"{head.rstrip(':')}: {'; '.join(subs)}")
        elif head or subs:
            out.append(head or "; ".join(subs))
    return out


def _code_task(path: Path, text: str, result: Imported) -> dict[str, Any]:
    text = text.replace("\r\n", "\n")
    front: dict[str, Any] = {}
    match = _FRONT.match(text)
    if match:
        loaded = load_yaml(match.group(1), path)
        if not isinstance(loaded, dict):
            raise PrdImportError(f"{path}: front matter must be a mapping")
        front = loaded
        text = text[match.end() :]
    title, sections = _sections(text)
    story_id = path.name.removesuffix(".code-task.md")
    if not title:
        raise PrdImportError(f"{path}: no '# Task: title' heading")
    story: dict[str, Any] = {"id": story_id, "title": title}
    description = " ".join(ln.strip() for ln in sections.pop("description", []) if ln.strip())
    if description:
        story["description"] = description
    criteria = _numbered_items(sections.pop("acceptance criteria", []))
    used_steps = ""
    if not criteria:
        for name in ("steps", "implementation approach", "technical requirements"):
            if sections.get(name):
                criteria = _numbered_items(sections.pop(name))
                used_steps = name
                break
    story["acceptanceCriteria"] = criteria
    status = front.get("status")
    story["passes"] = bool(status_passes({"status": status})) if isinstance(status, str) else False
    if isinstance(status, str):
        story["status"] = status
    story["_deps"] = [
        ln.strip().lstrip("-*+ ").strip()
        for ln in sections.pop("dependencies", [])
        if ln.strip() and not re.fullmatch(r"[-*+]?\s*(none|n/a|-)\.?", ln.strip(), re.I)
    ]
    notes = []
    for name, lines in sections.items():
        body = "\n".join(lines).strip()
        if body:
            notes.append(f"{name.title()}:\n{body}")
    if notes:
        story["notes"] = "\n\n".join(notes)
    for key, value in front.items():
        if key != "status":
            story.setdefault(key, value)
    what = f"criteria from '{used_steps}'" if used_steps else "criteria from Acceptance Criteria"
    result.notes.append(
        f"{story_id}: {what}; other sections -> notes; front matter kept beside the story"
    )
    return story


def import_json_text(text: str, path: Path) -> Imported:
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise PrdImportError(f"{path}:{e.lineno}:{e.colno}: not valid JSON ({e.msg})") from None
    except (RecursionError, ValueError):
        raise PrdImportError(f"{path}: JSON too deep or a number too long") from None
    try:
        return import_json_document(raw, path)
    except PrdError as e:
        raise PrdImportError(str(e)) from None
