"""``ralph-tui attach``: the same ``RalphApp`` driving a ``RemoteRun`` instead of an engine.

Differences from a local run, and only these: ``q`` detaches (the run goes on), stopping the run
is its own confirmed action (``x``), and the title says where the run is.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys
from pathlib import Path
from typing import ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Static

from ralph_tui.config import RalphConfig
from ralph_tui.errors import RalphError
from ralph_tui.events import EventSink
from ralph_tui.prd.model import Prd
from ralph_tui.server.client import RemoteRun, first_look
from ralph_tui.server.protocol import PARENT_ENV
from ralph_tui.supervisor import Supervisor
from ralph_tui.tui.app import RalphApp
from ralph_tui.tui.screens import confirm_stop_run

log = logging.getLogger(__name__)


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

    def action_interrupt(self) -> None:
        """Ctrl-C detaches too: stopping the run is ``x``, confirmed."""
        self._exit_with(0)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop_run":  # nothing to stop once the run has ended
            return self.run_active
        return super().check_action(action, parameters)

    def action_stop_run(self) -> None:
        def confirmed(yes: bool | None) -> None:
            if yes:
                self.engine.request_stop()
                self.notify("Asked the run to stop at its next safe point.")

        self.push_screen(confirm_stop_run(), confirmed)


def run_attach(url: str, token: str) -> int:
    """``ralph-tui attach``: 0 when detached; a wrong token or no run fails before drawing
    (in a browser tab, the reason is drawn on the page, as the tab shows nothing else)."""
    in_browser = os.environ.get("TEXTUAL_DRIVER", "").endswith(":WebDriver")
    if in_browser:
        leash_to_parent()
    try:
        info, prd = first_look(url, token)
    except RalphError as exc:
        if in_browser:
            ErrorApp(str(exc)).run()
        raise
    app = AttachedApp(url, token, info, prd)
    app.run()
    if app.error_message:
        print(f"ralph-tui: {app.error_message}", file=sys.stderr)
        return 1
    return 0


PR_SET_PDEATHSIG = 1


def leash_to_parent() -> None:
    """A browser tab's process (started by ``ralph-tui web``) ends with ``web`` and on SIGTERM,
    SIGINT or SIGHUP at once, whatever the app is doing: busy laying out during start-up it
    never reached its own graceful exit, and ran on at full CPU after ``web`` was gone."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda number, frame: os._exit(128 + number))
    parent = os.environ.get(PARENT_ENV, "")
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:  # Linux only
        log.warning("no parent-death signal: errno %d", ctypes.get_errno())
    if parent.isdigit() and os.getppid() != int(parent):  # it died before the line above
        os._exit(1)


class ErrorApp(App[None]):
    """What a browser tab shows when it cannot attach (a stale token after the run restarted,
    no run): the reason, on the page, instead of textual-serve's splash for ever."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("q", "quit", "Close")]

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    def compose(self) -> ComposeResult:
        yield Static(
            f"ralph-tui: cannot attach to the run.\n\n{self.message}\n\n"
            "If the run was restarted it has a new token: open the address `ralph-tui web` "
            "prints now (restart `ralph-tui web` after the run).",
            markup=False,
            id="attach-error",
        )
