"""A feature list's ``allowed_paths`` and ``forbidden`` are enforced, not only told (issue 27).

The agent is told a story's path rules with its task; an untrusted agent may ignore them, so
the engine checks the change beside the gates: a change outside the rules never reaches the
human and is never committed, in the main checkout and in a worker's worktree alike.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from ralph_tui.agents.scripted import ScriptedAgent
from ralph_tui.events import ApprovalNeeded, Committed, Event, GateStarted
from ralph_tui.path_rules import breaches, rule_covers
from ralph_tui.supervisor import ApprovalRequest
from tests.security.unsandboxed import OFF
from tests.support.engine import ScriptedSupervisor, complete, create, make_engine
from tests.support.repo import git, make_repo, story
from tests.test_parallel import TeeSink, make_parallel, run

RULES = {"allowed_paths": ["src/orders/", "tests/orders/*"], "forbidden": ["src/orders/keys.py"]}


@pytest.mark.parametrize(
    ("rule", "path", "covered"),
    [
        ("src/orders/", "src/orders/a.py", True),
        ("src/orders", "src/orders/deep/a.py", True),
        ("src/orders", "src/ordersX/a.py", False),
        ("./src/orders/a.py", "src/orders/a.py", True),
        ("tests/orders/*", "tests/orders/sub/t.py", True),
        ("src/**", "src/x.py", True),
        ("*.md", "docs/a.md", True),
        ("*.md", "a.py", False),
    ],
)
def test_a_rule_covers_files_folders_and_globs(rule: str, path: str, covered: bool) -> None:
    assert rule_covers(rule, path) is covered


def test_breaches_name_each_path_and_the_rule_it_breaks() -> None:
    found = breaches(
        ["README.md", "src/orders/a.py", "src/orders/keys.py"],
        RULES["allowed_paths"],
        RULES["forbidden"],
    )
    assert found == [
        "README.md (outside src/orders/, tests/orders/*)",
        "src/orders/keys.py (forbidden: src/orders/keys.py)",
    ]
    assert breaches(["anything.py"], [], ["secret/"]) == []


def _repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "ws", [story("US-001", "Orders", **RULES)])


def _files(root: Path) -> list[str]:
    return git(root, "show", "--name-only", "--format=", "HEAD").split()


# attempt 1 writes outside the rules; attempt 2 (after the refusal) keeps to them
SCRIPT = {
    "stories": {
        "US-001": [
            [create("src/payments/pay.py", "x = 1\n"), create("src/orders/o.py", "y = 1\n"),
             complete()],
            [create("src/orders/o.py", "y = 1\n"), complete()],
        ]
    }
}  # fmt: skip


async def test_a_change_outside_the_allowed_paths_is_refused_then_the_honest_one_lands(
    tmp_path: Path,
) -> None:
    root = _repo(tmp_path)
    engine, agent, _, sup = make_engine(root, SCRIPT, approve="auto", **OFF)
    assert await engine.run() == 0
    first = next(outcome for tool, outcome in agent.received if tool == "complete_task")
    assert "src/payments/pay.py (outside src/orders/, tests/orders/*)" in first.content
    assert "src/orders/o.py" not in first.content.split("Undo the changes to:")[-1]
    assert _files(root) == [
        "src/orders/o.py",
        "tasks/backend_prd.json",
        "tasks/backend_progress.txt",
    ]
    assert not (root / "src/payments/pay.py").exists()
    assert len(sup.approval_requests) == 1  # only the change that keeps to the rules


async def test_a_forbidden_file_is_refused_before_the_human_sees_it(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    script = {"default": [create("src/orders/keys.py", "KEY = 1\n"), complete()]}
    engine, agent, _, sup = make_engine(root, script, max_iterations=1, **OFF)
    await engine.run()
    outcome = next(outcome for tool, outcome in agent.received if tool == "complete_task")
    assert "src/orders/keys.py (forbidden: src/orders/keys.py)" in outcome.content
    assert sup.approval_requests == []  # the human is never asked to approve it
    assert git(root, "log", "--format=%s").splitlines() == ["initial"]


async def test_a_worker_is_held_to_its_story_rules_and_a_retry_keeps_its_work(
    tmp_path: Path,
) -> None:
    # The order is forced with events: US-002 is gated on top of US-001's first attempt while
    # that attempt's gates still run; the attempt breaks the rules and leaves the merge train;
    # US-002's approval is held until US-001's retry (the same o.py, no payments) asks too. The
    # retry must be gated on main, not on US-002's commit that holds the refused attempt (there
    # the retry's o.py is no change at all, and the story would land without its code).
    go = tmp_path / "go"
    barrier = f"while [ ! -e {go} ]; do sleep 0.01; done; true"
    root = make_repo(
        tmp_path / "ws",
        [story("US-001", "Orders", **RULES), story("US-002", "Free", 2)],
        gates={"ok": barrier},
    )
    script = {
        "stories": {
            "US-001": SCRIPT["stories"]["US-001"],
            "US-002": [{"wait": "second"}, create("anywhere.txt", "free\n"), complete()],
        }
    }
    agents: list[ScriptedAgent] = []
    retry_asked = asyncio.Event()

    def order(event: Event) -> None:
        if isinstance(event, GateStarted) and event.worker == 1:
            agents[0].release("second")
        if isinstance(event, GateStarted) and event.worker == 2:
            go.touch()
        if isinstance(event, ApprovalNeeded) and event.story_id == "US-001":
            retry_asked.set()

    async def hold_second(request: ApprovalRequest) -> None:
        if request.story_id == "US-002":
            await retry_asked.wait()

    sink = TeeSink(order)
    sup = ScriptedSupervisor(on_approve=hold_second)
    engine, agent, _, _ = make_parallel(root, script, sup, sink=sink, workers=2, **OFF)
    agents.append(agent)
    assert await run(engine, sink) == 0
    refused = [o for tool, o in agent.received if tool == "complete_task" and "Undo" in o.content]
    assert len(refused) == 1 and "src/payments/pay.py" in refused[0].content
    one = next(c for c in sink.of(Committed) if c.story_id == "US-001")
    assert "src/orders/o.py" in one.files
    landed = git(root, "log", "--name-only", "--format=").split()
    assert "anywhere.txt" in landed and "src/payments/pay.py" not in landed
    prd = json.loads((root / "tasks/backend_prd.json").read_text())
    assert all(s["passes"] for s in prd["userStories"])
