"""Typed, immutable events the engine emits.

The TUI, the headless console, the journal and the tests all consume the same events; the
journal (``events.jsonl``) is these events serialised, so a run can be replayed into the UI.
Sinks are plain callables and must be cheap: the engine calls them inline, and a streaming
agent can emit thousands of ``TextDelta`` events per second.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeVar


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every event; ``ts`` is wall-clock seconds (time.time()).

    ``worker`` tags an event from a parallel worker (1..N; 0: the single-worker loop or the
    engine itself), so consumers can tell whose transcript, gates and diff an event belongs to.
    """

    kind: ClassVar[str] = "event"
    ts: float = field(default_factory=time.time, kw_only=True)
    worker: int = field(default=0, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["kind"] = self.kind
        return data


_REGISTRY: dict[str, type[Event]] = {}
_E = TypeVar("_E", bound=type[Event])


def _register(cls: _E) -> _E:
    _REGISTRY[cls.kind] = cls
    return cls


def event_from_dict(data: dict[str, Any]) -> Event:
    """Rebuild an event from its journal form (used to replay a run)."""
    payload = dict(data)
    cls = _REGISTRY[payload.pop("kind")]
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in payload.items() if k in names})


RunState = Literal["starting", "running", "pausing", "paused", "waiting", "stopping", "finished"]
IterationOutcome = Literal["committed", "discarded", "failed", "skipped", "stopped", "error"]
GateStateName = Literal["pending", "running", "passed", "failed", "error", "timed_out"]


@_register
@dataclass(frozen=True, slots=True)
class RunStarted(Event):
    kind: ClassVar[str] = "run_started"
    run_id: str
    role: str
    workspace: str
    agent: str
    model: str
    max_iterations: int
    branch: str | None = None  # the branch the run commits to; None: detached HEAD
    sandbox: str = ""  # what confines the agent's commands: "bwrap", "sandbox-exec", "none"


@_register
@dataclass(frozen=True, slots=True)
class RunStateChanged(Event):
    kind: ClassVar[str] = "run_state"
    state: RunState


@_register
@dataclass(frozen=True, slots=True)
class RunFinished(Event):
    kind: ClassVar[str] = "run_finished"
    exit_code: int
    reason: str


@_register
@dataclass(frozen=True, slots=True)
class IterationStarted(Event):
    kind: ClassVar[str] = "iteration_started"
    iteration: int
    story_id: str
    title: str
    executor: str = ""  # where it runs: "" (the main checkout), "local-worktree", "ray"
    node: str = ""  # the cluster node it runs on (the Ray executor), else ""


@_register
@dataclass(frozen=True, slots=True)
class IterationFinished(Event):
    kind: ClassVar[str] = "iteration_finished"
    iteration: int
    story_id: str
    outcome: IterationOutcome
    message: str = ""
    patch_path: str | None = None


@_register
@dataclass(frozen=True, slots=True)
class TextDelta(Event):
    """A piece of the agent's streamed text, as it arrives."""

    kind: ClassVar[str] = "text_delta"
    text: str


@_register
@dataclass(frozen=True, slots=True)
class ToolCall(Event):
    kind: ClassVar[str] = "tool_call"
    call_id: str
    name: str
    input: dict[str, Any]


@_register
@dataclass(frozen=True, slots=True)
class ToolResult(Event):
    kind: ClassVar[str] = "tool_result"
    call_id: str
    name: str
    content: str
    is_error: bool = False


@_register
@dataclass(frozen=True, slots=True)
class GateStarted(Event):
    kind: ClassVar[str] = "gate_started"
    name: str
    command: str
    #: for a story's own command: the acceptance criterion (or field) it checks
    criterion: str = ""


@_register
@dataclass(frozen=True, slots=True)
class GateFinished(Event):
    kind: ClassVar[str] = "gate_finished"
    name: str
    command: str
    state: GateStateName
    exit_code: int | None
    duration_s: float
    summary: str
    output: str
    criterion: str = ""


@_register
@dataclass(frozen=True, slots=True)
class ApprovalNeeded(Event):
    kind: ClassVar[str] = "approval_needed"
    story_id: str
    title: str
    commit_message: str
    diffstat: str
    summary: str
    flags: tuple[str, ...] = ()  # ralph_tui.review: what needs a human's eyes


@_register
@dataclass(frozen=True, slots=True)
class ApprovalDecided(Event):
    kind: ClassVar[str] = "approval_decided"
    story_id: str
    decision: Literal["approve", "reject", "discard"]
    feedback: str = ""


@_register
@dataclass(frozen=True, slots=True)
class ReviewRecorded(Event):
    """A decision's line review (``pr_review``): what the human dropped from the change and
    what they commented, one line each, ``path:line: text``."""

    kind: ClassVar[str] = "review_recorded"
    story_id: str
    decision: Literal["approve", "reject", "discard"]
    dropped: tuple[str, ...] = ()
    comments: tuple[str, ...] = ()


@_register
@dataclass(frozen=True, slots=True)
class ApprovalsWaiting(Event):
    """Which stories' changes wait for a human (parallel runs), in the queue's order; every
    face shows the count and opens any of them (``RunHandle.open_approval``)."""

    kind: ClassVar[str] = "approvals_waiting"
    story_ids: tuple[str, ...] = ()


@_register
@dataclass(frozen=True, slots=True)
class Committed(Event):
    kind: ClassVar[str] = "committed"
    story_id: str
    sha: str
    message: str
    files: tuple[str, ...] = ()


@_register
@dataclass(frozen=True, slots=True)
class Escalated(Event):
    kind: ClassVar[str] = "escalated"
    story_id: str
    question: str
    tried: str
    automatic: bool = False
    # what the PM did with it (``ralph_tui.pm``): "" no PM, "suggested", "answers_later",
    # "answered" (at once, nobody is asked), "unknown" (the PM could not answer)
    pm: str = ""


@_register
@dataclass(frozen=True, slots=True)
class EscalationAnswered(Event):
    kind: ClassVar[str] = "escalation_answered"
    story_id: str
    answer: str
    skipped: bool = False
    # whose answer reached the agent: "human", "pm", or "human (the PM's suggestion as is)"
    by: str = "human"
    correction: bool = False  # a human's later answer correcting the PM's


@_register
@dataclass(frozen=True, slots=True)
class PmAnswered(Event):
    """What the PM said to an escalation: an answer, or (``known`` false) why it cannot."""

    kind: ClassVar[str] = "pm_answered"
    story_id: str
    answer: str
    known: bool = True


@_register
@dataclass(frozen=True, slots=True)
class PmToolUsed(Event):
    """One of the PM's read-only tool calls (``refused``: a tool it does not have)."""

    kind: ClassVar[str] = "pm_tool"
    story_id: str
    name: str
    detail: str
    refused: bool = False


@_register
@dataclass(frozen=True, slots=True)
class PmProposal(Event):
    """A PRD change the PM proposed, and what the human decided (never applied alone)."""

    kind: ClassVar[str] = "pm_proposal"
    story_id: str
    proposal: str
    decision: Literal["proposed", "accepted", "rejected", "not asked"] = "proposed"


@_register
@dataclass(frozen=True, slots=True)
class UsageReported(Event):
    """Token usage of one model call (or one CLI result) and its estimated cost."""

    kind: ClassVar[str] = "usage"
    story_id: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cost_usd: float = 0.0
    agent: str = ""  # a fallback run: which agent spent it ("anthropic:claude-haiku-4-5")
    by: str = "agent"  # "pm": the product-manager agent's own calls


@_register
@dataclass(frozen=True, slots=True)
class AgentSwitched(Event):
    """A fallback run (``fallback = [...]``): the agent now working on the story. Sent as each
    iteration starts, and when a rate-limited agent hands the iteration to the next one."""

    kind: ClassVar[str] = "agent_switched"
    story_id: str
    agent: str
    previous: str = ""  # the agent that was rate-limited; "" at the start of an iteration
    reason: str = ""


@_register
@dataclass(frozen=True, slots=True)
class AgentsLimited(Event):
    """Every agent of a fallback run is rate-limited: the run waits ``wait_s`` (from ``ts``)
    for the earliest reset, then goes on with ``resume_agent`` (an ``AgentSwitched``)."""

    kind: ClassVar[str] = "agents_limited"
    story_id: str
    wait_s: float
    resume_agent: str
    message: str = ""


@_register
@dataclass(frozen=True, slots=True)
class PrdChanged(Event):
    """The PRD file changed on disk (by the engine or by someone else)."""

    kind: ClassVar[str] = "prd_changed"
    source: Literal["engine", "external"]


@_register
@dataclass(frozen=True, slots=True)
class Notice(Event):
    """A line for the human: fix attempt counts, retries, recoveries, warnings."""

    kind: ClassVar[str] = "notice"
    level: Literal["info", "warning", "error"]
    message: str


EventSink = Callable[[Event], None]
