"""A scrolling log on Textual's line API that wraps each line once and draws only what shows.

``RichLog`` renders every written renderable through Rich's wrapper at write time, which costs
about as much as the agent's whole stream on a long answer. Here a written line (a Rich
``Text``, so colours stay) is only split into row offsets — a ``str.rfind`` per row for ASCII
text — and a row becomes segments when it is first drawn, then is cached. A resize re-splits the
kept lines (at most ``max_lines`` of them). Memory is bounded by ``max_lines``; the full
transcript is on disk in the run folder.
"""

from __future__ import annotations

from collections import deque
from itertools import pairwise

from rich._wrap import divide_line
from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.geometry import Region, Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ralph_tui.tui.widgets.scrolling import set_virtual_size

_ROW_CACHE = 2048


def row_breaks(plain: str, width: int) -> list[int]:
    """Offsets where ``plain`` wraps at ``width`` cells: after a space where there is one."""
    if width < 1 or cell_len(plain) <= width:
        return []
    if not plain.isascii():
        return divide_line(plain, width, fold=True)
    breaks: list[int] = []
    start, end = 0, len(plain)
    while end - start > width:
        space = plain.rfind(" ", start, start + width + 1)
        cut = space + 1 if space > start else start + width
        breaks.append(cut)
        start = cut
    return breaks


class TranscriptLog(ScrollView, can_focus=True):
    """Lines of ``Text`` shown wrapped to the widget's width, newest at the bottom."""

    DEFAULT_CSS = """
    TranscriptLog { height: 1fr; overflow-x: hidden; }
    """

    def __init__(self, *, max_lines: int, id: str | None = None) -> None:
        super().__init__(id=id)
        self.max_lines = max_lines
        self._lines: deque[Text] = deque()
        self._row_counts: deque[int] = deque()
        self._rows: list[tuple[Text, int, int]] = []  # (line, start, end) per screen row
        self._cache: dict[int, Strip] = {}
        self._wrap_width = 0
        self._paint_style: Style | None = None  # set only while render_lines runs
        self._paint_scroll_y = 0
        self._paint_width = 0
        # follows the newest line until the reader scrolls up, whatever resizes the panel (an
        # approval bar opening shrinks it: that is not the reader leaving the end)
        self.following = True
        self.unseen = 0  # lines written while the reader was scrolled up

    @property
    def line_count(self) -> int:
        return len(self._lines)

    def plain_rows(self) -> list[str]:
        """The rows as text, newest last (for tests and copying)."""
        return [line.plain[start:end] for line, start, end in self._rows]

    def write(self, line: Text) -> None:
        """Add one logical line (it may hold newlines: each becomes a line of its own)."""
        plain = line.plain
        if "\n" not in plain:
            pieces = [line]
        elif not line.spans:  # the common case, streamed text: str.split is far cheaper
            pieces = [Text(part, style=line.style) for part in plain.split("\n")]
        else:
            pieces = list(line.split("\n", allow_blank=True))
        follow = self.following or not self._rows
        if not follow:
            self.unseen += len(pieces)
            self._tell_unseen()
        for piece in pieces:
            if "\t" in piece.plain:
                piece.expand_tabs(4)
            self._lines.append(piece)
            rows = self._split(piece)
            self._row_counts.append(len(rows))
            self._rows.extend(rows)
        self._trim()
        self._resize(follow)

    def clear(self) -> None:
        self._lines.clear()
        self._row_counts.clear()
        self._rows.clear()
        self._cache.clear()
        self._resize(True)

    def _split(self, line: Text) -> list[tuple[Text, int, int]]:
        plain = line.plain
        edges = [0, *row_breaks(plain, self._wrap_width), len(plain)]
        return [(line, a, b) for a, b in pairwise(edges)] or [(line, 0, 0)]

    def _trim(self) -> None:
        # drop in batches, so a full log does not shift its row list on every line
        excess = len(self._lines) - self.max_lines
        if excess <= 0 or (excess < self.max_lines // 10 and excess < 500):
            return
        dropped = 0
        for _ in range(excess):
            self._lines.popleft()
            dropped += self._row_counts.popleft()
        del self._rows[:dropped]
        self._cache.clear()

    def _resize(self, follow: bool) -> None:
        if set_virtual_size(self, Size(self._wrap_width, len(self._rows))):
            # the bar takes (or gives back) columns: wrap again to the width that is left
            self.call_after_refresh(self._rewrap)
        if follow:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        self.refresh()

    def on_resize(self) -> None:
        self._rewrap()
        if self.following:  # a smaller panel: the end is further down, still followed
            self.scroll_end(animate=False, immediate=True, x_axis=False)

    def watch_scroll_y(self, old: float, new: float) -> None:
        """Only the reader moves away from the end (the widget itself scrolls only to it)."""
        super().watch_scroll_y(old, new)
        at_end = new >= self.max_scroll_y
        if at_end and not self.following:
            self.following = True
            self.unseen = 0
            self._tell_unseen()
        elif new < old and not at_end:
            self.following = False

    def _tell_unseen(self) -> None:
        """``n new lines, End to follow`` on the panel's border while the reader is away."""
        panel = next((a for a in self.ancestors if getattr(a, "border_title", None)), None)
        if panel is not None:
            hint = f"{self.unseen} new lines, End to follow" if self.unseen else ""
            panel.border_subtitle = hint  # type: ignore[attr-defined]

    def _rewrap(self) -> None:
        """Split the kept lines again if the width available for text changed."""
        width = self.scrollable_content_region.width
        if width == self._wrap_width or width < 1:
            return
        follow = self.following
        self._wrap_width = width
        self._rows = []
        self._row_counts = deque()
        for line in self._lines:
            rows = self._split(line)
            self._row_counts.append(len(rows))
            self._rows.extend(rows)
        self._cache.clear()
        self._resize(follow)

    def render_lines(self, crop: Region) -> list[Strip]:
        # what every row of one paint shares, looked up once: ``rich_style`` walks the DOM
        # and was most of the cost of a streaming frame when read per row
        _, self._paint_scroll_y = self.scroll_offset
        self._paint_width = self.scrollable_content_region.width
        self._paint_style = self.rich_style
        try:
            return super().render_lines(crop)
        finally:
            self._paint_style = None

    def render_line(self, y: int) -> Strip:
        if self._paint_style is None:  # asked for outside a paint (Textual's line API allows it)
            _, scroll_y = self.scroll_offset
            width = self.scrollable_content_region.width
            style = self.rich_style
        else:
            scroll_y, width, style = self._paint_scroll_y, self._paint_width, self._paint_style
        index = scroll_y + y
        if index >= len(self._rows):
            return Strip.blank(width, style)
        strip = self._cache.get(index)
        if strip is None:
            line, start, end = self._rows[index]
            row = line[start:end]
            row.rstrip_end(width)
            console = self.app.console
            segments = [s for s in row.render(console) if s.text != "\n"]
            if row.style:  # Text.render draws the spans only: the line's own style goes under
                segments = list(Segment.apply_style(segments, console.get_style(row.style)))
            strip = Strip(Segment.apply_style(segments, style))
            if len(self._cache) > _ROW_CACHE:
                self._cache.clear()
            self._cache[index] = strip
        return strip.crop_extend(0, width, style)
