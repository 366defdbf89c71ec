"""``ralph-tui web``: the attached TUI in a browser, through textual-serve, behind the token.

textual-serve has no authentication of its own, and each browser connection starts a process
that holds the run's token, so the token check must sit in front of every route it serves. It
does, in-process: ``TokenGuard`` is an aiohttp middleware added to textual-serve's own app. The
first request brings ``?token=...`` (the URL printed at start); it is swapped for an HttpOnly,
SameSite=Strict cookie and a redirect, so the page, its static files and its WebSocket carry the
cookie and the token leaves the address bar. The served command gets the token through the
environment (``RALPH_TOKEN``), never on its command line. Each frame from the page is validated
before textual-serve's own loop sees it (``parse_browser_frame``).

Each tab's process is also kept on a leash (``LeashedAppService``): textual-serve starts it
through a shell in ``web``'s own process group and, when the tab goes away, asks it to quit
and waits for ever; an app still starting up never answers, and kept running at full CPU after
``web`` and the run were gone. Here it is started directly, in a session of its own; a quit it
does not act on within ``QUIT_GRACE_S`` is followed by SIGTERM, then SIGKILL, to its whole
group; ``web`` ending (Ctrl-C, SIGTERM) stops every one; and the child itself ends with its
parent and on SIGTERM/SIGINT whatever it is doing (``tui.remote.leash_to_parent``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import signal
import sys
from asyncio.subprocess import PIPE, Process
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, Literal

from aiohttp import WSMsgType, web
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from textual_serve.app_service import AppService
from textual_serve.server import Server

from ralph_tui.errors import UsageError
from ralph_tui.safety.procgroup import KILL_GRACE_S, signal_group
from ralph_tui.server.http import (
    foreign_request,
    is_loopback,
    own_hosts,
    presented_token,
    refuse,
    refuse_foreign,
    token_matches,
)
from ralph_tui.server.protocol import (
    MAX_FRAME_BYTES,
    PARENT_ENV,
    TOKEN_ENV,
    TOKEN_QUERY,
    FrameError,
    validate_frame,
)

log = logging.getLogger(__name__)

COOKIE = "ralph_token"
QUIT_GRACE_S = 3.0  # a tab's process asked to quit, before it is stopped by signal

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class TokenGuard:
    """The token (as a cookie after the first visit), and before it where the request comes
    from: the cookie is sent by any page of the same site, and SameSite ignores ports, so a
    page on another port of 127.0.0.1 (a dev server the human opens) would carry it. Its
    WebSocket's ``Origin`` names that page; a DNS-rebinding page's ``Host`` names its own
    domain: both are refused (``foreign_request``) before the cookie is looked at."""

    def __init__(self, token: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.token = token
        self.hosts = own_hosts(host, port)
        self.refused = 0

    @web.middleware
    async def check(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        why = foreign_request(request, self.hosts)
        if why is not None:
            self.refused += 1
            return refuse_foreign(request, why)
        cookie = request.cookies.get(COOKIE, "")
        if token_matches(cookie, self.token):
            return await handler(request)
        given = presented_token(request)
        if not token_matches(given, self.token):
            self.refused += 1
            return refuse(request, given)
        if TOKEN_QUERY in request.query and request.method == "GET":
            query = {k: v for k, v in request.query.items() if k != TOKEN_QUERY}
            response = web.HTTPFound(request.rel_url.with_query(query))
        else:
            response = await handler(request)  # type: ignore[assignment]
        response.set_cookie(COOKIE, self.token, httponly=True, samesite="Strict", path="/")
        if isinstance(response, web.HTTPFound):
            raise response
        return response


class _Size(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    width: int = Field(ge=1, le=10_000)
    height: int = Field(ge=1, le=10_000)


_Text = Annotated[str, Field(max_length=MAX_FRAME_BYTES)]
BrowserFrame = (
    tuple[Literal["stdin"], _Text]
    | tuple[Literal["resize"], _Size]
    | tuple[Literal["ping"], _Text]
    | tuple[Literal["blur"]]
    | tuple[Literal["focus"]]
)
_BROWSER_FRAME: TypeAdapter[BrowserFrame] = TypeAdapter(BrowserFrame)


def parse_browser_frame(raw: str) -> BrowserFrame:
    """One frame of textual-serve's browser protocol (``["stdin", text]``, ``["resize",
    {width, height}]``, ``["ping", text]``, ``["blur"]``, ``["focus"]``), or ``FrameError``
    in one line: textual-serve's own loop asserts and indexes, and a bad frame there is a
    traceback and a dropped tab."""
    return validate_frame(raw, _BROWSER_FRAME)


class LeashedAppService(AppService):
    """One tab's process (see the module docstring): its own session, never left running."""

    def __init__(self, argv: Sequence[str], **kwargs: Any) -> None:
        super().__init__(shlex.join(argv), **kwargs)
        self.argv = list(argv)

    async def _open_app_process(self, width: int = 80, height: int = 24) -> Process:
        self._process = process = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=PIPE,
            stdout=PIPE,
            stderr=PIPE,
            env=self._build_environment(width=width, height=height),
            start_new_session=True,
        )
        assert process.stdin is not None
        self._stdin = process.stdin
        return process

    def _build_environment(self, width: int = 80, height: int = 24) -> dict[str, str]:
        environment = super()._build_environment(width=width, height=height)
        environment[PARENT_ENV] = str(os.getpid())  # the child ends when this process does
        return environment

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def stop(self) -> None:
        """Ask the app to quit; stop its group by signal if it has not exited, and reap it."""
        task, process = self._task, self._process
        if task is None or process is None:
            return
        self._task = None
        await self._download_manager.cancel_app_downloads(app_service_id=self.app_service_id)
        with contextlib.suppress(OSError, RuntimeError, TimeoutError):  # pipe gone or full
            await asyncio.wait_for(self.send_meta({"type": "quit"}), QUIT_GRACE_S)
        steps = ((None, QUIT_GRACE_S), (signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, None))
        for sig, grace in steps:
            if sig is not None:
                log.warning(
                    "a browser tab's process (pid %d) is still running: %s", process.pid, sig.name
                )
                signal_group(process.pid, sig)
            if await _exited(process, grace):
                break
        # its output has ended with it (the group is gone): the reader finishes
        done = (await asyncio.wait({task}, timeout=KILL_GRACE_S))[0]
        if not done:
            task.cancel()


async def _exited(process: Process, within: float | None) -> bool:
    """Whether ``process`` has exited within ``within`` seconds (None: for ever). Its
    ``returncode``, not ``wait()``: in Python 3.11 that also waits for pipes a leftover holds."""
    loop = asyncio.get_running_loop()
    deadline = None if within is None else loop.time() + within
    while process.returncode is None:
        if deadline is not None and loop.time() >= deadline:
            return False
        await asyncio.sleep(0.05)
    return True


class GuardedServer(Server):
    """textual-serve's server with the token guard in front of all of its routes."""

    def __init__(self, argv: Sequence[str], host: str, port: int, token: str) -> None:
        shown = f"[{host}]" if ":" in host else host
        super().__init__(
            shlex.join(argv),
            host=host,
            port=port,
            title="ralph-tui",
            public_url=f"http://{shown}:{port}",
        )
        self.argv = list(argv)
        self.guard = TokenGuard(token, host, port)
        self.services: set[LeashedAppService] = set()
        self._stopping: set[asyncio.Future[None]] = set()

    def listening_on(self, port: int) -> None:
        """The port the socket really got (``--port 0``: one the system chose): the page's
        address and the guard's own ``Host`` values name it, not 0."""
        shown = f"[{self.host}]" if ":" in self.host else self.host
        self.port = port
        self.public_url = f"http://{shown}:{port}"
        self.guard.hosts = own_hosts(self.host, port)

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        """textual-serve's handler with a leashed process, remembered until it is reaped."""
        websocket = web.WebSocketResponse(heartbeat=15)
        width = _size(request.query.get("width"), 80)
        height = _size(request.query.get("height"), 24)
        service: LeashedAppService | None = None
        try:
            await websocket.prepare(request)
            service = LeashedAppService(
                self.argv,
                write_bytes=websocket.send_bytes,
                write_str=websocket.send_str,
                close=websocket.close,
                download_manager=self.download_manager,
                debug=self.debug,
            )
            self.services.add(service)
            await service.start(width, height)
            await self._process_messages(websocket, service)
        except asyncio.CancelledError:
            await websocket.close()
            raise
        except (OSError, RuntimeError, ValueError) as exc:  # the tab's connection or process
            log.warning("a browser tab ended: %s", exc)
        finally:
            if service is not None:
                stopping = asyncio.ensure_future(service.stop())
                self._stopping.add(stopping)  # held: the handler may be cancelled meanwhile
                try:
                    await asyncio.shield(stopping)
                finally:
                    stopping.add_done_callback(self._stopping.discard)
                    self.services.discard(service)
        return websocket

    async def stop_all(self) -> None:
        """Every tab's process, when ``web`` ends."""
        await asyncio.gather(*(service.stop() for service in list(self.services)))
        self.services.clear()

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.middlewares.append(self.guard.check)
        return app

    async def on_startup(self, app: web.Application) -> None:
        """No banner: ``serve_web`` prints the one line that matters."""

    async def _process_messages(
        self, websocket: web.WebSocketResponse, app_service: AppService
    ) -> None:
        """textual-serve's loop, each frame validated first (``parse_browser_frame``): a bad
        one is logged in one line and told to the page's console, and the tab stays open."""
        async for message in websocket:
            if message.type != WSMsgType.TEXT:
                continue
            try:
                frame = parse_browser_frame(message.data)
            except FrameError as exc:
                log.warning("ignored a bad browser frame: %s", exc)
                await websocket.send_json(["log", f"ralph-tui: ignored a bad frame: {exc}"])
                continue
            if frame[0] == "stdin":
                await app_service.send_bytes(frame[1].encode("utf-8", "replace"))
            elif frame[0] == "resize":
                await app_service.set_terminal_size(frame[1].width, frame[1].height)
            elif frame[0] == "ping":
                await websocket.send_json(["pong", frame[1]])
            elif frame[0] == "blur":
                await app_service.blur()
            else:
                await app_service.focus()


def _size(value: str | None, default: int) -> int:
    try:
        return max(1, min(int(value or default), 1000))
    except ValueError:
        return default


def attach_command(url: str) -> list[str]:
    return [sys.executable, "-m", "ralph_tui", "attach", url]


async def serve_web(
    url: str,
    token: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    public: bool = False,
    started: Callable[[str], None] | None = None,
) -> None:
    """Serve until cancelled; ``started`` gets the address to open (with the token)."""
    if not is_loopback(host) and not public:
        raise UsageError(f"--host {host}: not a loopback address; add --public to serve it")
    os.environ[TOKEN_ENV] = token  # inherited by every attach process textual-serve starts
    server = GuardedServer(attach_command(url), host, port, token)
    runner = web.AppRunner(await server._make_app(), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        if port == 0:
            server.listening_on(int(runner.addresses[0][1]))
        if started is not None:
            started(f"{server.public_url}/?{TOKEN_QUERY}={token}")
        await asyncio.Event().wait()
    finally:
        await asyncio.shield(server.stop_all())
        await runner.cleanup()
