"""Ray executor vs local worktrees: 8 stories, 1 s model latency per turn, 4 at once.

Setup, in one run: the same repository and PRD of 8 independent stories twice; the scripted
agent takes two model turns per story, each streamed over 1 s (``stream_delay_s``), writes one
file, calls ``complete_task``; one gate (``true``); approvals by policy. Local: ``workers = 4``
in git worktrees on this machine. Ray: ``executor = "ray"``, ``workers = 4`` on a local cluster
of a head (no slots) and 2 worker nodes x 2 CPUs, started and stopped by pid
(tests/support/ray_cluster.py); its start-up is reported apart, not in the run's wall time.
Goal: Ray wall time <= 1.2x local. Three rounds on one cluster, local and Ray interleaved (the
order alternating): the median and range of the walls and of the per-round ratios.

Then the same 8 stories once per face on a repository with ``HISTORY_MB`` of history: what a
node clones grows with it (the run's first base goes whole once, later ones as the commits
they add).

Where Ray's extra time goes, measured in the same run: when the first story started (its actor's
process had to start), and how long as many bare Ray actors (no ralph-tui code) take to answer
on this cluster, which is Ray's own floor for the first stories: local + that floor is as fast
as the Ray executor could be here with no per-story cost at all.

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
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
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


ROUNDS = 3  # local and Ray runs interleaved on one cluster, the order alternating
HISTORY_MB = 20  # the same 8 stories once more, on a repository with this much history


def add_history(root: Path) -> Path:
    """``HISTORY_MB`` of incompressible files in one more commit: what a node must clone."""
    from tests.support.repo import git

    for n in range(HISTORY_MB):
        (root / f"history{n}.bin").write_bytes(os.urandom(1_000_000))
    git(root, "add", "-A")
    git(root, "commit", "-qm", "history")
    return root


@dataclass
class RunFigures:
    wall_s: float
    committed: int
    nodes: set[str]
    first_start_s: float  # RunStarted -> the first IterationStarted (Ray: its actor is up)


async def one_run(root: Path, overrides: dict[str, Any]) -> RunFigures:
    from ralph_tui.config import load_config
    from ralph_tui.events import Event, IterationFinished, IterationStarted, Notice, RunFinished
    from ralph_tui.runs import build_engine
    from tests.support.engine import ScriptedSupervisor, write_script

    path = write_script(root, script())
    config = load_config(
        root, {"script": str(path), "workers": WORKERS, "approve": "auto", **overrides}
    )
    committed = 0
    nodes: set[str] = set()
    trail: list[str] = []
    started: list[float] = []
    start = 0.0

    def sink(event: Event) -> None:
        nonlocal committed
        if isinstance(event, IterationFinished):
            committed += event.outcome == "committed"
            trail.append(f"{event.story_id}: {event.outcome} {event.message}")
        if isinstance(event, IterationStarted):
            started.append(time.perf_counter() - start)
            if event.node:
                nodes.add(event.node)
        if isinstance(event, Notice | RunFinished):
            trail.append(str(getattr(event, "message", "") or getattr(event, "reason", "")))

    engine = build_engine(root, config, None, ScriptedSupervisor(), sink)
    start = time.perf_counter()
    code = await engine.run()
    elapsed = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"run failed with exit code {code}:\n" + "\n".join(trail))
    return RunFigures(elapsed, committed, nodes, min(started))


def bare_actors_up(count: int) -> float:
    """How long ``count`` actors with no ralph-tui code take to answer on the cluster (one
    per story slot, as the first stories need them): Ray's own floor for a fresh process."""
    import ray

    @ray.remote(num_cpus=1)
    class Bare:
        def ping(self) -> int:
            return 1

    start = time.perf_counter()
    actors = [Bare.remote() for _ in range(count)]  # type: ignore[attr-defined]
    ray.get([a.ping.remote() for a in actors])
    elapsed = time.perf_counter() - start
    for actor in actors:
        ray.kill(actor)
    return elapsed


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


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):5.2f} ({min(values):.2f}-{max(values):.2f})"


def main() -> int:
    if importlib.util.find_spec("ray") is None:
        print("bench_ray: skipped (install the extra: pip install 'ralph-tui[ray]')")
        return 0
    from tests.support.ray_cluster import LocalRayCluster
    from tests.support.repo import make_repo, story

    tmp = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    stories = [story(f"US-{i:03d}", f"Story {i}") for i in range(1, STORIES + 1)]
    cluster = LocalRayCluster(cpus_per_node=2)
    local: list[RunFigures] = []
    remote: list[RunFigures] = []
    try:
        t0 = time.perf_counter()
        cluster.start()
        startup = time.perf_counter() - t0
        ray_config = {"executor": "ray", "ray": {"address": cluster.address}}
        for n in range(ROUNDS):
            faces = [("local", {}, local), ("ray", ray_config, remote)]
            for name, overrides, figures in faces if n % 2 == 0 else faces[::-1]:
                root = make_repo(tmp / f"{name}{n}" / "ws", stories)
                figures.append(asyncio.run(one_run(root, overrides)))
        heavy: dict[str, float] = {}
        for name, overrides in (("local", {}), ("ray", ray_config)):
            root = add_history(make_repo(tmp / f"{name}-history" / "ws", stories))
            heavy[name] = asyncio.run(one_run(root, overrides)).wall_s
        bare = [bare_actors_up(WORKERS) for _ in range(ROUNDS)]
        connect_s = reconnect(cluster.address)
    finally:
        left = cluster.stop() if cluster.port else []
        shutil.rmtree(tmp, ignore_errors=True)
    ideal = (STORIES / WORKERS) * 2 * TURN_S
    ratios = [r.wall_s / loc.wall_s for r, loc in zip(remote, local, strict=True)]
    local_s = [f.wall_s for f in local]
    ray_s = [f.wall_s for f in remote]
    first_local = statistics.median(f.first_start_s for f in local)
    first_ray = statistics.median(f.first_start_s for f in remote)
    floor = statistics.median(local_s) + statistics.median(bare) - first_local
    print(f"{STORIES} stories, {WORKERS} at once, 2 model turns of {TURN_S:g} s per story;")
    print(f"{ROUNDS} rounds, local and Ray interleaved: median (range)")
    print(f"  ideal (model time only)           {ideal:5.2f} s")
    print(
        f"  local worktrees, 4 workers        {spread(local_s)} s  ({local[0].committed} committed)"
    )
    print(
        f"  ray, 2 nodes x 2 slots            {spread(ray_s)} s  "
        f"({remote[0].committed} committed on {len(remote[0].nodes)} nodes)"
    )
    print(f"  ratio ray / local (per round)     {spread(ratios)}x  (goal <= 1.20x)")
    print("where Ray's extra time goes:")
    print(
        f"  first story started after         {first_ray:5.2f} s  "
        f"(local {first_local:.2f} s): its actor's process starting"
    )
    print(
        f"  {WORKERS} bare Ray actors answer after    {spread(bare)} s  "
        "(no ralph-tui code: Ray's floor for the first stories)"
    )
    print(
        f"  local + that floor alone          {floor:5.2f} s = "
        f"{floor / statistics.median(local_s):.2f}x local, before any per-story cost"
    )
    print(
        f"with {HISTORY_MB} MB of history (one run each): local {heavy['local']:.2f} s, "
        f"ray {heavy['ray']:.2f} s ({heavy['ray'] / heavy['local']:.2f}x)"
    )
    print(f"cluster start-up (not in the runs) {startup:.1f} s; processes left: {len(left)}")
    print(f"a driver's connect (not in the runs) {connect_s:.2f} s (ray.init in a new process)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
