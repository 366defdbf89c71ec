"""A token holder adds a story whose id is a path, an option and a ref expression at once,
through the served run's ``/api/prd/add`` while workers run: the id is mapped to a safe name
once (``safety.names.safe_name``), the story runs and lands, and nothing is written outside
the repository or left behind (issue 20, item 4, on the remote path)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from ralph_tui.server.client import RemoteRun, RemoteStore
from ralph_tui.server.http import read_serve_file
from ralph_tui.supervisor import ApprovalRequest
from tests.remote.test_web import RALPH
from tests.security.support import MODES, bash, sandbox_config
from tests.support.engine import ScriptedSupervisor, complete, create
from tests.support.repo import git, make_repo, story

HOSTILE = "../../x/-rf @{-1}"


@pytest.mark.parametrize("mode", MODES)
async def test_a_hostile_id_added_by_a_client_runs_under_a_safe_name(
    outside_tmp: Path, mode: str
) -> None:
    script = outside_tmp / "script.json"
    script.write_text(
        json.dumps(
            {
                "stories": {"US-001": [create("a.txt", "a\n"), complete("a")]},
                "default": [bash("echo hostile > added.txt"), complete("added")],
            }
        ),
        encoding="utf-8",
    )
    root = make_repo(
        outside_tmp / "ws",
        [story("US-001", "A", 1)],
        extra_config=f"script = {json.dumps(str(script))}\n{sandbox_config(mode)}",
    )
    run = await asyncio.create_subprocess_exec(
        str(RALPH), "run", "--headless", "--approve", "ask", "--workers", "2",
        "--max-iterations", "4", "--listen", "127.0.0.1:0", "--workspace", str(root),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    added: list[str] = []

    async def add_once(request: ApprovalRequest) -> None:
        if not added:  # while US-001 waits for its approval, the hostile story comes in
            store = RemoteStore(url, token)
            new = await asyncio.to_thread(
                store.add_story,
                {"id": HOSTILE, "title": "Hostile", "acceptanceCriteria": ["c"], "priority": 2},
            )
            added.append(new.key)

    try:
        assert run.stdout is not None
        while b"serving this run on" not in (
            line := await asyncio.wait_for(run.stdout.readline(), 60)
        ):
            assert line, "the run ended before serving"
        url, token = read_serve_file(root)
        client = ScriptedSupervisor(on_approve=add_once)
        await asyncio.wait_for(RemoteRun(url, token, client, lambda event: None).run(), 120)
        code = await asyncio.wait_for(run.wait(), 60)
        output = (await run.stdout.read()).decode()
    finally:
        if run.returncode is None:
            run.kill()
            await run.wait()
    assert code == 0, output
    assert added == [HOSTILE]
    prd = json.loads((root / "tasks/backend_prd.json").read_text(encoding="utf-8"))
    assert {s["id"]: s["passes"] for s in prd["userStories"]} == {"US-001": True, HOSTILE: True}
    subjects = git(root, "log", "--format=%s").splitlines()
    assert any(s.startswith(f"[backend] Task #{HOSTILE}: Hostile") for s in subjects)
    assert (root / "added.txt").read_text() == "hostile\n"
    # nothing outside the repository by that name, no branch or worktree left, .ralph clean
    assert not (outside_tmp / "x").exists() and not (root.parent.parent / "x").exists()
    assert git(root, "branch", "--format=%(refname:short)").split() == ["main", "ralph/test"]
    assert len(git(root, "worktree", "list").splitlines()) == 1
    assert not list((root / ".ralph" / "worktrees").glob("*"))
