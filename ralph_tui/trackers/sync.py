"""The tracker's open issues into the JSON PRD, the file the engine works on.

A sync keeps the PRD's own stories (those without a ``tracker`` object) as they are, updates
each synced story from its issue (title, description, criteria, priority, dependencies, link)
while keeping its ``passes`` and ``notes``, adds the new issues, and removes the open stories
whose issue is no longer open (closed or deleted on the tracker). A passing story stays: it is
part of the branch's history.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ralph_tui.prd.format import (
    PrdError,
    parse_document,
    raw_stories,
    splice_document,
    validate_prd,
    write_new,
)
from ralph_tui.safety.names import branch_for
from ralph_tui.trackers.base import TrackerIssue, story_from_issue, tracker_ref

#: the fields a sync owns on a synced story; everything else (passes, notes...) is the run's
SYNCED_FIELDS = ("title", "description", "acceptanceCriteria", "priority", "dependsOn", "tracker")


@dataclass
class SyncResult:
    text: str  # the PRD file's new text
    changed: bool
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def summary(self, source: str) -> str:
        parts = [
            f"{len(self.added)} added" if self.added else "",
            f"{len(self.updated)} updated" if self.updated else "",
            f"{len(self.removed)} removed (closed or deleted)" if self.removed else "",
        ]
        said = ", ".join(p for p in parts if p) or "no change"
        return f"PRD synced from {source}: {said}"


def new_document(source: str, kind: str, name: str) -> dict[str, Any]:
    """An empty PRD for a tracker: the project named after it, a branch of its own."""
    return {
        "project": name,
        "branchName": branch_for(f"{kind}-{name}") or "ralph/issues",
        "description": f"Stories synced from {source}; the tracker is where they are edited.",
        "userStories": [],
    }


def sync_document(
    raw: Any, issues: Sequence[TrackerIssue], kind: str
) -> tuple[Any, list[str], list[str], list[str]]:
    """``raw`` (a PRD document, changed in place) with the issues merged in; (raw, added,
    updated, removed) story ids."""
    if not isinstance(raw, dict):
        raise PrdError("a PRD synced from a tracker must be a JSON object with userStories")
    stories = raw_stories(raw)
    ids = {issue.ref: issue.story_id for issue in issues}
    # matched by the story's id, which names the issue (GH-12, ENG-12): a ``tracker.ref``
    # changed in the file (by hand, or by an agent without a sandbox) cannot make one issue's
    # story take another's place
    by_id = {issue.story_id: issue for issue in issues}
    added: list[str] = []
    updated: list[str] = []
    removed: list[str] = []
    kept: list[Any] = []
    seen: set[str] = set()
    for entry in stories:
        if tracker_ref(entry, kind) is None:
            kept.append(entry)
            continue
        issue = by_id.get(str(entry.get("id")))
        if issue is None or issue.ref in seen:
            if entry.get("passes") is True:
                kept.append(entry)
            else:
                removed.append(str(entry.get("id")))
            continue
        seen.add(issue.ref)
        fresh = story_from_issue(issue, kind, ids)
        before = {k: entry.get(k) for k in SYNCED_FIELDS}
        for key in SYNCED_FIELDS:
            if key in fresh:
                entry[key] = fresh[key]
            else:
                entry.pop(key, None)
        if {k: entry.get(k) for k in SYNCED_FIELDS} != before:
            updated.append(issue.story_id)
        kept.append(entry)
    for issue in issues:
        if issue.ref not in seen:
            kept.append(story_from_issue(issue, kind, ids))
            added.append(issue.story_id)
            seen.add(issue.ref)
    stories[:] = kept
    return raw, added, updated, removed


def sync_file(
    path: Path, issues: Sequence[TrackerIssue], kind: str, source: str, name: str
) -> SyncResult:
    """The PRD at ``path`` (created when absent) synced with ``issues``; nothing is written."""
    if path.exists():
        old = path.read_text(encoding="utf-8")
        raw, _ = parse_document(old, path)
    else:
        old = ""
        raw = new_document(source, kind, name)
    raw, added, updated, removed = sync_document(raw, issues, kind)
    validate_prd(raw, path)  # a dependency cycle among issues is said here, naming the file
    text = splice_document(old, raw, path) if old else write_new(raw)
    return SyncResult(text, text != old, added, updated, removed)
