"""The attached TUI is the same app: the bar shows for a waiting approval, ``a`` commits, ``q``
detaches without stopping the run."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from textual.pilot import Pilot

from ralph_tui.server.client import first_look
from ralph_tui.tui.remote import AttachedApp
from tests.remote.support import Served, served_run, waiting
from tests.support.repo import git, make_repo
from tests.tui.support import wait_for


@contextlib.asynccontextmanager
async def attached(served: Served) -> AsyncIterator[tuple[AttachedApp, Pilot[int]]]:
    """``ralph-tui attach`` on the served run, once the run waits for a face."""
    await served.sink.wait(waiting)
    info, prd = await asyncio.to_thread(first_look, served.url, served.token)
    app = AttachedApp(served.url, served.token, info, prd)
    async with app.run_test(size=(120, 40)) as pilot:
        yield app, pilot


async def test_attached_app_shows_the_waiting_approval_and_a_commits(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    async with served_run(root) as served:
        async with attached(served) as (app, pilot):
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
        async with attached(served) as (app, pilot):
            await wait_for(pilot, lambda: app.approval_bar.display, what="the approval bar")
            await pilot.press("q")
        assert app.return_code == 0
        hub = served.run.server.hub if served.run.server else None
        assert hub is not None
        assert not served.task.done() and hub.pending is not None


async def test_ctrl_c_detaches_and_never_stops_the_run(tmp_path: Path) -> None:
    """In a local TUI Ctrl-C stops the run; attached it detaches, as q does (the run is
    stopped with x, confirmed)."""
    root = make_repo(tmp_path / "ws")
    async with served_run(root) as served:
        async with attached(served) as (app, pilot):
            await wait_for(pilot, lambda: app.approval_bar.display, what="the approval bar")
            assert app.check_action("stop_run", ()) is True
            await pilot.press("ctrl+c")
        assert app.return_code == 0
        assert not served.task.done() and not served.run.engine.stop_requested


async def test_stop_run_is_not_offered_once_the_run_has_ended(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    async with served_run(root) as served, attached(served) as (app, pilot):
        await wait_for(pilot, lambda: app.approval_bar.display, what="the approval bar")
        await pilot.press("a")
        await wait_for(pilot, lambda: not app.run_active, what="the run to end")
        assert app.check_action("stop_run", ()) is False


async def test_tui_run_with_listen_a_client_decides_and_the_local_bar_closes(
    tmp_path: Path,
) -> None:
    from ralph_tui.agents.scripted import ScriptedAgent
    from ralph_tui.config import load_config
    from ralph_tui.runs import ServedRun, make_run_factory
    from ralph_tui.server.client import RemoteRun
    from ralph_tui.supervisor import ApprovalDecision
    from ralph_tui.tui.app import RalphApp
    from tests.remote.support import SCRIPT, HandSupervisor, WaitingSink
    from tests.support.engine import write_script

    root = make_repo(tmp_path / "ws")
    path = write_script(root, SCRIPT)
    config = load_config(root, {"script": str(path), "listen": "127.0.0.1:0"})
    factory = make_run_factory(root, config, agent=ScriptedAgent.from_file(path, config))
    app = RalphApp(root, config, run_factory=factory)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.approval_bar.display, what="the local approval bar")
        served = app.engine
        assert isinstance(served, ServedRun) and served.server is not None
        face = HandSupervisor()
        client = RemoteRun(served.url, served.server.token, face, WaitingSink())
        task = asyncio.create_task(client.run())
        _, decision = await asyncio.wait_for(face.approvals.get(), 30)
        decision.set_result(ApprovalDecision.approve())
        await wait_for(pilot, lambda: not app.approval_bar.display, what="the local bar to close")
        await wait_for(pilot, lambda: task.done(), what="the run to end for the client")
        assert task.result() == 0
    assert "Task #US-001" in git(root, "log", "--format=%s", "-1")


async def test_attached_app_answers_an_escalation_and_the_agent_gets_it(tmp_path: Path) -> None:
    from ralph_tui.agents.scripted import ScriptedAgent
    from tests.support.engine import complete, create

    root = make_repo(tmp_path / "ws")
    ask = {"tool": "escalate", "input": {"question": "Euros or dollars?", "tried": "Read it"}}
    script = {"default": [ask, create("src/x.py", "X = 1\n"), complete()]}
    async with served_run(root, script) as served:
        async with attached(served) as (app, pilot):
            bar = app.escalation_bar
            await wait_for(pilot, lambda: bar.is_open, what="the escalation bar")
            await wait_for(pilot, lambda: app.focused is bar.answer_box, what="the answer box")
            await pilot.press(*"Use euros", "enter")
            await wait_for(pilot, lambda: app.approval_bar.display, what="the approval bar")
            await pilot.press("a")
            await wait_for(pilot, lambda: served.task.done(), what="the run to end")
        assert served.task.result() == 0
        agent = served.run.engine.agent
        assert isinstance(agent, ScriptedAgent)
        told = [o.content for name, o in agent.received if name == "escalate"]
        assert told == ["Answer from the human supervisor:\nUse euros"]
    assert "Use euros" in (root / "tasks/backend_progress.txt").read_text()


async def test_x_asks_then_stops_the_run_itself(tmp_path: Path) -> None:
    from ralph_tui.tui.screens import Confirm

    root = make_repo(tmp_path / "ws")
    async with served_run(root) as served:
        async with attached(served) as (app, pilot):
            await wait_for(pilot, lambda: app.approval_bar.display, what="the approval bar")
            await pilot.press("x")
            await wait_for(pilot, lambda: isinstance(app.screen, Confirm), what="the question")
            assert app.screen.has_class("-danger")
            await pilot.press("n")  # keep running: nothing is sent
            await wait_for(pilot, lambda: not isinstance(app.screen, Confirm), what="closed")
            assert not served.run.engine.stop_requested
            await pilot.press("x")
            await wait_for(pilot, lambda: isinstance(app.screen, Confirm), what="the question")
            await pilot.press("y")
            await wait_for(pilot, lambda: served.task.done(), what="the run to stop")
        assert served.task.result() == 130
    assert "Task #" not in git(root, "log", "--format=%s", "-1")


async def test_attached_app_with_two_workers_counts_opens_and_diffs_like_the_local_one(
    tmp_path: Path,
) -> None:
    """The attached face drives the run only through its RunHandle: it learns which stories
    wait from ``ApprovalsWaiting`` events, opens another one with ``o`` (a control frame) and
    shows a worker's change read by the run wherever that worker is."""
    from ralph_tui.events import ApprovalsWaiting
    from tests.support.engine import complete, create
    from tests.support.repo import story

    root = make_repo(tmp_path / "ws", [story("US-001", "One"), story("US-002", "Two")])
    script = {
        "stories": {
            "US-001": [create("one.txt", "1\n"), complete()],
            "US-002": [create("two.txt", "2\n"), complete()],
        }
    }
    async with served_run(root, script, workers=2) as served:
        await served.sink.wait(lambda e: isinstance(e, ApprovalsWaiting) and len(e.story_ids) == 2)
        info, prd = await asyncio.to_thread(first_look, served.url, served.token)
        app = AttachedApp(served.url, served.token, info, prd)
        async with app.run_test(size=(140, 40)) as pilot:
            await wait_for(pilot, lambda: app.approval_bar.is_open, what="the approval bar")
            await wait_for(pilot, lambda: len(app._waiting) == 2, what="two waiting")
            shown = app.supervisor.approval
            assert shown is not None
            other = "US-002" if shown.story_id == "US-001" else "US-001"
            app.board.focus()
            app.board.select_story(other)
            await pilot.press("o")
            await wait_for(
                pilot,
                lambda: (
                    app.supervisor.approval is not None
                    and app.supervisor.approval.story_id == other
                ),
                what=f"{other}'s approval opened from the attached face",
            )
            # the Diff pane follows the picked worker; the run reads its worktree
            await wait_for(
                pilot,
                lambda: app.diff.selected_path == ("one.txt" if other == "US-001" else "two.txt"),
                what="the picked worker's diff",
            )
            await pilot.press("a")
            await wait_for(
                pilot,
                lambda: (
                    app.supervisor.approval is not None
                    and app.supervisor.approval.story_id == shown.story_id
                ),
                what="the first approval back",
            )
            await pilot.press("a")
            await wait_for(pilot, lambda: served.task.done(), what="the run to end")
        assert served.task.result() == 0
    subjects = git(root, "log", "--format=%s").splitlines()
    assert subjects[0].startswith(f"[backend] Task #{shown.story_id}")
    assert subjects[1].startswith(f"[backend] Task #{other}")
