"""A Linear GraphQL API on 127.0.0.1 that the test suite owns.

It answers the operations ralph-tui sends (told apart by their operation names): the team's
issues (team, project, label and state filters, a custom view, pages of ``page_size`` with
``pageInfo``), one issue, the team's workflow states, ``commentCreate`` and ``issueUpdate``.
Faults: an API key it does not know gets 401; ``rate_limit(n, reset_at)`` answers the next ``n``
calls the way Linear does (HTTP 400, ``RATELIMITED``, ``x-ratelimit-requests-reset`` in epoch
milliseconds); ``delete(identifier)`` makes an issue "not found"; ``edit`` changes one.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.support.fake_server import ServedInThread, send_json

API_KEY = "lin_api_faketestkey0000000000000000000"
TEAM = "ENG"
STATES = [
    {"id": "st-todo", "name": "Todo", "type": "unstarted", "position": 1},
    {"id": "st-review", "name": "In Review", "type": "started", "position": 2},
    {"id": "st-done", "name": "Done", "type": "completed", "position": 3},
    {"id": "st-cancel", "name": "Canceled", "type": "canceled", "position": 4},
]


@dataclass
class Call:
    operation: str
    variables: dict[str, Any]


@dataclass
class _State:
    team: str
    key: str
    issues: dict[str, dict[str, Any]] = field(default_factory=dict)  # identifier -> issue
    comments: dict[str, list[str]] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    views: dict[str, list[str]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    page_size: int = 50
    limited: int = 0
    reset_at: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        state = self.server.state
        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length))
        query: str = body["query"]
        operation = query.split("(", 1)[0].split()[-1]
        call = Call(operation, body.get("variables") or {})
        with state.lock:
            state.calls.append(call)
            if self.headers.get("authorization") != state.key:
                return self._json(401, {"errors": [{"message": "Authentication required"}]})
            if state.limited > 0:
                state.limited -= 1
                reset = str(int(state.reset_at * 1000))
                error = {"message": "Rate limit exceeded", "extensions": {"code": "RATELIMITED"}}
                return self._json(400, {"errors": [error]}, {"x-ratelimit-requests-reset": reset})
            self._json(200, self._answer(state, call))

    def _answer(self, state: _State, call: Call) -> dict[str, Any]:
        v = call.variables
        if call.operation == "RalphIssues":
            return {"data": {"issues": self._page(state, self._select(state, v), v)}}
        if call.operation == "RalphViewIssues":
            if v["view"] not in state.views:
                return {"data": {"customView": None}}
            chosen = [state.issues[i] for i in state.views[v["view"]] if self._open(state, i)]
            return {"data": {"customView": {"issues": self._page(state, chosen, v)}}}
        if call.operation == "RalphIssue":
            issue = self._find(state, v["id"])
            if issue is None:
                return {"data": None, "errors": [{"message": "Entity not found: Issue"}]}
            return {"data": {"issue": self._node(state, issue)}}
        if call.operation == "RalphStates":
            teams = (
                [{"id": "team-1", "states": {"nodes": STATES}}] if v["team"] == state.team else []
            )
            return {"data": {"teams": {"nodes": teams}}}
        if call.operation == "RalphComment":
            issue = self._find(state, v["issue"])
            if issue is None:
                return {"data": None, "errors": [{"message": "Entity not found: Issue"}]}
            state.comments.setdefault(issue["identifier"], []).append(v["body"])
            return {"data": {"commentCreate": {"success": True}}}
        if call.operation == "RalphMove":
            issue = self._find(state, v["id"])
            if issue is None:
                return {"data": None, "errors": [{"message": "Entity not found: Issue"}]}
            issue["state"] = next(s for s in STATES if s["id"] == v["state"])
            return {"data": {"issueUpdate": {"success": True}}}
        return {"errors": [{"message": f"unknown operation {call.operation}"}]}

    def _find(self, state: _State, ref: str) -> dict[str, Any] | None:
        for identifier, issue in state.issues.items():
            if ref in (identifier, issue["id"]) and identifier not in state.deleted:
                return issue
        return None

    def _open(self, state: _State, identifier: str) -> bool:
        issue = state.issues[identifier]
        return identifier not in state.deleted and issue["state"]["type"] not in (
            "completed",
            "canceled",
        )

    def _select(self, state: _State, v: dict[str, Any]) -> list[dict[str, Any]]:
        where = v.get("filter") or {}
        team = where.get("team", {}).get("key", {}).get("eq")
        project = where.get("project", {}).get("name", {}).get("eq")
        label = where.get("labels", {}).get("some", {}).get("name", {}).get("eq")
        nin = where.get("state", {}).get("type", {}).get("nin", [])
        out = []
        for identifier, issue in state.issues.items():
            if identifier in state.deleted or issue["state"]["type"] in nin:
                continue
            if team and not identifier.startswith(team + "-"):
                continue
            if project and issue.get("project") != project:
                continue
            if label and label not in issue.get("labels", []):
                continue
            out.append(issue)
        return out

    def _page(self, state: _State, issues: list[dict[str, Any]], v: dict[str, Any]) -> Any:
        start = int(v.get("after") or 0)
        chunk = issues[start : start + state.page_size]
        more = start + state.page_size < len(issues)
        return {
            "nodes": [self._node(state, i) for i in chunk],
            "pageInfo": {"hasNextPage": more, "endCursor": str(start + len(chunk))},
        }

    def _node(self, state: _State, issue: dict[str, Any]) -> dict[str, Any]:
        blockers = [
            {"type": "blocks", "issue": {"identifier": ref}} for ref in issue.get("blocked_by", [])
        ]
        node = {k: v for k, v in issue.items() if k not in ("blocked_by", "project", "labels")}
        return {**node, "inverseRelations": {"nodes": blockers}}

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        send_json(self, status, payload, headers)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: _State


class FakeLinear(ServedInThread):
    """``with FakeLinear() as linear:`` then ``api_url = linear.url`` in ``[tracker]``."""

    name = "fake-linear"

    def __init__(self, team: str = TEAM, key: str = API_KEY) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.state = _State(team=team, key=key)
        super().__init__()

    @property
    def state(self) -> _State:
        return self._server.state

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/graphql"

    def add_issue(
        self,
        title: str,
        description: str = "",
        *,
        priority: int = 0,
        project: str | None = "Launch",
        labels: tuple[str, ...] = (),
        blocked_by: tuple[str, ...] = (),
        sort_order: float | None = None,
        state: str = "Todo",
    ) -> str:
        with self.state.lock:
            n = len(self.state.issues) + 1
            identifier = f"{self.state.team}-{n}"
            self.state.issues[identifier] = {
                "id": f"uuid-{n}",
                "identifier": identifier,
                "title": title,
                "description": description,
                "url": f"https://linear.test/acme/issue/{identifier}",
                "priority": priority,
                "sortOrder": float(n) if sort_order is None else sort_order,
                "state": next(s for s in STATES if s["name"] == state),
                "project": project,
                "labels": list(labels),
                "blocked_by": list(blocked_by),
            }
            return identifier

    def edit(self, identifier: str, **changes: Any) -> None:
        with self.state.lock:
            self.state.issues[identifier].update(changes)

    def delete(self, identifier: str) -> None:
        with self.state.lock:
            self.state.deleted.add(identifier)

    def rate_limit(self, calls: int, reset_at: float) -> None:
        with self.state.lock:
            self.state.limited = calls
            self.state.reset_at = reset_at

    def comments(self, identifier: str) -> list[str]:
        with self.state.lock:
            return list(self.state.comments.get(identifier, []))

    def state_of(self, identifier: str) -> str:
        with self.state.lock:
            return str(self.state.issues[identifier]["state"]["name"])

    @property
    def calls(self) -> list[Call]:
        with self.state.lock:
            return list(self.state.calls)


@pytest.fixture
def fake_linear() -> Iterator[FakeLinear]:
    with FakeLinear() as server:
        yield server
