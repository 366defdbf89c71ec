"""The Gates panel: each quality gate's state, duration and one-line summary.

``enter`` on a row opens the gate's full output; the table itself stays one line per gate so it
fits beside the diff while an approval waits.
"""

from __future__ import annotations

import time
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label, TextArea

from ralph_tui.events import Event, GateFinished, GateStarted, IterationStarted

_STATE_STYLE = {
    "pending": "dim",
    "running": "bold yellow",
    "passed": "bold green",
    "failed": "bold red",
    "error": "bold red",
    "timed_out": "bold red",
}
_STATE_MARK = {
    "pending": "·",
    "running": "…",
    "passed": "✓",
    "failed": "✗",
    "error": "!",
    "timed_out": "⏱",
}


def _clip(text: str, width: int = 48) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


class GateOutputScreen(ModalScreen[None]):
    """The full output of one gate, read-only, closed with escape."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "dismiss", "Close", id="gate_output_close"),
    ]

    DEFAULT_CSS = """
    GateOutputScreen { align: center middle; }
    GateOutputScreen > Vertical {
        width: 90%; height: 85%; border: round $accent; background: $surface; padding: 0 1;
    }
    GateOutputScreen TextArea { height: 1fr; }
    """

    def __init__(self, title: str, output: str) -> None:
        super().__init__()
        self._title = title
        self._output = output

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(self._title, style="bold"))
            yield TextArea(self._output or "(no output)", read_only=True, id="gate-output")

    def action_dismiss(self, result: None = None) -> None:  # type: ignore[override]
        self.dismiss(None)


class GatesPanel(DataTable[Text | str]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "show_output", "Output", id="gate_output"),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self.results: dict[str, GateFinished] = {}
        self._started: dict[str, float] = {}
        self._order: list[str] = []
        self._criteria: dict[str, str] = {}

    def on_mount(self) -> None:
        self.add_column("Gate", key="gate")
        self.add_column("State", key="state")
        self.add_column("Time", key="time")
        self.add_column("Summary", key="summary")

    def apply(self, event: Event) -> None:
        match event:
            case GateStarted():
                self.gate_started(event)
            case GateFinished():
                self.gate_finished(event)
            case IterationStarted():
                self.reset()
            case _:
                pass

    def reset(self) -> None:
        """A new iteration: forget the last one's gates."""
        self.results.clear()
        self._started.clear()
        self._order.clear()
        self._criteria.clear()
        self.clear()

    def gate_started(self, event: GateStarted) -> None:
        self._started[event.name] = time.monotonic()
        self._criteria[event.name] = event.criterion
        if event.name not in self._order:
            self._order.append(event.name)
        self.results.pop(event.name, None)  # a re-run after a fix attempt: the old one is stale
        self._redraw()

    def gate_finished(self, event: GateFinished) -> None:
        self._started.pop(event.name, None)
        self.results[event.name] = event
        self._criteria[event.name] = event.criterion
        if event.name not in self._order:
            self._order.append(event.name)
        self._redraw()

    def show_results(self, gates: tuple[GateFinished, ...]) -> None:
        for gate in gates:
            self.gate_finished(gate)

    def _redraw(self) -> None:
        keep = self.cursor_row
        self.clear()
        for name in self._order:
            result = self.results.get(name)
            if result is None:
                state, duration, summary = "running", "", ""
            else:
                state = result.state
                duration = f"{result.duration_s:.1f}s"
                summary = result.summary
            label = Text(name, style="bold")
            criterion = self._criteria.get(name, "")
            if criterion:  # a story's own command: say which criterion it checks
                label.append(f" ({_clip(criterion)})", style="dim")
            self.add_row(
                label,
                Text(f"{_STATE_MARK.get(state, '?')} {state}", style=_STATE_STYLE.get(state, "")),
                Text(duration, justify="right"),
                Text(summary),  # the gate's own output: never parsed as markup
                key=name,
            )
        if self._order:
            self.move_cursor(row=min(keep, len(self._order) - 1), animate=False)

    def action_show_output(self) -> None:
        if not self._order or not 0 <= self.cursor_row < len(self._order):
            return
        name = self._order[self.cursor_row]
        result = self.results.get(name)
        if result is None:
            self.app.notify(f"Gate {name} is still running.")
            return
        title = f"{name}: {result.state} ({result.command}, exit {result.exit_code})"
        if result.criterion:
            title += f" checks: {result.criterion}"
        self.app.push_screen(GateOutputScreen(title, result.output))
