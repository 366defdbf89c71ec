"""The TUI with two workers: one approval at a time with the count waiting, opened from the
board in the order the human picks (Pilot over the real engine, real worktrees and gates)."""

from __future__ import annotations

from pathlib import Path

from ralph_tui.parallel import ParallelEngine
from tests.support.engine import approval_beside_question
from tests.support.repo import git, make_repo, story
from tests.tui.support import build_app, complete, create, wait_for


async def test_two_approvals_queued_and_approved_in_the_order_the_human_picks(
    tmp_path: Path,
) -> None:
    root = make_repo(tmp_path / "ws", [story("US-001", "One"), story("US-002", "Two")])
    script = {
        "stories": {
            "US-001": [create("one.txt", "1\n"), complete()],
            "US-002": [create("two.txt", "2\n"), complete()],
        }
    }
    app, _ = build_app(root, script, overrides={"workers": 2})
    engine = app.engine.engine
    assert isinstance(engine, ParallelEngine)
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for(
            pilot,
            lambda: engine.loop.approvals.waiting == 2 and app.approval_bar.is_open,
            what="two approvals queued",
        )
        shown = app.supervisor.approval
        assert shown is not None
        first_shown = shown.story_id
        await wait_for(
            pilot,
            lambda: app.approval_bar.request is not None and app.approval_bar.request.waiting == 1,
            what="+1 waiting on the approval bar",
        )
        other = "US-002" if first_shown == "US-001" else "US-001"
        # the board says which worker runs which story
        running = app.worker_view.running()
        assert set(running) == {"US-001", "US-002"} and sorted(running.values()) == [1, 2]
        assert app.board.state.workers == running
        # the human picks the one that is NOT on screen: cursor on it, then o
        app.board.focus()
        app.board.select_story(other)
        await pilot.press("o")
        await wait_for(
            pilot,
            lambda: (
                app.supervisor.approval is not None
                and app.supervisor.approval.story_id == other
                and app.approval_bar.is_open
            ),
            what=f"approval of {other} on screen",
        )
        assert app.approval_bar.request is not None and app.approval_bar.request.waiting == 1
        # Diff and Gates follow the worker whose change is on screen
        assert app.worker_view.selected == running[other]
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
                and app.supervisor.approval.story_id == first_shown
                and app.approval_bar.is_open
            ),
            what=f"approval of {first_shown} back on screen",
        )
        assert app.approval_bar.request is not None and app.approval_bar.request.waiting == 0
        await pilot.press("a")
        await wait_for(pilot, lambda: app.exit_code is not None, what="run end")
        assert app.exit_code == 0
        await pilot.press("q")
    subjects = [s for s in git(root, "log", "--format=%s").splitlines() if "Task #" in s]
    titles = {"US-001": "One", "US-002": "Two"}
    assert subjects == [
        f"[backend] Task #{first_shown}: {titles[first_shown]}",
        f"[backend] Task #{other}: {titles[other]}",
    ]
    assert git(root, "worktree", "list", "--porcelain").count("worktree ") == 1


async def test_a_highlight_still_queued_when_the_panes_are_gone_is_ignored(
    tmp_path: Path,
) -> None:
    """A quick run's exit tears the widgets down while a RowHighlighted may still be queued:
    the handler must not look the board up again (it raised NoMatches and crashed the app)."""
    from textual.widgets import DataTable

    root = make_repo(tmp_path / "ws", [story("US-001", "One")])
    app, _ = build_app(root, {"stories": {}}, autostart=False)
    async with app.run_test(size=(140, 40)):
        board = app.board
        await app.query_one("#panels").remove()
        app.on_data_table_row_highlighted(
            DataTable.RowHighlighted(board, 0, next(iter(board.rows)))
        )


async def test_a_flush_queued_when_the_panes_are_gone_draws_nothing(tmp_path: Path) -> None:
    """An event that reaches the batcher while the app closes (the run goes on meanwhile) is
    flushed after the panes are gone: it must be dropped, not raise NoMatches (seen once in a
    loaded whole-suite run, at the end of a tracker test)."""
    from ralph_tui.events import Notice

    root = make_repo(tmp_path / "ws", [story("US-001", "One")])
    app, _ = build_app(root, {"stories": {}}, autostart=False)
    async with app.run_test(size=(140, 40)):
        await app.query_one("#panels").remove()
        app.batcher(Notice(level="info", message="late"))
        app.flush_events()
        assert len(app.batcher) == 0


async def test_a_question_beside_an_approval_leaves_the_approval_and_its_panes_alone(
    tmp_path: Path,
) -> None:
    """With workers, US-001's approval and US-002's question are open together. Answering the
    question closed the approval bar too (the approval stayed pending with no bar: ``a`` would
    approve a change not on screen), and moving the board's cursor to US-002 switched the Diff
    to US-002's change under the bar that approves US-001."""
    root, script = approval_beside_question(tmp_path / "ws")
    app, _ = build_app(root, script, overrides={"workers": 2})
    async with app.run_test(size=(140, 50)) as pilot:
        await wait_for(
            pilot,
            lambda: app.approval_bar.is_open and app.escalation_bar.is_open,
            what="US-001's approval and US-002's question open together",
        )
        shown = app.supervisor.approval
        assert shown is not None and shown.story_id == "US-001"
        await wait_for(pilot, lambda: app.diff.selected_path == "a.txt", what="US-001's diff")
        assert app.worker_view.selected == shown.worker
        # the cursor on US-002 (its worker is running): the panes stay on the approval's change
        app.board.select_story("US-001")
        app.board.focus()
        await pilot.press("down")
        await wait_for(pilot, lambda: app.board.selected_story == "US-002", what="cursor moved")
        for _ in range(3):  # the highlight reaches the app
            await pilot.pause()
        assert app.worker_view.selected == shown.worker
        assert app.diff.selected_path == "a.txt"
        # the question is answered; the approval bar and its review stay
        app.escalation_bar.answer_box.value = "Use 8080."
        app.escalation_bar.answer_box.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: not app.escalation_bar.is_open, what="the question settled")
        assert app.approval_bar.is_open and app.diff.reviewing
        assert app.supervisor.approval is not None
        assert app.supervisor.approval.story_id == "US-001"
        await pilot.press("a")
        await wait_for(
            pilot,
            lambda: (
                app.supervisor.approval is not None
                and app.supervisor.approval.story_id == "US-002"
                and app.approval_bar.is_open
            ),
            what="US-002's approval on screen",
        )
        # its worker's panes now, with its question in its transcript
        await wait_for(pilot, lambda: app.diff.selected_path == "b.txt", what="US-002's diff")
        assert any("Which port?" in line for line in app.transcript.plain_lines())
        await pilot.press("a")
        await wait_for(pilot, lambda: app.exit_code is not None, what="run end")
        assert app.exit_code == 0
        await pilot.press("q")
    log = git(root, "log", "--format=%s")
    assert "Task #US-001" in log and "Task #US-002" in log


async def test_another_workers_question_is_in_its_own_transcript_not_the_one_on_screen(
    tmp_path: Path,
) -> None:
    """Worker 2's question and its answer were drawn into worker 1's transcript, under worker
    1's story, as if US-001's agent had asked."""
    from ralph_tui.events import Escalated, EscalationAnswered, IterationStarted

    root = make_repo(tmp_path / "ws", [story("US-001", "One"), story("US-002", "Two")])
    app, _ = build_app(root, {"stories": {}}, autostart=False)
    async with app.run_test(size=(140, 40)) as pilot:
        for event in (
            IterationStarted(1, "US-001", "One", worker=1),
            IterationStarted(2, "US-002", "Two", worker=2),
            Escalated("US-002", "Which port?", "the docs", worker=2),
            EscalationAnswered("US-002", "Use 8080.", worker=2),
        ):
            app.batcher(event)
        app.flush_events()
        assert app.worker_view.selected == 1
        shown = "\n".join(app.transcript.plain_lines())
        assert "US-001" in shown and "Which port?" not in shown and "8080" not in shown
        app.board.select_story("US-001")
        app.board.focus()
        await pilot.press("down")  # the cursor on US-002: its worker's conversation
        await wait_for(pilot, lambda: app.worker_view.selected == 2, what="worker 2 shown")
        shown = "\n".join(app.transcript.plain_lines())
        assert "Which port?" in shown and "Use 8080." in shown
