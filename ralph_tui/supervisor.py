"""What the engine asks a human (or a policy) to decide.

The TUI, the headless console and the tests each implement ``Supervisor``. The engine awaits
these calls; a supervisor may take as long as the human needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from ralph_tui.events import GateFinished

# what a face is asked: an approval or an escalation (with workers one of each can be open)
QuestionKind = Literal["approval", "escalation"]


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
class ReviewComment:
    """A reviewer's comment on one line of the diff shown (``ralph_tui.pr_review``).

    ``line`` numbers the new file (``side="new"``: an added or context line) or the old one
    (``side="old"``: a removed line). ``quote`` is the line itself; the engine fills it from
    the diff, so what the agent is shown is the code, not what a face said the code was.
    """

    path: str
    line: int
    text: str
    side: Literal["new", "old"] = "new"
    quote: str = ""

    def anchor(self) -> str:
        return f"{self.path}:{self.line}" + (" (removed line)" if self.side == "old" else "")


@dataclass(frozen=True)
class DroppedPart:
    """A part of the change the reviewer leaves out before approving: one hunk of ``path``
    (``hunk``: its 0-based place among the file's ``@@`` hunks as shown) or, with ``hunk``
    ``None``, the whole file."""

    path: str
    hunk: int | None = None

    def describe(self) -> str:
        return f"{self.path}" if self.hunk is None else f"{self.path} hunk {self.hunk + 1}"


@dataclass(frozen=True)
class ApprovalDecision:
    """``comments`` go back to the agent with a reject (and into the journal and progress log
    either way); ``drops`` with an approve leave those parts out: the engine re-runs the gates
    on what remains and asks again before it commits."""

    kind: Literal["approve", "reject", "discard"]
    feedback: str = ""
    comments: tuple[ReviewComment, ...] = ()
    drops: tuple[DroppedPart, ...] = ()

    @classmethod
    def approve(
        cls, drops: Sequence[DroppedPart] = (), comments: Sequence[ReviewComment] = ()
    ) -> ApprovalDecision:
        return cls("approve", drops=tuple(drops), comments=tuple(comments))

    @classmethod
    def reject(cls, feedback: str, comments: Sequence[ReviewComment] = ()) -> ApprovalDecision:
        return cls("reject", feedback, comments=tuple(comments))

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
