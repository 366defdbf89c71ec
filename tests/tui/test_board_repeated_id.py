"""A PRD that repeats a story id is shown whole on the board, each copy by its own key."""

from __future__ import annotations

from pathlib import Path

from tests.support.repo import make_repo, story
from tests.tui.support import build_app, wait_for


async def test_board_shows_both_stories_that_share_an_id(tmp_path: Path) -> None:
    stories = [
        story("US-080", "Before", 1, passes=True),
        story("US-081", "Import the ledger", 2, passes=True),
        story("US-081", "Export the report", 3),
    ]
    root = make_repo(tmp_path / "ws", stories)
    app, _ = build_app(root, {"default": []}, autostart=False)
    async with app.run_test(size=(120, 30)) as pilot:
        board = app.board
        await wait_for(pilot, lambda: board.prd is not None, what="the board")
        assert board.row_count == 3
        assert str(board.get_cell("US-081@2", "title")) == "Import the ledger"
        assert str(board.get_cell("US-081@3", "title")) == "Export the report"
        assert str(board.get_cell("US-081@3", "status")) == "open"
        assert str(board.get_cell("US-081@2", "status")) == "passed"
