"""Driving the real engine in-process: a scripted agent, a recording sink, a test supervisor."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ralph_tui.agents.scripted import ScriptedAgent
from ralph_tui.config import load_config
from ralph_tui.engine import Engine
from ralph_tui.events import ApprovalNeeded, Event
from ralph_tui.supervisor import (
    ApprovalDecision,
    ApprovalRequest,
    EscalationAnswer,
    EscalationRequest,
)


class RecordingSink:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type[Event]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


class ScriptedSupervisor:
    """Answers from queues; an empty queue approves / skips. Hooks run before answering."""

    def __init__(
        self,
        decisions: list[ApprovalDecision] | None = None,
        answers: list[EscalationAnswer] | None = None,
        on_approve: Callable[[ApprovalRequest], Awaitable[None]] | None = None,
    ) -> None:
        self.decisions = list(decisions or [])
        self.answers = list(answers or [])
        self.on_approve = on_approve
        self.approval_requests: list[ApprovalRequest] = []
        self.escalations: list[EscalationRequest] = []

    async def approve(self, request: ApprovalRequest) -> ApprovalDecision:
        self.approval_requests.append(request)
        if self.on_approve is not None:
            await self.on_approve(request)
        return self.decisions.pop(0) if self.decisions else ApprovalDecision.approve()

    async def answer(self, request: EscalationRequest) -> EscalationAnswer:
        self.escalations.append(request)
        return self.answers.pop(0) if self.answers else EscalationAnswer("skip")


class HoldFirstApproval(ScriptedSupervisor):
    """Holds the first approval until ``count`` workers have asked for one."""

    def __init__(self, count: int = 2, **kwargs: Any) -> None:
        super().__init__(on_approve=self._hold, **kwargs)
        self.count = count
        self.asked = 0
        self.all_asked = asyncio.Event()

    def sink(self, event: Event) -> None:
        if isinstance(event, ApprovalNeeded):
            self.asked += 1
            if self.asked >= self.count:
                self.all_asked.set()

    async def _hold(self, request: ApprovalRequest) -> None:
        await self.all_asked.wait()


def write_script(root: Path, script: dict[str, Any], name: str = "script.json") -> Path:
    """Scripts live outside the repo so they never make the tree dirty."""
    path = root.parent / name
    path.write_text(json.dumps(script), encoding="utf-8")
    return path


def make_engine(
    root: Path,
    script: dict[str, Any],
    supervisor: ScriptedSupervisor | None = None,
    *,
    allow_dirty: bool = False,
    **overrides: Any,
) -> tuple[Engine, ScriptedAgent, RecordingSink, ScriptedSupervisor]:
    path = write_script(root, script)
    config = load_config(root, {"script": str(path), **overrides})
    agent = ScriptedAgent.from_file(path, config)
    sink = RecordingSink()
    sup = supervisor or ScriptedSupervisor()
    engine = Engine(root, config, agent, sup, sink, allow_dirty=allow_dirty)
    return engine, agent, sink, sup


def create(path: str, text: str) -> dict[str, Any]:
    return {
        "tool": "str_replace_based_edit_tool",
        "input": {"command": "create", "path": path, "file_text": text},
    }


def complete(summary: str = "done", learnings: list[str] | None = None) -> dict[str, Any]:
    return {
        "tool": "complete_task",
        "input": {"summary": summary, "learnings": learnings or ["learned a thing"]},
    }


def approval_beside_question(root: Path) -> tuple[Path, dict[str, Any]]:
    """Two stories for two workers, and their script: US-001 just works, so its approval opens;
    US-002 first asks which port, so its question is open beside that approval, then works."""
    from tests.support.repo import make_repo, story

    ask = {"tool": "escalate", "input": {"question": "Which port?", "tried": "the docs"}}
    script = {
        "stories": {
            "US-001": [create("a.txt", "a\n"), complete("a")],
            "US-002": [ask, create("b.txt", "b\n"), complete("b")],
        }
    }
    return make_repo(root, [story("US-001", "A", 1), story("US-002", "B", 2)]), script
