"""Parallel workers end to end: real git worktrees, the real engine, the scripted agent.

Ordering between workers is never left to timing: where a test needs two changes in flight at
once, the supervisor holds the first approval until the second worker has asked too.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from ralph_tui.agents.scripted import ScriptedAgent
from ralph_tui.config import load_config
from ralph_tui.events import (
    ApprovalNeeded,
    Committed,
    Event,
    GateFinished,
    IterationFinished,
    IterationStarted,
    Notice,
    RunFinished,
)
from ralph_tui.parallel import ParallelEngine, dependencies, ready_stories
from ralph_tui.prd_store import parse_prd
from ralph_tui.supervisor import ApprovalDecision, ApprovalRequest
from tests.support.engine import RecordingSink, ScriptedSupervisor, complete, create, write_script
from tests.support.repo import git, make_repo, story


def make_parallel(
    root: Path,
    script: dict[str, Any],
    supervisor: ScriptedSupervisor | None = None,
    *,
    workers: int = 2,
    sink: RecordingSink | None = None,
    **overrides: Any,
) -> tuple[ParallelEngine, ScriptedAgent, RecordingSink, ScriptedSupervisor]:
    path = write_script(root, script)
    config = load_config(root, {"script": str(path), "workers": workers, **overrides})
    agent = ScriptedAgent.from_file(path, config)
    sink = sink or RecordingSink()
    sup = supervisor or ScriptedSupervisor()
    return ParallelEngine(root, config, agent, sup, sink), agent, sink, sup


async def run(engine: ParallelEngine, sink: RecordingSink) -> int:
    """The run's exit code; on a surprise the assertion shows what happened."""
    code = await engine.run()
    story = [e for e in sink.events if isinstance(e, Notice | IterationFinished | RunFinished)]
    return code if code in (0, 3) else pytest.fail(f"exit {code}: {story}")


def passes(root: Path) -> dict[str, bool]:
    data = json.loads((root / "tasks/backend_prd.json").read_text())
    return {str(s["id"]): s["passes"] for s in data["userStories"]}


def assert_clean(root: Path) -> None:
    """Nothing of the workers is left: no worktree, no ralph/ branch, a clean main tree."""
    assert git(root, "status", "--porcelain") == ""
    assert git(root, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert git(root, "branch", "--list", "ralph/US-*").strip() == ""
    folder = root / ".ralph/worktrees"
    assert not folder.exists() or list(folder.iterdir()) == []


def story_commits(root: Path) -> list[str]:
    return [s for s in git(root, "log", "--format=%s").splitlines() if "Task #" in s]


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


class TeeSink(RecordingSink):
    def __init__(self, also: Any) -> None:
        super().__init__()
        self.also = also

    def __call__(self, event: Event) -> None:
        super().__call__(event)
        self.also(event)


def test_dependencies_and_ready_stories() -> None:
    prd = parse_prd(
        json.dumps(
            {
                "userStories": [
                    story("A", "a", 1),
                    story("B", "b", 1, dependsOn=["A"]),
                    story("C", "c", 2, deps="A"),
                    story("D", "d", 3, dependencies=[]),
                    story("E", "e", 1, passes=True),
                    story("F", "f", 4, dependsOn=["E"]),
                ]
            }
        ),
        Path("prd.json"),
    )
    b = prd.story("B")
    assert b is not None and dependencies(b) == ["A"]
    assert [s.key for s in ready_stories(prd, skip=())] == ["A", "D", "F"]
    assert [s.key for s in ready_stories(prd, skip={"A"})] == ["D", "F"]


async def test_two_independent_stories_each_one_commit_and_nothing_left(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws", [story("US-001", "One"), story("US-002", "Two")])
    script = {
        "stories": {
            "US-001": [create("one.txt", "1\n"), complete()],
            "US-002": [create("two.txt", "2\n"), complete()],
        }
    }
    sup = HoldFirstApproval()
    sink = TeeSink(sup.sink)
    engine, agent, _, _ = make_parallel(root, script, sup, sink=sink)
    assert await run(engine, sink) == 0
    assert passes(root) == {"US-001": True, "US-002": True}
    assert len(story_commits(root)) == 2
    assert (root / "one.txt").read_text() == "1\n" and (root / "two.txt").read_text() == "2\n"
    progress = (root / "tasks/backend_progress.txt").read_text()
    assert progress.count("## Task #US-001:") == 1 and progress.count("## Task #US-002:") == 1
    # each worker worked in its own worktree, its events tagged with its number
    workspaces = {r.story.key: r.workspace for r in agent.requests}
    assert workspaces["US-001"] != workspaces["US-002"]
    assert all(w.parent == (root / ".ralph/worktrees").resolve() for w in workspaces.values())
    started = {e.story_id: e.worker for e in sink.of(IterationStarted)}
    assert sorted(started.values()) == [1, 2]
    for commit in sink.of(Committed):
        assert commit.worker == started[commit.story_id]
    assert_clean(root)


async def test_same_lines_second_to_merge_gets_the_conflict_and_fixes_it(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws", [story("US-001", "One"), story("US-002", "Two")])
    (root / "shared.txt").write_text("base\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "shared file")

    def steps(mine: str) -> list[dict[str, Any]]:
        return [
            create("shared.txt", f"{mine}\n"),
            complete(),
            # only the second to merge gets here: it resolves the conflict keeping both
            create("shared.txt", "from US-001\nfrom US-002\n"),
            complete(),
        ]

    script = {"stories": {"US-001": steps("from US-001"), "US-002": steps("from US-002")}}
    sup = HoldFirstApproval()
    sink = TeeSink(sup.sink)
    engine, agent, _, _ = make_parallel(root, script, sup, sink=sink)
    assert await run(engine, sink) == 0
    assert passes(root) == {"US-001": True, "US-002": True}
    assert (root / "shared.txt").read_text() == "from US-001\nfrom US-002\n"
    commits = sink.of(Committed)
    assert len(commits) == 2
    second = commits[1].story_id
    conflict_results = [
        o.content
        for name, o in agent.received
        if name == "complete_task" and "conflict" in o.content
    ]
    assert len(conflict_results) == 1
    assert "shared.txt" in conflict_results[0] and "fix attempt 1 of 3" in conflict_results[0]
    # the one that merged second is the one that was told
    notices = [n.message for n in sink.of(Notice) if "conflicts with main" in n.message]
    assert notices == [f"Task #{second} conflicts with main: shared.txt"]
    assert len(story_commits(root)) == 2
    assert_clean(root)


async def test_dependent_story_waits_for_its_dependency(tmp_path: Path) -> None:
    root = make_repo(
        tmp_path / "ws",
        [story("US-001", "Base"), story("US-002", "Uses base", 1, dependsOn=["US-001"])],
        gates={"dep": "test ! -f uses.txt || test -f base.txt"},
    )
    script = {
        "stories": {
            "US-001": [create("base.txt", "b\n"), complete()],
            "US-002": [create("uses.txt", "u\n"), complete()],
        }
    }
    engine, _, sink, _ = make_parallel(root, script)
    assert await run(engine, sink) == 0
    order = [
        (type(e).__name__, getattr(e, "story_id", ""))
        for e in sink.events
        if isinstance(e, IterationStarted | Committed)
    ]
    assert order == [
        ("IterationStarted", "US-001"),
        ("Committed", "US-001"),
        ("IterationStarted", "US-002"),
        ("Committed", "US-002"),
    ]
    assert_clean(root)


async def test_main_moving_under_a_worker_reruns_the_gates_before_the_commit(
    tmp_path: Path,
) -> None:
    # the gate fails on a tree holding both files: each worker alone passes, the rebased
    # second change does not, and goes back to its agent, which then removes its own file
    gate = {"alone": "test ! -f one.txt || test ! -f two.txt"}
    root = make_repo(tmp_path / "ws", [story("US-001", "One"), story("US-002", "Two")], gates=gate)

    def steps(mine: str) -> list[dict[str, Any]]:
        return [
            create(f"{mine}.txt", "x\n"),
            complete(),
            {"tool": "bash", "input": {"command": f"rm {mine}.txt && echo ok > {mine}.md"}},
            complete(),
        ]

    script = {"stories": {"US-001": steps("one"), "US-002": steps("two")}}
    sup = HoldFirstApproval()
    sink = TeeSink(sup.sink)
    engine, agent, _, _ = make_parallel(root, script, sup, sink=sink)
    assert await run(engine, sink) == 0
    commits = sink.of(Committed)
    first, second = commits[0].story_id, commits[1].story_id
    first_worker = commits[0].worker
    second_worker = commits[1].worker
    gates_of = {
        w: [g.state for g in sink.of(GateFinished) if g.worker == w]
        for w in (first_worker, second_worker)
    }
    # first: gates once (main had not moved). second: passed alone, failed after the rebase,
    # passed after the fix, then approved again with main unmoved: no third gate run
    assert gates_of[first_worker] == ["passed"]
    assert gates_of[second_worker] == ["passed", "failed", "passed"]
    rerun = [n.message for n in sink.of(Notice) if "running them again" in n.message]
    assert len(rerun) == 1
    assert rerun[0].startswith(f"main moved since Task #{second}'s gates passed; running them")
    red = [o.content for n, o in agent.received if n == "complete_task" and "rebased" in o.content]
    assert len(red) == 1 and "alone" in red[0]
    assert {p.name for p in root.iterdir()} >= {f"{'one' if first == 'US-001' else 'two'}.txt"}
    assert passes(root) == {"US-001": True, "US-002": True}
    assert_clean(root)


class PerStorySupervisor(ScriptedSupervisor):
    def __init__(self, plan: dict[str, list[ApprovalDecision]]) -> None:
        super().__init__()
        self.plan = plan

    async def approve(self, request: ApprovalRequest) -> ApprovalDecision:
        self.approval_requests.append(request)
        queue = self.plan.get(request.story_id, [])
        return queue.pop(0) if queue else ApprovalDecision.approve()


async def test_reject_and_discard_in_workers(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws", [story("US-001", "One"), story("US-002", "Two")])
    script = {
        "stories": {
            "US-001": [
                create("one.txt", "draft\n"),
                complete(),
                create("one.txt", "v2\n"),
                complete(),
            ],
            "US-002": [create("two.txt", "2\n"), complete()],
        }
    }
    sup = PerStorySupervisor(
        {
            "US-001": [ApprovalDecision.reject("say v2")],
            "US-002": [ApprovalDecision.discard()],
        }
    )
    engine, agent, sink, _ = make_parallel(root, script, sup, max_iterations=2)
    code = await run(engine, sink)
    assert code == 3  # US-002 is still open and max_iterations is used up
    assert passes(root) == {"US-001": True, "US-002": False}
    assert (root / "one.txt").read_text() == "v2\n"
    assert not (root / "two.txt").exists()
    feedback = [
        o.content for n, o in agent.received if n == "complete_task" and "say v2" in o.content
    ]
    assert len(feedback) == 1
    finished = {e.story_id: e for e in sink.of(IterationFinished)}
    assert finished["US-002"].outcome == "discarded"
    assert finished["US-002"].patch_path is not None
    assert "two.txt" in Path(finished["US-002"].patch_path).read_text()
    assert story_commits(root) == ["[backend] Task #US-001: One"]
    assert_clean(root)
