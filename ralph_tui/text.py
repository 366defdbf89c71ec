"""Text helpers shared by the core and the faces (no UI imports)."""

from __future__ import annotations


def one_line(text: str, limit: int | None = None) -> str:
    """``text`` with every run of whitespace (newlines included) as one space, cut to ``limit``.

    For anything shown or written as a single line: headings in the progress log, summaries,
    error details, console lines. A cut line ends in ``…``.
    """
    line = " ".join(text.split())
    if limit is None or len(line) <= limit:
        return line
    return line[: max(0, limit - 1)] + "…"
