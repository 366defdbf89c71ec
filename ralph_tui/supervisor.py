"""What the engine asks a human (or a policy) to decide.

The TUI, the headless console and the tests each implement ``Supervisor``. The engine awaits
these calls; a supervisor may take as long as the human needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from ralph_tui.events import GateFinished


@dataclass(frozen=True)
class ApprovalRequest:
    story_id: str
    title: str
    commit_message: str
    diffstat: str
    summary: str
    gates: tuple[GateFinished, ...]
    worker: int = 0  # the parallel worker whose change this is (0: the single-worker loop)
    waiting: int = 0  # further approvals queued behind this one (parallel workers)
    # what in the change needs a human's eyes (``ralph_tui.review``): a flagged change is never
    # approved by the ``--approve auto`` policy
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class ApprovalDecision:
    kind: Literal["approve", "reject", "discard"]
    feedback: str = ""

    @classmethod
    def approve(cls) -> ApprovalDecision:
        return cls("approve")

    @classmethod
    def reject(cls, feedback: str) -> ApprovalDecision:
        return cls("reject", feedback)

    @classmethod
    def discard(cls) -> ApprovalDecision:
        return cls("discard")


@dataclass(frozen=True)
class EscalationRequest:
    story_id: str
    title: str
    question: str
    tried: str
    automatic: bool = False  # raised by the engine after repeated failures, not by the agent
    suggestion: str = ""  # the PM's proposed answer ([pm]); the human may send it as is
    pm_note: str = ""  # what the PM did: could not answer, answers after a delay


@dataclass(frozen=True)
class EscalationAnswer:
    """``answer``: text for the agent; ``skip``: pass the story over this run; ``stop``: end run."""

    kind: Literal["answer", "skip", "stop"]
    text: str = ""
    # whose answer it is ([pm]): "human", "pm", or the PM's suggestion a human sent as is
    by: str = "human"

    @property
    def source(self) -> str:
        """Who answered, as the agent is told it."""
        if self.by == "pm":
            return "Answer from the product manager (an AI agent, not a human)"
        if self.by != "human":
            return "Answer from the human supervisor (the product manager's suggestion)"
        return "Answer from the human supervisor"


def reaches_human(supervisor: object) -> bool:
    """Whether ``supervisor`` can put a question to a person (``reaches_human`` attribute;
    a supervisor that does not say is assumed to: the TUI, a served run, a test's script)."""
    return bool(getattr(supervisor, "reaches_human", True))


class Supervisor(Protocol):
    async def approve(self, request: ApprovalRequest) -> ApprovalDecision: ...

    async def answer(self, request: EscalationRequest) -> EscalationAnswer: ...
