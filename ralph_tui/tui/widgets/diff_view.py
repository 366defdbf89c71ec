"""The Diff panel: changed files on the left, the selected file's hunks on the right.

A large diff must show at once, so nothing is rendered up front: the patch is split into lines
and ``DiffPane`` (a line-API ``ScrollView``) highlights only the rows on screen, caching them.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from functools import lru_cache
from typing import ClassVar, Protocol

from rich.segment import Segment
from rich.style import Style
from rich.syntax import Syntax
from rich.text import Span, Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from ralph_tui.safety.text import escape_controls, has_hidden, reveal_hidden
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


class DiffPane(ScrollView, can_focus=True):
    """Hunks of one file; rows are highlighted when first drawn."""

    DEFAULT_CSS = """
    DiffPane { height: 1fr; width: 1fr; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "scroll_up", "Up", show=False),
        Binding("down", "scroll_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home", "scroll_home", "Top", show=False),
        Binding("end", "scroll_end", "Bottom", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._lines: list[str] = []
        self._lexer = "text"
        self._cache: dict[int, Strip] = {}
        self._path: str | None = None

    @property
    def line_count(self) -> int:
        return len(self._lines)

    def show_patch(self, path: str, patch: str) -> None:
        self._lines = patch.splitlines()
        self._lexer = Syntax.guess_lexer(path) if path else "text"
        self._cache.clear()
        width = max((len(line) for line in self._lines), default=0)
        set_virtual_size(self, Size(width + 1, len(self._lines)))
        if path != self._path:  # a refresh of the same file keeps the reader's place
            self.scroll_to(0, 0, animate=False)
        self._path = path
        self.refresh()

    def show_message(self, message: str) -> None:
        self._lines = [message]
        self._path = None
        self._lexer = "text"
        self._cache.clear()
        set_virtual_size(self, Size(len(message), 1))
        self.refresh()

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = y + scroll_y
        width = self.size.width
        if index >= len(self._lines):
            return Strip.blank(width, self.rich_style)
        strip = self._cache.get(index)
        if strip is None:
            text = highlight_line(self._lines[index], self._lexer)
            segments = [
                Segment(seg.text, seg.style)
                for seg in text.render(self.app.console)
                if seg.text != "\n"
            ]
            strip = Strip(segments)
            if len(self._cache) > _HIGHLIGHT_CACHE:
                self._cache.clear()
            self._cache[index] = strip
        return (
            strip.crop(scroll_x, scroll_x + width)
            .extend_cell_length(width)
            .apply_style(self.rich_style)
        )


def _identity(diff: FileDiffLike) -> tuple[str, str, int, int, bool, str]:
    return (diff.path, diff.status, diff.additions, diff.deletions, diff.binary, diff.patch)


class DiffView(Horizontal):
    """The working tree against HEAD, one file at a time."""

    DEFAULT_CSS = """
    DiffView { height: 1fr; }
    DiffView > #diff-files {
        width: 30%; min-width: 16; max-width: 50; height: 1fr;
        border: none; border-right: vkey $foreground 20%; padding: 0;
    }
    DiffView > #diff-files:focus { border: none; border-right: vkey $accent; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.files: list[FileDiffLike] = []
        self._bookkeeping: frozenset[str] = frozenset()  # the PRD and progress log
        self._selected: str | None = None

    def compose(self) -> ComposeResult:
        yield OptionList(id="diff-files")
        yield DiffPane(id="diff-pane")

    def on_mount(self) -> None:
        self.query_one(DiffPane).show_message("No changes against HEAD.")

    @property
    def pane(self) -> DiffPane:
        return self.query_one(DiffPane)

    @property
    def selected_path(self) -> str | None:
        return self._selected

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
        status = diff.status[:1].upper() or "M"
        # spaces ride inside the styled pieces, so no piece is whitespace alone (an SVG export
        # drops those); the path is what gets cut when the column is narrow, never the counts
        counts = Text.assemble((f" +{diff.additions}", "green"), (f" -{diff.deletions}", "red"))
        shown = escape_controls(diff.path, multiline=False)  # a file name is the agent's too
        # the engine's own entry (a blocker in the log) is marked as such, not the agent's
        mine = ("ralph-tui: ", "italic dim") if diff.path in self._bookkeeping else ""
        label = Text.assemble((f"{status} ", _STATUS_STYLE.get(status, "yellow")), mine, shown)
        room = self.query_one("#diff-files", OptionList).scrollable_content_region.width
        if room > counts.cell_len + 4:  # 0 before the first layout: nothing to fit yet
            label.truncate(room - counts.cell_len, overflow="ellipsis")
        label.append_text(counts)
        label.no_wrap = True
        label.overflow = "ellipsis"
        return Option(label, id=diff.path)

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        if event.option_index < len(self.files):
            self._show(self.files[event.option_index])

    def _show(self, diff: FileDiffLike, force: bool = False) -> None:
        if diff.path == self._selected and not force:
            return
        self._selected = diff.path
        # a binary's "patch" names its kind and sizes (git_repo.describe_change)
        self.pane.show_patch(diff.path, diff.patch)
