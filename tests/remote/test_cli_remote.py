"""The remote commands' bad input: one line naming the problem, nothing started."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from ralph_tui.cli import main
from tests.remote.test_web import start_run
from tests.support.repo import make_repo


def test_listen_on_a_public_address_needs_listen_public(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_repo(tmp_path / "ws")
    code = main(["run", "--headless", "--listen", "0.0.0.0:0", "--workspace", str(root)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "0.0.0.0:0: not a loopback address; add --listen-public" in err[0]
    assert not (root / ".ralph" / "serve.json").exists()


def test_listen_needs_host_and_port(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_repo(tmp_path / "ws")
    assert main(["run", "--headless", "--listen", "8765", "--workspace", str(root)]) == 2
    assert "expected HOST:PORT" in capsys.readouterr().err


def test_attach_without_a_served_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_repo(tmp_path / "ws")
    assert main(["attach", "--workspace", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"ralph-tui: {root}/.ralph/serve.json: no served run here")


async def test_ctrl_c_stops_a_headless_run_waiting_on_clients(tmp_path: Path) -> None:
    """The first ^C stops at the next safe point: the question waiting on clients is settled
    with the safest answer (discard) instead of waiting for ever."""
    _, run = await start_run(tmp_path)
    run.send_signal(signal.SIGINT)
    code = await asyncio.wait_for(run.wait(), 30)
    assert run.stdout is not None
    rest = (await run.stdout.read()).decode()
    assert "supervisor: discard" in rest, rest
    assert code != 0
