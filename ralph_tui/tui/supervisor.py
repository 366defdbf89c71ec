"""The TUI's answer to the engine's questions: futures that the docked bars resolve.

The engine awaits ``approve`` / ``answer``; the app shows a bar and the human's key press resolves
the future. At most one approval and one escalation are pending at once: the approval queue
shows one approval at a time and workers' escalations come one at a time, but with workers one
story's approval and another's question are open together, so each settles on its own (settling
the question must not close the approval bar the human is reviewing). Quitting resolves whatever
is pending with the safest choice (discard / stop) so the engine can reach its safe point.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ralph_tui.supervisor import (
    ApprovalDecision,
    ApprovalRequest,
    EscalationAnswer,
    EscalationRequest,
    QuestionKind,
)


class TuiSupervisor:
    def __init__(
        self,
        on_approval: Callable[[ApprovalRequest], None],
        on_escalation: Callable[[EscalationRequest], None],
        on_settled: Callable[[QuestionKind], None],
        *,
        auto_approve: bool = False,
    ) -> None:
        # --approve auto: a change whose gates passed commits at once (the engine's own gates
        # decided); escalations still come to the human watching
        self.auto_approve = auto_approve
        self._on_approval = on_approval
        self._on_escalation = on_escalation
        self._on_settled = on_settled
        self.approval: ApprovalRequest | None = None
        self.escalation: EscalationRequest | None = None
        self._approval_future: asyncio.Future[ApprovalDecision] | None = None
        self._escalation_future: asyncio.Future[EscalationAnswer] | None = None

    async def approve(self, request: ApprovalRequest) -> ApprovalDecision:
        if self.auto_approve and not request.flags:  # a flagged change waits for the human
            return ApprovalDecision.approve()
        future: asyncio.Future[ApprovalDecision] = asyncio.get_running_loop().create_future()
        self._approval_future = future
        self.approval = request
        self._on_approval(request)
        try:
            return await future
        finally:
            self.approval = None
            self._approval_future = None
            self._on_settled("approval")

    async def answer(self, request: EscalationRequest) -> EscalationAnswer:
        future: asyncio.Future[EscalationAnswer] = asyncio.get_running_loop().create_future()
        self._escalation_future = future
        self.escalation = request
        self._on_escalation(request)
        try:
            return await future
        finally:
            self.escalation = None
            self._escalation_future = None
            self._on_settled("escalation")

    def decide(self, decision: ApprovalDecision) -> bool:
        """Resolve the pending approval; False when none is pending (a stale key press)."""
        future = self._approval_future
        if future is None or future.done():
            return False
        future.set_result(decision)
        return True

    def reply(self, answer: EscalationAnswer) -> bool:
        """Resolve the pending escalation; False when none is pending."""
        future = self._escalation_future
        if future is None or future.done():
            return False
        future.set_result(answer)
        return True

    def settle_for_quit(self) -> None:
        """Quitting: a pending approval becomes a discard, a pending escalation a stop."""
        self.decide(ApprovalDecision.discard())
        self.reply(EscalationAnswer("stop"))
