"""The TUI on a workspace whose PRD comes from a tracker: the board fills in from the sync."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.fake_github import TOKEN, FakeGitHub, fake_github
from tests.support.repo import git, make_repo
from tests.tui.support import build_app, complete, create, wait_for

__all__ = ["fake_github"]  # the fixture


async def test_the_board_shows_the_synced_issues_and_their_links(
    tmp_path: Path, fake_github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_github.add_issue("Add greeting", "- [ ] greets")
    root = make_repo(tmp_path / "ws", [])
    git(root, "rm", "-q", "tasks/backend_prd.json")
    with (root / "ralph.toml").open("a") as fh:
        fh.write(
            '[tracker]\nkind = "github"\nrepository = "acme/widgets"\n'
            f"api_url = {json.dumps(fake_github.base_url)}\n"
        )
    git(root, "commit", "-qam", "tracker")
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    script = {"default": [{"wait": "synced"}, create("hello.txt", "hello\n"), complete()]}
    app, agent = build_app(root, script, overrides={"approve": "auto"})
    async with app.run_test(size=(120, 30)) as pilot:
        board = app.board
        assert str(board.border_subtitle) == "waiting for the github sync"
        # before anything lands: the board shows what the sync wrote
        await wait_for(pilot, lambda: agent.reached("synced"), what="the first iteration")
        await wait_for(pilot, lambda: board.prd is not None and board.row_count == 1)
        cell = board.get_cell("GH-1", "id")
        assert cell.style.link == "https://github.test/acme/widgets/issues/1"
        assert str(board.border_subtitle) == ""
        agent.release("synced")
        await wait_for(pilot, lambda: fake_github.issue(1)["state"] == "closed", what="close")
