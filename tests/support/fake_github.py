"""A GitHub REST API on 127.0.0.1 that the test suite owns (the issues and pulls it uses).

It keeps issues, comments and pull requests in memory and answers the calls ralph-tui makes:
listing issues (label and milestone filters, ``per_page`` pages with a ``Link`` header), one
issue, comments, closing, the "blocked by" dependencies, the repository and new pull requests.
Faults: a token it does not know gets 401; ``rate_limit(n, reset_in)`` answers the next ``n``
calls with 403 and ``x-ratelimit-remaining: 0`` / ``x-ratelimit-reset``; ``delete(n)`` makes an
issue answer 410 Gone; ``edit(n, ...)`` changes an issue the way a human on GitHub would.

It runs in the test's process on a real socket, so a ralph-tui subprocess (the installed CLI)
reaches it too.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.fake_server import ServedInThread, send_json

TOKEN = "ghp_faketesttoken000000000000000000000"
REPO = "acme/widgets"


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any


@dataclass
class _State:
    repo: str
    token: str
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, list[str]] = field(default_factory=dict)
    blocked_by: dict[int, list[int]] = field(default_factory=dict)
    deleted: set[int] = field(default_factory=set)
    pulls: list[dict[str, Any]] = field(default_factory=list)
    milestones: list[dict[str, Any]] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    limited: int = 0  # how many calls still get a rate-limit answer
    reset_at: float = 0.0
    on_request: Callable[[Recorded], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def _handle(self, method: str) -> None:
        state = self.server.state
        split = urlsplit(self.path)
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        rec = Recorded(method, split.path, parse_qs(split.query), body)
        with state.lock:
            state.requests.append(rec)
            hook = state.on_request
        if hook is not None:
            hook(rec)
        with state.lock:
            if self.headers.get("authorization") != f"Bearer {state.token}":
                return self._json(401, {"message": "Bad credentials"})
            if state.limited > 0:
                state.limited -= 1
                headers = {
                    "x-ratelimit-remaining": "0",
                    "x-ratelimit-reset": str(int(state.reset_at)),
                }
                return self._json(403, {"message": "API rate limit exceeded"}, headers)
            self._route(state, method, split.path, rec)

    def _route(self, state: _State, method: str, path: str, rec: Recorded) -> None:
        base = f"/repos/{state.repo}"
        if path == base and method == "GET":
            return self._json(200, {"full_name": state.repo, "default_branch": "main"})
        if path == f"{base}/milestones":
            return self._json(200, state.milestones)
        if path == f"{base}/issues" and method == "GET":
            return self._list(state, rec)
        match = re.fullmatch(
            rf"{re.escape(base)}/issues/(\d+)(/comments|/dependencies/blocked_by)?", path
        )
        if match:
            number, tail = int(match.group(1)), match.group(2)
            if number in state.deleted:
                return self._json(410, {"message": "This issue was deleted"})
            issue = state.issues.get(number)
            if issue is None:
                return self._json(404, {"message": "Not Found"})
            if tail == "/comments" and method == "POST":
                state.comments.setdefault(number, []).append(str(rec.body["body"]))
                return self._json(201, {"id": len(state.comments[number])})
            if tail == "/dependencies/blocked_by":
                deps = [state.issues[n] for n in state.blocked_by.get(number, [])]
                return self._json(200, deps)
            if tail is None and method == "PATCH":
                issue.update(rec.body)
                return self._json(200, issue)
            if tail is None and method == "GET":
                return self._json(200, issue)
        if path == f"{base}/pulls" and method == "GET":
            head = rec.query.get("head", [""])[0].partition(":")[2]
            return self._json(200, [p for p in state.pulls if p["head"] == head])
        if path == f"{base}/pulls" and method == "POST":
            if any(p["head"] == rec.body["head"] for p in state.pulls):
                error = {"message": f"A pull request already exists for {rec.body['head']}."}
                return self._json(422, {"message": "Validation Failed", "errors": [error]})
            pull = {**rec.body, "number": 1000 + len(state.pulls)}
            pull["html_url"] = f"https://github.test/{state.repo}/pull/{pull['number']}"
            state.pulls.append(pull)
            return self._json(201, pull)
        return self._json(404, {"message": "Not Found"})

    def _list(self, state: _State, rec: Recorded) -> None:
        q = {k: v[0] for k, v in rec.query.items()}
        items = [
            i
            for n, i in sorted(state.issues.items())
            if n not in state.deleted and i["state"] == q.get("state", "open")
        ]
        if "labels" in q:
            items = [i for i in items if q["labels"] in [lb["name"] for lb in i["labels"]]]
        if "milestone" in q:
            items = [
                i for i in items if str((i.get("milestone") or {}).get("number")) == q["milestone"]
            ]
        per_page = int(q.get("per_page", "30"))
        page = int(q.get("page", "1"))
        chunk = items[(page - 1) * per_page : page * per_page]
        headers = {}
        if page * per_page < len(items):
            host, port = self.server.server_address[:2]
            nxt = dict(q, page=str(page + 1))
            query = "&".join(f"{k}={v}" for k, v in nxt.items())
            headers["link"] = f'<http://{host!s}:{port}{rec.path}?{query}>; rel="next"'
        self._json(200, chunk, headers)

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        send_json(self, status, payload, headers)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: _State


class FakeGitHub(ServedInThread):
    """``with FakeGitHub() as gh:`` then ``api_url = gh.base_url`` in ``[tracker]``."""

    name = "fake-github"

    def __init__(self, repo: str = REPO, token: str = TOKEN) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.state = _State(repo=repo, token=token)
        super().__init__()

    @property
    def state(self) -> _State:
        return self._server.state

    def add_issue(
        self,
        title: str,
        body: str = "",
        *,
        labels: tuple[str, ...] = ("ralph",),
        number: int | None = None,
        milestone: int | None = None,
        pull_request: bool = False,
    ) -> int:
        with self.state.lock:
            n = number or max(self.state.issues, default=0) + 1
            issue: dict[str, Any] = {
                "number": n,
                "title": title,
                "body": body,
                "state": "open",
                "labels": [{"name": name} for name in labels],
                "html_url": f"https://github.test/{self.state.repo}/issues/{n}",
                "repository_url": f"https://api.github.test/repos/{self.state.repo}",
            }
            if milestone is not None:
                issue["milestone"] = {"number": milestone}
            if pull_request:
                issue["pull_request"] = {"url": "x"}
            if self.state.blocked_by.get(n):
                issue["issue_dependencies_summary"] = {"blocked_by": len(self.state.blocked_by[n])}
            self.state.issues[n] = issue
            return n

    def block(self, number: int, *, by: int) -> None:
        """A native "blocked by" dependency, as GitHub's issue dependencies keep it."""
        with self.state.lock:
            deps = self.state.blocked_by.setdefault(number, [])
            deps.append(by)
            self.state.issues[number]["issue_dependencies_summary"] = {"blocked_by": len(deps)}

    def edit(self, number: int, **changes: Any) -> None:
        with self.state.lock:
            self.state.issues[number].update(changes)

    def delete(self, number: int) -> None:
        with self.state.lock:
            self.state.deleted.add(number)

    def rate_limit(self, calls: int, reset_at: float) -> None:
        with self.state.lock:
            self.state.limited = calls
            self.state.reset_at = reset_at

    def comments(self, number: int) -> list[str]:
        with self.state.lock:
            return list(self.state.comments.get(number, []))

    def issue(self, number: int) -> dict[str, Any]:
        with self.state.lock:
            return dict(self.state.issues[number])

    @property
    def pulls(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return list(self.state.pulls)

    @property
    def requests(self) -> list[Recorded]:
        with self.state.lock:
            return list(self.state.requests)


@pytest.fixture
def fake_github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        yield server


def _milestone(issue: dict[str, Any]) -> str:
    return str((issue.get("milestone") or {}).get("number"))
