"""The engine's supervisor when the run is served: the local face and every client race.

The engine asks once; ``SharedSupervisor`` publishes the question on the ``RunHub`` and, when the
run has a local face (the TUI's bars, or the headless prompt when stdin is a terminal), asks it
too. The first decision wins: the other side is cancelled (a TUI bar closes) and every client is
told ``settled`` so its bar closes as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TextIO, TypeVar

from ralph_tui.server.hub import AskKind, RunHub
from ralph_tui.server.protocol import approval_to_dict, escalation_to_dict
from ralph_tui.supervisor import (
    ApprovalDecision,
    ApprovalRequest,
    EscalationAnswer,
    EscalationRequest,
    Supervisor,
)

_T = TypeVar("_T")


class InterruptibleLines:
    """A terminal's lines for a prompt waiting in a thread, which a remote decision can end.

    The headless prompt reads stdin in a worker thread; when a client decides first, the thread
    must return (else it would swallow the next line typed, and hold the process at exit).
    ``interrupt()`` wakes it through a pipe and it returns ``""``, which nobody awaits any more.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._wake_r, self._wake_w = os.pipe()
        self._lock = threading.Lock()
        self._generation = 0
        self._interrupted = 0

    def readline(self) -> str:
        with self._lock:
            self._generation += 1
            mine = self._generation
        fd = self._stream.fileno()
        while True:
            with self._lock:
                if self._interrupted >= mine:
                    return ""
            ready, _, _ = select.select([fd, self._wake_r], [], [])
            if self._wake_r in ready:
                os.read(self._wake_r, 1024)
                continue
            return self._stream.readline()

    def interrupt(self) -> None:
        with self._lock:
            self._interrupted = self._generation
        os.write(self._wake_w, b"x")

    def isatty(self) -> bool:
        return self._stream.isatty()


class SharedSupervisor:
    """``hub`` may be set after construction: a served run hands this supervisor to the engine
    when it builds it (so whatever the engine builds around its supervisor, a parallel run's
    approval queue included, asks the clients too), and the hub, which needs the engine's
    redactor and run id, comes after. It is set before the run starts."""

    def __init__(
        self,
        hub: RunHub | None = None,
        local: Supervisor | None = None,
        on_local_cancelled: Callable[[], None] | None = None,
    ) -> None:
        self.hub = hub
        self.local = local
        self.on_local_cancelled = on_local_cancelled

    async def approve(self, request: ApprovalRequest) -> ApprovalDecision:
        local = self.local.approve(request) if self.local is not None else None
        result: ApprovalDecision = await self._race("approval", approval_to_dict(request), local)
        return result

    async def answer(self, request: EscalationRequest) -> EscalationAnswer:
        local = self.local.answer(request) if self.local is not None else None
        result: EscalationAnswer = await self._race(
            "escalation", escalation_to_dict(request), local
        )
        return result

    async def _race(
        self, kind: AskKind, payload: dict[str, Any], local: Awaitable[_T] | None
    ) -> _T:
        hub = self.hub
        if hub is None:
            raise RuntimeError("SharedSupervisor asked before the run's hub was set")
        ask_id, remote = hub.open_ask(kind, payload)
        contenders: list[asyncio.Future[Any]] = [remote]
        local_task: asyncio.Task[_T] | None = None
        if local is not None:
            local_task = asyncio.ensure_future(local)
            contenders.append(local_task)
        try:
            done, _ = await asyncio.wait(contenders, return_when=asyncio.FIRST_COMPLETED)
            winner = remote if remote in done else local_task
            assert winner is not None
            result: _T = winner.result()
            return result
        finally:
            if local_task is not None and not local_task.done():
                local_task.cancel()
                if self.on_local_cancelled is not None:
                    self.on_local_cancelled()
                with contextlib.suppress(asyncio.CancelledError):
                    await local_task
            if not remote.done():
                remote.cancel()
            hub.close_ask(ask_id)
