"""The Diff panel: changed files on the left, the selected file's hunks on the right.

A large diff must show at once, so nothing is rendered up front: the patch is split into lines
and ``DiffPane`` (a line-API ``ScrollView``) highlights only the rows on screen, caching them.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import ClassVar, Literal, Protocol

from rich.segment import Segment
from rich.style import Style
from rich.syntax import Syntax
from rich.text import Span, Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Input, OptionList
from textual.widgets.option_list import Option

from ralph_tui.pr_review import DiffLine, patch_lines
from ralph_tui.safety.text import counted, escape_controls, has_hidden, reveal_hidden
from ralph_tui.supervisor import DroppedPart, ReviewComment
from ralph_tui.tui.widgets.scrolling import set_virtual_size


class FileDiffLike(Protocol):
    """The fields of ``ralph_tui.git.repo.FileDiff`` that the panel reads."""

    @property
    def path(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def additions(self) -> int: ...
    @property
    def deletions(self) -> int: ...
    @property
    def binary(self) -> bool: ...
    @property
    def patch(self) -> str: ...


_ADDED_BG = Style(bgcolor="#12361b")
_REMOVED_BG = Style(bgcolor="#3d1418")
_HUNK = Style(color="cyan", bold=True)
_META = Style(color="bright_black", bold=True)
_NOTE = Style(color="black", bgcolor="yellow", bold=True)
_HIDDEN = Style(color="white", bgcolor="red", bold=True)
_COMMENT = Style(color="black", bgcolor="cyan")
_DROPPED = Style(dim=True, strike=True)
_DROP_MARK = Style(color="black", bgcolor="magenta", bold=True)
_CURSOR = Style(bgcolor="grey30")
_STATUS_STYLE = {"A": "green", "D": "red", "M": "yellow", "R": "magenta", "?": "green"}
_HIGHLIGHT_CACHE = 4096


@lru_cache(maxsize=64)
def _highlighter(lexer: str) -> Syntax:
    return Syntax("", lexer, theme="monokai")


def _as_style(style: str | Style) -> Style:
    return style if isinstance(style, Style) else Style.parse(style)


def reveal_line(line: str) -> Text:
    """A line holding characters a reviewer cannot see (escape sequences, bidi controls,
    zero-width ones): each shown as its escape, highlighted where it stands. No syntax colours:
    a lexer must not be the one to decide what such a line looks like."""
    text = Text()
    for piece, hidden in reveal_hidden(line):
        text.append(piece, style=_HIDDEN if hidden else "")
    if line[:1] == "+":
        text.stylize(_ADDED_BG)
    elif line[:1] == "-":
        text.stylize(_REMOVED_BG)
    return text


def highlight_line(line: str, lexer: str) -> Text:
    """One diff line as styled text: syntax colours on the code, a tint for +/- lines."""
    if has_hidden(line):
        return reveal_line(line)
    if line.startswith("@@"):
        return Text(line, style=_HUNK)
    if line.startswith("! "):  # the engine's note: a mode, a symlink's target, a submodule
        return Text(line, style=_NOTE)
    if line.startswith("Binary file "):
        return Text(line, style=_NOTE)
    if line.startswith(("diff --git", "index ", "--- ", "+++ ", "new file", "deleted file")):
        return Text(line, style=_META)
    if line.startswith(("similarity", "rename ", "old mode", "new mode", "Binary files")):
        return Text(line, style=_META)
    marker, code = (line[:1], line[1:]) if line[:1] in "+- " and line else ("", line)
    coloured = _highlighter(lexer).highlight(code)
    coloured.rstrip()
    # keep the theme's foreground colours, drop its background so the +/- tint shows
    spans = [Span(s.start, s.end, Style(color=_as_style(s.style).color)) for s in coloured.spans]
    text = Text(marker, style="bold")
    text.append_text(Text(coloured.plain, spans=spans))
    if marker == "+":
        text.stylize(_ADDED_BG)
        text.stylize(Style(color="green", bold=True), 0, 1)
    elif marker == "-":
        text.stylize(_REMOVED_BG)
        text.stylize(Style(color="red", bold=True), 0, 1)
    return text


Side = Literal["new", "old"]
Anchor = tuple[str, Side, int]  # (path, side, line)


@dataclass
class ReviewDraft:
    """The human's review of the approval on screen: line comments and dropped parts. Kept
    by ``DiffView`` until the approval is decided; sent with the decision."""

    comments: dict[Anchor, str] = field(default_factory=dict)
    drops: set[tuple[str, int | None]] = field(default_factory=set)

    def file_dropped(self, path: str) -> bool:
        return (path, None) in self.drops

    def dropped_hunks(self, path: str) -> frozenset[int]:
        return frozenset(h for p, h in self.drops if p == path and h is not None)

    def comments_on(self, path: str) -> dict[tuple[Side, int], str]:
        return {(side, line): text for (p, side, line), text in self.comments.items() if p == path}

    def comment_list(self) -> list[ReviewComment]:
        return [
            ReviewComment(path, line, text, side)
            for (path, side, line), text in sorted(self.comments.items())
        ]

    def drop_list(self) -> list[DroppedPart]:
        whole = {p for p, h in self.drops if h is None}
        return [
            DroppedPart(path, hunk)
            for path, hunk in sorted(self.drops, key=lambda d: (d[0], -1 if d[1] is None else d[1]))
            if hunk is None or path not in whole
        ]

    def summary(self) -> str:
        """``2 comments · 1 hunk and 1 file dropped`` (empty: nothing reviewed)."""
        parts = []
        if self.comments:
            parts.append(counted(len(self.comments), "comment"))
        hunks = sum(1 for _p, h in self.drops if h is not None)
        files = sum(1 for _p, h in self.drops if h is None)
        dropped = [counted(n, word) for n, word in ((hunks, "hunk"), (files, "file")) if n]
        if dropped:
            parts.append(" and ".join(dropped) + " dropped")
        return " · ".join(parts)


class DiffPane(ScrollView, can_focus=True):
    """Hunks of one file; rows are highlighted when first drawn.

    A cursor row (drawn while the pane has focus) is what ``c`` comments on and ``x`` drops
    the hunk of; each comment is a row of its own under the line it is about.
    """

    DEFAULT_CSS = """
    DiffPane { height: 1fr; width: 1fr; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "cursor_page(-1)", "Page up", show=False),
        Binding("pagedown", "cursor_page(1)", "Page down", show=False),
        Binding("home", "cursor_to(0)", "Top", show=False),
        Binding("end", "cursor_to(-1)", "Bottom", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._lines: list[str] = []
        self._info: list[DiffLine] = []
        self._rows: list[tuple[int, str | None]] = []  # (patch line, comment text or None)
        self._lexer = "text"
        self._cache: dict[int, Strip] = {}
        self._path: str | None = None
        self._comments: Mapping[tuple[Side, int], str] = {}
        self._dropped: frozenset[int] = frozenset()
        self._file_dropped = False
        self.cursor = 0
        # the comment box while it is open: keys read before it took the focus go to it
        self.redirect: Widget | None = None
        # the diff's review keys (``c``, ``x``, ``X``): True when the key was acted on
        self.on_review_key: Callable[[str], bool] | None = None

    @property
    def line_count(self) -> int:
        return len(self._rows)

    @property
    def path(self) -> str | None:
        return self._path

    def show_patch(
        self,
        path: str,
        patch: str,
        comments: Mapping[tuple[Side, int], str] | None = None,
        dropped: Collection[int] = (),
        file_dropped: bool = False,
    ) -> None:
        same_file = path == self._path
        self._lines = patch.splitlines()
        self._info = patch_lines(patch)
        self._lexer = Syntax.guess_lexer(path) if path else "text"
        self._path = path
        self._set_review(comments or {}, dropped, file_dropped)
        if not same_file:  # a refresh of the same file keeps the reader's place
            self.cursor = 0
            self.scroll_to(0, 0, animate=False)
        self.cursor = min(self.cursor, max(len(self._rows) - 1, 0))

    def set_review(
        self,
        comments: Mapping[tuple[Side, int], str],
        dropped: Collection[int],
        file_dropped: bool,
    ) -> None:
        """The draft's comments and drops on this file changed: the rows are redrawn."""
        self._set_review(comments, dropped, file_dropped)

    def _set_review(
        self,
        comments: Mapping[tuple[Side, int], str],
        dropped: Collection[int],
        file_dropped: bool,
    ) -> None:
        self._comments = dict(comments)
        self._dropped = frozenset(dropped)
        self._file_dropped = file_dropped
        rows: list[tuple[int, str | None]] = []
        room = max(self.size.width - 5, 20)  # a comment wraps to the pane, never scrolls off
        for index, info in enumerate(self._info):
            rows.append((index, None))
            anchor = info.anchor
            if anchor is not None and anchor in self._comments:
                text = escape_controls(self._comments[anchor], multiline=False)
                rows += [(index, piece) for piece in textwrap.wrap(text, room) or [""]]
        self._rows = rows
        self._cache.clear()
        width = max((len(line) for line in self._lines), default=0)
        if self._dropped or file_dropped:
            width += len("  ✂ dropped ")
        set_virtual_size(self, Size(width + 1, len(self._rows)))
        self.refresh()

    def on_resize(self) -> None:
        if self._comments:  # comments wrap to the new width
            self._set_review(self._comments, self._dropped, self._file_dropped)

    def reveal_comment(self) -> None:
        """Scroll so the comment rows under the cursor's line are on screen."""
        row = self.cursor
        while row + 1 < len(self._rows) and self._rows[row + 1][1] is not None:
            row += 1
        self._reveal(row)

    def show_message(self, message: str) -> None:
        self._lines = [message]
        self._info = [DiffLine(None, None, None, message)]
        self._rows = [(0, None)]
        self._path = None
        self._lexer = "text"
        self._comments, self._dropped, self._file_dropped = {}, frozenset(), False
        self._cache.clear()
        self.cursor = 0
        set_virtual_size(self, Size(len(message), 1))
        self.refresh()

    # -- the cursor ----------------------------------------------------------------------

    def line_at_cursor(self) -> DiffLine | None:
        """The diff line under the cursor (a comment row stands for the line it is about)."""
        if not self._rows or self._path is None:
            return None
        index, _comment = self._rows[min(self.cursor, len(self._rows) - 1)]
        return self._info[index]

    def move_cursor(self, row: int) -> None:
        if not self._rows:
            return
        self.cursor = max(0, min(row, len(self._rows) - 1))
        self._reveal(self.cursor)

    def _reveal(self, row: int) -> None:
        top = int(self.scroll_offset.y)
        height = max(self.scrollable_content_region.height, 1)
        if row < top:
            self.scroll_to(y=row, animate=False)
        elif row >= top + height:
            self.scroll_to(y=row - height + 1, animate=False)
        self.refresh()

    def action_cursor(self, step: int) -> None:
        self.move_cursor(self.cursor + step)

    def action_cursor_page(self, direction: int) -> None:
        self.move_cursor(self.cursor + direction * max(self.scrollable_content_region.height, 1))

    def action_cursor_to(self, row: int) -> None:
        self.move_cursor(row if row >= 0 else len(self._rows) - 1)

    def hunk_rows(self) -> list[int]:
        """The rows of the hunk headers (``@@``), top to bottom."""
        return [
            row
            for row, (index, comment) in enumerate(self._rows)
            if comment is None
            and self._info[index].text.startswith("@@")
            and self._info[index].hunk is not None
        ]

    def on_key(self, event: events.Key) -> None:
        """The pane's keys are acted on here, in the order they came, not as bindings: Textual
        runs a binding when the key has bubbled up to the app, after the keys typed right
        behind it were already handed to this pane. So ``c`` then a comment's text would
        leave the text here (where ``d`` is the app's discard) and ``down`` then ``c`` would
        comment on the line the cursor was on before. While the comment box is open, the keys
        that reach the pane are the box's."""
        box = self.redirect
        if box is not None and box.display:
            act: Callable[[], object] | None = partial(
                box.post_message, events.Key(event.key, event.character)
            )
        else:
            act = self._moves.get(event.key) or (
                partial(self.on_review_key, event.key) if self.on_review_key else None
            )
        if act is None:
            return
        if act() is False:  # the review key is not taken now: the app may have it
            return
        event.stop()
        event.prevent_default()

    @property
    def _moves(self) -> dict[str, Callable[[], object]]:
        return {
            "up": partial(self.action_cursor, -1),
            "down": partial(self.action_cursor, 1),
            "pageup": partial(self.action_cursor_page, -1),
            "pagedown": partial(self.action_cursor_page, 1),
            "home": partial(self.action_cursor_to, 0),
            "end": partial(self.action_cursor_to, -1),
        }

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    # -- drawing -------------------------------------------------------------------------

    def _row_text(self, row: int) -> Text:
        index, comment = self._rows[row]
        info = self._info[index]
        if comment is not None:
            first = self._rows[row - 1][1] is None
            return Text("  » " if first else "    ", style=_COMMENT) + Text(comment, _COMMENT)
        text = highlight_line(self._lines[index], self._lexer)
        dropped = self._file_dropped or (info.hunk is not None and info.hunk in self._dropped)
        if dropped:
            text.stylize(_DROPPED)
            if info.text.startswith("@@") or (self._file_dropped and index == 0):
                text.append("  ✂ dropped ", style=_DROP_MARK)
        return text

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        row = y + scroll_y
        width = self.size.width
        if row >= len(self._rows):
            return Strip.blank(width, self.rich_style)
        strip = self._cache.get(row)
        if strip is None:
            text = self._row_text(row)
            segments = [
                Segment(seg.text, seg.style)
                for seg in text.render(self.app.console)
                if seg.text != "\n"
            ]
            strip = Strip(segments)
            if len(self._cache) > _HIGHLIGHT_CACHE:
                self._cache.clear()
            self._cache[row] = strip
        shown = (
            strip.crop(scroll_x, scroll_x + width)
            .extend_cell_length(width)
            .apply_style(self.rich_style)
        )
        if row == self.cursor and self.has_focus and self._path is not None:
            shown = Strip(Segment.apply_style(list(shown), post_style=_CURSOR))
        return shown


def _identity(diff: FileDiffLike) -> tuple[str, str, int, int, bool, str]:
    return (diff.path, diff.status, diff.additions, diff.deletions, diff.binary, diff.patch)


class DiffView(Horizontal):
    """The working tree against HEAD, one file at a time; during an approval, reviewed like a
    pull request: ``[`` ``]`` move between files, ``{`` ``}`` between hunks, ``c`` comments on
    the line under the cursor, ``x`` drops the hunk under it, ``X`` the whole file."""

    DEFAULT_CSS = """
    DiffView { height: 1fr; }
    DiffView > #diff-files {
        width: 30%; min-width: 16; max-width: 50; height: 1fr;
        border: none; border-right: vkey $foreground 20%; padding: 0;
    }
    DiffView > #diff-files:focus { border: none; border-right: vkey $accent; }
    DiffView > #diff-right { width: 1fr; height: 1fr; }
    DiffView #diff-comment {
        display: none; height: 1; border: none; padding: 0 1; background: $boost;
    }
    DiffView #diff-comment:focus { border: none; background: $accent 30%; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "comment", "Comment", id="comment"),
        Binding("x", "drop_hunk", "Drop hunk", id="drop_hunk"),
        Binding("X", "drop_file", "Drop file", id="drop_file"),
    ]

    class ReviewChanged(Message):
        """A comment or a drop was added or taken back (the approval bar counts them)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.files: list[FileDiffLike] = []
        self._bookkeeping: frozenset[str] = frozenset()  # the PRD and progress log
        self._selected: str | None = None
        self.review = ReviewDraft()
        self.reviewing = False  # an approval is open: comments and drops are taken
        self._commenting: Anchor | None = None

    def compose(self) -> ComposeResult:
        yield OptionList(id="diff-files")
        with Vertical(id="diff-right"):
            yield DiffPane(id="diff-pane")
            yield Input(id="diff-comment")

    def on_mount(self) -> None:
        self.query_one(DiffPane).show_message("No changes against HEAD.")
        self.pane.on_review_key = self.review_key

    def review_key(self, key: str) -> bool:
        """A review key read by the pane (see ``DiffPane.on_key``)."""
        actions = {"c": self.action_comment, "x": self.action_drop_hunk, "X": self.action_drop_file}
        action = actions.get(key)
        if action is None or not self.reviewing:
            return False
        action()
        return True

    @property
    def pane(self) -> DiffPane:
        return self.query_one(DiffPane)

    @property
    def selected_path(self) -> str | None:
        return self._selected

    # -- the review ----------------------------------------------------------------------

    def start_review(self) -> None:
        """An approval opened: a fresh draft (a re-asked approval shows a new tree)."""
        self.reviewing = True
        self.review = ReviewDraft()
        self.close_comment()  # a box left open was about the previous tree
        self._review_shown()
        self.app.refresh_bindings()

    def end_review(self) -> None:
        self.reviewing = False
        self.review = ReviewDraft()
        self.close_comment()
        self._review_shown()
        self.app.refresh_bindings()

    @property
    def commenting(self) -> bool:
        return self.has_class("-commenting")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("comment", "drop_hunk", "drop_file"):
            return self.reviewing  # only while an approval is open (hidden otherwise)
        return True

    def action_file(self, step: int) -> None:
        if not self.files:
            return
        paths = [f.path for f in self.files]
        here = paths.index(self._selected) if self._selected in paths else 0
        index = (here + step) % len(paths)
        self.query_one("#diff-files", OptionList).highlighted = index
        self._show(self.files[index])

    def action_hunk(self, step: int) -> None:
        pane = self.pane
        rows = pane.hunk_rows()
        after = [r for r in rows if r > pane.cursor] if step > 0 else []
        before = [r for r in rows if r < pane.cursor] if step < 0 else []
        if after:
            pane.move_cursor(after[0])
        elif before:
            pane.move_cursor(before[-1])
        else:  # past the last hunk of the file: the next file's first one
            self.action_file(step)
            rows = self.pane.hunk_rows()
            if rows:
                self.pane.move_cursor(rows[0] if step > 0 else rows[-1])
        self.focus_pane()

    def focus_pane(self) -> None:
        """Focus the pane now, not after the keys already read (``focus()`` is deferred: a
        quick ``}`` then ``down`` would move the board's cursor instead)."""
        self.screen.set_focus(self.pane)

    def action_comment(self) -> None:
        line = self.pane.line_at_cursor()
        anchor = line.anchor if line is not None else None
        if not self.reviewing or self._selected is None:
            return
        if anchor is None:
            self.app.notify("Put the cursor on a line of code to comment on it.", timeout=3)
            return
        side, number = anchor
        self._commenting = (self._selected, side, number)
        box = self.query_one("#diff-comment", Input)
        shown = escape_controls(self._selected, multiline=False)
        box.placeholder = f"{shown}:{number} comment (enter saves, empty removes, esc cancels)"
        box.value = self.review.comments.get(self._commenting, "")
        self.add_class("-commenting")
        box.display = True  # inline, so the box can take the focus at once
        self.pane.redirect = box
        self.screen.set_focus(box)

    def close_comment(self) -> None:
        self._commenting = None
        if self.commenting:
            self.remove_class("-commenting")
            self.query_one("#diff-comment", Input).display = False
            self.pane.redirect = None
            self.focus_pane()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "diff-comment":
            return
        event.stop()
        anchor = self._commenting
        if anchor is not None:
            text = event.value.strip()
            if text:
                self.review.comments[anchor] = text
            else:
                self.review.comments.pop(anchor, None)
            self._review_shown()
        self.close_comment()
        self.pane.reveal_comment()

    def action_drop_hunk(self) -> None:
        line = self.pane.line_at_cursor()
        if not self.reviewing or self._selected is None:
            return
        if line is None or line.hunk is None:
            self.app.notify("Move to a hunk ({ }) to drop it; X drops the whole file.", timeout=3)
            return
        self._toggle_drop((self._selected, line.hunk))

    def action_drop_file(self) -> None:
        if self.reviewing and self._selected is not None:
            self._toggle_drop((self._selected, None))

    def _toggle_drop(self, part: tuple[str, int | None]) -> None:
        if part[0] in self._bookkeeping:
            self.app.notify("The PRD and progress log are the run's own; not droppable.")
            return
        if part in self.review.drops:
            self.review.drops.discard(part)
        else:
            self.review.drops.add(part)
        self._review_shown()

    def _review_shown(self) -> None:
        """Redraw what the draft changes: the open file's rows and the file list's marks."""
        path = self._selected
        if path is not None and self.pane.path == path:
            self.pane.set_review(
                self.review.comments_on(path),
                self.review.dropped_hunks(path),
                self.review.file_dropped(path),
            )
        if self.files:
            options = self.query_one("#diff-files", OptionList)
            for index, diff in enumerate(self.files):
                options.replace_option_prompt_at_index(index, self._label(diff))
        self.post_message(self.ReviewChanged())

    def show_files(self, files: Sequence[FileDiffLike], last: Collection[str] = ()) -> None:
        """Show ``files``, code first: the paths in ``last`` (bookkeeping) go to the end."""
        ordered = sorted(files, key=lambda f: f.path in last)  # stable: git's order otherwise
        self._bookkeeping = frozenset(last)
        if [_identity(f) for f in ordered] == [_identity(f) for f in self.files]:
            # refreshes come after every tool call and commit; an unchanged tree must not
            # rebuild the file list (a layout pass of the whole screen) or move the reader
            return
        self.files = ordered
        options = self.query_one("#diff-files", OptionList)
        keep = self._selected
        options.clear_options()
        options.add_options([self._option(f) for f in self.files])
        if not self.files:
            self._selected = None
            self.pane.show_message("No changes against HEAD.")
            return
        paths = [f.path for f in self.files]
        index = paths.index(keep) if keep in paths else 0
        options.highlighted = index
        self._show(self.files[index], force=True)

    def _option(self, diff: FileDiffLike) -> Option:
        return Option(self._label(diff), id=diff.path)

    def _label(self, diff: FileDiffLike) -> Text:
        status = diff.status[:1].upper() or "M"
        # spaces ride inside the styled pieces, so no piece is whitespace alone (an SVG export
        # drops those); the path is what gets cut when the column is narrow, never the counts
        counts = Text.assemble((f" +{diff.additions}", "green"), (f" -{diff.deletions}", "red"))
        shown = escape_controls(diff.path, multiline=False)  # a file name is the agent's too
        # the engine's own entry (a blocker in the log) is marked as such, not the agent's
        mine = ("ralph-tui: ", "italic dim") if diff.path in self._bookkeeping else ""
        label = Text.assemble((f"{status} ", _STATUS_STYLE.get(status, "yellow")), mine, shown)
        path = diff.path
        if self.review.file_dropped(path) or self.review.dropped_hunks(path):
            label = Text.assemble(("✂ ", "bold magenta"), label)
        if self.review.comments_on(path):
            label = Text.assemble(("» ", "bold cyan"), label)
        room = self.query_one("#diff-files", OptionList).scrollable_content_region.width
        if room > counts.cell_len + 4:  # 0 before the first layout: nothing to fit yet
            label.truncate(room - counts.cell_len, overflow="ellipsis")
        label.append_text(counts)
        label.no_wrap = True
        label.overflow = "ellipsis"
        return label

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        if event.option_index < len(self.files):
            self._show(self.files[event.option_index])

    def _show(self, diff: FileDiffLike, force: bool = False) -> None:
        if diff.path == self._selected and not force:
            return
        self._selected = diff.path
        # a binary's "patch" names its kind and sizes (git_repo.describe_change)
        self.pane.show_patch(
            diff.path,
            diff.patch,
            self.review.comments_on(diff.path),
            self.review.dropped_hunks(diff.path),
            self.review.file_dropped(diff.path),
        )
