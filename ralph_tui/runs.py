"""The one place a run is assembled: engine, executor, supervisor, server and notifier.

Every face (the TUI, headless, ``--listen``, and through them attach and web) and every executor
goes through ``build_run``: a face hands it its own supervisor and event sink and gets back a
``RunHandle``. The parts are built in the order they need each other, and nothing is swapped in
afterwards: with ``--listen`` the hub and the shared supervisor exist before the engine, so
whatever the engine builds around its supervisor (a parallel run's approval queue) asks the
clients too.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ralph_tui.approvals import approvals_automatic
from ralph_tui.config import RalphConfig
from ralph_tui.engine import Engine
from ralph_tui.errors import UsageError
from ralph_tui.events import Event, EventSink, Notice
from ralph_tui.git.repo import FileDiff, GitRepo
from ralph_tui.iteration import Agent
from ralph_tui.notify import Notifier
from ralph_tui.prd.model import Prd
from ralph_tui.prd.store import PrdStore
from ralph_tui.recovery import new_run_id
from ralph_tui.run_core import RunCore
from ralph_tui.run_handle import RunFactory
from ralph_tui.safety.credentials import Redactor
from ralph_tui.supervisor import Supervisor
from ralph_tui.trackers import withhold_credentials

if TYPE_CHECKING:  # the server (aiohttp, 0.15 s to import) is loaded only for --listen
    from ralph_tui.server.http import RunServer
    from ralph_tui.server.hub import RunHub

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSpec:
    """What a run is made from, as the command line and ``ralph.toml`` said it.

    ``ask_local``: with ``--listen``, whether the face's own supervisor answers too (False:
    only the clients do). ``terminal``: where the notifier writes its terminal line.
    """

    workspace: Path
    config: RalphConfig
    agent: Agent | None = None
    allow_dirty: bool = False
    run_id: str | None = None
    ask_local: bool = True
    terminal: Callable[[str], None] | None = None

    def listen_address(self) -> tuple[str, int] | None:
        """``--listen``'s address, refused when it is not loopback without ``--listen-public``."""
        if not self.config.listen:
            return None
        from ralph_tui.server.http import is_loopback, parse_listen

        host, port = parse_listen(self.config.listen)
        if not is_loopback(host) and not self.config.listen_public:
            raise UsageError(
                f"--listen {self.config.listen}: not a loopback address; add --listen-public "
                "to serve the run to the network"
            )
        return host, port


def build_engine(
    workspace: Path,
    config: RalphConfig,
    agent: Agent | None,
    supervisor: Supervisor,
    sink: EventSink,
    *,
    allow_dirty: bool = False,
    run_id: str | None = None,
    redactor: Redactor | None = None,
    executor_credentials: Mapping[str, str] | None = None,
) -> RunCore[Any]:
    """The run with its strategy: the serial loop for ``workers = 1`` on this machine;
    otherwise the parallel loop, which builds the configured executor
    (``executors.EXECUTORS``)."""
    if config.workers > 1 or config.executor != "local":
        from ralph_tui.parallel import ParallelEngine

        return ParallelEngine(
            workspace,
            config,
            agent,
            supervisor,
            sink,
            allow_dirty=allow_dirty,
            run_id=run_id,
            redactor=redactor,
            executor_credentials=executor_credentials,
        )
    return Engine(
        workspace,
        config,
        agent,
        supervisor,
        sink,
        allow_dirty=allow_dirty,
        run_id=run_id,
        redactor=redactor,
    )


class ServedRun:
    """The engine with its faces: optionally served on a socket, with notifications.

    It is what every local face drives (``RunHandle``): the controls go to the engine; with a
    server, ``run()`` starts it before the engine, writes ``.ralph/serve.json``, and after the
    run lets clients and notifications finish.
    """

    def __init__(self, spec: RunSpec, local: Supervisor, sink: EventSink) -> None:
        config = spec.config
        address = spec.listen_address()
        run_id = spec.run_id or new_run_id()
        # secrets leave os.environ before the redactor reads them ([tracker]'s token too)
        withhold_credentials(config.tracker)
        redact = Redactor()
        self._sinks: list[EventSink] = [sink]
        self.url = ""
        self.serving = asyncio.Event()  # set once the URL is known and serve.json written
        supervisor = local
        hub: RunHub | None = None
        if address is not None:
            from ralph_tui.server.hub import RunHub
            from ralph_tui.server.supervisor import SharedSupervisor

            hub = RunHub(
                {
                    "role": config.role,
                    "max_iterations": config.max_iterations,
                    "workspace": str(spec.workspace.resolve()),
                    "agent": config.agent,
                    "model": config.model,
                    "run_id": run_id,
                },
                redact=redact,
                load_prd=self._load_prd,
                skipped=lambda: self.skipped,
                control=self,
            )
            self._sinks.append(hub)
            supervisor = SharedSupervisor(hub, local if spec.ask_local else None)
        self.engine = build_engine(
            spec.workspace,
            config,
            spec.agent,
            supervisor,
            self._emit,
            allow_dirty=spec.allow_dirty,
            run_id=run_id,
            redactor=redact,
        )
        self.server: RunServer | None = None
        if hub is not None and address is not None:
            from ralph_tui.server.http import RunServer

            self.server = RunServer(
                hub,
                host=address[0],
                port=address[1],
                public=config.listen_public,
                store=self.engine.store,
                diff=self.story_diff,
            )
        self.notifier = Notifier(
            config.notify,
            redact=redact,
            run_id=run_id,
            terminal=spec.terminal,
            emit=self.engine.emit,
            approvals_automatic=approvals_automatic(config),
        )
        self._sinks.append(self.notifier)

    def _emit(self, event: Event) -> None:
        for target in self._sinks:
            target(event)

    def _load_prd(self) -> Prd:
        return self.engine.store.load()

    # ------------------------------------------------------------------ RunHandle

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

    def open_approval(self, story_id: str) -> bool:
        return self.engine.open_approval(story_id)

    async def story_diff(self, story_id: str | None = None) -> list[FileDiff]:
        return await self.engine.story_diff(story_id)

    async def run(self) -> int:
        root = self.engine.root
        if self.server is not None:
            self.url = await self.server.start()
            from ralph_tui.server.http import write_serve_file

            write_serve_file(root, self.url, self.server.token)
            self.serving.set()
            if not self.notifier.url:
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
            await self.notifier.aclose()


def build_run(spec: RunSpec, local: Supervisor, sink: EventSink) -> ServedRun:
    """The run a face drives, from the face's own supervisor and sink."""
    return ServedRun(spec, local, sink)


def make_run_factory(
    workspace: Path,
    config: RalphConfig,
    *,
    agent: Agent | None = None,
    allow_dirty: bool = False,
    run_id: str | None = None,
    ask_local: bool = True,
    terminal: Callable[[str], None] | None = None,
) -> RunFactory:
    """``build_run`` for one ``RunSpec``, checked now (a bad ``--listen`` fails before a face
    opens)."""
    spec = RunSpec(workspace, config, agent, allow_dirty, run_id, ask_local, terminal)
    spec.listen_address()
    return functools.partial(build_run, spec)


__all__ = ["RunSpec", "ServedRun", "build_engine", "build_run", "make_run_factory"]
