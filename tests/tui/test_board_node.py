"""The board says which cluster node runs a story (the Ray executor's ``IterationStarted.node``)."""

from __future__ import annotations

from pathlib import Path

from ralph_tui.events import IterationFinished, IterationStarted
from tests.support.repo import make_repo, story
from tests.tui.support import build_app


async def test_board_shows_the_node_a_story_runs_on(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws", [story("US-001", "One", 1), story("US-002", "Two", 2)])
    app, _ = build_app(root, {"default": []}, autostart=False)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        started = IterationStarted(
            iteration=1, story_id="US-001", title="One", executor="ray", node="host-b:1a2b3c4d"
        )
        app._apply(started)
        app._reload_board()
        await pilot.pause()
        assert str(app.board.get_row_at(0)[2]) == "running @ host-b:1a2b3c4d"
        assert str(app.board.get_row_at(1)[2]) == "open"
        app._apply(IterationFinished(iteration=1, story_id="US-001", outcome="failed"))
        app._reload_board()
        await pilot.pause()
        assert str(app.board.get_row_at(0)[2]) == "open"
