"""``ralph-tui attach``: the same ``RalphApp`` driving a ``RemoteRun`` instead of an engine.

Differences from a local run, and only these: ``q`` detaches (the run goes on), stopping the run
is its own confirmed action (``x``), and the title says where the run is.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label

from ralph_tui.config import RalphConfig
from ralph_tui.events import EventSink
from ralph_tui.prd import Prd
from ralph_tui.server.client import RemoteRun, first_look
from ralph_tui.supervisor import Supervisor
from ralph_tui.tui.app import RalphApp


class ConfirmStopRun(ModalScreen[bool]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Stop the run", id="confirm_stop_yes"),
        Binding("n,escape", "answer(False)", "Keep running", id="confirm_stop_no"),
    ]
    DEFAULT_CSS = """
    ConfirmStopRun { align: center middle; }
    ConfirmStopRun > Vertical {
        width: 64; height: auto; border: heavy $error; background: $surface; padding: 1 2;
    }
    ConfirmStopRun Horizontal { height: auto; margin-top: 1; }
    ConfirmStopRun Button { margin-right: 2; }
    """

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text("Stop the run itself?", style="bold"))
            yield Label(
                "The run stops at its next safe point for every attached face. "
                "To leave the run going, detach with q instead."
            )
            with Horizontal():
                yield Button("Stop the run (y)", variant="error", id="yes")
                yield Button("Keep running (n)", id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class AttachedApp(RalphApp):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Detach", id="detach"),
        Binding("x", "stop_run", "Stop run", id="stop_run"),
    ]

    def __init__(self, url: str, token: str, info: dict[str, object], prd: Prd | None) -> None:
        config = RalphConfig.model_validate(
            {
                "role": str(info.get("role", "backend")),
                "max_iterations": int(str(info.get("max_iterations", 10))),
            }
        )
        self.remote: RemoteRun | None = None

        def attach(supervisor: Supervisor, sink: EventSink) -> RemoteRun:
            self.remote = RemoteRun(url, token, supervisor, sink, prd=prd)
            return self.remote

        super().__init__(Path(str(info.get("workspace", "."))), config, run_factory=attach)
        self.url = url
        self.sub_title = f"attached to {url}"

    async def action_quit(self) -> None:
        """Detach: the run goes on; pending questions stay open for other faces."""
        self._exit_with(0)

    def action_stop_run(self) -> None:
        def confirmed(yes: bool | None) -> None:
            if yes:
                self.engine.request_stop()
                self.notify("Asked the run to stop at its next safe point.")

        self.push_screen(ConfirmStopRun(), confirmed)


def run_attach(url: str, token: str) -> int:
    """``ralph-tui attach``: 0 when detached; a wrong token or no run fails before drawing."""
    info, prd = first_look(url, token)
    app = AttachedApp(url, token, info, prd)
    app.run()
    if app.error_message:
        print(f"ralph-tui: {app.error_message}", file=sys.stderr)
        return 1
    return 0
