"""The served run on a socket: aiohttp HTTP + WebSocket behind one random token.

Every request must carry the token (``X-Ralph-Token`` header, ``Authorization: Bearer``, or the
``token`` query parameter for browsers); a missing or wrong one gets 401 and a log line naming
the peer. ``.ralph/serve.json`` (mode 0600) tells ``attach`` and ``web`` in the same workspace
where the run is and what the token is. Binding anything but loopback needs ``public=True``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import ipaddress
import json
import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from ralph_tui.errors import RalphError, UsageError
from ralph_tui.git.repo import FileDiff
from ralph_tui.prd.store import PrdStore
from ralph_tui.server.hub import RunHub
from ralph_tui.server.protocol import (
    SOCKET_MAX_BYTES,
    TOKEN_HEADER,
    TOKEN_QUERY,
    DecideFrame,
    FrameError,
    MoveEdit,
    ReplyFrame,
    UpdateEdit,
    parse_edit,
    parse_frame,
)

log = logging.getLogger(__name__)

SERVE_FILE = Path(".ralph") / "serve.json"


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6); port 0 picks a free one."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise UsageError(f"--listen {value}: expected HOST:PORT, e.g. 127.0.0.1:8765")
    if int(port) > 65535:
        raise UsageError(f"--listen {value}: the port must be 0-65535 (0 picks a free one)")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def presented_token(request: web.Request) -> str:
    given = request.headers.get(TOKEN_HEADER, "")
    if not given:
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            given = auth[len("Bearer ") :]
    return given or request.query.get(TOKEN_QUERY, "")


_WILDCARDS = {"0.0.0.0", "::", ""}


def own_hosts(host: str, port: int) -> set[str] | None:
    """The ``Host`` values a request to this server may carry: the address served and, on
    loopback, its other names. ``None`` for a wildcard bind (the machine's names are not
    known here; the token still guards it)."""
    if host in _WILDCARDS:
        return None
    names = {host, f"[{host}]"} if ":" in host else {host}
    if is_loopback(host):
        names |= {"127.0.0.1", "localhost", "[::1]"}
    return {f"{name}:{port}" for name in names}


def foreign_request(request: web.Request, hosts: set[str] | None) -> str | None:
    """Why a request does not come from this server's own pages, or ``None``.

    ``Host`` must be an address this server is served on (a DNS-rebinding page's requests
    carry its own name); ``Origin``, when a browser sends one, must be this server itself:
    scheme, host and port (SameSite cookies ignore ports, so a page on another port of
    127.0.0.1 is "same-site" and would otherwise drive the face)."""
    host = request.headers.get("Host", "")
    if hosts is not None and host not in hosts:
        return f"Host {host!r} is not this server"
    origin = request.headers.get("Origin")
    if origin is not None:
        allowed = hosts if hosts is not None else {host}
        if origin not in {f"http://{h}" for h in allowed} | {f"https://{h}" for h in allowed}:
            return f"Origin {origin!r} is not this server"
    return None


def refuse_foreign(request: web.Request, why: str) -> web.Response:
    log.warning("refused %s %s from %s: %s", request.method, request.path, request.remote, why)
    return web.json_response({"error": f"refused: {why}"}, status=403)


def token_matches(given: str, token: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode(), token.encode())


def refuse(request: web.Request, given: str) -> web.Response:
    why = "a wrong" if given else "no"
    log.warning(
        "refused %s %s from %s: %s token", request.method, request.path, request.remote, why
    )
    return web.json_response({"error": "missing or wrong token"}, status=401)


def write_serve_file(workspace: Path, url: str, token: str) -> Path:
    """``.ralph/serve.json``, created 0600 before the token is written into it."""
    path = workspace / SERVE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"url": url, "token": token, "pid": os.getpid()}, fh)
    tmp.replace(path)
    return path


def read_serve_file(workspace: Path) -> tuple[str, str]:
    """The URL and token of the run served from this workspace."""
    path = workspace / SERVE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return str(data["url"]), str(data["token"])
    except FileNotFoundError:
        raise UsageError(
            f"{path}: no served run here (start one with `ralph-tui run --listen ...`, "
            "or give URL and --token)"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{path}: unreadable: {exc}") from exc


def remove_serve_file(workspace: Path) -> None:
    """Remove ``serve.json`` if it is this process's (a newer run may have replaced it)."""
    path = workspace / SERVE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if isinstance(data, dict) and data.get("pid") == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def diff_to_dict(diff: FileDiff) -> dict[str, Any]:
    return dataclasses.asdict(diff)


class RunServer:
    """The HTTP face of a ``RunHub``; ``start()`` binds and returns the URL."""

    def __init__(
        self,
        hub: RunHub,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        public: bool = False,
        token: str | None = None,
        store: PrdStore | None = None,
        diff: Callable[[str | None], Awaitable[list[FileDiff]]] | None = None,
    ) -> None:
        if not is_loopback(host) and not public:
            raise UsageError(
                f"--listen {host}: not a loopback address; add --listen-public to serve it "
                "to the network"
            )
        self.hub = hub
        self.host = host
        self.port = port
        self.public = not is_loopback(host)
        self.token = token or secrets.token_urlsafe(32)
        self.store = store
        self.diff = diff
        self.refused = 0
        self.url = ""
        self.bound_port = port
        self._runner: web.AppRunner | None = None
        self._sockets: set[web.WebSocketResponse] = set()

    # ------------------------------------------------------------------ life

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.add_routes(
            [
                web.get("/api/info", self._info),
                web.get("/api/prd", self._prd),
                web.get("/api/diff", self._diff),
                web.post("/api/prd/{op}", self._prd_edit),
                web.get("/ws", self._websocket),
            ]
        )
        return app

    async def start(self) -> str:
        self.hub.bind(asyncio.get_running_loop())
        self._runner = web.AppRunner(self.make_app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        port = sockets[0].getsockname()[1] if sockets else self.port
        self.bound_port = port
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{host}:{port}"
        return self.url

    async def stop(self) -> None:
        """Let clients receive what is queued (the run's end), then close everything."""
        self.hub.close_all()
        for ws in list(self._sockets):
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(ws.close(), timeout=2.0)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------------ auth

    @web.middleware
    async def _auth(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        why = foreign_request(request, own_hosts(self.host, self.bound_port))
        if why is not None:
            self.refused += 1
            return refuse_foreign(request, why)
        given = presented_token(request)
        if not token_matches(given, self.token):
            self.refused += 1
            return refuse(request, given)
        return await handler(request)

    # ------------------------------------------------------------------ HTTP

    async def _info(self, request: web.Request) -> web.Response:
        return web.json_response({**self.hub.info, "clients": self.hub.client_count})

    async def _prd(self, request: web.Request) -> web.Response:
        if self.store is None:
            return web.json_response({"error": "no PRD"}, status=404)
        try:
            prd = await asyncio.to_thread(self.store.load)
        except RalphError as exc:
            return web.json_response({"error": str(exc)}, status=409)
        return web.json_response({"prd": prd.model_dump(mode="json")})

    async def _diff(self, request: web.Request) -> web.Response:
        if self.diff is None:
            return web.json_response({"files": []})
        story = request.query.get("story") or None  # a running story's worker, wherever it is
        try:
            files = await self.diff(story)
        except RalphError as exc:
            return web.json_response({"error": str(exc)}, status=409)
        return web.json_response({"files": [diff_to_dict(f) for f in files]})

    async def _prd_edit(self, request: web.Request) -> web.Response:
        """``+``/``-``, ``e`` and ``n`` from a client: done here, through the run's PrdStore."""
        store = self.store
        if store is None:
            return web.json_response({"error": "no PRD"}, status=404)
        op = request.match_info["op"]
        try:
            edit = parse_edit(op, await request.json())
        except ValueError as exc:  # not JSON, or a FrameError saying what does not fit
            why = str(exc) if isinstance(exc, FrameError) else "the body is not JSON"
            log.warning("refused a PRD edit from %s: %s", request.remote, why)
            status = 404 if why.startswith("unknown PRD edit") else 400
            return web.json_response({"error": why}, status=status)
        try:
            result: dict[str, Any]
            if isinstance(edit, MoveEdit):
                prd = await asyncio.to_thread(store.move_story, edit.key, edit.direction)
                result = {"prd": prd.model_dump(mode="json")}
            elif isinstance(edit, UpdateEdit):
                prd = await asyncio.to_thread(store.update_story, edit.key, edit.changes)
                result = {"prd": prd.model_dump(mode="json")}
            else:
                story = await asyncio.to_thread(store.add_story, edit.fields)
                result = {"story": story.key}
        except RalphError as exc:
            return web.json_response({"error": str(exc)}, status=409)
        self.hub.refresh_prd()
        return web.json_response(result)

    # ------------------------------------------------------------------ the WebSocket

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=SOCKET_MAX_BYTES)
        await ws.prepare(request)
        self._sockets.add(ws)
        client = self.hub.connect(str(request.remote))

        async def pump() -> None:
            await client.pump(ws.send_str)
            await ws.close()

        sender = asyncio.create_task(pump(), name=f"ws-send-{request.remote}")
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    error = self._handle(message.data)
                    if error is not None:  # the client hears why; the run goes on
                        await ws.send_str(json.dumps({"t": "error", "error": error}))
        finally:
            self.hub.disconnect(client)
            self._sockets.discard(ws)
            if not sender.done():
                sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await sender
        return ws

    def _handle(self, raw: str) -> str | None:
        """Act on one client frame, validated against its schema (``protocol.parse_frame``);
        a frame that does not fit is the client's error (returned and logged in one line),
        never an exception in the server."""
        try:
            frame = parse_frame(raw)
        except FrameError as exc:
            log.warning("ignored a bad client frame: %s", exc)
            return str(exc)
        if isinstance(frame, DecideFrame):
            self.hub.resolve(frame.id, "approval", frame.decision.to_decision())
        elif isinstance(frame, ReplyFrame):
            self.hub.resolve(frame.id, "escalation", frame.answer.to_answer())
        else:
            self._control(frame.action, frame.story)
        return None

    def _control(self, action: str, story: str) -> None:
        control = self.hub.control
        if control is None:
            return
        if action == "open_approval":
            control.open_approval(story)
        elif action == "pause":
            control.pause()
        elif action == "resume":
            control.resume()
        elif action == "stop":
            log.warning("a client asked the run to stop")
            control.request_stop()
