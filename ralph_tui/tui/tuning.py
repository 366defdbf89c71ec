"""Process-wide settings the TUI changes for its own speed, kept out of the App.

Both act on the whole interpreter (the garbage collector, the GIL's switch interval), so they
live here, named, rather than as side effects inside widget code.
"""

from __future__ import annotations

import gc
import sys

STARTUP_SWITCH_INTERVAL_S = 0.001

_heap_frozen: set[str] = set()


def freeze_heap_once(stage: str) -> None:
    """Move every object alive now to gc's permanent generation, once per stage and process.

    The TUI keeps what it draws (transcript lines, strips, widgets), so Python's full
    collections start firing as that grows, and each walks every object alive, the ~200,000 of
    the imported modules included: on a 2 MB stream three of them took 0.5 s of a 2.7 s run (a
    headless run keeps nothing and pays none), and two took 0.3 s of the first paint. Frozen at
    start (modules, engine) and after the first paint (the mounted widgets), later collections
    walk only newer objects. Once per process: frozen objects are never freed, so a second app
    in one process (tests) must not freeze the garbage the first one left.
    """
    if stage not in _heap_frozen:
        _heap_frozen.add(stage)
        gc.freeze()


class GilLending:
    """Hand the GIL over more often until the run has started.

    The preflight (a few git calls in a thread) is I/O bound, but while the first frames are
    laid out and painted each of its steps waited up to the 5 ms switch interval for the GIL:
    20 ms of work took 80-110 ms. A 1 ms interval until ``RunStarted`` (or the run's failure)
    brings that to 40-70 ms; after ``end`` the default holds again.
    """

    def __init__(self) -> None:
        self._saved: float | None = None  # the default, while start-up changed it

    def start(self) -> None:
        if self._saved is None:
            self._saved = sys.getswitchinterval()
            sys.setswitchinterval(STARTUP_SWITCH_INTERVAL_S)

    def end(self) -> None:
        if self._saved is not None:
            sys.setswitchinterval(self._saved)
            self._saved = None


__all__ = ["GilLending", "freeze_heap_once"]
