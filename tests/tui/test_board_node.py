"""The board says which cluster node runs a story (the Ray executor's ``IterationStarted.node``)."""

from __future__ import annotations

from pathlib import Path

from ralph_tui.events import IterationFinished, IterationStarted
from tests.support.repo import make_repo, story
from tests.tui.support import build_app, wait_for


async def test_board_shows_the_node_a_story_runs_on(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws", [story("US-001", "One", 1), story("US-002", "Two", 2)])
    app, _ = build_app(root, {"default": []}, autostart=False)
    async with app.run_test(size=(120, 30)) as pilot:
        board = app.board
        await wait_for(pilot, lambda: board.prd is not None, what="the board")

        def status(key: str) -> str:
            return str(board.get_cell(key, "status"))

        board.apply(
            IterationStarted(
                iteration=1, story_id="US-001", title="One", executor="ray", node="host-b:1a2b3c4d"
            )
        )
        await pilot.pause()
        assert status("US-001") == "running @ host-b:1a2b3c4d"
        assert status("US-002") == "open"
        board.apply(IterationFinished(iteration=1, story_id="US-001", outcome="failed"))
        await pilot.pause()
        assert status("US-001") == "open"
        # a local iteration (no node) says nothing more than before
        board.apply(IterationStarted(iteration=2, story_id="US-002", title="Two"))
        await pilot.pause()
        assert status("US-002") == "running"
