"""``ralph-tui run`` in a real terminal (tmux): the approval bar shows, ``a`` commits.

What only a real terminal shows: the app starts from the console script, draws in a pty, and
takes a key press from the terminal. Skipped only where tmux is missing (CI installs it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.repo import git, make_repo
from tests.support.tools import requires_tmux

pytestmark = requires_tmux

RALPH = Path(sys.executable).with_name("ralph-tui")


class Tmux:
    def __init__(self, socket: str) -> None:
        self.socket = socket

    def __call__(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True
        )
        return done.stdout

    def start_run(self, root: Path) -> None:
        """The installed ``ralph-tui run`` in a 120x40 session "ralph"; the shell says EXITED
        with the exit code when it ends."""
        names = ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL")
        env = [f"-e{name}={os.environ[name]}" for name in names]
        command = f"{RALPH} run --workspace {root}; echo EXITED $?; sleep 30"
        self("new-session", "-d", "-s", "ralph", "-x", "120", "-y", "40", *env,
             "-e", "TERM=xterm-256color", command)  # fmt: skip

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "ralph")

    def wait(self, condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; screen:\n{self.screen()}")
            time.sleep(0.1)  # polling a separate process: there is no event to await


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    server = Tmux(f"ralph-test-{os.getpid()}-{tmp_path.name}")
    yield server
    subprocess.run(["tmux", "-L", server.socket, "kill-server"], capture_output=True, check=False)


def test_run_approve_in_a_real_terminal(tmp_path: Path, tmux: Tmux) -> None:
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps(
            {
                "stream_delay_s": 0.002,
                "default": [
                    {"text": "Creating the module."},
                    {
                        "tool": "str_replace_based_edit_tool",
                        "input": {"command": "create", "path": "src/x.py", "file_text": "X = 1\n"},
                    },
                    {"tool": "complete_task", "input": {"summary": "added x", "learnings": []}},
                ],
            }
        ),
        encoding="utf-8",
    )
    root = make_repo(tmp_path / "ws", extra_config=f"script = {json.dumps(str(script))}")
    tmux.start_run(root)
    tmux.wait(lambda: "Approval needed" in tmux.screen(), "the approval bar")
    assert "US-001" in tmux.screen()
    tmux("send-keys", "-t", "ralph", "a")
    tmux.wait(lambda: "Task #US-001" in git(root, "log", "-1", "--format=%s"), "the commit", 20.0)
    tmux.wait(lambda: "every story passes" in tmux.screen(), "the run to finish", 20.0)
    tmux("send-keys", "-t", "ralph", "q")
    tmux.wait(lambda: "EXITED 0" in tmux.screen(), "the app to exit", 20.0)
    assert git(root, "status", "--porcelain") == ""
