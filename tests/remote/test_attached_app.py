"""The attached TUI is the same app: the bar shows for a waiting approval, ``a`` commits, ``q``
detaches without stopping the run."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ralph_tui.server.client import first_look
from ralph_tui.tui.remote import AttachedApp
from tests.remote.support import served_run, waiting
from tests.support.repo import git, make_repo
from tests.tui.support import wait_for


async def test_attached_app_shows_the_waiting_approval_and_a_commits(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    async with served_run(root) as served:
        await served.sink.wait(waiting)
        info, prd = await asyncio.to_thread(first_look, served.url, served.token)
        app = AttachedApp(served.url, served.token, info, prd)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: app.approval_bar.display, what="the approval bar")
            assert app.supervisor.approval is not None
            assert app.supervisor.approval.story_id == "US-001"
            assert app.board.prd is not None
            await pilot.press("a")
            await wait_for(pilot, lambda: served.task.done(), what="the run to end")
            await wait_for(pilot, lambda: not app.approval_bar.display, what="the bar to close")
        assert served.task.result() == 0
    assert "Task #US-001" in git(root, "log", "--format=%s", "-1")


async def test_q_detaches_and_the_run_keeps_waiting(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    async with served_run(root) as served:
        await served.sink.wait(waiting)
        info, prd = await asyncio.to_thread(first_look, served.url, served.token)
        app = AttachedApp(served.url, served.token, info, prd)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: app.approval_bar.display, what="the approval bar")
            await pilot.press("q")
        assert app.return_code == 0
        hub = served.run.server.hub if served.run.server else None
        assert hub is not None
        assert not served.task.done() and hub.pending is not None
