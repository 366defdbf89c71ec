"""Pause, escalation and the cost budget with two workers: the real engine, real worktrees, the
scripted agent. Each test orders itself against the agents with ``{"wait": ...}`` steps and
events, never with sleeps."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ralph_tui.agents.scripted import ScriptedAgent
from ralph_tui.events import (
    ApprovalNeeded,
    Committed,
    Escalated,
    EscalationAnswered,
    Event,
    IterationFinished,
    IterationStarted,
    Notice,
    RunFinished,
    RunStateChanged,
    ToolCall,
    ToolResult,
)
from ralph_tui.supervisor import EscalationAnswer
from tests.support.engine import ScriptedSupervisor, complete, create
from tests.support.repo import git, make_repo, story
from tests.test_parallel import TeeSink, assert_clean, make_parallel, passes, story_commits

TIMEOUT = 60  # a hang is a failure, not a stuck suite


class Signals:
    """Sink side: an ``asyncio.Event`` per condition the test waits for."""

    def __init__(self) -> None:
        self.paused = asyncio.Event()
        self.spent = asyncio.Event()
        self.worker_of: dict[str, int] = {}

    def __call__(self, event: Event) -> None:
        if isinstance(event, IterationStarted):
            self.worker_of[event.story_id] = event.worker
        if isinstance(event, RunStateChanged) and event.state == "paused":
            self.paused.set()
        if isinstance(event, Notice) and "cost budget" in event.message:
            self.spent.set()


async def until(event: asyncio.Event) -> None:
    await asyncio.wait_for(event.wait(), TIMEOUT)


async def reached(agent: ScriptedAgent, *names: str) -> None:
    """The scripted agent is waiting at every one of ``{"wait": name}``."""
    await asyncio.wait_for(asyncio.gather(*(agent.wait_reached(n) for n in names)), TIMEOUT)


async def test_pause_holds_both_workers_at_a_safe_point_and_resume_lands_both(
    tmp_path: Path,
) -> None:
    root = make_repo(tmp_path / "ws", [story("US-001", "One"), story("US-002", "Two")])
    script = {
        "stories": {
            "US-001": [create("one.txt", "1\n"), {"wait": "one"}, complete()],
            "US-002": [create("two.txt", "2\n"), {"wait": "two"}, complete()],
        }
    }
    signals = Signals()
    sink = TeeSink(signals)
    engine, agent, _, _ = make_parallel(root, script, sink=sink)
    task = asyncio.create_task(engine.run())
    await reached(agent, "one", "two")  # both workers are mid-story
    engine.pause()
    agent.release("one")
    await until(signals.paused)  # worker 1 stopped at the safe point before complete_task
    agent.release("two")  # worker 2 runs into the same held safe point
    held_at = len(sink.events)
    assert engine.paused
    assert not sink.of(ApprovalNeeded) and not sink.of(Committed)
    engine.resume()
    assert await asyncio.wait_for(task, TIMEOUT) == 0
    # while paused no worker got past its safe point: every complete_task came after resume
    states = [(i, e.state) for i, e in enumerate(sink.events) if isinstance(e, RunStateChanged)]
    paused_at = next(i for i, s in states if s == "paused")
    resumed_at = next(i for i, s in states if s == "running" and i > paused_at)
    assert resumed_at >= held_at
    completes = [
        i
        for i, e in enumerate(sink.events)
        if isinstance(e, ToolCall) and e.name == "complete_task"
    ]
    assert len(completes) == 2 and min(completes) > resumed_at
    assert passes(root) == {"US-001": True, "US-002": True}
    assert len(story_commits(root)) == 2
    assert_clean(root)


async def test_escalation_in_a_worker_is_answered_and_reaches_that_workers_agent(
    tmp_path: Path,
) -> None:
    root = make_repo(tmp_path / "ws", [story("US-001", "One"), story("US-002", "Two")])
    question = {"question": "Which colour?", "tried": "looked in the docs"}
    script = {
        "stories": {
            "US-001": [{"tool": "escalate", "input": question}, create("one.txt", "blue\n"),
                       complete()],
            "US-002": [create("two.txt", "2\n"), complete()],
        }
    }  # fmt: skip
    sup = ScriptedSupervisor(answers=[EscalationAnswer("answer", "Use blue.")])
    signals = Signals()
    sink = TeeSink(signals)
    engine, agent, _, _ = make_parallel(root, script, sup, sink=sink)
    assert await asyncio.wait_for(engine.run(), TIMEOUT) == 0
    worker = signals.worker_of["US-001"]
    assert [(r.story_id, r.question) for r in sup.escalations] == [("US-001", "Which colour?")]
    (asked,) = sink.of(Escalated)
    assert (asked.story_id, asked.worker, asked.automatic) == ("US-001", worker, False)
    (answered,) = sink.of(EscalationAnswered)
    assert (answered.answer, answered.worker, answered.skipped) == ("Use blue.", worker, False)
    # the tool result of US-001's escalate call, on its worker, carries the answer
    (result,) = [r for r in sink.of(ToolResult) if r.name == "escalate"]
    assert result.worker == worker and "US-001" in result.call_id
    assert result.content == "Answer from the human supervisor:\nUse blue."
    assert [o.content for n, o in agent.received if n == "escalate"] == [result.content]
    progress = (root / "tasks/backend_progress.txt").read_text()
    assert "Which colour?" in progress and "Use blue." in progress
    assert passes(root) == {"US-001": True, "US-002": True}
    assert git(root, "show", "HEAD:one.txt") == "blue\n"
    assert_clean(root)


async def test_cost_budget_stops_the_parallel_run_with_no_half_commit(tmp_path: Path) -> None:
    stories = [story("US-001", "One"), story("US-002", "Two"), story("US-003", "Three")]
    root = make_repo(tmp_path / "ws", stories, extra_config="max_cost_usd = 1.0")
    # sonnet list price: 400k tokens in = $1.20, over the $1.00 budget in one turn
    spend = {"usage": {"input_tokens": 400_000, "output_tokens": 0}}
    script = {
        "stories": {
            "US-001": [create("one.txt", "1\n"), {"wait": "one"}, spend, complete()],
            "US-002": [create("two.txt", "2\n"), {"wait": "two"}, complete()],
            "US-003": [create("three.txt", "3\n"), complete()],
        }
    }
    signals = Signals()
    sink = TeeSink(signals)
    engine, agent, _, sup = make_parallel(root, script, sink=sink)
    prd_before = (root / "tasks/backend_prd.json").read_bytes()
    progress_before = (root / "tasks/backend_progress.txt").read_bytes()
    task = asyncio.create_task(engine.run())
    await reached(agent, "one", "two")
    agent.release("one")  # worker 1 spends the budget ...
    await until(signals.spent)
    agent.release("two")  # ... and worker 2, released after, must not get to complete_task
    assert await asyncio.wait_for(task, TIMEOUT) == 3
    (finished,) = sink.of(RunFinished)
    assert "cost budget spent ($1.20)" in finished.reason
    assert engine.run_cost == 1.2 or abs(engine.run_cost - 1.2) < 1e-9
    ended = {e.story_id: e for e in sink.of(IterationFinished)}
    assert sorted(ended) == ["US-001", "US-002"]  # US-003 never started
    assert all(e.outcome == "stopped" and e.patch_path for e in ended.values())
    assert "one.txt" in Path(str(ended["US-001"].patch_path)).read_text()
    assert not [e for e in sink.events if isinstance(e, ToolCall) and e.name == "complete_task"]
    assert not sup.approval_requests and not sink.of(Committed)
    # no half commit: the PRD, the progress log and main's history are as they were
    assert (root / "tasks/backend_prd.json").read_bytes() == prd_before
    assert (root / "tasks/backend_progress.txt").read_bytes() == progress_before
    assert story_commits(root) == []
    assert not (root / ".ralph/state.json").exists()
    assert_clean(root)
