"""GitHub Issues as the PRD's source and sink, and GitHub pull requests (REST API v3).

Stories are the repository's open issues with the configured label or milestone, oldest first
(pull requests, which the issues API also lists, are left out). A ``P0``..``P4``, ``high`` or
``priority: high`` label gives the priority; "blocked by" comes from GitHub's issue
dependencies and from ``Blocked by #12`` / ``Depends on #12`` lines in the body.
"""

from __future__ import annotations

import re
from typing import Any

from ralph_tui.prd.format import priority_number
from ralph_tui.trackers.base import TrackerError, TrackerIssue
from ralph_tui.trackers.http import Clock, JsonClient, Sleep

DEFAULT_API_URL = "https://api.github.com"
PER_PAGE = 100
_BLOCKED_LINE = re.compile(r"(?im)^\s*(?:[-*]\s*)?(?:blocked\s+by|depends\s+on)\s*:?\s*(.+)$")
_ISSUE_REF = re.compile(r"(?<![\w/])#(\d+)\b")
_NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="next"')
_PRIORITY_LABEL = re.compile(r"^(?:priority|prio)\s*[:/ -]\s*(\S+)$", re.IGNORECASE)


def story_id(number: int | str) -> str:
    return f"GH-{number}"


class GitHubTracker:
    """One repository's issues (and its pull requests)."""

    kind = "github"

    def __init__(
        self,
        repository: str,
        token: str,
        *,
        api_url: str | None = None,
        label: str | None = None,
        milestone: str | None = None,
        max_wait: float = 300.0,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        self.repository = repository
        self.label = label
        self.milestone = milestone
        self.source = f"github:{repository}"
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": "ralph-tui",
        }
        extra: dict[str, Any] = {}
        if clock is not None:
            extra["clock"] = clock
        if sleep is not None:
            extra["sleep"] = sleep
        self.http = JsonClient(
            "GitHub", api_url or DEFAULT_API_URL, headers, max_wait=max_wait, **extra
        )

    @property
    def _repo(self) -> str:
        return f"/repos/{self.repository}"

    async def open_issues(self) -> list[TrackerIssue]:
        params = {
            "state": "open",
            "per_page": str(PER_PAGE),
            "sort": "created",
            "direction": "asc",
        }
        if self.label:
            params["labels"] = self.label
        if self.milestone:
            params["milestone"] = await self._milestone_number(self.milestone)
        items = await self._pages(f"{self._repo}/issues", params)
        issues = []
        for item in items:
            if not isinstance(item, dict) or "pull_request" in item:
                continue
            issues.append(await self._issue(item))
        return issues

    async def get_issue(self, ref: str) -> TrackerIssue:
        resp = await self.http.request("GET", f"{self._repo}/issues/{ref}", gone_ok=True)
        return await self._issue(_object(resp.data, "issue"))

    async def comment(self, ref: str, body: str) -> None:
        await self.http.request(
            "POST", f"{self._repo}/issues/{ref}/comments", json_body={"body": body}, gone_ok=True
        )

    async def close(self, ref: str) -> None:
        await self.http.request(
            "PATCH",
            f"{self._repo}/issues/{ref}",
            json_body={"state": "closed", "state_reason": "completed"},
            gone_ok=True,
        )

    async def open_pull_request(self, *, head: str, base: str | None, title: str, body: str) -> str:
        """A new pull request, or the one already open for ``head`` (a later run pushed to
        its branch, which updated it)."""
        owner = self.repository.split("/", 1)[0]
        open_ones = await self.http.request(
            "GET", f"{self._repo}/pulls", params={"head": f"{owner}:{head}", "state": "open"}
        )
        if isinstance(open_ones.data, list) and open_ones.data:
            first = open_ones.data[0]
            if isinstance(first, dict) and first.get("html_url"):
                return str(first["html_url"])
        if base is None:
            repo = _object((await self.http.request("GET", self._repo)).data, "repository")
            base = str(repo.get("default_branch") or "main")
        resp = await self.http.request(
            "POST",
            f"{self._repo}/pulls",
            json_body={"title": title, "head": head, "base": base, "body": body},
        )
        return str(_object(resp.data, "pull request").get("html_url", ""))

    async def aclose(self) -> None:
        await self.http.aclose()

    # ------------------------------------------------------------------ reading

    async def _pages(self, path: str, params: dict[str, str] | None) -> list[Any]:
        """Every item of a listed resource, following the ``Link: rel="next"`` pages."""
        out: list[Any] = []
        url: str | None = path
        while url is not None:
            resp = await self.http.request("GET", url, params=params)
            if not isinstance(resp.data, list):
                raise TrackerError(f"GitHub: GET {url}: expected a list")
            out += resp.data
            match = _NEXT_LINK.search(resp.headers.get("link", ""))
            url, params = (match.group(1), None) if match else (None, None)
        return out

    async def _milestone_number(self, title: str) -> str:
        for item in await self._pages(f"{self._repo}/milestones", {"state": "open"}):
            if isinstance(item, dict) and item.get("title") == title:
                return str(item.get("number"))
        raise TrackerError(f"GitHub: {self.repository} has no open milestone {title!r}")

    async def _issue(self, item: dict[str, Any]) -> TrackerIssue:
        number = item.get("number")
        title = item.get("title")
        if not isinstance(number, int) or not isinstance(title, str):
            raise TrackerError(f"GitHub: {self.repository}: an issue without a number or title")
        body = item.get("body") if isinstance(item.get("body"), str) else ""
        assert isinstance(body, str)
        blocked = _blocked_in_body(body)
        summary = item.get("issue_dependencies_summary")
        if isinstance(summary, dict) and summary.get("blocked_by"):
            path = f"{self._repo}/issues/{number}/dependencies/blocked_by"
            for dep in await self._pages(path, {"per_page": str(PER_PAGE)}):
                if isinstance(dep, dict) and isinstance(dep.get("number"), int):
                    same_repo = str(dep.get("repository_url", "")).endswith(self._repo)
                    if same_repo or "repository_url" not in dep:
                        ref = str(dep["number"])
                        if ref not in blocked:
                            blocked.append(ref)
        return TrackerIssue(
            ref=str(number),
            story_id=story_id(number),
            title=title,
            body=body,
            url=str(item.get("html_url", "")),
            priority=_priority(item.get("labels")),
            blocked_by=tuple(blocked),
        )


def _blocked_in_body(body: str) -> list[str]:
    out: list[str] = []
    for line in _BLOCKED_LINE.finditer(body):
        for ref in _ISSUE_REF.findall(line.group(1)):
            if ref not in out:
                out.append(ref)
    return out


def _priority(labels: Any) -> int | None:
    for label in labels if isinstance(labels, list) else []:
        name = label.get("name") if isinstance(label, dict) else label
        if not isinstance(name, str):
            continue
        match = _PRIORITY_LABEL.match(name.strip())
        number = priority_number(match.group(1) if match else name)
        if number is not None:
            return number
    return None


def _object(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise TrackerError(f"GitHub: expected the {what} as a JSON object")
    return data
