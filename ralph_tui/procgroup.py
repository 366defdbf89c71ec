"""Run one command in its own process group, and make sure nothing it started outlives it.

Shared by the quality gates and the agent's ``bash`` tool. The command gets its own session,
stdin from /dev/null and merged stdout/stderr. When it times out, is cancelled, or exits
leaving background jobs behind, the whole group is stopped (SIGTERM, a short grace, then
SIGKILL) and reaped. Three asyncio traps are handled here, once:

- In Python 3.11 ``proc.wait()`` also waits for the pipes to close, which a leftover background
  job holds open; the loop watches ``returncode`` instead.
- Cancelled during ``create_subprocess_exec``, asyncio may already have forked the shell and
  would kill only it; the spawn is shielded and the late process group killed.
- Orphans are reparented to PID 1, which in some containers never reaps them, so "is the group
  alive" reads /proc and ignores zombies.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

KILL_GRACE_S = 2.0  # between SIGTERM and SIGKILL
_CHUNK = 65_536
_POLL_S = 0.02
_EXIT_POLL_S = 0.1  # only matters when the shell exits leaving a job holding its pipe
# After the group is gone the pipe closes at once; this only bounds the wait for a process
# that escaped into its own session while holding the pipe open.
_DRAIN_S = 2.0


class OutputCollector(Protocol):
    """Keeps what it wants of a stream (a tail, head + tail) in bounded memory."""

    def add(self, chunk: bytes) -> None: ...

    def text(self) -> str: ...


@dataclass(frozen=True)
class GroupRun:
    """How the command ended: ``start_error`` set if it never ran, else a code or a timeout."""

    returncode: int | None
    timed_out: bool
    start_error: str | None = None


def _group_alive(pgid: int) -> bool:
    """Whether any process of the group still runs (zombies do not count)."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue  # exited while we looked
        fields = stat[stat.rfind(")") + 2 :].split()
        # fields: state ppid pgrp ...
        if len(fields) >= 3 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False


def signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Send ``sig`` to the group; False when the group no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        # a member changed identity (setuid); nothing more we can do to it
        return False
    return True


async def _wait_group_gone(pgid: int, limit_s: float) -> bool:
    deadline = time.monotonic() + limit_s
    while _group_alive(pgid):
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(_POLL_S)
    return True


async def stop_group(pgid: int, grace_s: float) -> None:
    """SIGTERM the group, wait up to ``grace_s`` for it to go, then SIGKILL what is left."""
    if signal_group(pgid, signal.SIGTERM) and not await _wait_group_gone(pgid, grace_s):
        signal_group(pgid, signal.SIGKILL)
        await _wait_group_gone(pgid, _DRAIN_S)


async def _kill_and_reap(proc: asyncio.subprocess.Process, waiter: asyncio.Future[int]) -> None:
    """SIGKILL the group now, wait for it to die, and release the pipes and the child."""
    signal_group(proc.pid, signal.SIGKILL)
    await _wait_group_gone(proc.pid, _DRAIN_S)
    # Stop reading even if something outside the group still holds the pipe; ``_transport``
    # is the only handle asyncio gives for that.
    transport = getattr(proc, "_transport", None)
    if transport is not None:
        transport.close()
    await asyncio.wait({waiter}, timeout=_DRAIN_S)
    waiter.cancel()


async def run_in_group(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout_s: float,
    output: OutputCollector,
    kill_grace_s: float = KILL_GRACE_S,
) -> GroupRun:
    """Run ``argv`` to its end or its timeout; never raises for the command's own failure.

    Cancelling the call kills the process group at once.
    """
    started = time.monotonic()
    spawn = asyncio.ensure_future(
        asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    )
    try:
        proc = await asyncio.shield(spawn)
    except OSError as exc:  # missing cwd or executable, out of processes
        message = f"could not start: {exc.strerror or exc}"
        if exc.filename:
            message += f" ({exc.filename})"
        return GroupRun(None, False, message)
    except asyncio.CancelledError:
        with contextlib.suppress(OSError):
            late = await spawn
            await _kill_and_reap(late, asyncio.ensure_future(late.wait()))
        raise

    assert proc.stdout is not None
    stdout = proc.stdout

    async def pump() -> None:
        while chunk := await stdout.read(_CHUNK):
            output.add(chunk)

    reader = asyncio.create_task(pump())
    waiter = asyncio.create_task(proc.wait())
    timed_out = False
    try:
        deadline = started + timeout_s
        while proc.returncode is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            await asyncio.wait({waiter}, timeout=min(remaining, _EXIT_POLL_S))
        # Out of time, or the shell is done: nothing it started may outlive it.
        await stop_group(proc.pid, kill_grace_s)
        await asyncio.wait({waiter, reader}, timeout=_DRAIN_S)
    finally:
        # Cancelled, or a process that left the group still holds the pipe.
        if not (waiter.done() and reader.done()):
            reader.cancel()
            await _kill_and_reap(proc, waiter)
    return GroupRun(None if timed_out else proc.returncode, timed_out)
