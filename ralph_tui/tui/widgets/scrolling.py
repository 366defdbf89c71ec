"""Resizing a scroll view's content without laying the whole screen out again."""

from __future__ import annotations

from textual.geometry import Size
from textual.scroll_view import ScrollView


def set_virtual_size(view: ScrollView, size: Size) -> bool:
    """Set ``view.virtual_size``; return True when a scrollbar appeared or went.

    ``virtual_size`` is a layout reactive: set plainly, every change re-lays out and re-renders
    every widget on screen (footer, board, panels; 20-35 ms at 200x50). A scroll view whose own
    size does not change only needs its scrollbars updated, which is what Textual's own resize
    path does (``_scroll_update``); a layout pass is asked for only when a scrollbar toggles,
    since it takes (or gives back) room.
    """
    if not view.size.height:  # not laid out yet: the first layout does it all
        view.virtual_size = size
        return False
    bars = (view.show_vertical_scrollbar, view.show_horizontal_scrollbar)
    view.set_reactive(ScrollView.virtual_size, size)
    view._scroll_update(size)
    if (view.show_vertical_scrollbar, view.show_horizontal_scrollbar) == bars:
        return False
    view.refresh(layout=True)
    return True
