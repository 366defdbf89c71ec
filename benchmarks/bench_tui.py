"""What the TUI costs, side by side with a baseline in the same run.

1. Time to first paint with a 1,000-story PRD: ``RalphApp`` (engine built, PRD parsed, board
   filled) against a bare Textual app showing the same 1,000 rows in a ``DataTable``.
2. Wall time of a run whose scripted agent streams 2 MB of text (about 175,000 deltas, each
   arriving in its own event-loop turn, as network deltas do): in the TUI against headless
   (``ralph_tui.headless`` writing to /dev/null), both with ``approve = "auto"``.
   During that stream, key presses are posted to the app every 0.2 s; the time from posting to
   the bound action running is the UI's response time (goal: under 100 ms).
3. Time to show a 20,000-line diff: ``git diff`` in a thread, file list, first screen of hunks.
4. The real path: the Anthropic agent streams a 300 KB answer (7-character deltas, about one per
   word) from the suite's fake Messages API, run as a separate process; time from start to the
   story's commit (the ``committed`` event in the run's own journal), in the TUI against
   headless with the same ``approve = "auto"``; beside it the TUI with a human's approval (a key
   press as soon as the bar opens: the bar's frames are then on the path) and both runs to
   their end; and headless against the SDK's raw ``create(stream=True)`` events read in a bare
   loop (the floor any client pays).

Apps run headless (``run_test``) at 200x50. Every measurement runs in a fresh interpreter (a face
measured second in one process inherits the first one's warm caches), five rounds with the
order rotating each round; ratios are the median of the rounds' ratios, with their range.
Run: .venv/bin/python benchmarks/bench_tui.py
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import ClassVar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import anthropic  # noqa: E402
from textual import events  # noqa: E402
from textual.app import App, ComposeResult  # noqa: E402
from textual.binding import Binding, BindingType  # noqa: E402
from textual.widgets import DataTable  # noqa: E402

import tests.conftest  # noqa: E402,F401  (git identity for commits)
from ralph_tui.agents.anthropic_agent import AnthropicAgent  # noqa: E402
from ralph_tui.agents.scripted import ScriptedAgent  # noqa: E402
from ralph_tui.config import load_config  # noqa: E402
from ralph_tui.events import Event  # noqa: E402
from ralph_tui.headless import run_headless  # noqa: E402
from ralph_tui.tui.app import RalphApp  # noqa: E402
from tests.support.fake_anthropic import reply, tool_use  # noqa: E402
from tests.support.repo import make_repo, story  # noqa: E402

SIZE = (200, 50)
STORIES = 1_000
STREAM_BYTES = 2 * 1024 * 1024
DIFF_LINES = 20_000
ANSWER_BYTES = 300 * 1024
KEY_EVERY_S = 0.2
ROUNDS = 5


class ProbedApp(RalphApp):
    """RalphApp with one extra key whose action notes when it ran: the UI's response time."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("f12", "probe", show=False)]
    CSS_PATH = str(ROOT / "ralph_tui" / "tui" / "app.tcss")

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.posted: list[float] = []
        self.handled: list[float] = []

    def action_probe(self) -> None:
        self.handled.append(time.perf_counter())

    def probe(self) -> None:
        self.posted.append(time.perf_counter())
        self.post_message(events.Key("f12", None))


def approve(app: RalphApp) -> object:
    """Press ``a`` as a terminal delivers it: posted, not awaited.

    ``Pilot.press`` also waits until every widget on screen is idle, which during the paints
    after an approval held the benchmark's own loop 0.1-0.2 s past the run's end.
    """
    app.simulate_key("a")
    return app.supervisor.approval


class BareBoard(App[None]):
    def __init__(self, rows: list[tuple[str, str, str, str, str]]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        yield DataTable(cursor_type="row")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("ID", "Pri", "Status", "Cost", "Title")
        table.add_rows(self.rows)
        table.focus()


async def paint_once(face: str, tmp: Path) -> float:
    """Seconds from building the app to its first paint with the 1,000 rows on the board."""
    stories = [story(f"US-{i:04d}", f"Story number {i} with a title", i) for i in range(STORIES)]
    root = make_repo(tmp / "board", [dict(s, priority=i + 1) for i, s in enumerate(stories)])
    config = load_config(root, {"script": str(tmp / "none.json")})
    (tmp / "none.json").write_text("{}", encoding="utf-8")
    rows = [
        (f"US-{i:04d}", str(i + 1), "open", "-", f"Story number {i} with a title")
        for i in range(STORIES)
    ]
    t0 = time.perf_counter()
    app: App[None] = RalphApp(root, config, autostart=False) if face == "tui" else BareBoard(rows)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        if isinstance(app, RalphApp):
            assert app.board.row_count == STORIES
        return time.perf_counter() - t0


def stream_script(path: Path) -> None:
    line = "The agent explains its plan in some detail, one line after another. " * 1 + "\n"
    text = line * (STREAM_BYTES // len(line))
    steps: list[dict[str, object]] = [
        {"text": text[i : i + 65536]} for i in range(0, len(text), 65536)
    ]
    steps += [
        {
            "tool": "str_replace_based_edit_tool",
            "input": {"command": "create", "path": "src/x.py", "file_text": "X = 1\n"},
        },
        {"tool": "complete_task", "input": {"summary": "done", "learnings": []}},
    ]
    path.write_text(json.dumps({"stream_delay_s": 1e-9, "default": steps}), encoding="utf-8")


async def stream_tui(tmp: Path, script: Path) -> tuple[float, int, int, list[float]]:
    root = make_repo(tmp / "stream-tui")
    config = load_config(root, {"script": str(script), "approve": "auto"})
    app = ProbedApp(root, config, agent=ScriptedAgent.from_file(script, config))
    flushes = 0
    drain = app.batcher.drain  # every flush drains the batcher (the pacer holds flush_events)

    def counting_drain() -> list[Event]:
        nonlocal flushes
        events = drain()
        flushes += bool(events)
        return events

    app.batcher.drain = counting_drain  # type: ignore[method-assign]
    t0 = time.perf_counter()
    async with app.run_test(size=SIZE) as pilot:
        next_key = time.perf_counter() + KEY_EVERY_S
        answered = None
        while app.exit_code is None and app.is_running:
            if app.supervisor.approval is not None and app.supervisor.approval is not answered:
                answered = approve(app)
            elif time.perf_counter() >= next_key and len(app.posted) == len(app.handled):
                app.probe()
                next_key = time.perf_counter() + KEY_EVERY_S
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - t0
        while len(app.handled) < len(app.posted):  # the last probe lands before the app closes
            await pilot.pause(0.01)
    assert app.exit_code == 0, app.exit_code
    latencies = [h - p for p, h in zip(app.posted, app.handled, strict=False)]
    return elapsed, flushes, app.batcher.received, latencies


async def stream_headless(tmp: Path, script: Path) -> float:
    root = make_repo(tmp / "stream-headless")
    config = load_config(root, {"script": str(script), "approve": "auto"})
    agent = ScriptedAgent.from_file(script, config)
    with open(os.devnull, "w", encoding="utf-8") as out:  # noqa: ASYNC230 - opening /dev/null
        t0 = time.perf_counter()
        code = await run_headless(root, config, out=out, agent=agent)
        elapsed = time.perf_counter() - t0
    assert code == 0, code
    return elapsed


def answer_replies() -> list[dict[str, object]]:
    words = "The agent explains its plan in some detail, one word after another. " * 5 + "\n"
    answer = words * (ANSWER_BYTES // len(words))
    edit = {"command": "create", "path": "src/x.py", "file_text": "X = 1\n"}
    return [
        reply(answer, tool_use("str_replace_based_edit_tool", edit)),
        reply(tool_use("complete_task", {"summary": "done", "learnings": []})),
    ]


class FakeApi:
    """The fake Messages API in its own process (as the real API is), with replies queued."""

    def __init__(self, tmp: Path, replies: list[dict[str, object]]) -> None:
        script = tmp / "replies.json"
        script.write_text(json.dumps(replies), encoding="utf-8")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.fake_anthropic", "--script", str(script)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.base_url = self.proc.stdout.readline().strip()

    def client(self) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(api_key="sk-ant-bench", base_url=self.base_url)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def committed_at(root: Path) -> float:
    """Wall-clock time of the story's ``committed`` event, from the run's own journal."""
    (journal,) = (root / ".ralph" / "runs").glob("*/events.jsonl")
    for line in journal.read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        if event["kind"] == "committed":
            return float(event["ts"])
    raise SystemExit(f"{journal}: no commit")


async def real_one(tmp: Path, face: str) -> tuple[float, float]:
    """Seconds from start to the story's commit, and to the run's end (the app or headless
    knowing it finished), for the 300 KB answer on a fresh server."""
    api = FakeApi(tmp, answer_replies())
    try:
        root = make_repo(tmp / f"real-{face}")
        approve_mode = "ask" if face == "tui-ask" else "auto"
        config = load_config(root, {"agent": "anthropic", "approve": approve_mode})
        agent = AnthropicAgent(config, client=api.client())
        t0, wall0 = time.perf_counter(), time.time()
        if face.startswith("tui"):
            app = RalphApp(root, config, agent=agent)
            async with app.run_test(size=SIZE):
                answered = None
                while app.exit_code is None and app.is_running:
                    approval = app.supervisor.approval
                    if approval is not None and approval is not answered:
                        answered = approve(app)
                    await asyncio.sleep(0.01)
            code = app.exit_code
        else:
            with open(os.devnull, "w", encoding="utf-8") as out:  # noqa: ASYNC230
                code = await run_headless(root, config, out=out, agent=agent)
        elapsed = time.perf_counter() - t0
        assert code == 0, (face, code)
        return committed_at(root) - wall0, elapsed
    finally:
        api.close()


async def real_bare(tmp: Path) -> float:
    """The floor: the SDK's raw ``create(stream=True)`` events read in a bare loop."""
    api = FakeApi(tmp, answer_replies()[:1])
    try:
        client = api.client()
        t0 = time.perf_counter()
        stream = await client.messages.create(
            model="claude-bench",
            max_tokens=64_000,
            messages=[{"role": "user", "content": "go"}],
            stream=True,
        )
        parts: list[str] = []
        async for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                parts.append(event.delta.text)
        bare = time.perf_counter() - t0
        assert len("".join(parts)) >= ANSWER_BYTES * 0.9
        await client.close()
        return bare
    finally:
        api.close()


async def big_diff(tmp: Path) -> tuple[float, float]:
    root = make_repo(tmp / "diff")
    (root / "src").mkdir()
    body = "".join(f"value_{i} = compute({i}, 'text {i}')  # line {i}\n" for i in range(DIFF_LINES))
    (root / "src" / "big.py").write_text(body, encoding="utf-8")
    (tmp / "none.json").write_text("{}", encoding="utf-8")
    config = load_config(root, {"script": str(tmp / "none.json")})
    app = RalphApp(root, config, autostart=False, allow_dirty=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        t0 = time.perf_counter()
        files = await asyncio.to_thread(app.engine.git.diff)
        git_time = time.perf_counter() - t0
        t0 = time.perf_counter()
        await app.load_diff().wait()
        await pilot.pause()
        assert app.diff.selected_path == "src/big.py"
        shown = time.perf_counter() - t0
        assert app.diff.pane.line_count >= DIFF_LINES, app.diff.pane.line_count
        assert sum(f.additions for f in files) == DIFF_LINES
    return git_time, shown


async def measure(kind: str, tmp: Path) -> dict[str, object]:
    """One measurement, run in a process of its own (see ``fresh``)."""
    if kind in ("paint-tui", "paint-bare"):
        return {"s": await paint_once(kind.removeprefix("paint-"), tmp)}
    if kind in ("stream-tui", "stream-headless"):
        script = tmp / "stream.json"
        stream_script(script)
        if kind == "stream-headless":
            return {"s": await stream_headless(tmp, script)}
        elapsed, flushes, received, keys = await stream_tui(tmp, script)
        return {"s": elapsed, "flushes": flushes, "received": received, "keys": keys}
    if kind in ("real-tui", "real-tui-ask", "real-headless"):
        to_commit, to_end = await real_one(tmp, kind.removeprefix("real-"))
        return {"s": to_commit, "end": to_end}
    if kind == "real-bare":
        return {"s": await real_bare(tmp)}
    if kind == "diff":
        git_s, shown_s = await big_diff(tmp)
        return {"s": shown_s, "git": git_s}
    raise SystemExit(f"unknown measurement {kind!r}")


def fresh(kind: str) -> dict[str, object]:
    """Run one measurement in a new interpreter: every face starts cold, as it does for real.

    In one process the face measured second inherits the first one's imports, caches and
    garbage-collector state; that alone moved a ratio by 0.1-0.5x.
    """
    with tempfile.TemporaryDirectory(prefix="ralph-bench-tui-") as name:
        out = subprocess.run(
            [sys.executable, __file__, "--one", kind, name],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


def rounds(*kinds: str) -> list[list[dict[str, object]]]:
    """ROUNDS runs of each kind, each in a fresh process, the order rotating every round; the
    results per kind, in round order."""
    results: list[list[dict[str, object]]] = [[] for _ in kinds]
    for round_ in range(ROUNDS):
        shift = round_ % len(kinds)
        order = list(range(len(kinds)))[shift:] + list(range(len(kinds)))[:shift]
        for index in order:
            results[index].append(fresh(kinds[index]))
    return results


def seconds(results: list[dict[str, object]], key: str = "s") -> list[float]:
    return [float(r[key]) for r in results]  # type: ignore[arg-type]


def pairs(first: str, second: str) -> tuple[list[float], list[float], list[dict[str, object]]]:
    a, b = rounds(first, second)
    return seconds(a), seconds(b), a


def ratios(a: list[float], b: list[float]) -> str:
    each = sorted(x / y for x, y in zip(a, b, strict=True))
    return f"= {statistics.median(each):.2f}x (rounds {each[0]:.2f}-{each[-1]:.2f}x)"


def main() -> None:
    print(f"median of {ROUNDS} rounds, each face in a fresh process, order rotating")
    tui, bare, _ = pairs("paint-tui", "paint-bare")
    print(
        f"first paint, {STORIES}-story PRD      ralph-tui {statistics.median(tui) * 1000:7.0f} ms"
        f"   bare Textual DataTable {statistics.median(bare) * 1000:7.0f} ms   {ratios(tui, bare)}"
    )
    tui, headless, details = pairs("stream-tui", "stream-headless")
    flushes = statistics.median(int(d["flushes"]) for d in details)  # type: ignore[call-overload]
    print(
        f"2 MB streamed run (wall)            ralph-tui {statistics.median(tui):7.2f} s    "
        f"headless               {statistics.median(headless):7.2f} s   {ratios(tui, headless)}"
        f"  ({details[0]['received']} events in about {flushes:.0f} UI flushes)"
    )
    keys = [float(k) for d in details for k in d["keys"]]  # type: ignore[attr-defined]
    if keys:
        median, worst = statistics.median(keys) * 1000, max(keys) * 1000
        print(
            f"key press during the 2 MB stream    median   {median:7.1f} ms   "
            f"max                    {worst:7.1f} ms   ({len(keys)} presses)"
        )
    diff = fresh("diff")
    print(
        f"{DIFF_LINES}-line diff                    shown in  "
        f"{float(diff['s']) * 1000:7.0f} ms   "  # type: ignore[arg-type]
        f"(of which git diff      {float(diff['git']) * 1000:7.0f} ms)"  # type: ignore[arg-type]
    )
    tui_runs, ask_runs, headless_runs = rounds("real-tui", "real-tui-ask", "real-headless")
    tui, ask, headless = seconds(tui_runs), seconds(ask_runs), seconds(headless_runs)
    print(
        f"300 KB Anthropic answer to commit   ralph-tui {statistics.median(tui):7.2f} s    "
        f"headless               {statistics.median(headless):7.2f} s   {ratios(tui, headless)}"
    )
    print(
        f"  the TUI with a human's approval   ralph-tui {statistics.median(ask):7.2f} s    "
        f"(a key press when the bar opens)                {ratios(ask, headless)}"
    )
    tui_end, headless_end = seconds(tui_runs, "end"), seconds(headless_runs, "end")
    print(
        f"  to the run's end                  ralph-tui {statistics.median(tui_end):7.2f} s    "
        f"headless               {statistics.median(headless_end):7.2f} s   "
        f"{ratios(tui_end, headless_end)}"
    )
    headless, bare, _ = pairs("real-headless", "real-bare")
    print(
        f"the same, headless vs bare SDK loop headless  {statistics.median(headless):7.2f} s    "
        f"raw create(stream=True) {statistics.median(bare):6.2f} s   {ratios(headless, bare)}"
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        print(json.dumps(asyncio.run(measure(sys.argv[2], Path(sys.argv[3])))))
    else:
        main()
