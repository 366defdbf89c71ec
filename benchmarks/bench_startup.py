"""Start-up and exit of `ralph-tui run --headless`: the built-in agent against the scripted one.

Each repetition launches the installed ``ralph-tui`` on a fresh copy of a one-story repository
(``--approve auto``, one ``true`` gate), once with ``--agent anthropic`` talking to the fake
Messages API on 127.0.0.1 and once with ``--agent scripted``, interleaved, and reads two spans:

- **launch to first iteration**: from ``Popen`` to the moment ``iteration_started`` is in the
  run's ``events.jsonl`` (polled every 2 ms), i.e. what a user waits before the agent works;
- **last commit to exit**: from the ``committed`` event's timestamp in the journal to the
  moment the process has exited (cleanup, journal close, interpreter exit).

And in a real terminal (tmux, 120x40), ``ralph-tui run`` (the TUI) from launch to its first
paint with the board on screen (``capture-pane`` polled every 5 ms), for both agents: the TUI
must not wait for the SDK either.

Also prints ``python -X importtime`` of the agent module (what used to sit on the start path).

Run: .venv/bin/python benchmarks/bench_startup.py   (goals: ratio <= 1.5x; exit <= 0.3 s)
     BENCH_BASELINE=<an older checkout> adds it, interleaved, as the baseline.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.fake_anthropic import FakeAnthropic  # noqa: E402
from tests.support.repo import make_repo, story  # noqa: E402

RALPH_TUI = Path(sys.executable).parent / "ralph-tui"
REPEATS = int(os.environ.get("BENCH_REPEATS", "5"))
AGENT_TURNS = [
    {"tool": "str_replace_based_edit_tool",
     "input": {"command": "create", "path": "US-001.txt", "file_text": "US-001\n"}},
    {"tool": "complete_task", "input": {"summary": "US-001", "learnings": ["did US-001"]}},
]  # fmt: skip


def _responder(body: dict[str, object]) -> dict[str, object]:
    messages = body.get("messages")
    done = sum(
        1
        for m in messages if isinstance(messages, list) and isinstance(m, dict)
        if m.get("role") == "user" and isinstance(m.get("content"), list)
        for b in m["content"] if isinstance(b, dict) and b.get("type") == "tool_result"
    )  # fmt: skip
    if done < len(AGENT_TURNS):
        turn = AGENT_TURNS[done]
        block = {"type": "tool_use", "name": turn["tool"], "input": turn["input"]}
        return {"content": [block]}
    return {"content": [{"type": "text", "text": "Done."}]}


def _events(root: Path) -> list[dict[str, object]]:
    found = sorted((root / ".ralph" / "runs").glob("*/events.jsonl"))
    if not found:
        return []
    lines = found[-1].read_text(encoding="utf-8").splitlines()
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:  # the last line may be half written while we poll
            continue
    return out


def run_once(root: Path, agent: str, env: dict[str, str]) -> tuple[float, float]:
    """(launch -> iteration_started, committed -> process exit), in seconds."""
    start_wall = time.time()
    start = time.perf_counter()
    proc = subprocess.Popen(
        [str(RALPH_TUI), "run", "--headless", "--approve", "auto", "--agent", agent],
        cwd=root, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    first = 0.0
    events_dir = root / ".ralph" / "runs"
    while proc.poll() is None and not first:
        for path in events_dir.glob("*/events.jsonl") if events_dir.exists() else ():
            if b'"iteration_started"' in path.read_bytes():
                first = time.perf_counter() - start
        time.sleep(0.002)
    _, err = proc.communicate(timeout=120)
    exited_wall = start_wall + (time.perf_counter() - start)
    if proc.returncode != 0:
        raise SystemExit(f"--agent {agent} exited {proc.returncode}: {err.decode()[-2000:]}")
    committed = [e for e in _events(root) if e.get("kind") == "committed"]
    if not first or len(committed) != 1:
        raise SystemExit(f"--agent {agent}: no iteration or commit in the journal")
    return first, exited_wall - float(str(committed[-1]["ts"]))


def first_paint(root: Path, agent: str, env: dict[str, str]) -> float:
    """Seconds from launching the TUI in tmux to the board (the story's title) on screen."""
    socket = f"ralph-bench-{os.getpid()}-{root.name}"
    tmux = ["tmux", "-L", socket]
    command = f"{RALPH_TUI} run --agent {agent} --approve ask"
    pairs = [f"-e{k}={v}" for k, v in env.items() if k.isidentifier()]
    start = time.perf_counter()
    subprocess.run(
        [*tmux, "new-session", "-d", "-s", "b", "-x", "120", "-y", "40", "-c", str(root),
         *pairs, "-e", "TERM=xterm-256color", command],
        check=True,
    )  # fmt: skip
    try:
        while True:
            screen = subprocess.run(
                [*tmux, "capture-pane", "-p", "-t", "b"], capture_output=True, text=True
            ).stdout
            if "Story 1" in screen:
                return time.perf_counter() - start
            if time.perf_counter() - start > 60:
                raise SystemExit(f"--agent {agent}: no board after 60 s:\n{screen}")
            time.sleep(0.005)
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True, check=False)


def importtime(module: str) -> float:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    last = [line for line in done.stderr.splitlines() if line.rstrip().endswith(f" {module}")]
    return int(last[-1].split("|")[1]) / 1e6 if last else float("nan")


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):5.2f} s  ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    """``BENCH_BASELINE=<checkout>``: also run that checkout's ralph_tui (on ``PYTHONPATH``,
    with this venv's ``ralph-tui``), interleaved with this one, as the baseline."""
    baseline = os.environ.get("BENCH_BASELINE")
    faces = {"now": str(ROOT), **({"baseline": baseline} if baseline else {})}
    agents = ("anthropic", "scripted")
    with tempfile.TemporaryDirectory() as tmp, FakeAnthropic() as api:
        api.respond_with(_responder)
        base = Path(tmp)
        script = base / "script.json"
        script.write_text(json.dumps({"stories": {"US-001": AGENT_TURNS}}))
        template = make_repo(
            base / "template",
            [story("US-001", "Story 1")],
            extra_config=f'script = "{script}"\nmax_iterations = 2',
        )
        env = {
            **os.environ,
            "ANTHROPIC_API_KEY": "sk-ant-bench-0000",
            "ANTHROPIC_BASE_URL": api.base_url,
        }
        kinds = [(face, agent) for face in faces for agent in agents]
        spans: dict[tuple[str, str], list[tuple[float, float]]] = {k: [] for k in kinds}
        paints: dict[tuple[str, str], list[float]] = {k: [] for k in kinds}
        tmux = shutil.which("tmux") is not None
        for i in range(REPEATS):
            order = kinds[i % len(kinds) :] + kinds[: i % len(kinds)]  # rotate each round
            for face, agent in order:
                face_env = {**env, "PYTHONPATH": faces[face]}
                root = base / f"{face}-{agent}-{i}"
                shutil.copytree(template, root, symlinks=True)
                spans[face, agent].append(run_once(root, agent, face_env))
                if tmux:
                    root = base / f"tui-{face}-{agent}-{i}"
                    shutil.copytree(template, root, symlinks=True)
                    paints[face, agent].append(first_paint(root, agent, face_env))
        print(f"median of {REPEATS}, interleaved (min-max):")
        for face in faces:
            for agent in agents:
                first, exit_ = zip(*spans[face, agent], strict=True)
                print(
                    f"  [{face}] launch -> first iteration --agent {agent:9}: {_median([*first])}"
                )
                print(
                    f"  [{face}] last commit -> exit       --agent {agent:9}: {_median([*exit_])}"
                )
                if tmux:
                    print(
                        f"  [{face}] TUI launch -> first paint --agent {agent:9}: "
                        f"{_median(paints[face, agent])}"
                    )
            firsts = {a: statistics.median(s[0] for s in spans[face, a]) for a in agents}
            ratio = firsts["anthropic"] / firsts["scripted"]
            print(f"  [{face}] start-up ratio anthropic/scripted: {ratio:.2f}x (goal <= 1.5x)")
        if not tmux:
            print("  (tmux is not installed: the TUI's first paint is not measured)")
    agent_module = "ralph_tui.agents.anthropic_agent"
    print(f"  python -X importtime {agent_module}: {importtime(agent_module):.2f} s")
    print(f"  python -X importtime anthropic: {importtime('anthropic'):.2f} s")


if __name__ == "__main__":
    main()
