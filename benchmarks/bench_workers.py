"""Parallel workers: wall time of 8 independent stories, ``--workers 4`` against ``--workers 1``.

Setup: a PRD of 8 stories touching different files, the scripted agent waiting 300 ms before
each of its 3 steps (model latency: write a file, run the bash tool, complete_task), one
quality gate that takes 1 second (``sleep 1``), approvals automatic (``--approve auto``). Each
configuration runs as a real ``python -m ralph_tui run --headless`` process on its own copy of
the repository, in the same benchmark run. Every story must end committed on main; with 4
workers, changes that land after main moved are gated again on the rebased tree, so the
figure includes what verified merges cost.

Run: .venv/bin/python benchmarks/bench_workers.py   (goal: at least 3.2x)
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.repo import git, make_repo, story  # noqa: E402

STORIES = 8
STEP_DELAY_S = 0.3
GATE = "sleep 1"


def build(path: Path, script: Path) -> Path:
    stories = [story(f"US-{i:03d}", f"Story {i}") for i in range(1, STORIES + 1)]
    steps = {
        s["id"]: [
            {
                "tool": "str_replace_based_edit_tool",
                "input": {"command": "create", "path": f"src/s{i}.py", "file_text": f"N = {i}\n"},
            },
            {"tool": "bash", "input": {"command": f"echo '# story {i}' >> src/s{i}.py"}},
            {"tool": "complete_task", "input": {"summary": "done", "learnings": []}},
        ]
        for i, s in enumerate(stories, 1)
    }
    script.write_text(json.dumps({"step_delay_s": STEP_DELAY_S, "stories": steps}))
    return make_repo(
        path,
        stories,
        gates={"slow": GATE},
        extra_config=f'script = "{script}"\nmax_iterations = {STORIES * 2}',
    )


def run(root: Path, workers: int) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "ralph_tui", "run", "--headless", "--approve", "auto",
         "--workers", str(workers), "--workspace", str(root)],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"--workers {workers} exited {done.returncode}:\n{done.stdout[-3000:]}")
    commits = [s for s in git(root, "log", "--format=%s").splitlines() if "Task #" in s]
    if len(commits) != STORIES:
        raise SystemExit(f"--workers {workers}: {len(commits)} story commits, not {STORIES}")
    reruns = done.stdout.count("running them again")
    print(f"  --workers {workers}: {elapsed:6.2f} s  ({reruns} gate re-runs after main moved)")
    return elapsed


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        template = build(base / "template", base / "script.json")
        shutil.copytree(template, base / "one", symlinks=True)
        shutil.copytree(template, base / "four", symlinks=True)
        print(
            f"{STORIES} independent stories, scripted agent {STEP_DELAY_S * 1000:.0f} ms per "
            f"step (3 steps), gate `{GATE}`, approvals automatic"
        )
        one = run(base / "one", 1)
        four = run(base / "four", 4)
    print(f"speed-up: {one / four:.2f}x (goal 3.2x = 80% of linear)")


if __name__ == "__main__":
    main()
