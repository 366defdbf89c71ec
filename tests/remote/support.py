"""A served run in-process (real engine, real socket on 127.0.0.1) and clients to drive it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ralph_tui.agents.scripted import ScriptedAgent
from ralph_tui.config import load_config
from ralph_tui.events import Event, RunStateChanged
from ralph_tui.runs import ServedRun, make_run_factory
from ralph_tui.server.client import RemoteRun
from ralph_tui.supervisor import (
    ApprovalDecision,
    ApprovalRequest,
    EscalationAnswer,
    EscalationRequest,
)
from tests.support.engine import RecordingSink, ScriptedSupervisor, complete, create, write_script

SCRIPT: dict[str, Any] = {
    "default": [{"text": "Adding the module."}, create("src/x.py", "X = 1\n"), complete("added x")]
}


class HandSupervisor:
    """A face's supervisor driven by the test: questions arrive on queues, closes are counted."""

    def __init__(self) -> None:
        self.approvals: asyncio.Queue[tuple[ApprovalRequest, asyncio.Future[ApprovalDecision]]]
        self.approvals = asyncio.Queue()
        self.escalations: asyncio.Queue[
            tuple[EscalationRequest, asyncio.Future[EscalationAnswer]]
        ] = asyncio.Queue()
        self.closed: asyncio.Queue[str] = asyncio.Queue()

    async def approve(self, request: ApprovalRequest) -> ApprovalDecision:
        future: asyncio.Future[ApprovalDecision] = asyncio.get_running_loop().create_future()
        await self.approvals.put((request, future))
        try:
            return await future
        except asyncio.CancelledError:
            self.closed.put_nowait(request.story_id)  # the bar closes: someone else decided
            raise

    async def answer(self, request: EscalationRequest) -> EscalationAnswer:
        future: asyncio.Future[EscalationAnswer] = asyncio.get_running_loop().create_future()
        await self.escalations.put((request, future))
        return await future


class WaitingSink(RecordingSink):
    """Records events and lets a test await the first event matching a condition."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Event()

    def __call__(self, event: Event) -> None:
        super().__call__(event)
        self.changed.set()

    async def wait(self, condition: Any, timeout: float = 30.0) -> Event:
        async def loop() -> Event:
            while True:
                for event in self.events:
                    if condition(event):
                        return event
                self.changed.clear()
                await self.changed.wait()

        return await asyncio.wait_for(loop(), timeout)


def waiting(event: Event) -> bool:
    return isinstance(event, RunStateChanged) and event.state == "waiting"


@dataclass
class Served:
    run: ServedRun
    task: asyncio.Task[int]
    sink: WaitingSink
    root: Path
    clients: list[asyncio.Task[int]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.run.url

    @property
    def token(self) -> str:
        assert self.run.server is not None
        return self.run.server.token

    def attach(self, supervisor: Any, sink: Any | None = None) -> tuple[RemoteRun, WaitingSink]:
        recorder = sink if sink is not None else WaitingSink()
        client = RemoteRun(self.url, self.token, supervisor, recorder)
        self.clients.append(asyncio.create_task(client.run()))
        return client, recorder


@contextlib.asynccontextmanager
async def served_run(
    root: Path,
    script: dict[str, Any] | None = None,
    *,
    local: Any = None,
    ask_local: bool = False,
    **overrides: Any,
) -> AsyncIterator[Served]:
    path = write_script(root, script or SCRIPT)
    config = load_config(root, {"script": str(path), "listen": "127.0.0.1:0", **overrides})
    agent = ScriptedAgent.from_file(path, config)
    factory = make_run_factory(root, config, agent=agent, ask_local=ask_local)
    sink = WaitingSink()
    run = factory(local or ScriptedSupervisor(), sink)
    task = asyncio.create_task(run.run())
    await asyncio.wait_for(run.serving.wait(), 30)
    served = Served(run, task, sink, root)
    try:
        yield served
    finally:
        for pending in [task, *served.clients]:
            if not pending.done():
                pending.cancel()
        for pending in [task, *served.clients]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pending
