"""The TUI driven with Pilot over the real engine, a real repo and real gates."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from textual.widgets import Input

from ralph_tui.tui.app import RalphApp
from ralph_tui.tui.bars.approval import approval_text
from ralph_tui.tui.screens import Confirm
from tests.support.repo import git, make_repo, story, write_prd
from tests.support.tools import requires_bwrap
from tests.tui.support import (
    ManualClock,
    ManualTimers,
    build_app,
    complete,
    create,
    wait_for,
)


def approval_waiting(app: RalphApp) -> bool:
    return app.supervisor.approval is not None and app.approval_bar.is_open


def escalation_waiting(app: RalphApp) -> bool:
    return app.supervisor.escalation is not None and app.escalation_bar.is_open


def run_over(app: RalphApp) -> bool:
    return app.exit_code is not None and not app.run_active


def edits_pending(app: RalphApp) -> bool:
    return any(w.group == "prd-edit" and not w.is_finished for w in app.workers)


def subjects(root: Path) -> list[str]:
    return git(root, "log", "--format=%s").splitlines()


def prd_ids(root: Path) -> list[tuple[str, int]]:
    doc = json.loads((root / "tasks" / "backend_prd.json").read_text(encoding="utf-8"))
    return [(s["id"], s["priority"]) for s in doc["userStories"]]


ONE_EDIT = {
    "default": [{"text": "Adding the module.\n"}, create("src/x.py", "X = 1\n"), complete()]
}


async def test_start_focus_is_tasks_on_next_story(tmp_path: Path) -> None:
    root = make_repo(
        tmp_path / "ws",
        [
            story("US-001", "Done", 1, passes=True),
            story("US-002", "Later", 3),
            story("US-003", "Next", 2),
        ],
    )
    app, _ = build_app(root, ONE_EDIT, autostart=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert app.focused is app.board
        assert app.board.selected_story == "US-003"


async def test_approve_commits_from_any_focus(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    app, _ = build_app(root, ONE_EDIT)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: approval_waiting(app), what="approval bar")
        # the diff of the pending change is on screen, and the key works from the diff pane
        await wait_for(pilot, lambda: app.diff.selected_path == "src/x.py", what="diff")
        app.diff.pane.focus()
        await pilot.press("a")
        await wait_for(pilot, lambda: run_over(app), what="run end")
        assert subjects(root)[0] == "[backend] Task #US-001: First story"
        assert "src/x.py" in git(root, "show", "--name-only", "--format=", "HEAD")
        assert app.exit_code == 0
        assert not app.approval_bar.is_open
        await pilot.press("q")
    assert app.return_code == 0


async def test_reject_feedback_reaches_the_agent(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    script = {
        "default": [
            create("src/x.py", "X = 1\n"),
            complete(),
            {"text": "Reworking after feedback."},
            create("src/y.py", "Y = 2\n"),
            complete(),
        ]
    }
    app, agent = build_app(root, script)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: approval_waiting(app), what="first approval")
        await pilot.press("r")
        assert isinstance(app.focused, Input)
        # inside the text box, approval keys are just letters
        await pilot.press(*"add a docstring")
        assert app.supervisor.approval is not None
        await pilot.press("enter")
        await wait_for(
            pilot, lambda: approval_waiting(app) and len(agent.received) >= 3, what="2nd approval"
        )
        rejected = [o for name, o in agent.received if name == "complete_task" and o.is_error]
        assert rejected and "add a docstring" in rejected[0].content
        assert subjects(root) == ["initial"]
        await pilot.press("a")
        await wait_for(pilot, lambda: run_over(app), what="run end")
        assert subjects(root)[0] == "[backend] Task #US-001: First story"


async def test_discard_restores_the_tree(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    app, _ = build_app(root, ONE_EDIT, overrides={"max_iterations": 1})
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: approval_waiting(app), what="approval bar")
        assert (root / "src" / "x.py").exists()
        await pilot.press("d")
        await wait_for(pilot, lambda: run_over(app), what="run end")
    assert not (root / "src" / "x.py").exists()
    assert git(root, "status", "--porcelain") == ""
    assert subjects(root) == ["initial"]
    assert app.exit_code == 3  # max_iterations reached with the story still open


async def test_escalation_answer_reaches_the_agent(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    script = {
        "default": [
            {"tool": "escalate", "input": {"question": "Euros or dollars?", "tried": "Read it"}},
            create("src/x.py", "X = 1\n"),
            complete(),
        ]
    }
    app, agent = build_app(root, script)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: escalation_waiting(app), what="escalation bar")
        await pilot.pause()
        assert app.focused is app.escalation_bar.answer_box
        assert app.board.state.blocked == frozenset({"US-001"})
        await pilot.press(*"Use euros", "enter")
        await wait_for(pilot, lambda: approval_waiting(app), what="approval after answer")
        name, outcome = agent.received[0]
        assert name == "escalate" and "Use euros" in outcome.content
        await pilot.press("a")
        await wait_for(pilot, lambda: run_over(app), what="run end")
    progress = (root / "tasks" / "backend_progress.txt").read_text(encoding="utf-8")
    assert "Use euros" in progress


async def test_escalation_skip(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    script = {"default": [{"tool": "escalate", "input": {"question": "Which?", "tried": "-"}}]}
    app, _ = build_app(root, script)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: escalation_waiting(app), what="escalation bar")
        await pilot.press("s")  # typed into the focused answer box: not a skip
        assert app.escalation_bar.answer_box.value == "s"
        await pilot.press("escape", "s")
        await wait_for(pilot, lambda: run_over(app), what="run end")
        assert "US-001" in app.engine.skipped
        assert app.exit_code == 3


async def test_plus_minus_reorder_the_prd_file(tmp_path: Path) -> None:
    root = make_repo(
        tmp_path / "ws",
        [story("US-001", "One", 1), story("US-002", "Two", 2), story("US-003", "Three", 3)],
    )
    script = {"default": [{"tool": "escalate", "input": {"question": "?", "tried": "-"}}]}
    app, agent = build_app(root, script, autostart=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert app.board.selected_story == "US-001"
        await pilot.press("minus")
        # written off the UI thread: wait for the file and the board to show it
        moved = [("US-001", 2), ("US-002", 1), ("US-003", 3)]
        await wait_for(pilot, lambda: prd_ids(root) == moved and not edits_pending(app))
        assert app.board.selected_story == "US-001"  # the cursor follows the story
        await pilot.press("down", "plus")  # now on US-003: swap with US-001
        moved = [("US-001", 3), ("US-002", 1), ("US-003", 2)]
        await wait_for(pilot, lambda: prd_ids(root) == moved and not edits_pending(app))
        # honoured at the next pick
        app.start_run()
        await wait_for(pilot, lambda: bool(agent.requests), what="first iteration")
        assert agent.requests[0].story.key == "US-002"
        app.stop_and_quit()
        await wait_for(pilot, lambda: not app.run_active, what="stop")


async def test_external_prd_edit_shows_on_the_board(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws", [story("US-001", "One", 1), story("US-002", "Two", 2)])
    script = {"default": [{"tool": "escalate", "input": {"question": "?", "tried": "-"}}]}
    app, _ = build_app(root, script)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: escalation_waiting(app), what="escalation")
        write_prd(
            root,
            [
                story("US-001", "One", 1),
                story("US-002", "Two renamed", 2),
                story("US-009", "Added by hand", 3),
            ],
        )
        board = app.board

        def shows_edit() -> bool:
            prd = board.prd
            return prd is not None and [s.title for s in prd.userStories][1:] == [
                "Two renamed",
                "Added by hand",
            ]

        await wait_for(pilot, shows_edit, what="external edit on the board")
        assert board.row_count == 3
        titles = [str(board.get_row_at(i)[-1]) for i in range(3)]  # the title is last
        assert "Added by hand" in titles
        app.stop_and_quit()
        await wait_for(pilot, lambda: not app.run_active, what="stop")


async def test_edit_and_new_story_save_at_once(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws", [story("US-001", "One", 1)])
    app, _ = build_app(root, ONE_EDIT, autostart=False)

    def titles() -> list[str]:
        doc = json.loads((root / "tasks" / "backend_prd.json").read_text(encoding="utf-8"))
        return [s["title"] for s in doc["userStories"]]

    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        await pilot.press("e")
        title = app.screen.query_one("#story-title", Input)
        title.value = "One, edited"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: titles() == ["One, edited"], what="saved")
        await pilot.press("n")
        app.screen.query_one("#story-title", Input).value = "Brand new"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: len(titles()) == 2 and not edits_pending(app), what="added")
        await wait_for(pilot, lambda: app.board.row_count == 2, what="board")
        doc = json.loads((root / "tasks" / "backend_prd.json").read_text(encoding="utf-8"))
        assert [s["title"] for s in doc["userStories"]] == ["One, edited", "Brand new"]
        assert doc["userStories"][1]["priority"] == 2
        assert app.board.selected_story == str(doc["userStories"][1]["id"])


async def test_quit_during_iteration_leaves_no_half_commit(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    script = {
        "default": [
            create("src/x.py", "X = 1\n"),
            {"text": "streaming " * 200},
            {"wait": "streamed"},  # the agent holds here until the quit has landed
            complete(),
        ],
    }
    app, agent = build_app(root, script)
    prd_before = (root / "tasks" / "backend_prd.json").read_text(encoding="utf-8")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: agent.reached("streamed"), what="streaming")
        await wait_for(pilot, lambda: "streaming" in " ".join(app.transcript.plain_lines()))
        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(app.screen, Confirm), what="confirm")
        await pilot.press("y")
        await wait_for(pilot, lambda: app.engine.engine.stop_requested, what="stop requested")
        agent.release("streamed")
        await wait_for(pilot, lambda: app.return_code is not None, what="exit")
    assert app.return_code == 130
    assert subjects(root) == ["initial"]
    assert git(root, "status", "--porcelain") == ""
    assert (root / "tasks" / "backend_prd.json").read_text(encoding="utf-8") == prd_before
    assert not any(name == "complete_task" for name, _ in agent.received)


async def test_quit_while_approval_waits_discards(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    app, _ = build_app(root, ONE_EDIT)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: approval_waiting(app), what="approval bar")
        await pilot.press("q", "y")
        await wait_for(pilot, lambda: not app.run_active, what="stop")
    assert subjects(root) == ["initial"]
    assert git(root, "status", "--porcelain") == ""


async def test_preflight_error_exits_with_one_line(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    (root / "README.md").write_text("dirty\n", encoding="utf-8")
    app, _ = build_app(root, ONE_EDIT)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.return_code is not None, what="exit")
    assert app.return_code == 2
    assert app.return_value == 2
    assert "uncommitted changes" in (app.error_message or "")


def footer_keys(app: RalphApp) -> set[str]:
    """The actions the footer shows right now (enabled bindings of the focused chain)."""
    return {
        binding.action
        for (_, binding, enabled, _) in app.screen.active_bindings.values()
        if enabled and binding.show
    }


def footer_drawn(app: RalphApp) -> set[str]:
    """The enabled actions the footer widget actually draws (it may lag the bindings)."""
    from textual.widgets._footer import FooterKey

    return {key.action for key in app.query(FooterKey) if not key.disabled}


async def test_footer_keeps_its_keys_when_a_bindings_signal_changes_nothing(
    tmp_path: Path,
) -> None:
    """Textual's footer rebuilt all its keys (and laid the screen out) on every bindings
    signal; ours only when what it shows changes, and still when it does."""
    from textual.widgets._footer import FooterKey

    app, _ = build_app(make_repo(tmp_path / "ws"), ONE_EDIT)
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for(pilot, lambda: approval_waiting(app), what="approval")
        await wait_for(pilot, lambda: "approve" in footer_drawn(app), what="a drawn")
        before = list(app.query(FooterKey))
        for _ in range(3):
            app.refresh_bindings()
            await pilot.pause()
        assert list(app.query(FooterKey)) == before
        assert all(key.is_attached for key in before)  # the same widgets, not rebuilt ones
        await pilot.press("a")
        await wait_for(pilot, lambda: "approve" not in footer_drawn(app), what="a gone")
        await wait_for(pilot, lambda: run_over(app), what="run end")


async def test_footer_offers_approve_again_for_the_next_story(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws", [story("US-001", "One", 1), story("US-002", "Two", 2)])
    script = {
        "stories": {
            "US-001": [create("src/one.py", "ONE = 1\n"), complete()],
            "US-002": [create("src/two.py", "TWO = 2\n"), complete()],
        }
    }
    app, _ = build_app(root, script)
    async with app.run_test(size=(160, 40), notifications=True) as pilot:
        await wait_for(pilot, lambda: approval_waiting(app), what="first approval")
        await wait_for(pilot, lambda: "approve" in footer_keys(app), what="a in the footer")
        await pilot.press("a")
        await wait_for(
            pilot,
            lambda: approval_waiting(app) and app.supervisor.approval.story_id == "US-002",
            what="second approval",
        )
        await wait_for(pilot, lambda: "approve" in footer_keys(app), what="a in the footer again")
        await wait_for(pilot, lambda: "approve" in footer_drawn(app), what="a drawn again")
        # the bar is the notice: no toast over the transcript repeats it
        assert not [n.message for n in app._notifications if "approv" in n.message]
        await pilot.press("a")
        await wait_for(pilot, lambda: run_over(app), what="run end")
    assert subjects(root)[:2] == ["[backend] Task #US-002: Two", "[backend] Task #US-001: One"]


async def test_story_commands_show_in_gates_and_approval_bar(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    prd_doc = {
        "userStories": [
            {
                "id": "US-001",
                "title": "Greet",
                "acceptanceCriteria": [
                    {"id": "AC-1", "text": "says hello", "testCommand": "grep -q hello g.txt"}
                ],
                "priority": 1,
                "passes": False,
            },
            {"id": "US-002", "title": "Later", "priority": 0, "passes": False, "deps": ["US-001"]},
        ]
    }
    (root / "tasks" / "backend_prd.json").write_text(json.dumps(prd_doc, indent=2))
    git(root, "commit", "-qam", "seed")
    script = {
        "stories": {
            "US-001": [create("g.txt", "bye\n"), complete(), create("g.txt", "hello\n"), complete()]
        }
    }
    app, agent = build_app(root, script, overrides={"max_iterations": 1})
    async with app.run_test(size=(140, 40)) as pilot:
        # the waiting story names what it waits on (and is not picked despite priority 0)
        await wait_for(pilot, lambda: app.board.row_count == 2, what="board")
        rows = {str(app.board.get_row_at(i)[0]): app.board.get_row_at(i) for i in range(2)}
        assert str(rows["US-002"][2]) == "waiting on US-001"
        await wait_for(pilot, lambda: approval_waiting(app), what="approval bar")
        # the failed first try went back to the agent; the second passed and is shown
        failed = [o for name, o in agent.received if name == "complete_task" and o.is_error]
        assert failed and "checks: says hello" in failed[0].content
        gates = app.gates
        labels = [str(gates.get_row_at(i)[0]) for i in range(gates.row_count)]
        assert "story: AC-1 (says hello)" in labels
        assert gates.results["story: AC-1"].state == "passed"
        request = app.supervisor.approval
        assert request is not None
        assert "story: AC-1 passed [checks: says hello]" in approval_text(request).plain
        await pilot.press("a")
        await wait_for(pilot, lambda: run_over(app), what="run end")
    assert subjects(root)[0] == "[backend] Task #US-001: Greet"


async def test_plus_minus_with_float_zero_and_missing_priorities(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    path = root / "tasks" / "backend_prd.json"
    path.write_text(
        '{"stories": [\n'
        '  {"id": "a", "title": "A", "priority": 0, "passes": false},\n'
        '  {"id": "b", "title": "B", "priority": 31.1, "passes": false},\n'
        '  {"id": "c", "title": "C", "passes": false}\n'
        "]}\n"
    )
    git(root, "commit", "-qam", "seed")
    app, _ = build_app(root, ONE_EDIT, autostart=False)
    async with app.run_test(size=(140, 30)) as pilot:  # wide enough for the Pri column
        await pilot.pause()
        assert app.board.selected_story == "a"
        assert [str(app.board.get_row_at(i)[1]) for i in range(3)] == ["0", "31.1", ""]
        await pilot.press("down", "plus")  # b above a: they trade numbers, spelled as before
        assert app.board.selected_story == "b"
        assert '"id": "b", "title": "B", "priority": 0,' in path.read_text()
        await pilot.press("down", "down", "plus")  # c (unnumbered) above a: takes a's 31.1
        text = path.read_text()
        assert '{"id": "a", "title": "A", "passes": false}' in text
        assert '{"id": "c", "title": "C", "passes": false, "priority": 31.1}' in text
        assert [str(app.board.get_row_at(i)[0]) for i in range(3)] == ["b", "c", "a"]


async def test_status_line_shows_branch_and_a_standing_no_sandbox_warning(tmp_path: Path) -> None:
    """Unconfined agent commands are said on every frame, not only in a toast that fades."""
    root = make_repo(tmp_path / "ws")
    app, _ = build_app(root, ONE_EDIT, overrides={"sandbox": {"mode": "off"}, "branch": "ralph/x"})
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for(pilot, lambda: approval_waiting(app), what="approval bar")
        line = app.query_one("StatusLine").render().plain
        assert "⎇ ralph/x" in line
        assert "⚠ no sandbox" in line
        await pilot.press("a")
        await wait_for(pilot, lambda: run_over(app), what="run end")
        await pilot.press("q")


@requires_bwrap
async def test_status_line_has_no_warning_under_bwrap(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    app, _ = build_app(root, ONE_EDIT, overrides={"sandbox": {"mode": "bwrap"}})
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for(pilot, lambda: approval_waiting(app), what="approval bar")
        assert "no sandbox" not in app.query_one("StatusLine").render().plain
        await pilot.press("a")
        await wait_for(pilot, lambda: run_over(app), what="run end")
        await pilot.press("q")


def _shown(app: RalphApp, text: str) -> bool:
    return text in " ".join(app.transcript.plain_lines())


async def test_an_event_after_a_quiet_spell_is_on_screen_at_once_and_a_stream_stays_capped(
    tmp_path: Path,
) -> None:
    """Leading-edge flush: a human sees an approval or a notice without waiting a flush
    interval, while a burst after it is still coalesced to one paint per interval. Time and
    timers are the test's: nothing depends on how fast the machine is."""
    from ralph_tui.events import Notice
    from ralph_tui.tui.app import FLUSH_INTERVAL_S

    clock, timers = ManualClock(), ManualTimers()
    root = make_repo(tmp_path / "ws")
    app, _ = build_app(root, ONE_EDIT, autostart=False, clock=clock, flush_timers=timers)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        clock.advance(FLUSH_INTERVAL_S)  # a quiet spell since the last flush
        app.batcher(Notice(level="info", message="first after quiet"))
        await wait_for(pilot, lambda: _shown(app, "first after quiet"))
        assert timers.pending == []  # drawn at once, not on a timer
        app.batcher(Notice(level="info", message="second in the burst"))
        for _ in range(5):
            await pilot.pause()
        assert not _shown(app, "second in the burst")
        assert len(app.batcher) == 1  # held for the next interval, not lost
        assert [delay for delay, _ in timers.pending] == [FLUSH_INTERVAL_S]
        app.batcher(Notice(level="info", message="third in the burst"))
        assert len(timers.pending) == 1  # one paint per interval, however many events
        timers.fire_all()
        await wait_for(pilot, lambda: _shown(app, "third in the burst"))
        assert _shown(app, "second in the burst")


async def test_an_event_the_human_acts_on_skips_the_stream_interval(tmp_path: Path) -> None:
    """Mid-stream (a flush interval already pending), an approval or the run's end is drawn at
    once, with whatever text was held before it: the human never waits on the stream's timer."""
    from ralph_tui.events import Notice, RunStateChanged, TextDelta
    from ralph_tui.tui.app import FLUSH_INTERVAL_S

    clock, timers = ManualClock(), ManualTimers()
    root = make_repo(tmp_path / "ws")
    app, _ = build_app(root, ONE_EDIT, autostart=False, clock=clock, flush_timers=timers)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        clock.advance(FLUSH_INTERVAL_S)
        app.batcher(Notice(level="info", message="opening the stream"))
        await wait_for(pilot, lambda: _shown(app, "opening the stream"))
        app.batcher(TextDelta(text="held text\n"))
        for _ in range(3):
            await pilot.pause()
        assert len(app.batcher) == 1  # the stream waits for its interval
        assert len(timers.pending) == 1
        app.batcher(RunStateChanged(state="waiting"))
        await wait_for(pilot, lambda: len(app.batcher) == 0, what="urgent flush")
        assert _shown(app, "held text")
        assert app.status.state == "waiting"
        assert len(timers.pending) == 1  # the stream's timer never fired


async def test_start_up_lends_the_preflight_thread_the_gil_and_gives_it_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the first frames paint, the preflight's git calls ran at the 5 ms switch interval's
    pace; the app lowers it until the run has started, then restores it (also on a refusal)."""
    import sys

    from ralph_tui.engine import Engine
    from ralph_tui.tui.tuning import STARTUP_SWITCH_INTERVAL_S

    default = sys.getswitchinterval()
    seen: list[float] = []
    preflight = Engine._preflight

    def watched(self: Engine) -> None:
        seen.append(sys.getswitchinterval())
        preflight(self)

    monkeypatch.setattr(Engine, "_preflight", watched)
    root = make_repo(tmp_path / "ws")
    app, _ = build_app(root, ONE_EDIT)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app._run_started, what="run started")
        assert seen == [STARTUP_SWITCH_INTERVAL_S]
        assert sys.getswitchinterval() == default
        await wait_for(pilot, lambda: approval_waiting(app), what="approval")
        await pilot.press("a")
        await wait_for(pilot, lambda: run_over(app), what="run end")

    (root / "dirty.txt").write_text("mine\n", encoding="utf-8")
    refused, _ = build_app(root, ONE_EDIT)
    async with refused.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: refused.error_message is not None, what="refusal")
    assert "uncommitted changes" in (refused.error_message or "")
    assert seen[-1] == STARTUP_SWITCH_INTERVAL_S
    assert sys.getswitchinterval() == default


@pytest.mark.parametrize("workers", [1, 2])
async def test_approve_auto_in_the_tui_commits_when_the_gates_pass_and_still_asks_questions(
    tmp_path: Path, workers: int
) -> None:
    """``run --approve auto`` without ``--headless`` was ignored: the TUI always asked. Now the
    gates' verdict commits (the bar never opens), while an escalation still reaches the human."""
    root = make_repo(tmp_path / "ws", [story("US-001", "One", 1), story("US-002", "Two", 2)])
    script = {
        "stories": {
            "US-001": [create("src/one.py", "ONE = 1\n"), complete()],
            "US-002": [
                {"tool": "escalate", "input": {"question": "Which unit?", "tried": "both"}},
                create("src/two.py", "TWO = 2\n"),
                complete(),
            ],
        }
    }
    overrides = {"approve": "auto", "workers": workers, "sandbox": {"mode": "off"}}
    app, agent = build_app(root, script, overrides=overrides)
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for(pilot, lambda: escalation_waiting(app), what="the escalation")
        await pilot.press(*"metres")
        await pilot.press("enter")
        await wait_for(pilot, lambda: run_over(app), what="run end")
        assert not app.approval_bar.is_open
        assert app.exit_code == 0
        transcript = " ".join(app.transcript.plain_lines())
        assert "» approve" in transcript
    assert sorted(subjects(root)[:2]) == [
        "[backend] Task #US-001: One",
        "[backend] Task #US-002: Two",
    ]
    answers = [outcome for tool, outcome in agent.received if tool == "escalate"]
    assert answers and "metres" in str(answers[0])


async def test_question_mark_and_f1_show_the_keys_and_escape_closes_them(tmp_path: Path) -> None:
    from textual.widgets import HelpPanel

    app, _ = build_app(make_repo(tmp_path / "ws"), {"default": []}, autostart=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        panel = app.screen.query_one(HelpPanel)
        assert panel is not None
        await pilot.press("escape")
        await pilot.pause()
        assert len(app.screen.query(HelpPanel)) == 0
        await pilot.press("f1")
        await pilot.pause()
        assert len(app.screen.query(HelpPanel)) == 1
        await pilot.press("f1")
        await pilot.pause()
        assert len(app.screen.query(HelpPanel)) == 0


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_the_quit_dialog_says_what_the_status_says_and_fits(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    from ralph_tui.tui.screens import confirm_quit

    app, _ = build_app(make_repo(tmp_path / "ws"), {"default": []}, autostart=False)
    async with app.run_test(size=size) as pilot:
        app.push_screen(confirm_quit("waiting"))
        await pilot.pause()
        from textual.widgets import Label

        assert isinstance(app.screen, Confirm)
        rows = [
            "".join(seg.text for seg in label.render_line(y))
            for label in app.screen.query(Label)
            for y in range(label.size.height)
        ]
        words = " ".join(" ".join(rows).split())
        assert "The run is waiting for you." in words
        assert "an unfinished change is saved as a patch in the run folder." in words


def _processes_with(marker: str) -> list[int]:
    """Pids whose command line holds ``marker`` (the agent's long tool call)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker in cmdline.read_bytes().decode(errors="replace"):
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


@pytest.mark.parametrize("keys", [("q", "y", "q"), ("ctrl+c", "ctrl+c")], ids=["q", "ctrl+c"])
async def test_a_second_quit_stops_at_once_during_a_long_tool_call(
    tmp_path: Path, keys: tuple[str, ...]
) -> None:
    """The first quit waits for the next safe point (the end of a 120 s command); the second
    cancels now, as headless's second Ctrl-C: the command's process is gone, nothing is
    committed, and the change is kept as a patch."""
    marker = f"120.{secrets.randbelow(10**6):06d}"  # `sleep 120.xxxxxx`: this test's own
    root = make_repo(tmp_path / "ws")
    script = {
        "default": [
            create("src/x.py", "X = 1\n"),
            {"tool": "bash", "input": {"command": f"sleep {marker}"}},
            complete(),
        ]
    }
    app, _ = build_app(root, script)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: bool(_processes_with(marker)), what="the long tool call")
        *first, second = keys
        await pilot.press(*first)
        await wait_for(pilot, lambda: app.engine.engine.stop_requested, what="the first stop")
        assert app.run_active and _processes_with(marker)  # waiting for the safe point
        await pilot.press(second)
        await wait_for(pilot, lambda: app.return_code is not None, what="the exit")
    assert app.return_code == 130
    assert _processes_with(marker) == []
    assert subjects(root) == ["initial"]
    assert git(root, "status", "--porcelain") == ""
    (patch,) = (root / ".ralph" / "runs").glob("*/patches/*.patch")
    assert "src/x.py" in patch.read_text(encoding="utf-8")


async def test_the_board_cursor_follows_the_running_story_until_the_human_moves_it(
    tmp_path: Path,
) -> None:
    root = make_repo(
        tmp_path / "ws",
        [story("US-001", "One", 1), story("US-002", "Two", 2), story("US-003", "Three", 3)],
    )
    script = {
        "stories": {"US-002": [{"wait": "two"}, create("src/b.py", "B = 2\n"), complete()]},
        "default": [create("src/x.py", "X = 1\n"), complete()],
    }
    app, agent = build_app(root, script, overrides={"approve": "auto"})
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(
            pilot,
            lambda: agent.reached("two") and app.board.state.running == "US-002",
            what="story two running, on the board",
        )
        assert app.board.selected_story == "US-002"  # followed from US-001
        app.board.focus()
        await pilot.press("down", "down")  # the human looks at the passed story (listed last)
        chosen = app.board.selected_story
        assert chosen == "US-001"
        agent.release("two")
        await wait_for(pilot, lambda: app.board.state.running == "US-003", what="story three")
        assert app.board.selected_story == chosen  # left where the human put it
        await wait_for(pilot, lambda: not app.run_active, what="the run to end")


async def test_plus_and_minus_say_why_a_story_cannot_move(tmp_path: Path) -> None:
    root = make_repo(
        tmp_path / "ws",
        [story("US-001", "Done", 1, passes=True), story("US-002", "Open", 2)],
    )
    app, _ = build_app(root, {"default": [{"wait": "hold"}]}, autostart=False)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        app.board.select_story("US-001")
        await pilot.press("plus")
        app.board.select_story("US-002")
        await pilot.press("minus")
        await pilot.pause()
        toasts = [n.message for n in app._notifications]
    assert "US-001 already passes: only open stories have a place in the pick order" in toasts
    assert "US-002 is already last in pick order" in toasts


async def test_the_palette_screenshot_lands_in_the_workspace_with_a_plain_toast(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home-without-downloads"))
    root = make_repo(tmp_path / "ws")
    app, _ = build_app(root, {"default": [{"wait": "hold"}]}, autostart=False)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        app.deliver_screenshot()
        await wait_for(pilot, lambda: bool(list(app._notifications)), what="the toast")
        toasts = [n.message for n in app._notifications]
    (shot,) = (root / ".ralph" / "screenshots").glob("*.svg")
    assert toasts == [f"Saved screenshot to {shot}"]
    assert "<svg" in shot.read_text(encoding="utf-8")


async def test_the_palette_lists_maximize_once(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    app, _ = build_app(root, {"default": [{"wait": "hold"}]}, autostart=False)
    async with app.run_test(size=(120, 40)):
        app.board.focus()
        titles = [c.title for c in app.get_system_commands(app.screen)]
    assert titles.count("Maximize panel") == 1
    assert "Maximize" not in titles and "Minimize" not in titles
    assert len(titles) == len(set(titles))


async def test_during_an_escalation_the_engines_log_entry_is_marked_as_ralph_tuis(
    tmp_path: Path,
) -> None:
    """The blocker entry the engine appends to the progress log is the only change during an
    escalation: the diff's file list says it is ralph-tui's, not the agent's."""
    from textual.widgets import OptionList

    root = make_repo(tmp_path / "ws")
    script = {"default": [{"tool": "escalate", "input": {"question": "Which DB?", "tried": "-"}}]}
    app, _ = build_app(root, script)
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for(pilot, lambda: escalation_waiting(app), what="the escalation bar")
        files = app.diff.query_one("#diff-files", OptionList)
        await wait_for(pilot, lambda: files.option_count == 1, what="the log in the diff")
        label = str(files.get_option_at_index(0).prompt)
    assert label.startswith("M ralph-tui: tasks/")


async def test_status_line_names_the_fallback_agent_and_counts_down_while_all_are_limited(
    tmp_path: Path,
) -> None:
    """A fallback run: the agent at work is on the status line; while every agent is
    rate-limited a countdown to the reset stands there, by the app's clock, until the run
    goes on (the engine's side of these events is tests/test_fallback.py)."""
    from ralph_tui.events import AgentsLimited, AgentSwitched

    clock = ManualClock()
    root = make_repo(tmp_path / "ws")
    app, _ = build_app(root, ONE_EDIT, autostart=False, clock=clock)

    def line() -> str:
        return str(app.query_one("StatusLine").render().plain)

    async with app.run_test(size=(200, 40)) as pilot:
        await pilot.pause()
        app.batcher(AgentSwitched(story_id="US-001", agent="claude-code"))
        app.batcher(
            AgentSwitched(
                story_id="US-001",
                agent="anthropic:claude-haiku-4-5",
                previous="claude-code",
                reason="usage limit",
            )
        )
        await wait_for(pilot, lambda: "│ anthropic:claude-haiku-4-5 │" in line(), what="agent")
        assert "rate-limited" not in line()
        app.batcher(AgentsLimited(story_id="US-001", wait_s=125.0, resume_agent="claude-code"))
        await wait_for(pilot, lambda: "⏸ rate-limited: claude-code in 2m05s" in line())
        clock.advance(65)  # the status line's one-second tick reads the app's clock
        await wait_for(pilot, lambda: "⏸ rate-limited: claude-code in 1m00s" in line())
        app.batcher(
            AgentSwitched(story_id="US-001", agent="claude-code", previous="", reason="reset")
        )
        await wait_for(pilot, lambda: "rate-limited" not in line(), what="countdown ends")
        assert "│ claude-code │" in line()
