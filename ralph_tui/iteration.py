"""The seam between the engine and an agent backend.

The engine owns the loop and the decisions; an agent owns one conversation per iteration. The
engine hands the agent an ``IterationHandle``: the workspace, an event sink, and the three tools
whose meaning belongs to the engine (``run_quality_gates``, ``escalate``, ``complete_task``).
File and shell tools are plain functions in ``ralph_tui.tools`` over the same workspace.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from ralph_tui.config import RalphConfig
from ralph_tui.events import Event
from ralph_tui.prd.model import Story
from ralph_tui.safety.workspace import Workspace

# what complete_task tells the agent when the human rejects: the feedback between these
REJECTED_HEADER = "The human supervisor rejected the change. Their feedback:\n"
REJECTED_FOOTER = "\nAddress it, then call complete_task again."


@dataclass(frozen=True)
class ToolOutcome:
    """What a tool call returns to the agent. ``ends_iteration``: stop the conversation now."""

    content: str
    is_error: bool = False
    ends_iteration: bool = False


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cost_usd: float | None = None  # set when the backend reports its own cost (Claude Code)
    # set by a fallback run (agents/fallback.py): which agent spent it, priced by its model
    agent: str = ""
    model: str | None = None


@dataclass(frozen=True)
class IterationRequest:
    iteration: int
    story: Story
    system_prompt: str
    user_prompt: str
    workspace: Path
    config: RalphConfig
    feedback: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class AgentOutcome:
    """Why the agent's conversation ended (when it was not the engine that ended it)."""

    reason: Literal["finished", "end_turn", "refusal", "stopped", "timeout", "crashed"]
    message: str = ""


class IterationHandle(Protocol):
    """Provided by the engine for one iteration."""

    @property
    def workspace(self) -> Workspace: ...

    @property
    def finished(self) -> bool:
        """True once the engine has ended the iteration (committed, discarded, gave up)."""
        ...

    def emit(self, event: Event) -> None: ...

    async def checkpoint(self) -> None:
        """A safe point: waits while paused; raises ``StopRequested`` if the run is stopping."""
        ...

    def report_usage(self, usage: Usage) -> None:
        """Adds to the story's and the run's cost; the engine enforces ``max_cost_usd``."""
        ...

    async def run_quality_gates(self) -> ToolOutcome: ...

    async def escalate(self, question: str, tried: str) -> ToolOutcome: ...

    async def complete_task(self, summary: str, learnings: Sequence[str]) -> ToolOutcome: ...


class Agent(Protocol):
    name: str

    async def run_iteration(
        self, request: IterationRequest, tools: IterationHandle
    ) -> AgentOutcome:
        """Work on ``request.story`` until ``tools.finished`` or the conversation ends.

        Raise ``AgentError`` for a failure that should stop the run (exit 1): the API after
        retries, a CLI that cannot start. Raise nothing for an ordinary end of conversation.
        """
        ...

    async def aclose(self) -> None: ...
