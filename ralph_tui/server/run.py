"""A run with its extra faces: the engine, optionally served on a socket, with notifications.

``make_run_factory`` returns the ``RunFactory`` that ``RalphApp`` and ``run_headless`` call with
their own supervisor and sink; the ``ServedRun`` it builds starts the server before the engine,
writes ``.ralph/serve.json``, and after the run lets clients and notifications finish.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, TextIO, cast

from ralph_tui.config import RalphConfig
from ralph_tui.engine import Engine
from ralph_tui.errors import UsageError
from ralph_tui.events import Event, EventSink, Notice
from ralph_tui.git_repo import GitRepo
from ralph_tui.headless import TerminalSupervisor
from ralph_tui.iteration import Agent
from ralph_tui.notify import Notifier
from ralph_tui.parallel import build_engine
from ralph_tui.prd_store import PrdStore
from ralph_tui.remote_supervisor import InterruptibleLines, SharedSupervisor
from ralph_tui.server.hub import RunHub
from ralph_tui.supervisor import Supervisor

if TYPE_CHECKING:  # the server (aiohttp, 0.15 s to import) is loaded only for --listen
    from ralph_tui.server.http import RunServer

log = logging.getLogger(__name__)


class ServedRun:
    """The engine plus its server and notifier; delegates the controls to the engine."""

    def __init__(self, engine: Engine, server: RunServer | None, notifier: Notifier | None) -> None:
        self.engine = engine
        self.server = server
        self.notifier = notifier
        self.url = ""
        self.serving = asyncio.Event()  # set once the URL is known and serve.json written

    @property
    def store(self) -> PrdStore:
        return self.engine.store

    @property
    def git(self) -> GitRepo:
        return self.engine.git

    @property
    def skipped(self) -> Collection[str]:
        return self.engine.skipped

    @property
    def paused(self) -> bool:
        return self.engine.paused

    def pause(self) -> None:
        self.engine.pause()

    def resume(self) -> None:
        self.engine.resume()

    def request_stop(self) -> None:
        """Stop at the next safe point; a question waiting for clients gets the safest answer."""
        self.engine.request_stop()
        if self.server is not None:
            self.server.hub.settle_safest()

    async def run(self) -> int:
        root = self.engine.root
        if self.server is not None:
            self.url = await self.server.start()
            from ralph_tui.server.http import write_serve_file

            write_serve_file(root, self.url, self.server.token)
            self.serving.set()
            if self.notifier is not None and not self.notifier.url:
                self.notifier.url = self.url
            if self.server.public:
                self.engine.emit(
                    Notice(
                        level="warning",
                        message=f"serving on a non-loopback address ({self.url}): anyone who "
                        "can reach it and has the token can supervise this run",
                    )
                )
            self.engine.emit(
                Notice(
                    level="info",
                    message=f"serving this run on {self.url}: `ralph-tui attach` or "
                    "`ralph-tui web` in this workspace (token in .ralph/serve.json)",
                )
            )
        try:
            return await self.engine.run()
        finally:
            if self.server is not None:
                from ralph_tui.server.http import remove_serve_file

                remove_serve_file(root)
                await self.server.stop()
            if self.notifier is not None:
                await self.notifier.aclose()


def make_run_factory(
    workspace: Path,
    config: RalphConfig,
    *,
    agent: Agent | None = None,
    allow_dirty: bool = False,
    run_id: str | None = None,
    ask_local: bool = True,
    terminal: Callable[[str], None] | None = None,
) -> Callable[[Supervisor, EventSink], ServedRun]:
    """``ask_local``: whether the face's own supervisor also answers (False: clients only)."""
    server_args: tuple[str, int] | None = None
    if config.listen:
        from ralph_tui.server.http import is_loopback, parse_listen

        server_args = parse_listen(config.listen)
    if server_args is not None and not is_loopback(server_args[0]) and not config.listen_public:
        raise UsageError(
            f"--listen {config.listen}: not a loopback address; add --listen-public to serve "
            "the run to the network"
        )

    def factory(local: Supervisor, sink: EventSink) -> ServedRun:
        sinks: list[EventSink] = [sink]

        def emit(event: Event) -> None:  # the faces added below join after the engine exists
            for target in sinks:
                target(event)

        # One supervisor for every engine: a served run's shared supervisor goes into the
        # engine when it is built, so whatever the engine builds around it (a parallel run's
        # approval queue, a Ray run's) asks the clients too; its hub is set just below.
        shared: SharedSupervisor | None = None
        if server_args is not None:
            interrupt = None
            if ask_local and isinstance(local, TerminalSupervisor) and local.stdin.isatty():
                lines = InterruptibleLines(local.stdin)
                local.stdin = cast(TextIO, lines)
                interrupt = lines.interrupt
            shared = SharedSupervisor(None, local if ask_local else None, interrupt)
        engine = build_engine(
            workspace, config, agent, shared or local, emit, allow_dirty=allow_dirty, run_id=run_id
        )
        redact = engine.redactor  # the run's own: environment and vault secrets
        server = None
        if server_args is not None and shared is not None:
            hub = RunHub(
                {
                    "role": config.role,
                    "max_iterations": config.max_iterations,
                    "workspace": str(engine.root),
                    "agent": config.agent,
                    "model": config.model,
                    "run_id": engine.run_id,
                },
                redact=redact,
                load_prd=engine.store.load,
                skipped=lambda: engine.skipped,
            )
            sinks.append(hub)
            shared.hub = hub
            host, port = server_args
            from ralph_tui.server.http import RunServer

            server = RunServer(
                hub,
                host=host,
                port=port,
                public=config.listen_public,
                store=engine.store,
                diff=engine.git.diff,
            )
        notifier = Notifier(
            config.notify,
            redact=redact,
            run_id=engine.run_id,
            terminal=terminal,
            emit=engine.emit,
            approvals_automatic=config.approve == "auto",
        )
        sinks.append(notifier)
        served = ServedRun(engine, server, notifier)
        if server is not None:
            server.hub.control = served
        return served

    return factory
