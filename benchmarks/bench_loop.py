"""The loop's own overhead per iteration, side by side with a bash Ralph loop's git work.

Setup: a repository of 5,000 files, a PRD of 20 stories, the scripted agent (one file created,
then complete_task), one trivial gate (`true`), approvals by policy. The baseline, in the same
run on an identical repository, is what a plain bash Ralph loop does per story: write the file,
run the gate, edit the PRD, `git add -A && git commit`. The difference is what supervision costs.

Run: .venv/bin/python benchmarks/bench_loop.py
"""

from __future__ import annotations

import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ralph_tui.agents.scripted import ScriptedAgent  # noqa: E402
from ralph_tui.config import load_config  # noqa: E402
from ralph_tui.engine import Engine  # noqa: E402
from ralph_tui.events import Event, GateFinished, IterationFinished  # noqa: E402
from ralph_tui.supervisor import (  # noqa: E402
    ApprovalDecision,
    ApprovalRequest,
    EscalationAnswer,
    EscalationRequest,
)
from tests.support.repo import make_repo, story  # noqa: E402

FILES = 5_000
STORIES = 20


class AutoApprove:
    async def approve(self, request: ApprovalRequest) -> ApprovalDecision:
        return ApprovalDecision.approve()

    async def answer(self, request: EscalationRequest) -> EscalationAnswer:
        return EscalationAnswer("stop")


def build_repo(path: Path) -> Path:
    root = make_repo(path, [story(f"US-{i:03d}", f"Story {i}") for i in range(1, STORIES + 1)])
    for i in range(FILES):
        sub = root / "src" / f"pkg{i % 50:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"mod{i:04d}.py").write_text(f"VALUE_{i} = {i}\n")
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-qm", "5000 files"], cwd=root, check=True)
    return root


def run_ralph(root: Path, script_dir: Path) -> tuple[float, float]:
    script = script_dir / "script.json"
    steps = [
        {
            "tool": "str_replace_based_edit_tool",
            "input": {"command": "create", "path": "feature.txt", "file_text": "x\n"},
        },
        {"tool": "bash", "input": {"command": "date +%s%N >> feature.txt"}},
        {"tool": "complete_task", "input": {"summary": "done", "learnings": []}},
    ]
    script.write_text(json.dumps({"default": steps}))
    config = load_config(root, {"script": str(script), "max_iterations": STORIES})
    gate_time = 0.0

    def sink(event: Event) -> None:
        nonlocal gate_time
        if isinstance(event, GateFinished):
            gate_time += event.duration_s
        if isinstance(event, IterationFinished) and event.outcome != "committed":
            raise SystemExit(f"iteration {event.iteration} {event.outcome}: {event.message}")

    engine = Engine(root, config, ScriptedAgent.from_file(script, config), AutoApprove(), sink)
    start = time.perf_counter()
    code = asyncio.run(engine.run())
    elapsed = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"ralph-tui run exited {code}")
    return elapsed / STORIES, gate_time / STORIES


BASH_LOOP = r"""
set -e
for i in $(seq 1 {n}); do
  printf 'x\n' > feature.txt; date +%s%N >> feature.txt
  true
  python3 - "$i" <<'PY'
import json, sys
p = "tasks/backend_prd.json"; d = json.load(open(p))
d["userStories"][int(sys.argv[1]) - 1]["passes"] = True
json.dump(d, open(p, "w"), indent=2)
PY
  printf '## Task %s\n' "$i" >> tasks/backend_progress.txt
  git add -A && git commit -qm "[backend] Task #US-$i"
done
"""


def run_bash(root: Path) -> float:
    start = time.perf_counter()
    subprocess.run(["bash", "-c", BASH_LOOP.replace("{n}", str(STORIES))], cwd=root, check=True)
    return (time.perf_counter() - start) / STORIES


def main() -> None:
    rounds = 3
    ralph_times, gate_times, bash_times = [], [], []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            base = Path(tmp)
            template = build_repo(base / "template")
            shutil.copytree(template, base / "ralph", symlinks=True)
            shutil.copytree(template, base / "bash", symlinks=True)
            per_iter, gates = run_ralph(base / "ralph", base)
            ralph_times.append(per_iter)
            gate_times.append(gates)
            bash_times.append(run_bash(base / "bash"))
    ralph = statistics.median(ralph_times)
    bash = statistics.median(bash_times)
    gates = statistics.median(gate_times)
    print(f"repository: {FILES} files, {STORIES} stories, median of {rounds} rounds")
    print(f"{'':34}{'per iteration':>15}")
    print(f"{'ralph-tui (scripted agent, 1 gate)':34}{ralph * 1000:>12.1f} ms")
    print(f"{'  of which the gate phase':34}{gates * 1000:>12.1f} ms")
    print(f"{'bash Ralph loop (same git work)':34}{bash * 1000:>12.1f} ms")
    print(f"{'ralph-tui minus bash loop':34}{(ralph - bash) * 1000:>+12.1f} ms")
    print("(the bash loop starts a python3 per story to edit the PRD, as jq-less loops do;")
    print(" ralph-tui's extra work, diffs, the journal, the state file, runs in-process)")


if __name__ == "__main__":
    main()
