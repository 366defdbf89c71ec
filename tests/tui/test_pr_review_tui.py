"""Reviewing like a pull request in the TUI (Pilot, the real engine and scripted agent):
``[`` ``]`` files, ``{`` ``}`` hunks, ``c`` comments on the line under the cursor, ``x`` / ``X``
drop a hunk / a file; ``r`` sends the comments, ``a`` gates what remains and asks again."""

from __future__ import annotations

from pathlib import Path

from ralph_tui.tui.app import RalphApp
from tests.support.repo import git, make_repo
from tests.tui.support import build_app, complete, create, wait_for

BIG = "".join(f"line {n}\n" for n in range(1, 31))
CHANGED = BIG.replace("line 2\n", "changed 2\n").replace("line 29\n", "changed 29\n")


def _repo(tmp_path: Path) -> Path:
    root = make_repo(tmp_path / "ws")
    (root / "big.txt").write_text(BIG)
    git(root, "add", "big.txt")
    git(root, "commit", "-qm", "big")
    return root


def waiting(app: RalphApp) -> bool:
    return app.supervisor.approval is not None and app.approval_bar.is_open


def cursor_text(app: RalphApp) -> str:
    line = app.diff.pane.line_at_cursor()
    return line.text if line is not None else ""


async def test_keys_move_by_file_and_hunk_and_a_comment_reaches_the_agent(
    tmp_path: Path,
) -> None:
    root = _repo(tmp_path)
    script = {
        "default": [
            create("big.txt", CHANGED),
            create("zz.py", "Z = 1\n"),
            complete(),
            create("big.txt", BIG.replace("line 2\n", "changed 2\n")),
            complete(),
        ]
    }
    app, agent = build_app(root, script)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: waiting(app), what="approval")
        await wait_for(pilot, lambda: app.diff.selected_path == "big.txt", what="diff")
        app.diff.pane.focus()
        await pilot.press("right_square_bracket")
        assert app.diff.selected_path == "zz.py"
        await pilot.press("left_square_bracket")
        assert app.diff.selected_path == "big.txt"
        await pilot.press("right_curly_bracket")
        assert cursor_text(app).startswith("@@ -1,")
        await pilot.press("right_curly_bracket")
        assert cursor_text(app).startswith("@@ -26,")
        await pilot.press("left_curly_bracket")
        assert cursor_text(app).startswith("@@ -1,")
        await pilot.press("right_curly_bracket", *["down"] * 5)
        assert cursor_text(app) == "+changed 29"
        await pilot.press("c", *"never mind", "escape")  # escape leaves the box, keeps nothing
        assert not app.diff.commenting and app.diff.review.summary() == ""
        assert app.focused is app.diff.pane
        await pilot.press("c")
        assert app.diff.commenting
        await pilot.press(*"keep line 29", "enter")
        assert not app.diff.commenting
        assert app.diff.review.summary() == "1 comment"
        assert "1 comment" in str(app.approval_bar.query_one("#approval-summary").render())
        # a rejection needs no typed feedback when the diff carries comments
        await pilot.press("r", "enter")
        await wait_for(pilot, lambda: waiting(app) and len(agent.received) >= 4, what="2nd ask")
        rejected = [o for name, o in agent.received if name == "complete_task" and o.is_error]
        assert "- big.txt:29\n  > +changed 29\n  keep line 29" in rejected[0].content
        assert app.diff.review.summary() == ""  # a new approval starts a new draft
        await pilot.press("a")
        await wait_for(pilot, lambda: app.exit_code is not None, what="run end")
    assert "changed 29" not in git(root, "show", "HEAD:big.txt")


async def test_dropped_hunk_and_file_are_gated_again_and_never_committed(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    script = {"default": [create("big.txt", CHANGED), create("zz.py", "Z = 1\n"), complete()]}
    app, _ = build_app(root, script)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: waiting(app), what="approval")
        await wait_for(pilot, lambda: app.diff.selected_path == "big.txt", what="diff")
        app.diff.pane.focus()
        await pilot.press("right_curly_bracket", "right_curly_bracket", "x")
        await pilot.press("right_square_bracket", "X")
        assert app.diff.review.summary() == "1 hunk and 1 file dropped"
        await pilot.press("x")  # x again takes a drop back; here on zz.py's only hunk
        await pilot.press("x")
        first = app.supervisor.approval
        await pilot.press("a")
        # asked again, about the tree without them, after the gates ran again
        await wait_for(
            pilot, lambda: waiting(app) and app.supervisor.approval is not first, what="2nd ask"
        )
        request = app.supervisor.approval
        assert request is not None and "zz.py" not in request.diffstat
        assert "big.txt | 2 +-" in request.diffstat
        await wait_for(pilot, lambda: [f.path for f in app.diff.files] == ["big.txt"], what="diff")
        assert "» review: dropped zz.py (the whole file)" in app.transcript.plain_lines()
        await pilot.press("a")
        await wait_for(pilot, lambda: app.exit_code is not None, what="run end")
    committed = git(root, "show", "HEAD:big.txt")
    assert "changed 2\n" in committed and "changed 29" not in committed
    assert "zz.py" not in git(root, "show", "--name-only", "--format=", "HEAD")
    progress = (root / "tasks/backend_progress.txt").read_text()
    assert "- dropped big.txt hunk 2 (@@ -26,5 +26,5 @@ line 25)\n" in progress
    assert "- dropped zz.py (the whole file)\n" in progress


async def test_comment_keys_only_during_an_approval(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    app, _ = build_app(root, {"default": []}, autostart=False, allow_dirty=True)
    (root / "big.txt").write_text(CHANGED)
    async with app.run_test(size=(120, 40)) as pilot:
        app.load_diff()
        await wait_for(pilot, lambda: app.diff.selected_path == "big.txt", what="diff")
        app.diff.pane.focus()
        await pilot.press("right_curly_bracket", "down", "c", "x")
        assert not app.diff.commenting and app.diff.review.summary() == ""
        assert app.diff.check_action("comment", ()) is False


async def test_brackets_are_text_in_the_story_editor(tmp_path: Path) -> None:
    """``[ ] { }`` are priority keys of the app: never over a dialog or in a text box."""
    from textual.widgets import TextArea

    root = _repo(tmp_path)
    app, _ = build_app(root, {"default": []}, autostart=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("e")
        box = app.screen.query_one("#story-description", TextArea)
        box.focus()
        await pilot.pause()
        box.text = ""
        await pilot.press("right_square_bracket", "left_curly_bracket", "x")
        assert box.text == "]{x"
