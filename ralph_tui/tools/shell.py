"""The ``bash`` tool: one command, a fresh shell, its own process group, a hard timeout.

The command runs with ``bash -c`` in the workspace, with stdin from /dev/null and an environment
without secrets (``agent_env``). It gets its own session so a timeout (or the command finishing
while it left background jobs behind) kills the whole group, not just the shell. Output is kept
head + tail in bounded memory, because a runaway command can print gigabytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping
from pathlib import Path

from ralph_tui.agents.base import ToolOutcome

MAX_OUTPUT_BYTES = 16_000
_CHUNK = 65_536
# After the shell exits and its group is killed, the pipe closes at once; this only guards a
# process that escaped into its own session while holding the pipe open.
_DRAIN_GRACE_S = 2.0


def clip(data: bytes, limit: int = MAX_OUTPUT_BYTES) -> str:
    """Head and tail of ``data`` with a marker saying how much was cut from the middle."""
    if len(data) <= limit:
        return data.decode("utf-8", errors="replace")
    half = limit // 2
    cut = len(data) - 2 * half
    head = data[:half].decode("utf-8", errors="replace")
    tail = data[-half:].decode("utf-8", errors="replace")
    return f"{head}\n... [{cut} bytes clipped] ...\n{tail}"


class _HeadTail:
    """Collects a stream keeping only the first and last ``half`` bytes, and the total size."""

    def __init__(self, limit: int) -> None:
        self.half = limit // 2
        self.limit = limit
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.half - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            if len(self.tail) > self.half:
                del self.tail[: len(self.tail) - self.half]

    def text(self) -> str:
        if self.total <= self.limit:
            return clip(bytes(self.head + self.tail), self.limit)
        cut = self.total - len(self.head) - len(self.tail)
        head = bytes(self.head).decode("utf-8", errors="replace")
        tail = bytes(self.tail).decode("utf-8", errors="replace")
        return f"{head}\n... [{cut} bytes clipped] ...\n{tail}"


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def _exited(proc: asyncio.subprocess.Process) -> None:
    """Returns when the shell itself has exited and its return code is known.

    ``proc.wait()`` would also wait for the pipe to close, which a background job holding it
    keeps open; a pidfd (Linux) signals the exit alone, else we poll the return code.
    """
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is not None:
        try:
            fd = pidfd_open(proc.pid)
        except OSError:  # already reaped, or pidfds unsupported by this kernel
            fd = None
        if fd is not None:
            loop = asyncio.get_running_loop()
            done: asyncio.Future[None] = loop.create_future()

            def readable() -> None:
                if not done.done():
                    done.set_result(None)

            loop.add_reader(fd, readable)
            try:
                await done
            finally:
                loop.remove_reader(fd)
                os.close(fd)
    # The child watcher records the return code a moment after the exit itself; asyncio
    # offers no event for that alone (``wait()`` also waits for the pipes), so poll briefly.
    while proc.returncode is None:  # noqa: ASYNC110
        await asyncio.sleep(0.005)


async def run_bash(
    command: str,
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout_s: float,
    max_output_bytes: int = MAX_OUTPUT_BYTES,
) -> ToolOutcome:
    proc = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        command,
        cwd=cwd,
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    assert proc.stdout is not None
    stdout = proc.stdout
    out = _HeadTail(max_output_bytes)

    async def pump() -> None:
        while chunk := await stdout.read(_CHUNK):
            out.add(chunk)

    reader = asyncio.create_task(pump())
    timed_out = False
    try:
        try:
            await asyncio.wait_for(_exited(proc), timeout_s)
        except TimeoutError:
            timed_out = True
        # The shell is done (or out of time): nothing it started may outlive it.
        _kill_group(proc.pid)
        if timed_out:
            await _exited(proc)
        try:
            await asyncio.wait_for(asyncio.shield(reader), _DRAIN_GRACE_S)
        except TimeoutError:
            reader.cancel()
    finally:
        if proc.returncode is None or not reader.done():
            _kill_group(proc.pid)
            reader.cancel()

    text = out.text().rstrip("\n")
    if timed_out:
        status = f"[timed out after {timeout_s:g}s; process group killed]"
        return ToolOutcome(f"{text}\n{status}" if text else status, is_error=True)
    code = proc.returncode
    status = f"[exit code {code}]"
    return ToolOutcome(f"{text}\n{status}" if text else status, is_error=code != 0)


RESTART_MESSAGE = (
    "Shell restarted. (Each command already runs in a fresh shell in the repository root.)"
)
