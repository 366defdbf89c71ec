"""Parallel workers: wall time of 8 independent stories, ``--workers 4`` against ``--workers 1``.

Setup (issue 24's): a PRD of 8 stories touching different files, the built-in agent talking to
the fake Messages API on 127.0.0.1, which waits 1 s before each answer (model latency; each
story takes two answers: write its file, then ``complete_task``), one quality gate that takes
1 second (``sleep 1``), approvals automatic (``--approve auto``). Each configuration runs as the
installed ``ralph-tui run --headless`` on its own copy of the repository, in the same benchmark
run. Every story must end committed on the branch, once, with one progress entry, and no
worktree or ``ralph/`` work branch left; with 4 workers, changes that land after the branch
moved are gated again on the rebased tree, so the figure includes what verified merges cost.

Besides the wall time it prints where the time went, from the journal: launch to
``run_started``, the run itself (``run_started`` to ``run_finished``), and ``run_finished`` to
the process exit.

Run: .venv/bin/python benchmarks/bench_workers.py   (goal: at least 3.5x)
     BENCH_BASELINE=<an older checkout> runs it too, in the same run, as the baseline.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.support import agent_turn  # noqa: E402
from tests.support.fake_anthropic import FakeAnthropic  # noqa: E402
from tests.support.repo import git, make_repo, story  # noqa: E402

RALPH_TUI = Path(sys.executable).parent / "ralph-tui"
STORIES = 8
MODEL_DELAY_S = 1.0
GATE_S = 1.0
GATE = f"sleep {GATE_S:g}"


def slow_turn(body: dict[str, Any]) -> dict[str, Any]:
    return {**agent_turn(body), "delay_s": MODEL_DELAY_S}


def build(path: Path) -> Path:
    stories = [story(f"US-{i:03d}", f"Story {i}", priority=i) for i in range(1, STORIES + 1)]
    return make_repo(path, stories, gates={"slow": GATE})


def _journal(root: Path) -> list[dict[str, Any]]:
    (events,) = (root / ".ralph" / "runs").glob("*/events.jsonl")
    return [json.loads(line) for line in events.read_text(encoding="utf-8").splitlines()]


def run(root: Path, workers: int, env: dict[str, str]) -> tuple[float, float]:
    """The wall time, and the run's fixed costs no scheduler can share out (see ``bound``)."""
    launched = time.time()
    start = time.perf_counter()
    done = subprocess.run(
        [str(RALPH_TUI), "run", "--headless", "--approve", "auto", "--agent", "anthropic",
         "--workers", str(workers), "--max-iterations", str(STORIES * 2)],
        cwd=root, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False,
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    exited = launched + elapsed
    if done.returncode != 0:
        output = done.stdout[-3000:] + done.stderr[-2000:]
        raise SystemExit(f"--workers {workers} exited {done.returncode}:\n{output}")
    subjects = git(root, "log", "--format=%s").splitlines()
    for i in range(1, STORIES + 1):
        if subjects.count(f"[backend] Task #US-{i:03d}: Story {i}") != 1:
            raise SystemExit(f"--workers {workers}: US-{i:03d} is not committed once: {subjects}")
    progress = (root / "tasks" / "backend_progress.txt").read_text(encoding="utf-8")
    if progress.count("## Task #") != STORIES:
        raise SystemExit(f"--workers {workers}: not one progress entry per story:\n{progress}")
    left = git(root, "worktree", "list", "--porcelain").count("worktree ") - 1
    branches = git(root, "branch", "--list", "ralph/*/*").split()
    if left or branches:
        raise SystemExit(f"--workers {workers}: left {left} worktrees, branches {branches}")
    events = _journal(root)
    began = next(e["ts"] for e in events if e["kind"] == "run_started")
    ended = next(e["ts"] for e in events if e["kind"] == "run_finished")
    last_commit = max(e["ts"] for e in events if e["kind"] == "committed")
    reruns = done.stdout.count("running them again")
    # the first model answer comes MODEL_DELAY_S after its request: the rest of the wait from
    # the first iteration is the SDK's import (CPU-bound, before any request, in every run)
    first_iteration = next(e["ts"] for e in events if e["kind"] == "iteration_started")
    first_answer = next(e["ts"] for e in events if e["kind"] == "usage")
    sdk_wait = max(0.0, first_answer - first_iteration - MODEL_DELAY_S)
    fixed = (began - launched) + sdk_wait + (exited - last_commit)
    print(
        f"  --workers {workers}: {elapsed:6.2f} s  (launch -> run_started {began - launched:.2f} s,"
        f" run {ended - began:.2f} s, last commit -> exit {exited - last_commit:.2f} s,"
        f" {reruns} gate re-runs after the branch moved; the first answer waited"
        f" {sdk_wait:.2f} s for the SDK import)"
    )
    return elapsed, fixed


def bound(one: float, fixed_four: float) -> float:
    """The speed-up a perfect scheduler would reach here: ``--workers 4`` with no cost of its
    own beyond the fixed ones (launch, the SDK import before the first answer, exit), i.e.
    two rounds of ideal stories (``2 x (2 answers + gate)``), against the measured one worker.
    """
    rounds = -(-STORIES // 4)
    ideal = rounds * (2 * MODEL_DELAY_S + GATE_S)
    return one / (ideal + fixed_four)


def sdk_import_alone(env: dict[str, str]) -> float:
    """Launch to ``import anthropic`` done in a bare interpreter (median of 3): the least any
    in-process client of the SDK waits before its first request, whatever else it does."""
    times = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import anthropic"], env=env, check=True)
        times.append(time.perf_counter() - start)
    return sorted(times)[1]


def ceiling(one: float, fixed_one: float, floor: float) -> float:
    """An upper bound on the speed-up with the SDK's import as the only fixed cost of both
    runs: one worker keeps its measured per-story costs, four workers have none at all."""
    rounds = -(-STORIES // 4)
    ideal = rounds * (2 * MODEL_DELAY_S + GATE_S)
    return (one - fixed_one + floor) / (ideal + floor)


def main() -> None:
    """``BENCH_BASELINE=<checkout>``: that checkout's ralph_tui too (on ``PYTHONPATH``, with
    this venv's ``ralph-tui``), in the same run, as the baseline."""
    faces = {"now": str(ROOT)}
    if os.environ.get("BENCH_BASELINE"):
        faces["baseline"] = os.environ["BENCH_BASELINE"]
    with tempfile.TemporaryDirectory() as tmp, FakeAnthropic() as api:
        api.respond_with(slow_turn)
        base = Path(tmp)
        template = build(base / "template")
        env = {
            **os.environ,
            "ANTHROPIC_API_KEY": "sk-ant-bench-0000",
            "ANTHROPIC_BASE_URL": api.base_url,
        }
        print(
            f"{STORIES} independent stories, built-in agent, {MODEL_DELAY_S:.0f} s per model "
            f"answer (2 per story), gate `{GATE}`, approvals automatic"
        )
        floor = sdk_import_alone(env)
        print(f"`import anthropic` alone, in a bare interpreter: {floor:.2f} s (median of 3)")
        speedups = {}
        for face, path in faces.items():
            print(f"[{face}]")
            face_env = {**env, "PYTHONPATH": path}
            shutil.copytree(template, base / f"{face}-one", symlinks=True)
            shutil.copytree(template, base / f"{face}-four", symlinks=True)
            one, fixed_one = run(base / f"{face}-one", 1, face_env)
            four, fixed = run(base / f"{face}-four", 4, face_env)
            speedups[face] = (one / four, bound(one, fixed), ceiling(one, fixed_one, floor))
        for face, (speedup, best, most) in speedups.items():
            print(
                f"[{face}] speed-up: {speedup:.2f}x (goal 3.5x; a perfect scheduler with this"
                f" run's fixed costs: {best:.2f}x; with only the SDK's import as fixed cost and"
                f" no cost per story in --workers 4: {most:.2f}x)"
            )


if __name__ == "__main__":
    main()
