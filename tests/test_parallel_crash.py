"""kill -9 of a headless ``--workers 2`` run (in a worker, during the merge), then a restart.

The run is a real ``python -m ralph_tui run --headless`` process. Afterwards: no worktree, no
``ralph/`` branch and no lock is left, the interrupted change is kept as a patch, a story passes
only with its commit on main and the progress log has one entry per committed story.
"""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.engine import complete, create
from tests.support.repo import git, make_repo, story
from tests.test_crash_recovery import assert_consistent, blocker, kill_group, wait_for


def start(root: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "ralph_tui", "run", "--headless", "--approve", "auto",
             "--workers", "2", "--workspace", str(root)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip


@pytest.mark.parametrize("point", ["worker", "pre-commit", "post-commit"])
def test_kill_9_in_a_parallel_run_then_restart(tmp_path: Path, point: str) -> None:
    mark = tmp_path / f"reached-{point}"
    stories = {}
    for key, name in (("US-001", "one"), ("US-002", "two")):
        steps = [create(f"src/{name}.py", "VALUE = 1\n")]
        if point == "worker":
            steps.append({"tool": "bash", "input": {"command": blocker(mark)}})
        steps.append(complete(f"{name} added", ["kill-safe"]))
        stories[key] = steps
    script_path = tmp_path / "script.json"
    script_path.write_text(json.dumps({"stories": stories}))
    root = make_repo(
        tmp_path / "ws",
        [story("US-001", "One"), story("US-002", "Two"), story("US-003", "Three", priority=2)],
        # the blockers leave markers outside the workspace, where a sandbox would not let them
        extra_config=f'script = "{script_path}"\nsandbox = {{ mode = "off" }}',
    )
    script = json.loads(script_path.read_text())
    script["stories"]["US-003"] = [create("src/three.py", "VALUE = 3\n"), complete()]
    script_path.write_text(json.dumps(script))
    if point in ("pre-commit", "post-commit"):
        hook = root / ".git" / "hooks" / point
        hook.write_text(f"#!/bin/sh\n{blocker(mark)}\n")
        hook.chmod(0o755)

    log = tmp_path / "run.log"
    first = start(root, log)
    try:
        wait_for(mark, first)
    finally:
        kill_group(first.pid)
        first.wait()
        pid_file = Path(f"{mark}.pid")
        if pid_file.exists():  # gates and the bash tool run in their own process groups
            kill_group(int(pid_file.read_text()))

    second = start(root, log)
    assert second.wait(timeout=120) == 0, log.read_text()
    assert_consistent(root)
    disk = json.loads((root / "tasks/backend_prd.json").read_text())
    assert [s["passes"] for s in disk["userStories"]] == [True, True, True]
    assert git(root, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert git(root, "branch", "--list", "ralph/US-*").strip() == ""
    assert list((root / ".ralph/worktrees").iterdir()) == []
    with (root / ".ralph/run.lock").open("a") as lock:  # released: a new run can take it
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    text = log.read_text()
    if point == "worker":  # the worker's change was saved before its worktree went
        patches = list((root / ".ralph/runs").rglob("interrupted-worker-US-00*.patch"))
        assert any("VALUE = 1" in p.read_text() for p in patches)
        assert not any("deleted file" in p.read_text() for p in patches)
        assert "removed the worktree of an interrupted worker" in text
    if point == "pre-commit":  # the half-done merge was rolled back, then done again
        assert "stopped during committing" in text
