"""Linear as the PRD's source and sink, through a small typed GraphQL client.

Stories are the team's issues that are not completed or canceled, narrowed by a project, a
label or a custom view, in Linear's own order (``sortOrder``). Linear's priority (1 urgent ..
4 low; 0 none) is the story's; "blocks" relations pointing at an issue are its dependencies.
A landed story's issue moves to ``done_state`` (default: the team's first completed state).
"""

from __future__ import annotations

from typing import Any

from ralph_tui.trackers.base import IssueGone, TrackerError, TrackerIssue
from ralph_tui.trackers.http import Clock, JsonClient, Sleep

DEFAULT_API_URL = "https://api.linear.app/graphql"
PAGE_SIZE = 50

_ISSUE_FIELDS = """
  id identifier title description url priority sortOrder
  state { type }
  inverseRelations { nodes { type issue { identifier } } }
"""
ISSUES_QUERY = f"""
query RalphIssues($filter: IssueFilter, $after: String) {{
  issues(filter: $filter, first: {PAGE_SIZE}, after: $after) {{
    nodes {{ {_ISSUE_FIELDS} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}"""
VIEW_QUERY = f"""
query RalphViewIssues($view: String!, $filter: IssueFilter, $after: String) {{
  customView(id: $view) {{
    issues(filter: $filter, first: {PAGE_SIZE}, after: $after) {{
      nodes {{ {_ISSUE_FIELDS} }}
      pageInfo {{ hasNextPage endCursor }}
    }}
  }}
}}"""
ISSUE_QUERY = f"""
query RalphIssue($id: String!) {{
  issue(id: $id) {{ {_ISSUE_FIELDS} }}
}}"""
STATES_QUERY = """
query RalphStates($team: String!) {
  teams(filter: { key: { eq: $team } }) {
    nodes { id states { nodes { id name type position } } }
  }
}"""
COMMENT_MUTATION = """
mutation RalphComment($issue: String!, $body: String!) {
  commentCreate(input: { issueId: $issue, body: $body }) { success }
}"""
UPDATE_MUTATION = """
mutation RalphMove($id: String!, $state: String!) {
  issueUpdate(id: $id, input: { stateId: $state }) { success }
}"""


class LinearTracker:
    """One team's issues, narrowed by project, label or view."""

    kind = "linear"

    def __init__(
        self,
        team: str,
        api_key: str,
        *,
        api_url: str | None = None,
        project: str | None = None,
        view: str | None = None,
        label: str | None = None,
        done_state: str | None = None,
        max_wait: float = 300.0,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        self.team = team
        self.project = project
        self.view = view
        self.label = label
        self.done_state = done_state
        self.source = f"linear:{team}" + (f"/{project}" if project else "")
        extra: dict[str, Any] = {}
        if clock is not None:
            extra["clock"] = clock
        if sleep is not None:
            extra["sleep"] = sleep
        headers = {"Authorization": api_key, "User-Agent": "ralph-tui"}
        self.http = JsonClient(
            "Linear", api_url or DEFAULT_API_URL, headers, max_wait=max_wait, **extra
        )
        self._ids: dict[str, str] = {}  # identifier -> Linear's id (for the mutations)

    async def query(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """``data`` of one GraphQL call; a GraphQL error is a ``TrackerError`` with its text."""
        payload = {"query": query, "variables": variables}
        resp = await self.http.request("POST", "", json_body=payload)
        body = resp.data if isinstance(resp.data, dict) else {}
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            first = errors[0] if isinstance(errors[0], dict) else {}
            message = " ".join(str(first.get("message", "error")).split())[:200]
            code = str((first.get("extensions") or {}).get("code", ""))
            if "not found" in message.lower() or code == "ENTITY_NOT_FOUND":
                raise IssueGone(f"Linear: {message}")
            raise TrackerError(f"Linear: {message}")
        data = body.get("data")
        if not isinstance(data, dict):
            raise TrackerError("Linear: the answer has no data")
        return data

    async def open_issues(self) -> list[TrackerIssue]:
        where: dict[str, Any] = {
            "team": {"key": {"eq": self.team}},
            "state": {"type": {"nin": ["completed", "canceled"]}},
        }
        if self.project:
            where["project"] = {"name": {"eq": self.project}}
        if self.label:
            where["labels"] = {"some": {"name": {"eq": self.label}}}
        nodes: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            variables: dict[str, Any] = {"filter": where, "after": after}
            if self.view:
                data = await self.query(VIEW_QUERY, {**variables, "view": self.view})
                view = data.get("customView")
                if not isinstance(view, dict):
                    raise TrackerError(f"Linear: no custom view {self.view!r}")
                page = view.get("issues")
            else:
                page = (await self.query(ISSUES_QUERY, variables)).get("issues")
            if not isinstance(page, dict) or not isinstance(page.get("nodes"), list):
                raise TrackerError("Linear: the issues answer has no nodes")
            nodes += [n for n in page["nodes"] if isinstance(n, dict)]
            info = page.get("pageInfo") or {}
            if not info.get("hasNextPage") or not info.get("endCursor"):
                break
            after = str(info["endCursor"])
        if not self.view:  # a view keeps its own order
            nodes.sort(key=lambda n: float(n.get("sortOrder") or 0.0))
        return [self._issue(n) for n in nodes]

    async def get_issue(self, ref: str) -> TrackerIssue:
        node = (await self.query(ISSUE_QUERY, {"id": ref})).get("issue")
        if not isinstance(node, dict):
            raise IssueGone(f"Linear: issue {ref} not found")
        return self._issue(node)

    async def comment(self, ref: str, body: str) -> None:
        await self.query(COMMENT_MUTATION, {"issue": await self._id(ref), "body": body})

    async def close(self, ref: str) -> None:
        state = await self._done_state_id()
        await self.query(UPDATE_MUTATION, {"id": await self._id(ref), "state": state})

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _id(self, ref: str) -> str:
        if ref not in self._ids:
            await self.get_issue(ref)
        return self._ids[ref]

    async def _done_state_id(self) -> str:
        teams = ((await self.query(STATES_QUERY, {"team": self.team})).get("teams") or {}).get(
            "nodes"
        )
        if not isinstance(teams, list) or not teams:
            raise TrackerError(f"Linear: no team with the key {self.team!r}")
        states = [s for s in (teams[0].get("states") or {}).get("nodes", []) if isinstance(s, dict)]
        if self.done_state:
            chosen = [s for s in states if s.get("name") == self.done_state]
            if not chosen:
                names = ", ".join(str(s.get("name")) for s in states)
                raise TrackerError(
                    f"Linear: team {self.team} has no state {self.done_state!r} ({names})"
                )
        else:
            chosen = sorted(
                (s for s in states if s.get("type") == "completed"),
                key=lambda s: float(s.get("position") or 0.0),
            )
            if not chosen:
                raise TrackerError(f"Linear: team {self.team} has no completed state")
        return str(chosen[0]["id"])

    def _issue(self, node: dict[str, Any]) -> TrackerIssue:
        identifier, title = node.get("identifier"), node.get("title")
        if not isinstance(identifier, str) or not isinstance(title, str):
            raise TrackerError("Linear: an issue without an identifier or title")
        self._ids[identifier] = str(node.get("id", identifier))
        blocked: list[str] = []
        for relation in (node.get("inverseRelations") or {}).get("nodes", []):
            if isinstance(relation, dict) and relation.get("type") == "blocks":
                ref = (relation.get("issue") or {}).get("identifier")
                if isinstance(ref, str) and ref not in blocked:
                    blocked.append(ref)
        priority = node.get("priority")
        description = node.get("description")
        return TrackerIssue(
            ref=identifier,
            story_id=identifier,
            title=title,
            body=description if isinstance(description, str) else "",
            url=str(node.get("url", "")),
            priority=int(priority) if isinstance(priority, int | float) and priority > 0 else None,
            blocked_by=tuple(blocked),
            node_id=self._ids[identifier],
        )
