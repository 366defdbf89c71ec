"""Run one command in its own process group, and make sure nothing it started outlives it.

Shared by the quality gates, the agent's ``bash`` tool and the command agent's CLI (which also
gets a live stdin and its output as lines). The command gets its own session,
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
import codecs
import contextlib
import os
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

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


def _process_table() -> list[tuple[int, str, int, int]]:
    """``(pid, state, ppid, pgrp)`` of every process /proc shows (empty without /proc)."""
    table = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue  # exited while we looked
        fields = stat[stat.rfind(")") + 2 :].split()
        # fields: state ppid pgrp ...
        if len(fields) >= 3:
            table.append((int(entry.name), fields[0], int(fields[1]), int(fields[2])))
    return table


def _group_alive(pgid: int) -> bool:
    """Whether any process of the group still runs (zombies do not count)."""
    if not Path("/proc").is_dir():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    return any(pgrp == pgid and state not in ("Z", "X") for _, state, _, pgrp in _process_table())


def _escaped_descendants(leader: int) -> list[int]:
    """Live descendants of ``leader`` outside its process group, which ``killpg`` misses: the
    sandbox's own session (bwrap ``--new-session``: its PID-namespace init) or a ``setsid``
    child still attached to its parent."""
    if not Path("/proc").is_dir():
        return []
    children: dict[int, list[int]] = {}
    group: dict[int, int] = {}
    for pid, state, ppid, pgrp in _process_table():
        if state not in ("Z", "X"):
            children.setdefault(ppid, []).append(pid)
            group[pid] = pgrp
    found, todo = [], [leader]
    while todo:
        for child in children.get(todo.pop(), ()):
            todo.append(child)
            if group[child] != leader:
                found.append(child)
    return found


def _kill_escaped(pgid: int) -> None:
    """SIGKILL what descends from the group but left it, while the group is frozen (SIGSTOP),
    so nothing can be handed to PID 1 between the look and the kill. Killing a sandbox's
    namespace init ends every process in that namespace.

    ``--die-with-parent`` alone is not enough: under load the outer bwrap can die before the
    inner one has armed it, and the inner one then lives on with the agent's command."""
    if not signal_group(pgid, signal.SIGSTOP):
        return
    try:
        for pid in _escaped_descendants(pgid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    finally:
        signal_group(pgid, signal.SIGCONT)


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
    """SIGTERM the group, wait up to ``grace_s`` for it to go, then SIGKILL what is left;
    what left the group (a sandbox's session) is killed first."""
    _kill_escaped(pgid)
    if signal_group(pgid, signal.SIGTERM) and not await _wait_group_gone(pgid, grace_s):
        signal_group(pgid, signal.SIGKILL)
        await _wait_group_gone(pgid, _DRAIN_S)


async def _kill_and_reap(proc: asyncio.subprocess.Process, waiter: asyncio.Future[int]) -> None:
    """SIGKILL the group now, wait for it to die, and release the pipes and the child."""
    _kill_escaped(proc.pid)
    signal_group(proc.pid, signal.SIGKILL)
    await _wait_group_gone(proc.pid, _DRAIN_S)
    # Stop reading even if something outside the group still holds the pipe; ``_transport``
    # is the only handle asyncio gives for that.
    transport = getattr(proc, "_transport", None)
    if transport is not None:
        transport.close()
    await asyncio.wait({waiter}, timeout=_DRAIN_S)
    waiter.cancel()


class GroupProcess:
    """A started command, leader of its own session, with its stdout (stderr merged) piped and,
    if asked, a live stdin. ``stop()`` ends the whole group and reaps it; call it in a
    ``finally``. The command agent's CLI uses this directly; ``run_in_group`` wraps it."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        assert proc.stdout is not None
        self.stdout: asyncio.StreamReader = proc.stdout
        self.stdin: asyncio.StreamWriter | None = proc.stdin
        self._waiter: asyncio.Future[int] = asyncio.ensure_future(proc.wait())

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    @classmethod
    async def start(
        cls, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], stdin: bool = False
    ) -> GroupProcess:
        """Spawn ``argv``; raises ``OSError`` when it cannot start. Cancelled mid-spawn, the
        late process group is killed before the cancellation goes on."""
        spawn = asyncio.ensure_future(
            asyncio.create_subprocess_exec(
                *argv,
                cwd=cwd,
                env=dict(env),
                stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        )
        try:
            return cls(await asyncio.shield(spawn))
        except asyncio.CancelledError:
            with contextlib.suppress(OSError):
                late = await spawn
                await _kill_and_reap(late, asyncio.ensure_future(late.wait()))
            raise

    async def wait_exit(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the leader to exit (not for its pipes); True if it did."""
        deadline = time.monotonic() + timeout_s
        while self.proc.returncode is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            await asyncio.wait({self._waiter}, timeout=min(remaining, _EXIT_POLL_S))
        return True

    async def stop(
        self, grace_s: float = KILL_GRACE_S, reader: asyncio.Future[None] | None = None
    ) -> None:
        """End everything in the group (SIGTERM, ``grace_s``, SIGKILL) and reap the leader.

        ``reader``, a task draining stdout, is given the drain time to finish."""
        if self.stdin is not None and not self.stdin.is_closing():
            self.stdin.close()
        try:
            await stop_group(self.proc.pid, grace_s)
            pending: set[asyncio.Future[Any]] = {self._waiter}
            if reader is not None:
                pending.add(reader)
            await asyncio.wait(pending, timeout=_DRAIN_S)
        finally:
            # Cancelled, or a process that left the group still holds the pipe.
            if not (self._waiter.done() and (reader is None or reader.done())):
                if reader is not None:
                    reader.cancel()
                await _kill_and_reap(self.proc, self._waiter)

    async def kill(self, reader: asyncio.Future[None] | None = None) -> None:
        """SIGKILL the group now and reap it (cancellation, shutdown)."""
        if reader is not None:
            reader.cancel()
        await _kill_and_reap(self.proc, self._waiter)


class LineSplitter:
    """Decodes a byte stream as UTF-8 (bad bytes replaced) and cuts it into lines; a line longer
    than ``max_line`` comes out in pieces, so one giant line still streams."""

    def __init__(self, max_line: int = 8_192) -> None:
        self.max_line = max_line
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.partial = ""  # the current line, not yet complete

    def feed(self, chunk: bytes, *, final: bool = False) -> tuple[str, list[str]]:
        """The newly decoded text, and the lines it completed (with their newline)."""
        text = self._decoder.decode(chunk, final=final)
        self.partial += text
        lines: list[str] = []
        while (cut := self.partial.find("\n")) >= 0:
            lines.append(self.partial[: cut + 1])
            self.partial = self.partial[cut + 1 :]
        while len(self.partial) > self.max_line:
            lines.append(self.partial[: self.max_line])
            self.partial = self.partial[self.max_line :]
        return text, lines

    def flush(self) -> str:
        """The incomplete last line ("" if none), and forget it."""
        rest, self.partial = self.partial, ""
        return rest


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
    try:
        group = await GroupProcess.start(argv, cwd=cwd, env=env)
    except OSError as exc:  # missing cwd or executable, out of processes
        message = f"could not start: {exc.strerror or exc}"
        if exc.filename:
            message += f" ({exc.filename})"
        return GroupRun(None, False, message)
    stdout = group.stdout

    async def pump() -> None:
        while chunk := await stdout.read(_CHUNK):
            output.add(chunk)

    reader = asyncio.create_task(pump())
    try:
        timed_out = not await group.wait_exit(timeout_s)
    except BaseException:  # cancelled: no grace
        await group.kill(reader)
        raise
    # Out of time, or the shell is done: nothing it started may outlive it.
    await group.stop(kill_grace_s, reader)
    return GroupRun(None if timed_out else group.returncode, timed_out)
