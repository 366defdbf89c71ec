"""In real terminals (tmux): a headless run serving on 127.0.0.1 in one, ``attach`` in another;
``a`` in the attached TUI approves, the commit lands, and the headless run (whose own prompt
was waiting on its terminal too) finishes and exits. Skipped only where tmux is missing."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ralph_tui.server.http import SERVE_FILE
from tests.remote.support import SCRIPT
from tests.support.repo import git, make_repo
from tests.support.tools import requires_tmux
from tests.test_tmux import RALPH, Tmux

pytestmark = requires_tmux


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    server = Tmux(f"ralph-remote-{os.getpid()}-{tmp_path.name}")
    yield server
    subprocess.run(["tmux", "-L", server.socket, "kill-server"], capture_output=True, check=False)


def test_headless_listen_then_attach_and_approve(tmp_path: Path, tmux: Tmux) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps(SCRIPT), encoding="utf-8")
    root = make_repo(tmp_path / "ws", extra_config=f"script = {json.dumps(str(script))}")
    env = [
        f"-e{name}={os.environ[name]}"
        for name in (
            "GIT_AUTHOR_NAME",
            "GIT_AUTHOR_EMAIL",
            "GIT_COMMITTER_NAME",
            "GIT_COMMITTER_EMAIL",
        )
    ]
    size = ["-x", "120", "-y", "40", *env, "-e", "TERM=xterm-256color"]
    run = (
        f"{RALPH} run --headless --approve ask --listen 127.0.0.1:0 --workspace {root}; "
        "echo RUN EXITED $?; sleep 30"
    )
    tmux("new-session", "-d", "-s", "run", *size, run)

    def run_screen() -> str:
        return tmux("capture-pane", "-p", "-t", "run")

    tmux.wait(lambda: "approval needed for Task #US-001" in run_screen(), "the headless prompt")
    assert (root / SERVE_FILE).exists()
    attach = f"cd {root} && {RALPH} attach; echo ATTACH EXITED $?; sleep 30"
    tmux("new-session", "-d", "-s", "ralph", *size, attach)
    tmux.wait(lambda: "Approval needed" in tmux.screen(), "the approval bar in the attached TUI")
    tmux("send-keys", "-t", "ralph", "a")
    tmux.wait(lambda: "Task #US-001" in git(root, "log", "-1", "--format=%s"), "the commit", 20.0)
    tmux.wait(lambda: "RUN EXITED 0" in run_screen(), "the headless run to exit", 20.0)
    assert "supervisor: approve" in run_screen()
    tmux.wait(lambda: "every story passes" in tmux.screen(), "the end in the attached TUI", 20.0)
    tmux("send-keys", "-t", "ralph", "q")
    tmux.wait(lambda: "ATTACH EXITED 0" in tmux.screen(), "the attached TUI to exit", 20.0)
    assert not (root / SERVE_FILE).exists()
