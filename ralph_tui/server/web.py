"""``ralph-tui web``: the attached TUI in a browser, through textual-serve, behind the token.

textual-serve has no authentication of its own, and each browser connection starts a process
that holds the run's token, so the token check must sit in front of every route it serves. It
does, in-process: ``TokenGuard`` is an aiohttp middleware added to textual-serve's own app. The
first request brings ``?token=...`` (the URL printed at start); it is swapped for an HttpOnly,
SameSite=Strict cookie and a redirect, so the page, its static files and its WebSocket carry the
cookie and the token leaves the address bar. The served command gets the token through the
environment (``RALPH_TOKEN``), never on its command line.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import sys
from collections.abc import Awaitable, Callable

from aiohttp import web
from textual_serve.server import Server

from ralph_tui.errors import UsageError
from ralph_tui.server.http import (
    foreign_request,
    is_loopback,
    own_hosts,
    presented_token,
    refuse,
    refuse_foreign,
    token_matches,
)
from ralph_tui.server.protocol import TOKEN_ENV, TOKEN_QUERY

log = logging.getLogger(__name__)

COOKIE = "ralph_token"

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


class GuardedServer(Server):
    """textual-serve's server with the token guard in front of all of its routes."""

    def __init__(self, command: str, host: str, port: int, token: str) -> None:
        shown = f"[{host}]" if ":" in host else host
        super().__init__(
            command, host=host, port=port, title="ralph-tui", public_url=f"http://{shown}:{port}"
        )
        self.guard = TokenGuard(token, host, port)

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.middlewares.append(self.guard.check)
        return app

    async def on_startup(self, app: web.Application) -> None:
        """No banner: ``serve_web`` prints the one line that matters."""


def attach_command(url: str) -> str:
    return shlex.join([sys.executable, "-m", "ralph_tui", "attach", url])


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
        if started is not None:
            started(f"{server.public_url}/?{TOKEN_QUERY}={token}")
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
