"""One run per workspace: an exclusive lock on ``.ralph/run.lock``.

The lock is a ``flock`` on the file, so the kernel drops it when the holder dies, however it
dies: a lock left by a killed run (its pid is dead) is simply taken over. The file holds the
holder's pid, so a second run can name it when it refuses to start.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from ralph_tui.errors import UsageError


class WorkspaceBusy(UsageError):
    """Another ralph-tui run holds the workspace (exit code 2)."""


class RunLock:
    def __init__(self, ralph_dir: Path) -> None:
        self.path = ralph_dir / "run.lock"
        self._fd: int | None = None
        self.stale_pid: int | None = None  # a dead holder's pid found in the file, if any

    def acquire(self) -> None:
        if self.path.parent.is_symlink():
            raise UsageError(
                f"{self.path.parent}: is a symlink; ralph-tui keeps its state in a real folder "
                "(remove the link)"
            )
        if self.path.parent.exists() and not self.path.parent.is_dir():
            raise UsageError(
                f"{self.path.parent}: not a folder; ralph-tui keeps its state there (move the "
                "file away)"
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a read-only workspace
            raise UsageError(f"{self.path.parent}: cannot be created ({exc.strerror})") from None
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise UsageError(f"{self.path}: cannot open the run lock ({exc.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"pid {holder}" if holder is not None else "another process"
            raise WorkspaceBusy(
                f"{self.path.parent.parent}: another ralph-tui run ({who}) is using this "
                f"workspace (lock {self.path})"
            ) from None
        previous = _read_pid(fd)
        if previous is not None and previous != os.getpid():
            self.stale_pid = previous
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)  # closing drops the flock
        self._fd = None


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
