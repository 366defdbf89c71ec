"""The engine's supervisor when the run is served: the local face and every client race.

The engine asks once; ``SharedSupervisor`` publishes the question on the ``RunHub`` and, when the
run has a local face (the TUI's bars, or the headless prompt when stdin is a terminal), asks it
too. The first decision wins: the other side is cancelled (a TUI bar closes) and every client is
told ``settled`` so its bar closes as well.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any, TypeVar

from ralph_tui.server.hub import RunHub
from ralph_tui.server.protocol import approval_to_dict, escalation_to_dict
from ralph_tui.supervisor import (
    ApprovalDecision,
    ApprovalRequest,
    EscalationAnswer,
    EscalationRequest,
    QuestionKind,
    Supervisor,
)

_T = TypeVar("_T")


class SharedSupervisor:
    """Built with the run's hub before the engine (``ralph_tui.runs``), so whatever the engine
    builds around its supervisor, a parallel run's approval queue included, asks the clients.
    A local question that loses the race is cancelled; the local face ends its own prompt."""

    def __init__(self, hub: RunHub, local: Supervisor | None = None) -> None:
        self.hub = hub
        self.local = local

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
        self, kind: QuestionKind, payload: dict[str, Any], local: Awaitable[_T] | None
    ) -> _T:
        hub = self.hub
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
                with contextlib.suppress(asyncio.CancelledError):
                    await local_task
            if not remote.done():
                remote.cancel()
            hub.close_ask(ask_id)
