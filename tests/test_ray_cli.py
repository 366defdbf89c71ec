"""The README's Ray recipe, as a user follows it (issue 19).

A cluster started with ``ray start`` in subprocesses (a head with no story slots and two worker
nodes; this test process never calls ``ray.init``), then the installed ``ralph-tui run
--headless`` with ``executor = "ray"`` and ``workers = 2`` on four stories, its built-in agent
talking to the fake Messages API. Two stories are placed at once, so both reach the cluster
connect together: before the fix the second one's ``ray.init`` raised and the run ended in a
traceback before the first story.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ray", reason="needs the ray extra (pip install -e '.[ray]')")

from tests.support.fake_anthropic import FakeAnthropic, reply, tool_use
from tests.support.ray_cluster import LocalRayCluster
from tests.support.repo import git, make_repo, story

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]

RALPH_TUI = Path(sys.executable).parent / "ralph-tui"  # the installed console script
API_KEY = "sk-ant-ray-e2e-DO-NOT-LEAK-7373737373"
STORIES = [story(f"US-00{i}", f"Story {i}", priority=i) for i in range(1, 5)]
TASK = re.compile(r"# Task #(US-\d+)")


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalRayCluster]:
    nodes = LocalRayCluster(cpus_per_node=1, driver=False)
    try:
        nodes.start()
        yield nodes
    finally:
        left = nodes.stop()
        assert left == [], f"ray processes left running: {left}"


@pytest.fixture
def outside_tmp() -> Iterator[Path]:
    """A repository outside /tmp, as a user's is."""
    base = Path("/var/tmp") / f"ralph-ray-{secrets.token_hex(4)}"
    base.mkdir()
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


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
    """Each story's agent: write its own file, claim done, then stop (any order of stories)."""
    found = TASK.search(_first_user_text(body))
    key = found.group(1) if found else "unknown"
    done = _tool_results(body)
    if done == 0:
        edit = {"command": "create", "path": f"{key}.txt", "file_text": f"{key}\n"}
        return reply(tool_use("str_replace_based_edit_tool", edit))
    if done == 1:
        return reply(tool_use("complete_task", {"summary": key, "learnings": [f"did {key}"]}))
    return reply("Done.")


def ralph_tui(root: Path, api: FakeAnthropic) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ANTHROPIC_API_KEY": API_KEY,
        "ANTHROPIC_BASE_URL": api.base_url,
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    return subprocess.run(
        [str(RALPH_TUI), "run", "--headless", "--approve", "auto", "--agent", "anthropic"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _temp_leftovers() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("ralph-*")}


def test_the_readme_recipe_runs_four_stories_on_two_nodes(
    cluster: LocalRayCluster, outside_tmp: Path
) -> None:
    config = f'executor = "ray"\nworkers = 2\nray = {{ address = "{cluster.address}" }}'
    root = make_repo(outside_tmp / "ws", STORIES, extra_config=config)
    before = _temp_leftovers()
    with FakeAnthropic() as api:
        api.respond_with(agent_turn)
        done = ralph_tui(root, api)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert "SIGTERM handler" not in done.stderr  # Ray's warning about our thread is dropped

    subjects = git(root, "log", "--format=%s").splitlines()
    landed = sorted(s for s in subjects if s.startswith("[backend] Task #"))
    assert landed == [f"[backend] Task #US-00{i}: Story {i}" for i in range(1, 5)]
    for i in range(1, 5):  # each story's own file, in its own commit
        assert git(root, "show", f"HEAD:US-00{i}.txt") == f"US-00{i}\n"
    prd = json.loads((root / "tasks/backend_prd.json").read_text(encoding="utf-8"))
    assert all(s["passes"] for s in prd["userStories"])
    progress = (root / "tasks/backend_progress.txt").read_text(encoding="utf-8")
    assert all(f"US-00{i}" in progress for i in range(1, 5))
    assert git(root, "status", "--porcelain") == ""
    on = git(root, "branch", "--show-current").strip()
    assert git(root, "branch", "--list", "--format=%(refname:short)", "ralph/*").split() == [on]
    assert git(root, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert _temp_leftovers() <= before
    nothing = [p for p in Path("/proc").glob("[0-9]*/cmdline") if _mentions(p, str(root))]
    assert nothing == [], "a process of the run is still running"
    for path in root.rglob("*"):
        if path.is_file() and ".git" not in path.parts:
            assert API_KEY not in path.read_text(encoding="utf-8", errors="replace"), path


def _mentions(cmdline: Path, text: str) -> bool:
    try:
        return text in cmdline.read_bytes().decode(errors="replace")
    except OSError:
        return False


def test_an_unreachable_cluster_is_one_line_naming_the_address(outside_tmp: Path) -> None:
    address = "127.0.0.2:9"  # nothing listens there
    config = f'executor = "ray"\nworkers = 2\nray = {{ address = "{address}" }}'
    root = make_repo(outside_tmp / "ws", STORIES, extra_config=config)
    with FakeAnthropic() as api:
        api.respond_with(agent_turn)
        done = ralph_tui(root, api)
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and address in lines[0], done.stderr
    assert api.requests == []  # no story started
