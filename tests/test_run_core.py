"""The run core on its own: a third, minimal strategy gets the whole run from it.

``RunCore`` owns what every loop shares (lock, preflight, journal and events, cost, pause and
stop, escalation, the approval path, landing); ``engine.SerialLoop`` and
``parallel.ParallelLoop`` are two ``LoopStrategy``s over it. These tests drive the core with a
strategy of their own, through real git, the real journal and the real landing, so what the
core promises a strategy is checked without either loop in the way.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ralph_tui.agents.scripted import ScriptedAgent
from ralph_tui.config import load_config
from ralph_tui.engine import Engine, SerialLoop
from ralph_tui.events import (
    ApprovalsWaiting,
    Committed,
    Event,
    Notice,
    RunFinished,
    RunStarted,
)
from ralph_tui.exit_codes import ExitCode
from ralph_tui.git.repo import FileDiff
from ralph_tui.parallel import ParallelEngine, ParallelLoop
from ralph_tui.run_core import RunCore
from ralph_tui.runlock import RunLock
from ralph_tui.supervisor import ApprovalDecision, ApprovalRequest
from tests.support.engine import RecordingSink, ScriptedSupervisor, write_script
from tests.support.repo import git, make_repo, story

WORKER = 7  # the strategy's tag on every event


class LandFirstStory:
    """Lands the PRD's first story straight from the main checkout, and records every hook
    the core calls, in order."""

    def __init__(self, core: RunCore[LandFirstStory]) -> None:
        self.core = core
        self.calls: list[str] = []

    def preflight(self) -> None:
        # after the core's own: the run's branch and the user's files are known by now
        self.calls.append(f"preflight on {self.core.branch}")

    async def run(self) -> tuple[int, str]:
        core = self.core
        first = core.store.load().next_story(skip=set())
        assert first is not None
        core.pause()
        core.resume()
        decision = await core.ask_supervisor_approval(
            ApprovalRequest(first.key, first.title, "a PRD change", "", "", ())
        )
        self.calls.append(f"approval: {decision.kind}")
        answer = await core.ask_human(first, "which file?", "nothing yet", automatic=False)
        self.calls.append(f"answer: {answer.kind}")
        (core.root / "made.txt").write_text("made\n")
        await core.landing.land(
            first, ["a learning"], marker=core.marker("committing", first), after=None
        )
        core.iteration += 1
        core.request_stop()
        return ExitCode.DONE, "landed by the third strategy"

    def on_event(self, event: Event) -> Event:
        return dataclasses.replace(event, worker=WORKER)

    def wake(self) -> None:
        self.calls.append("wake")

    def stop(self) -> None:
        self.calls.append("stop")

    async def before_bookkeeping(self) -> None:
        self.calls.append("before bookkeeping")

    async def approve(self, request: ApprovalRequest) -> ApprovalDecision:
        self.calls.append(f"approve {request.story_id}")
        return await self.core.supervisor_approve(request)

    def open_approval(self, story_id: str) -> bool:
        return False

    async def story_diff(self, story_id: str | None = None) -> list[FileDiff]:
        return []


def core_with(root: Path, sink: RecordingSink) -> RunCore[LandFirstStory]:
    path = write_script(root, {"stories": {}})
    config = load_config(root, {"script": str(path)})
    agent = ScriptedAgent.from_file(path, config)
    return RunCore(root, config, agent, ScriptedSupervisor(), sink, loop=LandFirstStory)


async def test_a_third_strategy_gets_lock_preflight_journal_escalation_and_landing(
    tmp_path: Path,
) -> None:
    root = make_repo(tmp_path / "ws", [story("US-001", "Make a file")], gates={"ok": "true"})
    sink = RecordingSink()
    core = core_with(root, sink)

    assert await core.run() == ExitCode.DONE

    branch = git(root, "branch", "--show-current").strip()
    assert core.loop.calls == [
        f"preflight on {branch}",
        "wake",
        "wake",
        "approve US-001",
        "approval: approve",
        "before bookkeeping",  # before the blocker entry goes to the progress log
        "answer: skip",
        "stop",
    ]
    assert isinstance(sink.events[0], RunStarted)
    assert sink.of(RunFinished)[-1].reason == "landed by the third strategy"
    assert len(sink.of(Committed)) == 1
    assert {e.worker for e in sink.events} == {WORKER}  # every event went through on_event
    assert git(root, "show", "--name-only", "--format=", "HEAD").split() == [
        "made.txt",
        "tasks/backend_prd.json",
        "tasks/backend_progress.txt",
    ]
    prd = json.loads((root / "tasks/backend_prd.json").read_text())
    assert prd["userStories"][0]["passes"] is True
    journal = (core.run_dir / "events.jsonl").read_text().splitlines()
    assert [json.loads(line)["worker"] for line in journal] == [WORKER] * len(journal)
    lock = RunLock(root / ".ralph")  # released: another run may take the workspace
    lock.acquire()
    lock.release()


async def test_the_two_loops_are_strategies_and_neither_subclasses_the_other(
    tmp_path: Path,
) -> None:
    root = make_repo(tmp_path / "ws", [story("US-001", "Make a file")], gates={"ok": "true"})
    path = write_script(root, {"stories": {}})
    config = load_config(root, {"script": str(path)})
    agent = ScriptedAgent.from_file(path, config)
    sink = RecordingSink()
    serial = Engine(root, config, agent, ScriptedSupervisor(), sink)
    parallel = ParallelEngine(root, config, agent, ScriptedSupervisor(), sink, workers=2)

    assert isinstance(serial.loop, SerialLoop) and isinstance(parallel.loop, ParallelLoop)
    assert not issubclass(ParallelLoop, SerialLoop) and not issubclass(SerialLoop, ParallelLoop)
    assert not isinstance(parallel, Engine) and not isinstance(serial, ParallelEngine)
    # the faces' hooks reach the strategy: only the parallel loop has an approval queue
    assert serial.open_approval("US-001") is False
    assert parallel.open_approval("US-001") is False  # nothing waiting yet
    # the parallel loop tags nothing outside a worker and wakes its scheduler on a stop
    parallel.emit(Notice(level="info", message="outside any worker"))
    assert sink.events[-1].worker == 0
    parallel.request_stop()
    assert parallel.stop_requested and parallel.loop.approvals.waiting == 0
    assert not sink.of(ApprovalsWaiting)
