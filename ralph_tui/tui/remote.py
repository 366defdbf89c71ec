"""``ralph-tui attach``: the same ``RalphApp`` driving a ``RemoteRun`` instead of an engine.

Differences from a local run, and only these: ``q`` detaches (the run goes on), stopping the run
is its own confirmed action (``x``), and the title says where the run is.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import ClassVar

from textual.binding import Binding, BindingType

from ralph_tui.config import RalphConfig
from ralph_tui.events import EventSink
from ralph_tui.prd import Prd
from ralph_tui.server.client import RemoteRun, first_look
from ralph_tui.supervisor import Supervisor
from ralph_tui.tui.app import RalphApp
from ralph_tui.tui.screens import confirm_stop_run


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

        self.push_screen(confirm_stop_run(), confirmed)


def run_attach(url: str, token: str) -> int:
    """``ralph-tui attach``: 0 when detached; a wrong token or no run fails before drawing."""
    info, prd = first_look(url, token)
    app = AttachedApp(url, token, info, prd)
    app.run()
    if app.error_message:
        print(f"ralph-tui: {app.error_message}", file=sys.stderr)
        return 1
    return 0
