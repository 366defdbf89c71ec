"""One temporary folder per ralph-tui process, gone when the process ends.

Every scratch file ralph-tui makes (temporary git indexes, keys, bundles, the seccomp filter)
goes under ``$TMPDIR/ralph-<pid>.<start>/``, never straight into the system temp folder. A run
that ends, is stopped or fails removes the whole folder at exit (``atexit``), whatever its
``with`` blocks managed or not (a worker thread still inside one when the loop stopped, an
error path that skipped a cleanup). A process that was killed cannot clean up: the next
ralph-tui to start removes the folders whose process is gone (``sweep``). The process's start
time is in the name so that a reused pid does not keep a dead process's folder alive.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path

_PREFIX = "ralph-"
_NAME = re.compile(r"^ralph-(\d+)\.(\d+)$")
_lock = threading.Lock()
_mine: Path | None = None


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (``/proc``), ``None`` if gone.

    Without ``/proc`` (macOS) a live pid reads as started at 0, which ``sweep`` keeps."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        if Path("/proc/self").exists():
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return 0
        return 0
    except OSError:
        return None
    return int(stat[stat.rfind(")") + 2 :].split()[19])


def process_dir() -> Path:
    """This process's folder (made on first use, 0700), removed when the process exits."""
    global _mine
    with _lock:
        pid = os.getpid()
        if _mine is not None and _mine.name.startswith(f"{_PREFIX}{pid}."):
            return _mine
        start = _start_time(pid) or 0
        folder = Path(tempfile.gettempdir()) / f"{_PREFIX}{pid}.{start}"
        folder.mkdir(mode=0o700, exist_ok=True)
        if _mine is None:
            atexit.register(_remove_mine)
        _mine = folder  # a forked child gets its own (its pid differs)
        return folder


def _remove_mine() -> None:
    if _mine is not None and _mine.name.startswith(f"{_PREFIX}{os.getpid()}."):
        shutil.rmtree(_mine, ignore_errors=True)


def sweep(temp: Path | None = None) -> list[Path]:
    """Remove the folders of ralph-tui processes that are gone; the folders removed."""
    base = Path(tempfile.gettempdir()) if temp is None else temp
    removed: list[Path] = []
    try:
        entries = list(base.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _NAME.match(entry.name)
        if match is None or not entry.is_dir() or entry.is_symlink():
            continue
        pid, start = int(match.group(1)), int(match.group(2))
        now = _start_time(pid)
        if now is not None and (now == start or now == 0 or start == 0):
            continue  # that process still runs
        with contextlib.suppress(OSError):
            if entry.stat().st_uid != os.getuid():
                continue  # another user's
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed
