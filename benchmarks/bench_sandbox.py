"""Cost of the sandbox per bash call: the same command through the real ``run_bash``, without a
sandbox and inside bubblewrap, alternating call by call in the same run.

Goal: under 15 ms added per call (median). Run:
``.venv/bin/python benchmarks/bench_sandbox.py [--calls N] [--command CMD]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ralph_tui.config import SandboxOptions  # noqa: E402
from ralph_tui.errors import UsageError  # noqa: E402
from ralph_tui.safety.sandbox import Sandbox, resolve_sandbox  # noqa: E402
from ralph_tui.tools.shell import run_bash  # noqa: E402

GOAL_MS = 15.0


def workspace(tmp: Path) -> Path:
    root = tmp / "ws"
    (root / "tasks").mkdir(parents=True)
    (root / ".ralph").mkdir()
    (root / "tasks" / "backend_prd.json").write_text("{}\n")
    (root / "tasks" / "backend_progress.txt").write_text("")
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    return root


async def one_call(command: str, sandbox: Sandbox) -> float:
    started = time.perf_counter()
    outcome = await run_bash(
        command, cwd=sandbox.root, env=sandbox.env(), timeout_s=30, sandbox=sandbox
    )
    elapsed = (time.perf_counter() - started) * 1000
    if outcome.is_error:
        raise SystemExit(f"bench_sandbox: {command!r} failed under {sandbox.kind}: {outcome}")
    return elapsed


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1]


async def main(calls: int, command: str) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as tmp:
        root = workspace(Path(tmp))
        bookkeeping = (root / "tasks" / "backend_prd.json", root / "tasks" / "backend_progress.txt")
        try:
            boxed = resolve_sandbox(
                SandboxOptions(mode="bwrap"),
                root,
                read_only=bookkeeping,
                hidden=(root / ".ralph",),
            )
        except UsageError as exc:
            print(f"bench_sandbox: skipped: {exc}")
            return 0
        bare = Sandbox.unconfined(root.resolve())
        for sandbox in (bare, boxed):  # warm up the page cache and the child watcher
            await one_call(command, sandbox)
        timings: dict[str, list[float]] = {"none": [], "bwrap": []}
        for _ in range(calls):
            timings["none"].append(await one_call(command, bare))
            timings["bwrap"].append(await one_call(command, boxed))
    print(f"bash tool, {calls} calls of {command!r} each, alternating, same run")
    print(f"{'sandbox':>8} {'median ms':>10} {'p90 ms':>8}")
    for name, values in timings.items():
        print(f"{name:>8} {statistics.median(values):>10.1f} {p90(values):>8.1f}")
    added = statistics.median(timings["bwrap"]) - statistics.median(timings["none"])
    added_p90 = p90(timings["bwrap"]) - p90(timings["none"])
    verdict = "ok" if added < GOAL_MS else "OVER GOAL"
    print(f"added by bwrap: {added:.1f} ms median, {added_p90:.1f} ms p90 "
          f"(goal < {GOAL_MS:g} ms: {verdict})")  # fmt: skip
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--command", default="true")
    args = parser.parse_args()
    raise SystemExit(asyncio.run(main(args.calls, args.command)))
