"""The loop end to end in-process: real git repos, real gates, the scripted agent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ralph_tui.config import load_config
from ralph_tui.engine import Engine
from ralph_tui.errors import UsageError
from ralph_tui.events import (
    Committed,
    Escalated,
    GateFinished,
    IterationFinished,
    IterationStarted,
    RunFinished,
    RunStateChanged,
    UsageReported,
)
from ralph_tui.iteration import AgentOutcome, IterationHandle, IterationRequest, Usage
from ralph_tui.supervisor import ApprovalDecision, ApprovalRequest, EscalationAnswer
from tests.support.engine import (
    RecordingSink,
    ScriptedSupervisor,
    complete,
    create,
    make_engine,
)
from tests.support.repo import git, make_repo, story

# a gate that passes only when ok.txt says "good": scripts first write "bad", then fix it
CONTENT_GATE = {"check": "grep -q good ok.txt"}


def prd(root: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((root / "tasks/backend_prd.json").read_text())
    return data


def passes(root: Path) -> dict[str, bool]:
    stories = prd(root)["userStories"]
    assert isinstance(stories, list)
    return {str(s["id"]): s["passes"] for s in stories}


def status(root: Path) -> str:
    return git(root, "status", "--porcelain")


async def test_story_is_committed_once_with_its_bookkeeping(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws", [story("US-001", "Add greeting")], gates={"ok": "true"})
    script = {
        "stories": {
            "US-001": [
                {"text": "Adding it."},
                create("src/hello.py", "x = 1\n"),
                complete("added", ["hello lives in src/"]),
            ]
        }
    }
    engine, _, sink, _ = make_engine(root, script)

    assert await engine.run() == 0

    assert git(root, "log", "-1", "--format=%B") == (
        "[backend] Task #US-001: Add greeting\n\n"
        "Implemented by autonomous agent.\nAll quality checks passing.\n\n"
    )
    files = git(root, "show", "--name-only", "--format=", "HEAD").split()
    assert sorted(files) == ["src/hello.py", "tasks/backend_prd.json", "tasks/backend_progress.txt"]
    assert git(root, "rev-list", "--count", "HEAD").strip() == "2"
    assert passes(root) == {"US-001": True}
    log = (root / "tasks/backend_progress.txt").read_text()
    assert "## Task #US-001: Add greeting\n" in log
    assert "Learnings:\n- hello lives in src/\n" in log
    assert "Files modified:\n- src/hello.py\n" in log
    assert status(root) == ""
    assert [e.outcome for e in sink.of(IterationFinished)] == ["committed"]
    journal = (engine.run_dir / "events.jsonl").read_text().splitlines()
    assert json.loads(journal[-1])["kind"] == "run_finished"
    assert "Adding it." in (engine.run_dir / "transcript.md").read_text()


async def test_pick_order_is_priority_then_file_order(tmp_path: Path) -> None:
    stories = [
        story(1, "Third", priority=2),
        story(2, "First", priority=1),
        story(3, "Done", priority=1, passes=True),
        story(4, "Second", priority=1),
    ]
    root = make_repo(tmp_path / "ws", stories)
    engine, _, sink, _ = make_engine(root, {"default": [complete()]})

    assert await engine.run() == 0
    assert [e.story_id for e in sink.of(IterationStarted)] == ["2", "4", "1"]


async def test_gate_failure_reaches_the_agent_which_fixes_it(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws", gates=CONTENT_GATE)
    script = {
        "stories": {
            "US-001": [
                create("ok.txt", "bad\n"),
                complete(),
                create("ok.txt", "good\n"),
                complete(),
            ]
        }
    }
    engine, agent, sink, _ = make_engine(root, script)

    assert await engine.run() == 0
    outcomes = [o for name, o in agent.received if name == "complete_task"]
    assert outcomes[0].is_error and "fix attempt 1 of 3" in outcomes[0].content
    assert "check" in outcomes[0].content and not outcomes[1].is_error
    assert [g.state for g in sink.of(GateFinished)] == ["failed", "passed"]
    assert (root / "ok.txt").read_text() == "good\n"
    assert "ok.txt" in git(root, "show", "--name-only", "HEAD")


async def test_reject_sends_feedback_to_the_agent(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    sup = ScriptedSupervisor([ApprovalDecision.reject("please add a docstring")])
    script = {
        "stories": {
            "US-001": [
                create("a.py", "x = 1\n"),
                complete(),
                create("a.py", '"""Doc."""\nx = 1\n'),
                complete(),
            ]
        }
    }
    engine, agent, _, _ = make_engine(root, script, sup)

    assert await engine.run() == 0
    first = next(o for name, o in agent.received if name == "complete_task")
    assert first.is_error and "please add a docstring" in first.content
    assert len(sup.approval_requests) == 2
    assert git(root, "show", "HEAD:a.py").startswith('"""Doc."""')


async def test_discard_restores_the_tree_and_saves_a_patch(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    (root / "tracked.txt").write_text("original\n")
    git(root, "add", "tracked.txt")
    git(root, "commit", "-qm", "tracked")
    before = (root / "tasks/backend_prd.json").read_bytes()
    sup = ScriptedSupervisor([ApprovalDecision.discard()])
    script = {
        "default": [create("new.py", "y = 2\n"), create("tracked.txt", "changed\n"), complete()]
    }
    engine, _, sink, _ = make_engine(root, script, sup, max_iterations=1)

    assert await engine.run() == 3  # stopped at max_iterations with the story open
    assert status(root) == ""
    assert not (root / "new.py").exists()
    assert (root / "tracked.txt").read_text() == "original\n"
    assert (root / "tasks/backend_prd.json").read_bytes() == before
    finished = sink.of(IterationFinished)[0]
    assert finished.outcome == "discarded" and finished.patch_path
    patch = Path(finished.patch_path).read_text()
    assert "new.py" in patch and "+changed" in patch
    git(root, "apply", finished.patch_path)  # the saved change is complete and applies cleanly
    assert (root / "new.py").read_text() == "y = 2\n"


async def test_fix_attempts_used_up_ends_the_iteration_without_commit(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws", gates={"never": "false"})
    script = {"default": [create("a.py", "x\n"), complete(), complete(), complete()]}
    engine, agent, sink, _ = make_engine(root, script, max_fix_attempts=1, max_iterations=1)

    assert await engine.run() == 3
    outcomes = [o for name, o in agent.received if name == "complete_task"]
    assert len(outcomes) == 2 and outcomes[1].ends_iteration
    assert sink.of(IterationFinished)[0].outcome == "failed"
    assert status(root) == "" and passes(root) == {"US-001": False}
    assert git(root, "rev-list", "--count", "HEAD").strip() == "1"


async def test_three_failed_iterations_escalate_and_skip(tmp_path: Path) -> None:
    root = make_repo(
        tmp_path / "ws",
        [story("A", "Hard"), story("B", "Easy", priority=2)],
        gates={"check": "test ! -f broken"},
    )
    script = {"stories": {"A": [create("broken", "x"), complete()], "B": [complete()]}}
    sup = ScriptedSupervisor(answers=[EscalationAnswer("skip")])
    engine, _, sink, _ = make_engine(root, script, sup, max_fix_attempts=0 + 1, max_iterations=10)

    # each A iteration: 2 gate failures (1 fix attempt allowed) -> failed; three in a row escalate
    code = await engine.run()
    assert [e.outcome for e in sink.of(IterationFinished)] == ["failed"] * 3 + ["committed"]
    assert sup.escalations and sup.escalations[0].automatic
    assert "A" in engine.skipped
    assert code == 3  # A stays open, skipped this run
    assert passes(root) == {"A": False, "B": True}
    assert "Skipped by supervisor" in (root / "tasks/backend_progress.txt").read_text()


async def test_escalation_answer_reaches_the_agent_and_the_log(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    script = {
        "default": [
            {"tool": "escalate", "input": {"question": "Which port?", "tried": "read the docs"}},
            complete(),
        ]
    }
    sup = ScriptedSupervisor(answers=[EscalationAnswer("answer", "Use 8080")])
    engine, agent, sink, _ = make_engine(root, script, sup)

    assert await engine.run() == 0
    name, outcome = agent.received[0]
    assert name == "escalate" and "Use 8080" in outcome.content
    log = (root / "tasks/backend_progress.txt").read_text()
    assert "## Blocker: Task #US-001: First story\n" in log
    assert "Tried:\nread the docs\n\nQuestion:\nWhich port?\n" in log
    assert "):\nUse 8080\n" in log
    assert sink.of(Escalated)[0].question == "Which port?"


async def test_escalation_with_nobody_to_answer_stops_with_exit_4(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    script = {"default": [{"tool": "escalate", "input": {"question": "?", "tried": "-"}}]}
    engine, _, _, _ = make_engine(
        root, script, ScriptedSupervisor(answers=[EscalationAnswer("stop")])
    )
    assert await engine.run() == 4
    # the blocker is in the progress log for the next run and the human, committed (left in
    # the tree, each run added another copy)
    assert status(root) == ""
    assert "## Blocker: Task #US-001" in (root / "tasks/backend_progress.txt").read_text()
    assert git(root, "log", "-1", "--format=%s").startswith("[backend] Progress log: 1 escalation")


async def test_external_prd_edit_during_iteration_is_kept(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws", [story("US-001", "One"), story("US-002", "Two", priority=5)])
    prd_path = root / "tasks/backend_prd.json"

    async def human_edits_prd(_: ApprovalRequest) -> None:
        data = json.loads(prd_path.read_text())
        data["userStories"][1]["priority"] = 1
        data["userStories"][1]["owner"] = "alice"
        prd_path.write_text(json.dumps(data, indent=2) + "\n")

    sup = ScriptedSupervisor(on_approve=human_edits_prd)
    engine, _, _, _ = make_engine(root, {"default": [complete()]}, sup, max_iterations=1)

    assert await engine.run() == 3
    data = json.loads(prd_path.read_text())
    assert data["userStories"][0]["passes"] is True
    assert data["userStories"][1]["priority"] == 1 and data["userStories"][1]["owner"] == "alice"
    committed = json.loads(git(root, "show", "HEAD:tasks/backend_prd.json"))
    assert committed == data


async def test_failing_commit_hook_rolls_back_the_marking(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    hook = root / ".git/hooks/pre-commit"
    hook.write_text("#!/bin/sh\necho 'hook says no' >&2\nexit 1\n")
    hook.chmod(0o755)
    log_before = (root / "tasks/backend_progress.txt").read_text()
    engine, agent, _, _ = make_engine(
        root, {"default": [create("a.py", "x\n"), complete()]}, max_iterations=1
    )

    assert await engine.run() == 3
    assert "hook says no" in agent.received[-1][1].content
    assert passes(root) == {"US-001": False}
    assert (root / "tasks/backend_progress.txt").read_text() == log_before
    assert git(root, "rev-list", "--count", "HEAD").strip() == "1"


async def test_dirty_tree_is_refused_unless_allowed(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    (root / "stray.txt").write_text("mine\n")
    engine, _, sink, _ = make_engine(root, {"default": [complete()]})
    with pytest.raises(UsageError, match=r"uncommitted changes \(stray.txt\)"):
        await engine.run()
    assert sink.events == []

    engine, _, _, _ = make_engine(root, {"default": [complete()]}, allow_dirty=True)
    assert await engine.run() == 0


async def test_not_a_repository_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    with pytest.raises(UsageError, match="not a git repository"):
        make_engine(tmp_path / "plain", {})


async def test_stop_request_during_approval_ends_with_130_and_clean_tree(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    holder: dict[str, object] = {}

    async def stop(_: ApprovalRequest) -> None:
        engine = holder["engine"]
        engine.request_stop()  # type: ignore[attr-defined]

    sup = ScriptedSupervisor([ApprovalDecision.discard()], on_approve=stop)
    engine, _, sink, _ = make_engine(root, {"default": [create("a.py", "1\n"), complete()]}, sup)
    holder["engine"] = engine

    assert await engine.run() == 130
    assert status(root) == "" and sink.of(RunFinished)[0].exit_code == 130
    assert not sink.of(Committed)


async def test_exhausted_stories_exit_0_and_state_file_is_gone(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws", [story("US-001", "Done", passes=True)])
    engine, _, sink, _ = make_engine(root, {})
    assert await engine.run() == 0
    assert not sink.of(IterationStarted)
    assert not (root / ".ralph/state.json").exists()
    assert ".ralph/" in (root / ".git/info/exclude").read_text()
    assert list((root / ".ralph/runs").iterdir())


async def test_pause_holds_the_loop_at_a_safe_point_until_resumed(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    engine, _, sink, _ = make_engine(root, {"default": [complete()]})
    states: list[str] = []

    def on_event(event: object) -> None:
        sink(event)  # type: ignore[arg-type]
        if isinstance(event, RunStateChanged):
            states.append(event.state)
            if event.state == "paused":
                assert not sink.of(IterationStarted)  # nothing ran while paused
                engine.resume()

    engine._sink = on_event
    engine.pause()
    assert await engine.run() == 0
    assert "paused" in states and states.index("paused") < states.index("finished")
    assert [e.outcome for e in sink.of(IterationFinished)] == ["committed"]


class UsageAgent:
    """Reports usage every turn and never finishes: only the budget can end it."""

    name = "usage"

    async def run_iteration(
        self, request: IterationRequest, tools: IterationHandle
    ) -> AgentOutcome:
        while True:
            await tools.checkpoint()
            tools.report_usage(Usage(input_tokens=100_000, output_tokens=10_000))

    async def aclose(self) -> None:
        return None


async def test_cost_budget_stops_the_run_with_exit_3(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws", extra_config="max_cost_usd = 1.0")
    config = load_config(root)
    sink = RecordingSink()
    engine = Engine(root, config, UsageAgent(), ScriptedSupervisor(), sink)

    assert await engine.run() == 3
    # sonnet list price: 100k in ($0.30) + 10k out ($0.15) = $0.45 a turn; the third crosses $1
    usage = sink.of(UsageReported)
    assert len(usage) == 3 and abs(sum(u.cost_usd for u in usage) - 1.35) < 1e-9
    assert "budget" in sink.of(RunFinished)[0].reason
    assert engine.story_cost["US-001"] == engine.run_cost
