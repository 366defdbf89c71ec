"""The pieces that keep the UI fast: the batcher, the transcript tail, the lazy diff pane."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from rich.text import Text

from ralph_tui.events import Notice, TextDelta
from ralph_tui.tui.batcher import EventBatcher
from ralph_tui.tui.widgets.transcript_log import row_breaks
from tests.support.repo import make_repo
from tests.tui.support import build_app


def test_batcher_merges_consecutive_deltas_and_keeps_order() -> None:
    armed: list[int] = []
    batcher = EventBatcher(on_first=lambda: armed.append(1))
    for piece in ("Hel", "lo ", "wor"):
        batcher(TextDelta(text=piece))
    batcher(Notice(level="info", message="n"))
    batcher(TextDelta(text="ld"))
    assert armed == [1]  # one flush asked for, however many events came
    events = batcher.drain()
    assert [type(e).__name__ for e in events] == ["TextDelta", "Notice", "TextDelta"]
    assert isinstance(events[0], TextDelta) and events[0].text == "Hello wor"
    assert batcher.received == 5 and len(batcher) == 0
    # parallel runs: deltas of two workers are never merged, and keep their worker
    batcher(TextDelta(text="a", worker=1))
    batcher(TextDelta(text="b", worker=2))
    batcher(TextDelta(text="c", worker=2))
    merged = batcher.drain()
    assert [(e.text, e.worker) for e in merged if isinstance(e, TextDelta)] == [
        ("a", 1),
        ("bc", 2),
    ]


@dataclass(frozen=True)
class FakeDiff:
    path: str
    status: str
    additions: int
    deletions: int
    binary: bool
    patch: str


async def test_transcript_tail_and_diff_pane(tmp_path: Path) -> None:
    app, _ = build_app(make_repo(tmp_path / "ws"), {"default": []}, autostart=False)
    async with app.run_test(size=(120, 40)) as pilot:
        transcript = app.transcript
        transcript.add_text("first line\nsecond ")
        transcript.add_text("half")
        assert transcript.partial == "second half"
        transcript.add_tool_call("bash", {"command": "ls"})
        await pilot.pause()
        lines = transcript.plain_lines()
        assert [line.rstrip() for line in lines] == ["first line", "second half", "▶ bash $ ls"]
        assert transcript.partial == ""

        patch = "".join(f"+line {i}\n" for i in range(20_000))
        app.diff.show_files([FakeDiff("big.py", "A", 20_000, 0, False, patch)])
        await pilot.pause()
        pane = app.diff.pane
        assert pane.line_count == 20_000
        assert len(pane._cache) <= pane.size.height + 1  # only the rows on screen were drawn
        pane.focus()
        await pilot.press("m")
        assert app.screen.maximized is app.query_one("#diff-panel")
        await pilot.press("m")
        assert app.screen.maximized is None
        await pilot.press("tab")
        assert app.focused is not pane


def test_row_breaks_wrap_at_spaces_and_by_cells() -> None:
    assert row_breaks("short", 10) == []
    assert row_breaks("aaaa bbbb cccc", 10) == [10]  # after a space: words kept whole
    assert row_breaks("aaaa bbbbbbb", 10) == [5]
    assert row_breaks("x" * 25, 10) == [10, 20]  # no space: cut at the width
    wide = "漢字" * 6  # two cells each: 24 cells
    edges = [0, *row_breaks(wide, 10), len(wide)]
    assert all(len(wide[a:b]) * 2 <= 10 for a, b in pairwise(edges))


async def test_transcript_log_wraps_once_keeps_colours_and_bounds_memory(tmp_path: Path) -> None:
    app, _ = build_app(make_repo(tmp_path / "ws"), {"default": []}, autostart=False)
    async with app.run_test(size=(120, 40)) as pilot:
        log = app.transcript.log_widget
        log.max_lines = 1000
        log.write(Text("word " * 100, style="bold red"))
        await pilot.pause()
        width = log.scrollable_content_region.width
        rows = log.plain_rows()
        assert len(rows) > 1 and all(len(r) <= width for r in rows)
        assert "".join(rows) == "word " * 100  # nothing lost or doubled at the breaks
        strip = log.render_line(0)  # short content starts at the top
        assert any(seg.style is not None and seg.style.bold for seg in strip)
        for i in range(3000):
            log.write(Text(f"line {i}"))
        assert log.line_count <= 1000 + 500  # trimmed in batches
        assert log.plain_rows()[-1] == "line 2999"
        await pilot.resize_terminal(80, 40)
        await pilot.pause()
        assert log.plain_rows()[-1] == "line 2999"
        assert all(len(r) <= log.scrollable_content_region.width for r in log.plain_rows())


async def test_an_unchanged_diff_is_not_rebuilt_and_a_longer_patch_lays_out_nothing(
    tmp_path: Path,
) -> None:
    """The diff refreshes after every tool call and commit. The same files again keep their
    list (no layout pass of the whole screen, the reader's place kept); a new patch for the
    pane only moves its scrollbars."""
    from textual.widgets import OptionList

    app, _ = build_app(make_repo(tmp_path / "ws"), {"default": []}, autostart=False)
    async with app.run_test(size=(120, 40)) as pilot:
        patch = "".join(f"+line {i}\n" for i in range(200))
        files = [
            FakeDiff("a.py", "M", 200, 0, False, patch),
            FakeDiff("b.py", "A", 1, 0, False, "+b\n"),
        ]
        app.diff.show_files(files)
        await pilot.pause()
        options = app.diff.query_one("#diff-files", OptionList)
        first = options.get_option_at_index(0)
        options.highlighted = 1
        await pilot.pause()
        assert app.diff.selected_path == "b.py"
        app.diff.show_files([FakeDiff(*vars(f).values()) for f in files])  # equal, not the same
        await pilot.pause()
        assert options.get_option_at_index(0) is first  # the list was left alone
        assert app.diff.selected_path == "b.py"

        options.highlighted = 0  # a.py: 200 rows, so the pane has its scrollbar
        await pilot.pause()
        layouts: list[object] = []
        pane = app.diff.pane
        original = pane.refresh

        def spy(*regions: object, **flags: bool) -> object:
            if flags.get("layout"):
                layouts.append(flags)
            return original(*regions, **flags)  # type: ignore[arg-type]

        pane.refresh = spy  # type: ignore[method-assign]
        pane.show_patch("a.py", patch + "".join(f"+more {i}\n" for i in range(300)))
        assert pane.virtual_size.height == 500
        assert layouts == []  # the scrollbar was already there: nothing else moved


async def test_hidden_characters_in_a_diff_are_shown_where_they_stand(tmp_path: Path) -> None:
    """Escape sequences (cursor moves, a screen clear, OSC 52), bidi controls and zero-width
    characters in a changed file reach no terminal raw: each is its escape, highlighted."""
    app, _ = build_app(make_repo(tmp_path / "ws"), {"default": []}, autostart=False)
    hostile = [
        "+ok = 1\x1b[1A\x1b[2K# harmless\n",
        "+\x1b]52;c;Y3VybCBldmlsIHwgc2g=\x07\n",
        "+access = 'user\u202e \u2066// admin\u2069 \u2066'\n",
        "+if is_admin\u200b:\n",
    ]
    patch = "diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -0,0 +1,4 @@\n"
    async with app.run_test(size=(120, 40)) as pilot:
        app.diff.show_files([FakeDiff("x\x1b[31m.py", "A", 4, 0, False, patch + "".join(hostile))])
        await pilot.pause()
        pane = app.diff.pane
        rows = [pane.render_line(y) for y in range(8)]
        text = "\n".join("".join(seg.text for seg in row) for row in rows)
        assert "\x1b" not in text and "\u202e" not in text and "\u200b" not in text
        assert "ok = 1\\x1b[1A\\x1b[2K# harmless" in text
        assert "\\x1b]52;c;Y3VybCBldmlsIHwgc2g=\\x07" in text
        assert "'user\\u202e \\u2066// admin\\u2069" in text
        assert "if is_admin\\u200b:" in text
        hidden = [seg for row in rows for seg in row if seg.text == "\\u202e"]
        assert hidden and hidden[0].style is not None and hidden[0].style.bgcolor is not None
        label = app.diff.query_one("#diff-files").get_option_at_index(0).prompt
        assert "\x1b" not in str(label) and "\\x1b[31m" in str(label)


async def test_the_transcript_follows_until_the_reader_scrolls_up(tmp_path: Path) -> None:
    """A panel that shrinks (the approval bar opens) keeps following; scrolling up stops it,
    the border says how many lines came meanwhile, and End follows again."""
    app, _ = build_app(make_repo(tmp_path / "ws"), {"default": []}, autostart=False)
    async with app.run_test(size=(120, 40)) as pilot:
        log = app.transcript.log_widget
        for n in range(200):
            log.write(Text(f"line {n}"))
        await pilot.pause()
        assert log.plain_rows()[-1] == "line 199" and log.is_vertical_scroll_end
        log.styles.height = 5  # the panel shrinks, as when a bar opens below it
        await pilot.pause()
        for n in range(200, 210):
            log.write(Text(f"line {n}"))
        await pilot.pause()
        assert log.following and log.is_vertical_scroll_end  # the newest line is on screen
        log.focus()
        await pilot.press("pageup")
        assert not log.following
        for n in range(210, 213):
            log.write(Text(f"line {n}"))
        await pilot.pause()
        panel = app.query_one("#transcript-panel")
        assert panel.border_subtitle == "3 new lines, End to follow"
        assert not log.is_vertical_scroll_end  # the reader's place is kept
        await pilot.press("end")
        await pilot.pause()
        assert log.following and panel.border_subtitle == ""
        log.write(Text("line 213"))
        await pilot.pause()
        assert log.is_vertical_scroll_end


async def test_a_narrow_board_gives_the_priority_and_cost_width_to_the_titles(
    tmp_path: Path,
) -> None:
    """At 80x24 the ID, Pri, Status and Cost columns left five characters of a title; on a
    narrow board the priority (rows are in pick order) and the cost (the status line has the
    run's) make way, and come back when the terminal is wide again."""
    from tests.support.repo import make_repo, story
    from tests.tui.support import build_app

    title = "Add the inventory ledger export to CSV files"
    root = make_repo(tmp_path / "ws", [story("US-001", title)])
    app, _ = build_app(root, {"stories": {}}, autostart=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        board = app.board
        assert [c.key.value for c in board.ordered_columns] == ["id", "status", "title"]
        others = sum(
            c.get_render_width(board) for c in board.ordered_columns if c.key.value != "title"
        )
        assert board.size.width - others >= 16  # was 5 with every column shown
        assert str(board.get_cell("US-001", "title")) == title
        await pilot.resize_terminal(200, 50)
        await pilot.pause()
        assert [c.key.value for c in board.ordered_columns] == [
            "id",
            "priority",
            "status",
            "cost",
            "title",
        ]
        assert board.selected_story == "US-001"
