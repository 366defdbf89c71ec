"""A recording ``IterationHandle`` for unit tests of the tools and agents (the engine's is real)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ralph_tui.events import Event
from ralph_tui.iteration import ToolOutcome, Usage
from ralph_tui.safety.workspace import Workspace


@dataclass
class FakeIterationHandle:
    root: Path
    gate_results: list[ToolOutcome] = field(default_factory=list)
    complete_results: list[ToolOutcome] = field(default_factory=list)
    answer: str = "Use the simplest fix."
    events: list[Event] = field(default_factory=list)
    usages: list[Usage] = field(default_factory=list)
    completions: list[tuple[str, list[str]]] = field(default_factory=list)
    escalations: list[tuple[str, str]] = field(default_factory=list)
    checkpoints: int = 0
    _finished: bool = False

    def __post_init__(self) -> None:
        self._workspace = Workspace(self.root)

    @property
    def workspace(self) -> Workspace:
        return self._workspace

    @property
    def finished(self) -> bool:
        return self._finished

    def emit(self, event: Event) -> None:
        self.events.append(event)

    async def checkpoint(self) -> None:
        self.checkpoints += 1

    def report_usage(self, usage: Usage) -> None:
        self.usages.append(usage)

    async def run_quality_gates(self) -> ToolOutcome:
        return self.gate_results.pop(0) if self.gate_results else ToolOutcome("all gates passed")

    async def escalate(self, question: str, tried: str) -> ToolOutcome:
        self.escalations.append((question, tried))
        return ToolOutcome(self.answer)

    async def complete_task(self, summary: str, learnings: Sequence[str]) -> ToolOutcome:
        self.completions.append((summary, list(learnings)))
        outcome = (
            self.complete_results.pop(0)
            if self.complete_results
            else ToolOutcome("approved and committed", ends_iteration=True)
        )
        if outcome.ends_iteration:
            self._finished = True
        return outcome
