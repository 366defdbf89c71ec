"""A story synced from a tracker links its id on the board to the issue (OSC 8)."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text

from tests.support.repo import make_repo, story
from tests.tui.support import build_app, wait_for

URL = "https://github.test/acme/widgets/issues/7"


async def test_board_id_links_to_the_issue(tmp_path: Path) -> None:
    synced = story("GH-7", "From GitHub", 1, tracker={"kind": "github", "ref": "7", "url": URL})
    mine = story("US-001", "Written by hand", 2)
    root = make_repo(tmp_path / "ws", [synced, mine])
    app, _ = build_app(root, {"default": []}, autostart=False)
    async with app.run_test(size=(120, 30)) as pilot:
        board = app.board
        await wait_for(pilot, lambda: board.prd is not None, what="the board")
        linked = board.get_cell("GH-7", "id")
        plain = board.get_cell("US-001", "id")
        assert isinstance(linked, Text) and isinstance(plain, Text)
        assert linked.style.link == URL and linked.style.bold
        assert plain.style.link is None and plain.style.bold
