"""The attached face's side: a ``RunHandle`` backed by a served run in another process.

``RemoteRun.run()`` holds the WebSocket: events go to the face's sink (the same sink the local
engine would feed), a pending ``ask`` becomes a call on the face's own supervisor (so the TUI's
bars open exactly as for a local run), and ``settled`` cancels that call (another client won).
The PRD arrives as snapshots and is what ``store.load()`` returns; PRD edits and the diff are
short HTTP requests done server-side through the run's PrdStore and git.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Collection, Mapping
from typing import Any, Literal

import aiohttp

from ralph_tui.errors import RalphError
from ralph_tui.events import (
    EventSink,
    PrdChanged,
    RunFinished,
    RunStateChanged,
    event_from_dict,
)
from ralph_tui.git.repo import FileDiff
from ralph_tui.prd.model import Prd, Story
from ralph_tui.server.protocol import (
    TOKEN_HEADER,
    approval_from_dict,
    decision_to_dict,
    escalation_from_dict,
)
from ralph_tui.supervisor import ApprovalDecision, EscalationAnswer, Supervisor

log = logging.getLogger(__name__)

HTTP_TIMEOUT_S = 10.0


class RemoteError(RalphError):
    """The served run refused a request or cannot be reached."""


def http_json(
    url: str, token: str, path: str, body: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """One blocking request to the served run (PRD edits, the diff, the first look)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url.rstrip("/") + path,
        data=data,
        method="POST" if data is not None else "GET",
        headers={TOKEN_HEADER: token, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as resp:
            result = json.loads(resp.read().decode())
    except urllib.error.HTTPError as exc:
        try:
            message = str(json.loads(exc.read().decode()).get("error", exc.reason))
        except ValueError:
            message = str(exc.reason)
        raise RemoteError(f"{url}: {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RemoteError(f"{url}: cannot reach the served run: {reason}") from None
    if not isinstance(result, dict):
        raise RemoteError(f"{url}{path}: unexpected answer")
    return result


class RemoteStore:
    """``store`` for an attached face: the latest PRD snapshot; edits go to the server."""

    def __init__(self, url: str, token: str, prd: Prd | None = None) -> None:
        self.url, self.token = url, token
        self.prd = prd
        self.error = ""

    def load(self) -> Prd:
        if self.prd is None:
            raise RemoteError(self.error or "the PRD has not arrived yet")
        return self.prd

    def _edit(self, op: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return http_json(self.url, self.token, f"/api/prd/{op}", body)

    def move_story(self, story_id: str, direction: Literal["up", "down"]) -> Prd:
        self.prd = Prd.model_validate(
            self._edit("move", {"key": story_id, "direction": direction})["prd"]
        )
        return self.prd

    def update_story(self, story_id: str, changes: Mapping[str, Any]) -> Prd:
        result = self._edit("update", {"key": story_id, "changes": dict(changes)})
        self.prd = Prd.model_validate(result["prd"])
        return self.prd

    def add_story(self, fields: Mapping[str, Any]) -> Story:
        key = str(self._edit("add", {"fields": dict(fields)})["story"])
        self.prd = Prd.model_validate(http_json(self.url, self.token, "/api/prd")["prd"])
        story = self.prd.story(key)
        if story is None:
            raise RemoteError(f"{self.url}: story {key} vanished")
        return story


class RemoteGit:
    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token

    def diff(self, story_id: str | None = None) -> list[FileDiff]:
        """The run's diff (``story_id``: that running story's, on whichever worker runs it)."""
        query = "?" + urllib.parse.urlencode({"story": story_id}) if story_id else ""
        files = http_json(self.url, self.token, "/api/diff" + query).get("files", [])
        return [FileDiff(**f) for f in files]


class RemoteRun:
    """What ``RalphApp`` drives when attached; ``run()`` returns when the run or link ends."""

    def __init__(
        self,
        url: str,
        token: str,
        supervisor: Supervisor,
        sink: EventSink,
        *,
        prd: Prd | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.supervisor = supervisor
        self.sink = sink
        self.store = RemoteStore(self.url, token, prd)
        self.git = RemoteGit(self.url, token)
        self.skipped: Collection[str] = frozenset()
        self.state = "starting"
        self.info: dict[str, Any] = {}
        self.exit_code: int | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._asks: dict[int, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.connected = asyncio.Event()

    @property
    def paused(self) -> bool:
        return self.state in ("pausing", "paused")

    def pause(self) -> None:
        self._send({"t": "control", "action": "pause"})

    def resume(self) -> None:
        self._send({"t": "control", "action": "resume"})

    def request_stop(self) -> None:
        """Stop the run itself (the attached app asks for confirmation first)."""
        self._send({"t": "control", "action": "stop"})

    def open_approval(self, story_id: str) -> bool:
        """Asked of the run; whether it was waiting shows in the next ``ApprovalsWaiting``."""
        self._send({"t": "control", "action": "open_approval", "story": story_id})
        return True

    async def story_diff(self, story_id: str | None = None) -> list[FileDiff]:
        return await asyncio.to_thread(self.git.diff, story_id)

    def _send(self, message: dict[str, Any]) -> None:
        ws = self._ws
        if ws is None or ws.closed:
            log.warning("not connected: %s not sent", message.get("t"))
            return
        task = asyncio.get_running_loop().create_task(ws.send_str(json.dumps(message)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run(self) -> int:
        ws_url = self.url.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + "/ws"
        try:
            async with aiohttp.ClientSession() as session:
                try:
                    ws = await session.ws_connect(
                        ws_url,
                        headers={TOKEN_HEADER: self.token},
                        heartbeat=20.0,
                        max_msg_size=64 * 1024 * 1024,
                    )
                except aiohttp.WSServerHandshakeError as exc:
                    raise RemoteError(f"{self.url}: refused ({exc.status}): wrong token?") from None
                except (aiohttp.ClientError, OSError) as exc:
                    raise RemoteError(f"{self.url}: cannot reach the served run: {exc}") from None
                self._ws = ws
                self.connected.set()
                async with ws:
                    async for message in ws:
                        if message.type == aiohttp.WSMsgType.TEXT:
                            for item in json.loads(message.data):
                                self._handle(item)
                        elif message.type == aiohttp.WSMsgType.ERROR:
                            break
        finally:
            self._ws = None
            for task in self._asks.values():
                task.cancel()
            self._asks.clear()
        if self.exit_code is None:
            raise RemoteError(f"{self.url}: the connection to the run was lost")
        return self.exit_code

    # ------------------------------------------------------------------ messages

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message.get("t")
        if kind == "event":
            self._event(message["event"])
        elif kind == "events":
            for data in message["events"]:
                self._event(data)
        elif kind == "prd":
            prd = message.get("prd")
            self.store.prd = Prd.model_validate(prd) if prd is not None else None
            self.store.error = str(message.get("error", ""))
            self.skipped = frozenset(message.get("skipped", ()))
            self.sink(PrdChanged(source="external"))
        elif kind == "ask":
            self._ask(int(message["id"]), str(message["kind"]), message["request"])
        elif kind == "settled":
            task = self._asks.pop(int(message["id"]), None)
            if task is not None and not task.done():
                task.cancel()
        elif kind == "hello":
            self.info = dict(message.get("run", {}))

    def _event(self, data: dict[str, Any]) -> None:
        try:
            event = event_from_dict(data)
        except (KeyError, TypeError) as exc:
            log.warning("ignored an event this version cannot read: %s", exc)
            return
        if isinstance(event, PrdChanged):
            return  # the ``prd`` snapshot that follows stands for it
        if isinstance(event, RunStateChanged):
            self.state = event.state
        elif isinstance(event, RunFinished):
            self.exit_code = event.exit_code
        self.sink(event)

    def _ask(self, ask_id: int, kind: str, request: dict[str, Any]) -> None:
        async def approval() -> None:
            decision: ApprovalDecision = await self.supervisor.approve(approval_from_dict(request))
            self._send(
                {
                    "t": "decide",
                    "id": ask_id,
                    "decision": decision_to_dict(decision),
                }
            )

        async def escalation() -> None:
            answer: EscalationAnswer = await self.supervisor.answer(escalation_from_dict(request))
            self._send(
                {"t": "reply", "id": ask_id, "answer": {"kind": answer.kind, "text": answer.text}}
            )

        coro = approval() if kind == "approval" else escalation()
        task = asyncio.get_running_loop().create_task(coro, name=f"ask-{ask_id}")
        self._asks[ask_id] = task
        task.add_done_callback(
            lambda t: self._asks.pop(ask_id, None) if self._asks.get(ask_id) is t else None
        )

    async def wait_connected(self) -> None:
        await self.connected.wait()


def first_look(url: str, token: str) -> tuple[dict[str, Any], Prd | None]:
    """Before the app opens: the token is right, the run's info, and the PRD to draw first."""
    info = http_json(url, token, "/api/info")
    prd: Prd | None
    try:
        prd = Prd.model_validate(http_json(url, token, "/api/prd")["prd"])
    except RemoteError:
        prd = None
    return info, prd
