"""The ``bash`` tool: one command, a fresh shell, its own process group, a hard timeout.

The command runs with ``bash -c`` in the workspace, inside the workspace's sandbox (see
``sandbox.py``) when one is given, with stdin from /dev/null and an environment without secrets.
It gets its own session so a timeout (or the command finishing while it left background jobs
behind) kills the whole group, not just the shell. Output is kept head + tail in bounded memory,
because a runaway command can print gigabytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ralph_tui.iteration import ToolOutcome
from ralph_tui.safety.procgroup import run_in_group
from ralph_tui.safety.sandbox import Sandbox

MAX_OUTPUT_BYTES = 16_000
BASH_KILL_GRACE_S = 0.5  # leftover background jobs get SIGTERM, then SIGKILL after this


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


async def run_bash(
    command: str,
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout_s: float,
    max_output_bytes: int = MAX_OUTPUT_BYTES,
    sandbox: Sandbox | None = None,
) -> ToolOutcome:
    out = _HeadTail(max_output_bytes)
    argv = ["bash", "-c", command]
    run = await run_in_group(
        sandbox.wrap(argv, cwd) if sandbox is not None else argv,
        cwd=cwd,
        env=env,
        timeout_s=timeout_s,
        output=out,
        kill_grace_s=BASH_KILL_GRACE_S,
    )
    if run.start_error is not None:
        return ToolOutcome(run.start_error, is_error=True)
    text = out.text().rstrip("\n")
    if run.timed_out:
        status = f"[timed out after {timeout_s:g}s; process group killed]"
        return ToolOutcome(f"{text}\n{status}" if text else status, is_error=True)
    status = f"[exit code {run.returncode}]"
    return ToolOutcome(f"{text}\n{status}" if text else status, is_error=run.returncode != 0)


RESTART_MESSAGE = (
    "Shell restarted. (Each command already runs in a fresh shell in the repository root.)"
)
