"""What a run does with its tracker: the engine's few calls into ``[tracker]``.

- ``sync``: before the run starts, the open issues into the PRD (see ``sync``);
- ``landed``: when a story lands, a comment on its issue with the commit and the gate results,
  then the issue closed (or moved to ``done_state``). An issue edited on the tracker since the
  sync read it is commented on but left open (what landed answered the old text); a deleted
  issue is reported and the run goes on;
- ``escalated``: an escalation's question as a comment;
- ``pull_request``: at the end of a run where every story passes, the branch pushed to the
  remote and one pull request listing the stories and their issues.

A tracker failure after the sync never undoes a commit or fails a story: it is a line for the
human (the commit is in the branch either way).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ralph_tui.config import TrackerOptions
from ralph_tui.gates import GateResult
from ralph_tui.git.repo import GitRepo
from ralph_tui.prd.importers import write_atomic
from ralph_tui.prd.model import Prd, Story
from ralph_tui.safety.text import escape_controls
from ralph_tui.trackers import build_pull_requests, build_tracker
from ralph_tui.trackers.base import (
    Clock,
    IssueGone,
    PullRequests,
    Sleep,
    Tracker,
    TrackerError,
    TrackerIssue,
    landed_comment,
)
from ralph_tui.trackers.sync import SyncResult, sync_file


@dataclass(frozen=True)
class Report:
    """One line for the run's log: ``level`` as a ``Notice`` has it."""

    level: Literal["info", "warning", "error"]
    message: str


class TrackerLink:
    def __init__(
        self,
        options: TrackerOptions,
        tracker: Tracker,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.options = options
        self.tracker = tracker
        self._clock = clock
        self._pulls: PullRequests | None = None
        # story id -> the issue it was synced from (ref, url, digest), as read at the sync: a
        # landing reports to this issue whatever the PRD's ``tracker`` object says by then
        # (an agent without a sandbox can write the PRD file)
        self._synced: dict[str, TrackerIssue] = {}

    @classmethod
    def from_config(
        cls, options: TrackerOptions, *, clock: Clock | None = None, sleep: Sleep | None = None
    ) -> TrackerLink:
        """The link for ``[tracker]``; a missing credential is a ``UsageError`` now, before
        anything else happens."""
        link = cls(options, build_tracker(options, clock=clock, sleep=sleep), clock=clock)
        if options.pull_request:
            link._pulls = build_pull_requests(options, link.tracker, clock=clock)
        return link

    @property
    def source(self) -> str:
        return self.tracker.source

    async def read(self) -> list[TrackerIssue]:
        """The open issues the configuration selects."""
        return await self.tracker.open_issues()

    async def sync(self, prd_path: Path, issues: Sequence[TrackerIssue]) -> SyncResult:
        """The issues into the PRD file (written only when it changes)."""
        self._synced = {issue.story_id: issue for issue in issues}
        name = self.source.partition(":")[2]
        result = await asyncio.to_thread(
            sync_file, prd_path, issues, self.tracker.kind, self.source, name
        )
        if result.changed:
            await asyncio.to_thread(write_atomic, prd_path, result.text)
        return result

    def _issue(self, story: Story) -> TrackerIssue | None:
        """The issue this story was synced from in this run (None: one of the PRD's own)."""
        return self._synced.get(story.key) or self._synced.get(str(story.id))

    async def landed(
        self,
        story: Story,
        sha: str,
        *,
        branch: str | None,
        gates: Sequence[GateResult],
        flags: Sequence[str] = (),
    ) -> list[Report]:
        synced = self._issue(story)
        if synced is None:
            return []  # one of the PRD's own stories
        ref = synced.ref
        who = f"{story.key} ({self.tracker.kind} {ref})"
        rows = [(g.name, g.state, g.duration_s) for g in gates]
        body = landed_comment(sha=sha, branch=branch, gates=rows, flags=flags)
        try:
            current = await self.tracker.get_issue(ref)
            edited = current.digest != synced.digest
            if edited:
                body += (
                    "\nThe issue was edited after the run read it: what landed answers the "
                    "earlier text, so it is left open for a human to check.\n"
                )
            await self.tracker.comment(ref, body)
            if edited:
                return [
                    Report(
                        "warning",
                        f"{who} was edited on the tracker during the run: commented with "
                        f"{sha[:10]}, left open to check against the new text",
                    )
                ]
            if not self.options.close:
                return [Report("info", f"{who}: commented with {sha[:10]}")]
            await self.tracker.close(ref)
        except IssueGone:
            return [
                Report(
                    "warning",
                    f"{who}: the issue is gone from the tracker (deleted?); {sha[:10]} "
                    "stays on the branch",
                )
            ]
        except TrackerError as exc:
            return [Report("warning", f"{who}: {exc}")]
        return [Report("info", f"{who}: commented with {sha[:10]} and closed")]

    async def escalated(self, story: Story, question: str, tried: str) -> list[Report]:
        synced = self._issue(story)
        if synced is None or not self.options.comment_escalations:
            return []
        ref = synced.ref
        body = f"ralph-tui needs a human for this story.\n\n**Question:** {question}\n"
        if tried.strip():
            body += f"\n**Tried:** {tried}\n"
        try:
            await self.tracker.comment(ref, body)
        except TrackerError as exc:  # IssueGone included: the question is still asked locally
            return [Report("warning", f"{story.key}: the escalation was not posted: {exc}")]
        return [Report("info", f"{story.key}: the escalation is posted on its issue")]

    async def pull_request(self, git: GitRepo, branch: str, prd: Prd) -> str:
        """Push ``branch`` and open the pull request; its URL. ``TrackerError`` (or
        ``GitError`` from the push) when either fails."""
        if self._pulls is None:
            self._pulls = build_pull_requests(self.options, self.tracker, clock=self._clock)
        await asyncio.to_thread(git.push, self.options.remote, branch)
        return await self._pulls.open_pull_request(
            head=branch,
            base=self.options.base,
            title=pr_title(prd),
            body=pr_body(prd, {key: issue.url for key, issue in self._synced.items()}),
        )

    async def aclose(self) -> None:
        await self.tracker.aclose()
        if self._pulls is not None and id(self._pulls) != id(self.tracker):
            aclose = getattr(self._pulls, "aclose", None)
            if aclose is not None:
                await aclose()


def pr_title(prd: Prd) -> str:
    name = escape_controls(prd.project or "ralph-tui", multiline=False)
    count = len(prd.userStories)
    return f"{name}: {count} {'story' if count == 1 else 'stories'} by ralph-tui"


def pr_body(prd: Prd, urls: dict[str, str]) -> str:
    """The stories and their issues (``urls``: as synced this run; else the PRD's link)."""
    lines = ["Stories in this branch, each one commit that passed the quality gates:", ""]
    for story in prd.userStories:
        link = urls.get(story.key) or story.link
        title = escape_controls(story.title, multiline=False)
        issue = f" ({link})" if link else ""
        lines.append(f"- [{'x' if story.passes else ' '}] {story.key}: {title}{issue}")
    return "\n".join(lines) + "\n"
