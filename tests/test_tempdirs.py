"""Nothing is left in the temp folder (issue 19): after a run that ends, fails or is stopped,
and, for a run that was killed, after the next ralph-tui starts.

Each run is the installed ``ralph-tui`` in a subprocess with ``TMPDIR`` pointing at a folder of
the test's own, so what it leaves there is exactly what the run left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ralph_tui.safety import tempdirs
from tests.support.engine import complete, create
from tests.support.repo import make_repo, story

RALPH_TUI = Path(sys.executable).parent / "ralph-tui"


def _repo(tmp_path: Path, gates: dict[str, str], workers: int = 1) -> Path:
    script = tmp_path / "script.json"
    steps = [create("feature.txt", "x\n"), complete()]
    script.write_text(json.dumps({"default": steps}), encoding="utf-8")
    extra = f"script = {json.dumps(str(script))}\nworkers = {workers}"
    stories = [story("US-001", "One"), story("US-002", "Two", 2)]
    return make_repo(tmp_path / "ws", stories, gates=gates, extra_config=extra)


def _env(temp: Path) -> dict[str, str]:
    return {**os.environ, "TMPDIR": str(temp)}


def _start(root: Path, temp: Path, *extra: str) -> subprocess.Popen[str]:
    args = [str(RALPH_TUI), "run", "--headless", "--approve", "auto", *extra]
    return subprocess.Popen(
        args, cwd=root, env=_env(temp), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize(
    ("gate", "codes"), [("true", {0}), ("false", {3, 4})], ids=["ends", "fails"]
)
def test_a_run_leaves_nothing_in_the_temp_folder(
    tmp_path: Path, workers: int, gate: str, codes: set[int]
) -> None:
    temp = tmp_path / "temp"
    temp.mkdir()
    root = _repo(tmp_path, {"ok": gate}, workers)
    proc = _start(root, temp, "--max-iterations", "4")
    out, err = proc.communicate(timeout=180)
    # failing: max_iterations (3) or the automatic escalation (4), whichever comes first
    assert proc.returncode in codes, out + err
    assert sorted(p.name for p in temp.iterdir()) == []


def _wait_for_event(root: Path, kind: str, proc: subprocess.Popen[str]) -> None:
    """Until the run's journal has an event of ``kind`` (the run writes it; nothing to time)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for journal in (root / ".ralph" / "runs").glob("*/events.jsonl"):
            if f'"{kind}"' in journal.read_text(encoding="utf-8", errors="replace"):
                return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError(f"no {kind} event")


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stopped_run_leaves_nothing(tmp_path: Path, how: signal.Signals) -> None:
    temp = tmp_path / "temp"
    temp.mkdir()
    # SIGINT stops at the next safe point: after the gate, so the gate is short
    root = _repo(tmp_path, {"slow": "sleep 3"}, workers=2)
    proc = _start(root, temp)
    _wait_for_event(root, "gate_started", proc)
    assert any(temp.iterdir())  # the run's own folder, while it runs
    proc.send_signal(how)
    proc.communicate(timeout=60)
    assert proc.returncode in (130, 143, 1, 4), proc.returncode
    assert sorted(p.name for p in temp.iterdir()) == []


def test_a_killed_run_is_cleaned_up_at_the_next_start(tmp_path: Path) -> None:
    temp = tmp_path / "temp"
    temp.mkdir()
    root = _repo(tmp_path, {"slow": "sleep 60"}, workers=2)
    proc = _start(root, temp)
    _wait_for_event(root, "gate_started", proc)
    proc.kill()
    proc.communicate(timeout=60)
    left = [p.name for p in temp.iterdir()]
    assert left and all(name.startswith(f"ralph-{proc.pid}.") for name in left)
    nxt = subprocess.run(
        [str(RALPH_TUI), "status"], cwd=root, env=_env(temp), capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert nxt.returncode == 0, nxt.stderr
    assert sorted(p.name for p in temp.iterdir()) == []


def test_sweep_keeps_live_processes_and_other_names(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    start = tempdirs._start_time(child.pid)
    child.wait()
    dead = tmp_path / f"ralph-{child.pid}.{start}"
    mine = tmp_path / f"ralph-{os.getpid()}.{tempdirs._start_time(os.getpid())}"
    reused = tmp_path / f"ralph-{os.getpid()}.1"  # this pid, another start: a dead process
    other = tmp_path / "ralph-demo-abc"
    for folder in (dead, mine, reused, other):
        folder.mkdir()
    assert sorted(tempdirs.sweep(tmp_path)) == sorted([dead, reused])
    assert mine.exists() and other.exists()
