"""The end-to-end layer: each user-facing command as the README tells a user to run it.

Every test drives the installed ``ralph-tui`` executable in a subprocess, in a repository under
``/var/tmp`` (outside ``/tmp``, as a user's is), with a ``TMPDIR`` of its own so that what a run
leaves in the temp folder is exactly what that run left. The built-in agent talks to the fake
Messages API (tests/support/fake_anthropic.py), which answers each request from the request
itself, so several agents at once (workers, Ray nodes) need no ordering. Afterwards the test
checks the repository the way a user would: one commit per story in the seed's format, the PRD,
the progress log, the branch, no worktree or ``ralph/`` branch left, nothing in the temp folder,
no process of the run still running.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.fake_anthropic import FakeAnthropic, reply, tool_use
from tests.support.repo import git, make_repo, story

RALPH_TUI = Path(sys.executable).parent / "ralph-tui"  # the console script pip installed
API_KEY = "sk-ant-e2e-DO-NOT-LEAK-5151515151"
PRD = "tasks/backend_prd.json"
PROGRESS = "tasks/backend_progress.txt"
_TASK = re.compile(r"# Task #([^:\s]+)")


def stories(count: int) -> list[dict[str, Any]]:
    return [story(f"US-00{i}", f"Story {i}", priority=i) for i in range(1, count + 1)]


def _first_user_text(body: dict[str, Any]) -> str:
    content = body["messages"][0]["content"]
    if isinstance(content, str):
        return content
    return "".join(block.get("text", "") for block in content if isinstance(block, dict))


def _tool_results(body: dict[str, Any]) -> int:
    return sum(
        1
        for message in body["messages"]
        if message["role"] == "user" and isinstance(message["content"], list)
        for block in message["content"]
        if isinstance(block, dict) and block.get("type") == "tool_result"
    )


def agent_turn(body: dict[str, Any]) -> dict[str, Any]:
    """Each story's agent: write a file named after its story, claim done, then stop."""
    found = _TASK.search(_first_user_text(body))
    key = found.group(1) if found else "unknown"
    done = _tool_results(body)
    if done == 0:
        edit = {"command": "create", "path": f"{key}.txt", "file_text": f"{key}\n"}
        return reply(tool_use("str_replace_based_edit_tool", edit))
    if done == 1:
        return reply(tool_use("complete_task", {"summary": key, "learnings": [f"did {key}"]}))
    return reply("Done.")


@dataclass
class Site:
    """A user's machine for one test: a folder outside /tmp, a temp folder, the model API."""

    base: Path
    api: FakeAnthropic
    temp: Path = field(init=False)

    def __post_init__(self) -> None:
        self.temp = self.base / "temp"
        self.temp.mkdir()

    @property
    def root(self) -> Path:
        return self.base / "ws"

    def repo(self, count: int = 1, config: str = "", **kwargs: Any) -> Path:
        """The project: ``count`` stories, the built-in agent, ``config`` lines on top."""
        return make_repo(self.root, stories(count), extra_config=config, **kwargs)

    def new_repo(self) -> Path:
        """A repository before ralph-tui: one commit (a README), no PRD, no ralph.toml."""
        root = self.root
        root.mkdir()
        git(root, "init", "-q", "-b", "main")
        (root / "README.md").write_text("# my service\n", encoding="utf-8")
        git(root, "add", "-A")
        git(root, "commit", "-qm", "initial")
        return root

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "TMPDIR": str(self.temp),
            "ANTHROPIC_API_KEY": API_KEY,
            "ANTHROPIC_BASE_URL": self.api.base_url,
            "RAY_USAGE_STATS_ENABLED": "0",
            **extra,
        }

    def ralph(
        self,
        *args: str,
        timeout: float = 180,
        input: str | None = None,
        env_path: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """``ralph-tui ARGS`` run in the repository, as a user types it."""
        env = self.env() if env_path is None else self.env(PATH=env_path)
        return subprocess.run(
            [str(RALPH_TUI), *args],
            cwd=self.root,
            env=env,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


@pytest.fixture
def site() -> Iterator[Site]:
    base = Path("/var/tmp") / f"ralph-e2e-{secrets.token_hex(4)}"
    base.mkdir()
    try:
        with FakeAnthropic() as api:
            api.respond_with(agent_turn)
            yield Site(base, api)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def assert_stories_landed(root: Path, keys: list[str], titles: list[str]) -> None:
    """One commit per story in the seed's format, holding its file; the PRD and the log."""
    subjects = git(root, "log", "--format=%s").splitlines()
    for key, title in zip(keys, titles, strict=True):
        assert subjects.count(f"[backend] Task #{key}: {title}") == 1, subjects
        assert git(root, "show", f"HEAD:{key}.txt") == f"{key}\n"
    prd = json.loads((root / PRD).read_text(encoding="utf-8"))
    assert {str(s["id"]): s["passes"] for s in prd["userStories"]} == dict.fromkeys(keys, True)
    progress = (root / PROGRESS).read_text(encoding="utf-8")
    for key, title in zip(keys, titles, strict=True):
        assert progress.count(f"## Task #{key}: {title}") == 1, progress


def assert_clean(site: Site) -> None:
    """Nothing of the run is left: tree, worktrees, branches, temp folder, processes."""
    root = site.root
    assert git(root, "status", "--porcelain") == ""
    assert git(root, "worktree", "list", "--porcelain").count("worktree ") == 1
    on = git(root, "branch", "--show-current").strip()
    ralph = git(root, "branch", "--list", "--format=%(refname:short)", "ralph/*").split()
    assert ralph in ([on], []), ralph
    worktrees = root / ".ralph" / "worktrees"
    assert not worktrees.exists() or list(worktrees.iterdir()) == []
    assert sorted(p.name for p in site.temp.iterdir()) == []
    left = running(str(root))
    assert left == [], [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in left]
    for path in root.rglob("*"):
        if path.is_file() and ".git" not in path.parts:
            assert API_KEY not in path.read_text(encoding="utf-8", errors="replace"), path


def running(text: str) -> list[int]:
    """Pids of processes whose command line mentions ``text`` (but the test's own tmux server,
    which keeps the arguments it was started with)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes()
            if not argv.startswith(b"tmux\0") and text in argv.decode(errors="replace"):
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found
