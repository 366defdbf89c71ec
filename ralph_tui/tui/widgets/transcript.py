"""The Transcript panel: the agent's stream, tool calls with their input, clipped results.

Streamed text arrives in arbitrary pieces. Complete lines go to a ``RichLog`` (a line-API widget
with ``max_lines``, so memory stays bounded; the full transcript is on disk in the run folder);
the unfinished line lives in a one-line tail below it, so text is seen as it arrives without
re-rendering the log for every delta.
"""

from __future__ import annotations

import json
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import RichLog, Static

MAX_LINES = 5000
TAIL_LIMIT = 4000  # an unfinished line longer than this is committed as is
RESULT_LINES = 8
RESULT_CHARS = 800
INPUT_CHARS = 400


def clip(text: str, max_lines: int = RESULT_LINES, max_chars: int = RESULT_CHARS) -> str:
    """The head of ``text`` with a note of how much was left out."""
    lines = text.splitlines()
    head = "\n".join(lines[:max_lines])
    if len(head) > max_chars:
        head = head[:max_chars]
    left = len(text) - len(head)
    if left > 0 and len(lines) > max_lines:
        return f"{head}\n… ({len(lines) - max_lines} more lines)"
    if left > 0:
        return f"{head}… ({left} more chars)"
    return head


def describe_input(name: str, data: dict[str, Any]) -> str:
    """A short, readable rendering of a tool's input: the command or path first."""
    if name == "bash" and isinstance(data.get("command"), str):
        return clip(f"$ {data['command']}", 3, INPUT_CHARS)
    if name == "str_replace_based_edit_tool":
        head = f"{data.get('command', '?')} {data.get('path', '')}".strip()
        parts = [head]
        for key in ("file_text", "old_str", "new_str", "insert_text"):
            value = data.get(key)
            if isinstance(value, str):
                lines = value.count("\n") + (0 if value.endswith("\n") else 1)
                first = value.strip().splitlines()[0][:60] if value.strip() else ""
                parts.append(f"{key}: {lines} line{'s' if lines != 1 else ''} «{first}»")
        for key in ("insert_line", "view_range"):
            if key in data:
                parts.append(f"{key}: {data[key]}")
        return "  ".join(parts)
    return clip(json.dumps(data, ensure_ascii=False), 3, INPUT_CHARS)


class Transcript(Vertical):
    DEFAULT_CSS = """
    Transcript { height: 1fr; }
    Transcript > RichLog { height: 1fr; background: transparent; }
    Transcript > #transcript-tail { height: auto; max-height: 3; display: none; }
    Transcript > #transcript-tail.-active { display: block; }
    """

    def __init__(self, *, max_lines: int = MAX_LINES, id: str | None = None) -> None:
        super().__init__(id=id)
        self._max_lines = max_lines
        self._partial = ""

    def compose(self) -> ComposeResult:
        yield RichLog(
            id="transcript-log", max_lines=self._max_lines, wrap=True, markup=False, min_width=20
        )
        yield Static(id="transcript-tail", markup=False)

    @property
    def log_widget(self) -> RichLog:
        return self.query_one("#transcript-log", RichLog)

    @property
    def partial(self) -> str:
        return self._partial

    def plain_lines(self) -> list[str]:
        """The rendered lines as text (for tests and copy), newest last."""
        return [strip.text for strip in self.log_widget.lines]

    def add_text(self, text: str) -> None:
        if not text:
            return
        combined = self._partial + text
        head, sep, tail = combined.rpartition("\n")
        if sep:
            self.log_widget.write(Text(head), scroll_end=None)
        if len(tail) > TAIL_LIMIT:
            self.log_widget.write(Text(tail), scroll_end=None)
            tail = ""
        self._set_partial(tail)

    def add_line(self, line: Text | str) -> None:
        """A line of its own (tool call, gate, commit); any unfinished text goes first."""
        self._commit_partial()
        self.log_widget.write(line if isinstance(line, Text) else Text(line), scroll_end=None)

    def add_tool_call(self, name: str, data: dict[str, Any]) -> None:
        line = Text.assemble(("▶ ", "bold cyan"), (name, "bold cyan"), " ")
        line.append(describe_input(name, data), style="cyan")
        self.add_line(line)

    def add_tool_result(self, name: str, content: str, is_error: bool) -> None:
        mark, style = ("✗ ", "red") if is_error else ("✓ ", "green")
        body = clip(content) if content else "(no output)"
        line = Text(mark, style=f"bold {style}")
        line.append(body, style=style if is_error else "dim")
        self.add_line(line)

    def clear(self) -> None:
        """Empty the pane (another worker's conversation is about to be drawn)."""
        self.log_widget.clear()
        self._set_partial("")

    def add_rule(self, title: str) -> None:
        self.add_line(Text(f"── {title} ", style="bold magenta"))

    def _commit_partial(self) -> None:
        if self._partial:
            self.log_widget.write(Text(self._partial), scroll_end=None)
            self._set_partial("")

    def _set_partial(self, text: str) -> None:
        self._partial = text
        tail = self.query_one("#transcript-tail", Static)
        tail.update(text)
        tail.set_class(bool(text), "-active")
