"""Ray executor vs local worktrees: 8 stories, 1 s model latency per turn, 4 at once.

Setup, in one run: the same repository and PRD of 8 independent stories twice; the scripted
agent takes two model turns per story, each streamed over 1 s (``stream_delay_s``), writes one
file, calls ``complete_task``; one gate (``true``); approvals by policy. Local: ``workers = 4``
in git worktrees on this machine. Ray: ``executor = "ray"``, ``workers = 4`` on a local cluster
of a head (no slots) and 2 worker nodes x 2 CPUs, started and stopped by pid
(tests/support/ray_cluster.py); its start-up is reported apart, not in the run's wall time.
Goal: Ray wall time <= 1.2x local.

What the Ray run's wall time holds: everything ``engine.run()`` does, including the executor's
start (the pool of warm actors starts there, so the first stories wait for their actors like
before) and every story's slot, actor, clone, model turns, gates and merge. What it does not
hold: the cluster's start-up, which connects this process as the driver (``ray.init``, as
before this benchmark measured anything); a connect is timed apart, in a new process, and
printed (a real ``ralph-tui run`` pays it once at its start).

Run: .venv/bin/python benchmarks/bench_ray.py  (skips when the ``ray`` extra is missing)
"""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STORIES = 8
WORKERS = 4
TURN_S = 1.0  # one model turn: a 12-character text streamed as one delta after 1 s


def script() -> dict[str, Any]:
    def steps(i: int) -> list[dict[str, Any]]:
        return [
            {"text": "planning..."},
            {
                "tool": "str_replace_based_edit_tool",
                "input": {"command": "create", "path": f"s{i}.txt", "file_text": f"{i}\n"},
            },
            {"text": "checking..."},
            {"tool": "complete_task", "input": {"summary": "done", "learnings": ["x"]}},
        ]

    return {
        "stream_delay_s": TURN_S,
        "stories": {f"US-{i:03d}": steps(i) for i in range(1, STORIES + 1)},
    }


async def one_run(root: Path, overrides: dict[str, Any]) -> tuple[float, int, set[str]]:
    from ralph_tui.config import load_config
    from ralph_tui.events import Event, IterationFinished, IterationStarted, Notice, RunFinished
    from ralph_tui.parallel import build_engine
    from tests.support.engine import ScriptedSupervisor, write_script

    path = write_script(root, script())
    config = load_config(
        root, {"script": str(path), "workers": WORKERS, "approve": "auto", **overrides}
    )
    committed = 0
    nodes: set[str] = set()
    trail: list[str] = []

    def sink(event: Event) -> None:
        nonlocal committed
        if isinstance(event, IterationFinished):
            committed += event.outcome == "committed"
            trail.append(f"{event.story_id}: {event.outcome} {event.message}")
        if isinstance(event, IterationStarted) and event.node:
            nodes.add(event.node)
        if isinstance(event, Notice | RunFinished):
            trail.append(str(getattr(event, "message", "") or getattr(event, "reason", "")))

    engine = build_engine(root, config, None, ScriptedSupervisor(), sink)
    start = time.perf_counter()
    code = await engine.run()
    elapsed = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"run failed with exit code {code}:\n" + "\n".join(trail))
    return elapsed, committed, nodes


def reconnect(address: str) -> float:
    """How long a driver's ``ray.init`` takes: in a new process, as ``ralph-tui run`` pays it."""
    import subprocess

    code = (
        "import time, ray\n"
        "start = time.perf_counter()\n"
        f"ray.init(address={address!r}, log_to_driver=False, logging_level='warning')\n"
        "print(time.perf_counter() - start)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> int:
    if importlib.util.find_spec("ray") is None:
        print("bench_ray: skipped (install the extra: pip install 'ralph-tui[ray]')")
        return 0
    from tests.support.ray_cluster import LocalRayCluster
    from tests.support.repo import make_repo, story

    tmp = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    stories = [story(f"US-{i:03d}", f"Story {i}") for i in range(1, STORIES + 1)]
    cluster = LocalRayCluster(cpus_per_node=2)
    try:
        local_root = make_repo(tmp / "local" / "ws", stories)
        local_s, local_n, _ = asyncio.run(one_run(local_root, {}))

        t0 = time.perf_counter()
        cluster.start()
        startup = time.perf_counter() - t0
        ray_root = make_repo(tmp / "ray" / "ws", stories)
        ray_s, ray_n, nodes = asyncio.run(
            one_run(ray_root, {"executor": "ray", "ray": {"address": cluster.address}})
        )
        connect_s = reconnect(cluster.address)
    finally:
        left = cluster.stop() if cluster.port else []
        shutil.rmtree(tmp, ignore_errors=True)
    ideal = (STORIES / WORKERS) * 2 * TURN_S
    print(f"{STORIES} stories, {WORKERS} at once, 2 model turns of {TURN_S:g} s per story")
    print(f"  ideal (model time only)      {ideal:6.2f} s")
    print(f"  local worktrees, 4 workers   {local_s:6.2f} s  ({local_n} committed)")
    print(
        f"  ray, 2 nodes x 2 slots       {ray_s:6.2f} s  ({ray_n} committed on {len(nodes)} nodes)"
    )
    print(f"  ratio ray / local            {ray_s / local_s:6.2f}x  (goal <= 1.20x)")
    print(f"  cluster start-up (not in the run)  {startup:.1f} s; processes left: {len(left)}")
    print(f"  a driver's connect (not in the run) {connect_s:.2f} s (ray.init in a new process)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
