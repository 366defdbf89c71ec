"""Gate phase wall time: three 1-second gates against one, run through ``run_gates``.

Gates run concurrently, so the ratio should be close to 1.0 (a sequential runner would give
3.0). Run: ``.venv/bin/python benchmarks/bench_gates.py [--repeats N] [--gate-seconds S]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from ralph_tui.gates import run_gates


async def phase_seconds(count: int, gate_seconds: float, cwd: Path) -> float:
    gates = {f"gate{i}": f"sleep {gate_seconds:g}" for i in range(count)}
    started = time.perf_counter()
    results = await run_gates(gates, cwd, timeout_s=gate_seconds + 30)
    elapsed = time.perf_counter() - started
    failed = [r.name for r in results if not r.passed]
    if failed:
        raise SystemExit(f"bench_gates: gates failed: {', '.join(failed)}")
    return elapsed


async def main(repeats: int, gate_seconds: float) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-gates-") as tmp:
        cwd = Path(tmp)
        await phase_seconds(1, 0.01, cwd)  # warm up imports and the child watcher
        print(f"gate phase wall time, {gate_seconds:g}s gates, {repeats} repeats")
        print(f"{'run':>4} {'1 gate (s)':>11} {'3 gates (s)':>12} {'ratio':>7}")
        ones: list[float] = []
        threes: list[float] = []
        for run in range(1, repeats + 1):
            one = await phase_seconds(1, gate_seconds, cwd)
            three = await phase_seconds(3, gate_seconds, cwd)
            ones.append(one)
            threes.append(three)
            print(f"{run:>4} {one:>11.3f} {three:>12.3f} {three / one:>7.3f}")
        one_med, three_med = statistics.median(ones), statistics.median(threes)
        print(f"{'med':>4} {one_med:>11.3f} {three_med:>12.3f} {three_med / one_med:>7.3f}")
        print("(sequential gates would give a ratio near 3.0)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--gate-seconds", type=float, default=1.0)
    args = parser.parse_args()
    asyncio.run(main(args.repeats, args.gate_seconds))
