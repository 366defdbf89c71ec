"""The Transcript panel: the agent's stream, tool calls with their input, clipped results.

Streamed text arrives in arbitrary pieces. Complete lines go to a ``TranscriptLog`` (line API:
each line is wrapped once and only visible rows are drawn; ``max_lines`` bounds memory, and the
full transcript is on disk in the run folder); the unfinished line lives in a one-line tail
below it, so text is seen as it arrives without re-rendering the log for every delta.
"""

from __future__ import annotations

import json
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from ralph_tui.events import (
    ApprovalDecided,
    ApprovalNeeded,
    Committed,
    Escalated,
    EscalationAnswered,
    Event,
    GateFinished,
    IterationFinished,
    IterationStarted,
    Notice,
    PmAnswered,
    PmProposal,
    ReviewRecorded,
    RunFinished,
    RunStarted,
    TextDelta,
    ToolCall,
    ToolResult,
)
from ralph_tui.tui.widgets.transcript_log import TranscriptLog

_NOTICE_STYLE = {"info": "dim", "warning": "yellow", "error": "bold red"}

MAX_LINES = 5000
TAIL_LIMIT = 4000  # an unfinished line longer than this is committed as is
RESULT_LINES = 8
RESULT_CHARS = 800
INPUT_CHARS = 400


def clip_block(text: str, max_lines: int = RESULT_LINES, max_chars: int = RESULT_CHARS) -> str:
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
        return clip_block(f"$ {data['command']}", 3, INPUT_CHARS)
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
    return clip_block(json.dumps(data, ensure_ascii=False), 3, INPUT_CHARS)


class Transcript(Vertical):
    DEFAULT_CSS = """
    Transcript { height: 1fr; }
    Transcript > TranscriptLog { height: 1fr; background: transparent; }
    Transcript > #transcript-tail { height: 1; display: none; }
    Transcript > #transcript-tail.-active { display: block; }
    """

    def __init__(self, *, max_lines: int = MAX_LINES, id: str | None = None) -> None:
        super().__init__(id=id)
        self._max_lines = max_lines
        self._partial = ""

    def compose(self) -> ComposeResult:
        yield TranscriptLog(id="transcript-log", max_lines=self._max_lines)
        yield Static(id="transcript-tail", markup=False)

    @property
    def log_widget(self) -> TranscriptLog:
        return self.query_one("#transcript-log", TranscriptLog)

    @property
    def partial(self) -> str:
        return self._partial

    def plain_lines(self) -> list[str]:
        """The rendered lines as text (for tests and copy), newest last."""
        return self.log_widget.plain_rows()

    def apply(self, event: Event) -> None:
        """The transcript's reading of one engine event (most events leave a line here)."""
        match event:
            case TextDelta(text=text):
                self.add_text(text)
            case ToolCall(name=name, input=data):
                self.add_tool_call(name, data)
            case ToolResult(name=name, content=content, is_error=is_error):
                self.add_tool_result(name, content, is_error)
            case GateFinished():
                style = "green" if event.state == "passed" else "red"
                self.add_line(
                    Text.assemble(
                        ("gate ", "bold"),
                        (event.name, "bold"),
                        ": ",
                        (event.state, f"bold {style}"),
                        f" in {event.duration_s:.1f}s",
                        (f" — {event.summary}" if event.summary else "", "dim"),
                    )
                )
            case IterationStarted():
                self.add_rule(f"Iteration {event.iteration} · {event.story_id} {event.title}")
            case IterationFinished():
                style = "green" if event.outcome == "committed" else "yellow"
                line = Text.assemble(
                    ("■ iteration ", "bold"),
                    (f"{event.iteration} {event.outcome}", f"bold {style}"),
                    (f" — {event.message}" if event.message else "", "dim"),
                )
                if event.patch_path:
                    line.append(f" (patch: {event.patch_path})", style="dim")
                self.add_line(line)
            case ApprovalNeeded():
                self.add_line(
                    Text(f"? approval needed for {event.story_id}: {event.title}", "bold yellow")
                )
            case ApprovalDecided():
                note = f": {event.feedback}" if event.feedback else ""
                self.add_line(Text(f"» {event.decision}{note}", style="bold yellow"))
            case ReviewRecorded():
                for entry in [*event.dropped, *event.comments]:
                    self.add_line(Text(f"» review: {entry}", style="yellow"))
            case Committed():
                subject = event.message.splitlines()[0] if event.message else ""
                self.add_line(
                    Text.assemble(
                        ("● committed ", "bold green"), (event.sha[:10], "bold"), " ", subject
                    )
                )
            case Escalated():
                self.add_line(Text(f"? escalated: {event.question}", style="bold red"))
            case EscalationAnswered():
                whose = {"human": "", "pm": " by the PM (not a human)"}.get(
                    event.by, f" ({event.by})"
                )
                verb = "corrected" if event.correction else "answered"
                what = "skipped" if event.skipped else f"{verb}{whose}: {event.answer}"
                self.add_line(Text(f"» {what}", style="bold yellow"))
            case PmAnswered():
                said = event.answer if event.known else f"cannot answer: {event.answer}"
                self.add_line(Text(f"PM » {said}", style="bold magenta"))
            case PmProposal():
                self.add_line(
                    Text(f"PM proposes ({event.decision}): {event.proposal}", style="magenta")
                )
            case RunStarted():
                self.add_line(
                    Text(f"run {event.run_id} · {event.agent} · {event.model}", style="dim")
                )
            case RunFinished():
                self.add_line(
                    Text(
                        f"■ run finished (exit {event.exit_code}): {event.reason}",
                        style="bold blue",
                    )
                )
            case Notice():
                self.add_line(Text(f"! {event.message}", style=_NOTICE_STYLE[event.level]))
            case _:
                pass

    def add_text(self, text: str) -> None:
        if not text:
            return
        combined = self._partial + text
        head, sep, tail = combined.rpartition("\n")
        if sep:
            self.log_widget.write(Text(head))
        if len(tail) > TAIL_LIMIT:
            self.log_widget.write(Text(tail))
            tail = ""
        self._set_partial(tail)

    def add_line(self, line: Text | str) -> None:
        """A line of its own (tool call, gate, commit); any unfinished text goes first."""
        self._commit_partial()
        self.log_widget.write(line if isinstance(line, Text) else Text(line))

    def add_tool_call(self, name: str, data: dict[str, Any]) -> None:
        line = Text.assemble(("▶ ", "bold cyan"), (name, "bold cyan"), " ")
        line.append(describe_input(name, data), style="cyan")
        self.add_line(line)

    def add_tool_result(self, name: str, content: str, is_error: bool) -> None:
        mark, style = ("✗ ", "red") if is_error else ("✓ ", "green")
        body = clip_block(content) if content else "(no output)"
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
            self.log_widget.write(Text(self._partial))
            self._set_partial("")

    def _set_partial(self, text: str) -> None:
        self._partial = text
        tail = self.query_one("#transcript-tail", Static)
        # one row showing the newest characters; a fixed height needs no layout pass per update
        width = max(1, tail.size.width)
        shown = text[-width:] if len(text) > width else text
        tail.update(Text(shown, no_wrap=True, overflow="crop"), layout=False)
        if tail.has_class("-active") != bool(text):
            tail.set_class(bool(text), "-active")
