"""What every tracker gives the run: its open issues, a comment, a close, a pull request.

An issue becomes a story in the JSON PRD (the format the engine works on): its title, its body
as the description, its task-list items (``- [ ] ...``) as acceptance criteria, the tracker's
priority or order, and its "blocked by" links as dependencies. Each such story carries a
``tracker`` object (kind, the issue's reference, its link, a digest of its text) so a later sync
updates it in place and a landed story finds its issue again.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ralph_tui.errors import RalphError

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
_TASK_ITEM = re.compile(r"^\s*[-*+]\s+\[([ xX])\]\s+(.*\S)\s*$")


class TrackerError(RalphError):
    """A tracker call that failed for good (bad credentials, rate limit past the wait, a
    malformed answer): one line naming the tracker and what went wrong."""


class IssueGone(TrackerError):
    """The issue no longer exists (deleted, or moved where the credential cannot see it)."""


@dataclass(frozen=True)
class TrackerIssue:
    """One open issue as the run needs it, whatever the tracker."""

    ref: str  # what the tracker calls it: "12" (GitHub number), "ENG-12" (Linear identifier)
    story_id: str  # the story's id in the PRD: "GH-12", "ENG-12"
    title: str
    body: str
    url: str
    priority: int | None = None  # lower is more urgent; None: the tracker's order decides
    blocked_by: tuple[str, ...] = ()  # refs of the issues that block this one
    node_id: str = ""  # Linear's issue id (the GraphQL mutations take it)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        """A fingerprint of the text the story was made from: an edit changes it."""
        text = f"{self.title}\0{self.body}".encode("utf-8", "surrogatepass")
        return hashlib.sha256(text).hexdigest()[:16]


class Tracker(Protocol):
    """One tracker's API, as the run and ``import`` use it."""

    kind: str
    #: what the issues are read from, for messages: "github:OWNER/REPO", "linear:ENG/Project"
    source: str

    async def open_issues(self) -> list[TrackerIssue]:
        """Every open issue the configuration selects, in the tracker's order."""
        ...

    async def get_issue(self, ref: str) -> TrackerIssue:
        """The issue as it is now; ``IssueGone`` when it was deleted."""
        ...

    async def comment(self, ref: str, body: str) -> None: ...

    async def close(self, ref: str) -> None:
        """Close the issue (GitHub) or move it to the done state (Linear)."""
        ...

    async def aclose(self) -> None: ...


class PullRequests(Protocol):
    """Where pull requests are opened (GitHub, for either tracker)."""

    async def open_pull_request(self, *, head: str, base: str | None, title: str, body: str) -> str:
        """The new pull request's URL."""
        ...


def criteria_from_body(body: str) -> list[str]:
    """The task-list items of an issue body, in order: its acceptance criteria."""
    out: list[str] = []
    for line in body.splitlines():
        match = _TASK_ITEM.match(line)
        if match and match.group(2) not in out:
            out.append(match.group(2))
    return out


def story_from_issue(issue: TrackerIssue, kind: str, ids: dict[str, str]) -> dict[str, Any]:
    """The PRD entry for an open issue (``passes`` is the caller's). ``ids``: ref -> story id
    of every issue in the sync; a blocker outside it (closed, or not selected) is left out."""
    story: dict[str, Any] = {
        "id": issue.story_id,
        "title": issue.title.strip() or f"{kind} issue {issue.ref}",
        "description": issue.body.strip(),
        "acceptanceCriteria": criteria_from_body(issue.body),
        "passes": False,
    }
    if issue.priority is not None:
        story["priority"] = issue.priority
    deps = [ids[ref] for ref in issue.blocked_by if ref in ids and ids[ref] != issue.story_id]
    if deps:
        story["dependsOn"] = deps
    story["tracker"] = {
        "kind": kind,
        "ref": issue.ref,
        "url": issue.url,
        "digest": issue.digest,
    }
    return story


def tracker_ref(entry: Any, kind: str) -> str | None:
    """The issue reference of a PRD entry synced from this kind of tracker, else None."""
    if not isinstance(entry, dict):
        return None
    link = entry.get("tracker")
    if not isinstance(link, dict) or link.get("kind") != kind:
        return None
    ref = link.get("ref")
    return ref if isinstance(ref, str) else None


def landed_comment(
    *, sha: str, branch: str | None, gates: Sequence[tuple[str, str, float]], flags: Sequence[str]
) -> str:
    """The comment a landed story leaves on its issue: the commit and how the gates went.
    ``gates``: (name, state, seconds) per gate."""
    where = f" on `{branch}`" if branch else ""
    lines = [f"ralph-tui landed this in {sha[:12]}{where}.", ""]
    if gates:
        lines += ["| gate | result | time |", "| --- | --- | --- |"]
        lines += [f"| {name} | {state} | {seconds:.1f}s |" for name, state, seconds in gates]
    else:
        lines.append("Quality gates: none configured.")
    if flags:
        lines += ["", "A human approved these review flags:"]
        lines += [f"- {flag}" for flag in flags]
    return "\n".join(lines) + "\n"
