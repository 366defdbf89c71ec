"""Work on the PRD's branch (issue 13): real engine, real git, the scripted agent."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ralph_tui.errors import UsageError
from ralph_tui.events import Notice, RunStarted
from tests.security.unsandboxed import OFF, OFF_TOML
from tests.support.engine import complete, create, make_engine
from tests.support.repo import git, make_repo, story
from tests.test_crash_recovery import blocker, kill_group, start, wait_for

BRANCH = "ralph/test"  # tests/support/repo.py's PRD names it


def one_story() -> dict[str, Any]:
    return {"stories": {"US-001": [create("src/feature.py", "x = 1\n"), complete()]}}


def current(root: Path) -> str:
    return git(root, "symbolic-ref", "--short", "HEAD").strip()


def notices(sink: Any) -> list[str]:
    return [n.message for n in sink.of(Notice)]


async def test_new_branch_is_created_from_head_and_main_is_untouched(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    main_before = git(root, "rev-parse", "main").strip()
    engine, _, sink, _ = make_engine(root, one_story(), **OFF)

    assert await engine.run() == 0

    assert current(root) == BRANCH
    assert git(root, "rev-parse", "main").strip() == main_before
    assert git(root, "rev-parse", f"{BRANCH}~1").strip() == main_before
    assert "Task #US-001:" in git(root, "log", "-1", "--format=%s", BRANCH)
    assert f"created branch {BRANCH} from {main_before[:10]} and switched to it" in notices(sink)
    assert sink.of(RunStarted)[0].branch == BRANCH
    assert f"git push -u origin {BRANCH}" in notices(sink)[-1]


async def test_existing_branch_is_checked_out(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    git(root, "branch", BRANCH)
    tip = git(root, "rev-parse", BRANCH).strip()
    (root / "later.txt").write_text("on main only\n")
    git(root, "add", "later.txt")
    git(root, "commit", "-q", "-m", "main moves on")
    engine, _, sink, _ = make_engine(root, one_story(), **OFF)

    assert await engine.run() == 0

    assert current(root) == BRANCH
    assert git(root, "rev-parse", "HEAD~1").strip() == tip
    assert not (root / "later.txt").exists()
    assert f"switched to the existing branch {BRANCH}" in notices(sink)


async def test_already_on_the_branch(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    git(root, "checkout", "-q", "-b", BRANCH)
    engine, _, sink, _ = make_engine(root, one_story(), **OFF)

    assert await engine.run() == 0

    assert current(root) == BRANCH
    assert f"on branch {BRANCH}" in notices(sink)


async def test_dirty_tree_is_refused_before_switching(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    (root / "README.md").write_text("edited\n")
    engine, _, _, _ = make_engine(root, one_story(), **OFF)

    with pytest.raises(UsageError, match="uncommitted changes"):
        await engine.run()

    assert current(root) == "main"


async def test_allow_dirty_changes_travel_with_the_checkout(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    (root / "README.md").write_text("edited\n")
    engine, _, _, _ = make_engine(root, one_story(), allow_dirty=True, **OFF)

    assert await engine.run() == 0

    assert current(root) == BRANCH
    assert (root / "README.md").read_text() == "edited\n"
    assert "README.md" not in git(root, "show", "--name-only", "--format=", "HEAD").split()


async def test_allow_dirty_changes_git_cannot_carry_are_refused(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    git(root, "checkout", "-q", "-b", BRANCH)
    (root / "README.md").write_text("branch version\n")
    git(root, "commit", "-q", "-am", "branch edit")
    git(root, "checkout", "-q", "main")
    (root / "README.md").write_text("my local edit\n")
    engine, _, _, _ = make_engine(root, one_story(), allow_dirty=True, **OFF)

    with pytest.raises(UsageError, match=f"cannot switch to branch {BRANCH}") as err:
        await engine.run()

    assert "\n" not in str(err.value)
    assert current(root) == "main"
    assert (root / "README.md").read_text() == "my local edit\n"


async def test_branch_setting_overrides_the_prd(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    engine, _, _, _ = make_engine(root, one_story(), branch="feature/other", **OFF)

    assert await engine.run() == 0

    assert current(root) == "feature/other"
    assert not git(root, "branch", "--list", BRANCH).strip()


async def test_branch_false_keeps_the_current_branch(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws", extra_config="branch = false")
    engine, _, sink, _ = make_engine(root, one_story(), **OFF)

    assert await engine.run() == 0

    assert current(root) == "main"
    assert "Task #US-001:" in git(root, "log", "-1", "--format=%s", "main")
    assert not any("branch" in n and "switched" in n for n in notices(sink))


async def test_invalid_branch_name_is_one_line(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    engine, _, _, _ = make_engine(root, one_story(), branch="bad..name", **OFF)

    with pytest.raises(UsageError, match="not a valid git branch name"):
        await engine.run()


def test_branch_flag_and_status_from_the_command_line(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps(one_story()))
    root = make_repo(tmp_path / "ws", extra_config=f'script = "{script}"\n{OFF_TOML}')

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ralph_tui", *args, "--workspace", str(root)],
            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        )  # fmt: skip

    assert f"branch: main (the run will work on {BRANCH})" in cli("status").stdout
    done = cli("run", "--headless", "--approve", "auto", "--branch", "feature/cli")
    assert done.returncode == 0, done.stderr + done.stdout
    assert "branch feature/cli" in done.stdout
    assert "git push -u origin feature/cli" in done.stdout
    assert current(root) == "feature/cli"
    assert "branch: feature/cli" in cli("status").stdout


def test_restart_after_a_kill_recovers_on_the_runs_branch(tmp_path: Path) -> None:
    mark = tmp_path / "reached"
    script = tmp_path / "script.json"
    steps = [
        create("src/feature.py", "VALUE = 1\n"),
        {"tool": "bash", "input": {"command": blocker(mark)}},
        complete(),
    ]
    script.write_text(json.dumps({"default": steps}))
    config = f'script = "{script}"\n{OFF_TOML}'
    root = make_repo(tmp_path / "ws", [story("US-001", "Add feature")], extra_config=config)
    log = tmp_path / "run.log"
    first = start(root, log)
    try:
        wait_for(mark, first)
    finally:
        kill_group(first.pid)
        first.wait()
        pid_file = Path(f"{mark}.pid")
        if pid_file.exists():
            kill_group(int(pid_file.read_text()))
    assert current(root) == BRANCH
    git(root, "checkout", "-q", "main")  # the human looks around; the leftover file travels

    second = start(root, log)
    assert second.wait(timeout=120) == 0, log.read_text()

    text = log.read_text()
    assert f"the interrupted run was on branch {BRANCH}, not main: recovering on {BRANCH}" in text
    assert current(root) == BRANCH
    assert git(root, "status", "--porcelain") == ""
    assert "Task #US-001:" in git(root, "log", "-1", "--format=%s", BRANCH)
    assert git(root, "log", "--format=%s", "main").strip() == "initial"
    patches = list((root / ".ralph/runs").rglob("interrupted-US-001.patch"))
    assert patches and "src/feature.py" in patches[0].read_text()
