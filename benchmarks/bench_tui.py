"""What the TUI costs, side by side with a baseline in the same run.

1. Time to first paint with a 1,000-story PRD: ``RalphApp`` (engine built, PRD parsed, board
   filled) against a bare Textual app showing the same 1,000 rows in a ``DataTable``.
2. Wall time of a run whose scripted agent streams 2 MB of text (about 175,000 deltas, each
   arriving in its own event-loop turn, as network deltas do): in the TUI against headless
   (``ralph_tui.headless`` writing to /dev/null). Approvals are given as soon as they are asked.
3. Time to show a 20,000-line diff: ``git diff`` in a thread, file list, first screen of hunks.

Apps run headless (``run_test``) at 200x50. Run: .venv/bin/python benchmarks/bench_tui.py
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from textual.app import App, ComposeResult  # noqa: E402
from textual.widgets import DataTable  # noqa: E402

import tests.conftest  # noqa: E402,F401  (git identity for commits)
from ralph_tui.agents.scripted import ScriptedAgent  # noqa: E402
from ralph_tui.config import load_config  # noqa: E402
from ralph_tui.headless import run_headless  # noqa: E402
from ralph_tui.tui.app import RalphApp  # noqa: E402
from tests.support.repo import make_repo, story  # noqa: E402

SIZE = (200, 50)
STORIES = 1_000
STREAM_BYTES = 2 * 1024 * 1024
DIFF_LINES = 20_000


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


async def first_paint(tmp: Path) -> tuple[float, float]:
    stories = [story(f"US-{i:04d}", f"Story number {i} with a title", i) for i in range(STORIES)]
    root = make_repo(tmp / "board", [dict(s, priority=i + 1) for i, s in enumerate(stories)])
    config = load_config(root, {"script": str(tmp / "none.json")})
    (tmp / "none.json").write_text("{}", encoding="utf-8")

    t0 = time.perf_counter()
    app = RalphApp(root, config, autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.board.row_count == STORIES
        tui = time.perf_counter() - t0

    rows = [
        (f"US-{i:04d}", str(i + 1), "open", "-", f"Story number {i} with a title")
        for i in range(STORIES)
    ]
    t0 = time.perf_counter()
    bare = BareBoard(rows)
    async with bare.run_test(size=SIZE) as pilot:
        await pilot.pause()
        bare_time = time.perf_counter() - t0
    return tui, bare_time


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


async def stream_tui(tmp: Path, script: Path) -> tuple[float, int, int]:
    root = make_repo(tmp / "stream-tui")
    config = load_config(root, {"script": str(script)})
    app = RalphApp(root, config, agent=ScriptedAgent.from_file(script, config))
    flushes = 0
    original = app.flush_events

    def counting_flush() -> None:
        nonlocal flushes
        if len(app.batcher):
            flushes += 1
        original()

    app.flush_events = counting_flush  # type: ignore[method-assign]
    t0 = time.perf_counter()
    async with app.run_test(size=SIZE) as pilot:
        while app.exit_code is None:
            if app.supervisor.approval is not None:
                await pilot.press("a")
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - t0
    assert app.exit_code == 0, app.exit_code
    return elapsed, flushes, app.batcher.received


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


async def big_diff(tmp: Path) -> tuple[float, float]:
    root = make_repo(tmp / "diff")
    (root / "src").mkdir()
    body = "".join(f"value_{i} = compute({i}, 'text {i}')  # line {i}\n" for i in range(DIFF_LINES))
    (root / "src" / "big.py").write_text(body, encoding="utf-8")
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


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="ralph-bench-tui-") as name:
        tmp = Path(name)
        tui, bare = await first_paint(tmp)
        print(
            f"first paint, {STORIES}-story PRD      ralph-tui {tui * 1000:7.0f} ms   "
            f"bare Textual DataTable {bare * 1000:7.0f} ms"
        )
        script = tmp / "stream.json"
        stream_script(script)
        tui_s, flushes, received = await stream_tui(tmp, script)
        headless_s = await stream_headless(tmp, script)
        print(
            f"2 MB streamed run (wall)            ralph-tui {tui_s:7.2f} s    "
            f"headless               {headless_s:7.2f} s   "
            f"({received} events in {flushes} UI flushes)"
        )
        git_s, shown_s = await big_diff(tmp)
        print(
            f"{DIFF_LINES}-line diff                    shown in  {shown_s * 1000:7.0f} ms   "
            f"(of which git diff      {git_s * 1000:7.0f} ms)"
        )


if __name__ == "__main__":
    asyncio.run(main())
