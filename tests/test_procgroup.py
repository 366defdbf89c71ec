"""procgroup ends what it started, including processes that left the group but are still
attached below it: a sandbox's own session (bwrap --new-session), a `setsid` child."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from pathlib import Path

import pytest

from ralph_tui.safety.procgroup import run_in_group

# The command's child moves to its own session (as bwrap's inner process does) and sleeps; the
# parent waits for it, so the child is never reparented while the parent lives.
ESCAPER = """
import os, sys, time
pid = os.fork()
if pid == 0:
    os.setsid()
    open(sys.argv[1], "w").write(str(os.getpid()))
    time.sleep(1000)
else:
    os.waitpid(pid, 0)
"""


class _Sink:
    def add(self, chunk: bytes) -> None:
        pass

    def text(self) -> str:
        return ""


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


async def _wait_for_file(path: Path, run: asyncio.Task[object]) -> int:
    # another process writes it: there is no event to await, so poll (bounded by the run)
    while not path.exists() or not path.read_text():
        assert not run.done(), "the command ended before its child started"
        await asyncio.sleep(0.01)
    return int(path.read_text())


@pytest.mark.parametrize("how", ["timeout", "cancel"])
async def test_a_child_in_its_own_session_dies_with_the_command(tmp_path: Path, how: str) -> None:
    marker = tmp_path / "child.pid"
    argv = [sys.executable, "-c", ESCAPER, str(marker)]
    run = asyncio.create_task(
        run_in_group(
            argv,
            cwd=tmp_path,
            env=dict(os.environ),
            timeout_s=3600 if how == "cancel" else 5.0,
            output=_Sink(),
            kill_grace_s=0.2,
        )
    )
    child = await _wait_for_file(marker, run)
    try:
        assert _alive(child)
        if how == "cancel":
            run.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await run
        else:
            assert (await run).timed_out
        assert not _alive(child), "the child that left the group outlived the command"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, 9)
