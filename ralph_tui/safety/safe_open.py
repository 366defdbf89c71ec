"""Opening ralph-tui's bookkeeping files (PRD, progress log) without following links.

Without a sandbox the agent can replace the PRD or the progress log with a symlink to a file
outside the workspace (or with a FIFO that would block a read forever). Every open goes
through ``open_regular``: ``O_NOFOLLOW`` refuses a symlink, ``O_NONBLOCK`` keeps a FIFO from
blocking the open, and anything but a regular file is refused with one line naming it.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from ralph_tui.errors import UsageError

__all__ = ["BookkeepingError", "inside", "open_regular", "read_capped", "replace_regular"]


class BookkeepingError(UsageError):
    """The PRD or the progress log is a symlink or not a regular file; nothing was written."""


def open_regular(path: Path, flags: int, mode: int = 0o644) -> int:
    """``os.open`` that refuses symlinks (``O_NOFOLLOW``) and anything but a regular file."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a symlink
            raise BookkeepingError(
                f"{path}: is a symlink; ralph-tui only writes its bookkeeping files directly"
            ) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise BookkeepingError(f"{path}: not a regular file")
    os.set_blocking(fd, True)
    return fd


def replace_regular(path: Path, data: bytes) -> None:
    """Put ``data`` at ``path`` by temp file + rename: a symlink there is replaced, not followed."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.ralph-tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)


def inside(path: Path, root: Path) -> bool:
    """Whether ``path``, every link followed, stays within ``root`` (a symlinked ``tasks/``
    folder or ``AGENTS.md`` pointing at ``~/.ssh`` does not)."""
    try:
        return path.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError):  # a link loop
        return False


def read_capped(path: Path, limit: int, *, root: Path | None = None) -> tuple[bytes, bool]:
    """At most ``limit`` bytes of a regular file, and whether there was more; never reads more
    from disk (a 3 GiB ``AGENTS.md`` costs ``limit`` bytes). With ``root``: a file whose links
    lead out of it is refused (``BookkeepingError``), as is anything but a regular file."""
    if root is not None and not inside(path, root):
        raise BookkeepingError(f"{path}: leads outside the repository (a symlink?); not read")
    target = path.resolve() if root is not None else path
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise BookkeepingError(f"{path}: is a symlink; not read") from None
        raise
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise BookkeepingError(f"{path}: not a regular file; not read")
        data = handle.read(limit + 1)
    return data[:limit], len(data) > limit
