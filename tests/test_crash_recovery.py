"""kill -9 of a headless run at several points of an iteration, then a restart.

The run is a real ``ralph-tui run --headless`` process. Each kill point is a command that, the
first time only, leaves a marker file and blocks; the test waits for the marker, kills the whole
process group with SIGKILL, and starts the run again. Afterwards the PRD must agree with git
history: a story is ``passes: true`` only with its commit, and the progress log has one entry.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.engine import complete, create
from tests.support.repo import git, make_repo, story


def blocker(mark: Path) -> str:
    """Shell that blocks the first time (marker absent) and passes straight through afterwards."""
    return f'if [ ! -f "{mark}" ]; then echo $$ > "{mark}.pid"; touch "{mark}"; sleep 60; fi; true'


def start(root: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ralph_tui",
                "run",
                "--headless",
                "--approve",
                "auto",
                "--workspace",
                str(root),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def wait_for(path: Path, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"run exited ({proc.returncode}) before reaching {path.name}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {path.name}")
        time.sleep(0.02)


def kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def assert_consistent(root: Path) -> None:
    assert git(root, "status", "--porcelain") == ""
    head_prd = json.loads(git(root, "show", "HEAD:tasks/backend_prd.json"))
    disk_prd = json.loads((root / "tasks/backend_prd.json").read_text())
    assert head_prd == disk_prd
    subjects = git(root, "log", "--format=%s").splitlines()
    for s in disk_prd["userStories"]:
        commits = [x for x in subjects if f"Task #{s['id']}:" in x]
        assert len(commits) == (1 if s["passes"] else 0), (s["id"], subjects)
    log = (root / "tasks/backend_progress.txt").read_text()
    for s in disk_prd["userStories"]:
        assert log.count(f"## Task #{s['id']}:") == (1 if s["passes"] else 0)
    assert not (root / ".ralph/state.json").exists()


@pytest.mark.parametrize("point", ["agent", "gate", "pre-commit", "post-commit"])
def test_kill_9_then_restart_keeps_prd_consistent_with_git(tmp_path: Path, point: str) -> None:
    mark = tmp_path / f"reached-{point}"
    script_path = tmp_path / "script.json"
    steps = [create("src/feature.py", "VALUE = 1\n")]
    if point == "agent":
        steps.append({"tool": "bash", "input": {"command": blocker(mark)}})
    steps.append(complete("feature added", ["kill-safe"]))
    script_path.write_text(json.dumps({"default": steps}))
    gates = {"ok": blocker(mark) if point == "gate" else "true"}
    root = make_repo(
        tmp_path / "ws",
        [story("US-001", "Add feature"), story("US-002", "Second", priority=2)],
        gates=gates,
        # the blockers leave markers outside the workspace, where a sandbox would not let them
        extra_config=f'script = "{script_path}"\nsandbox = {{ mode = "off" }}',
    )
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
    assert [s["passes"] for s in disk["userStories"]] == [True, True]
    if point != "post-commit":  # the interrupted change was kept as a patch, not lost
        patches = list((root / ".ralph/runs").rglob("interrupted-US-001.patch"))
        assert patches and "src/feature.py" in patches[0].read_text()
