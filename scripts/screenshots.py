"""Regenerate the SVG screenshots in ``screenshots/`` (``make screenshots``).

Each screenshot is one of the deterministic scenes the snapshot tests use (tests/tui/scenes.py):
the real app on a throwaway repository, with a fixed event stream replayed into it.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.tui.scenes import SCENES, scene_app  # noqa: E402

SIZE = (160, 45)
SHOWN = ("running", "approval", "escalation", "gate_failure")  # the README shows these


async def shoot(name: str, out: Path) -> Path:
    with tempfile.TemporaryDirectory(prefix="ralph-shot-") as tmp:
        app = scene_app(Path(tmp) / "ws")
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await SCENES[name](pilot)
            await pilot.pause(0.2)
            path = app.save_screenshot(filename=f"{name}.svg", path=str(out))
            app.supervisor.settle_for_quit()  # let the scene's pending question finish
            await pilot.pause()
    return Path(path)


async def shoot_workers(out: Path) -> Path:
    """A real ``workers = 3`` run: two changes queued for approval while a third still works."""
    from ralph_tui.agents.scripted import ScriptedAgent
    from ralph_tui.config import load_config
    from ralph_tui.tui.app import RalphApp
    from tests.support.repo import make_repo, story

    def steps(path: str, text: str, intro: str) -> list[dict[str, object]]:
        edit = {"command": "create", "path": path, "file_text": text}
        return [
            {"text": intro},
            {"tool": "str_replace_based_edit_tool", "input": edit},
            {"tool": "complete_task", "input": {"summary": intro, "learnings": []}},
        ]

    with tempfile.TemporaryDirectory(prefix="ralph-shot-") as tmp:
        script = Path(tmp) / "script.json"
        script.write_text(
            json.dumps(
                {
                    "stories": {
                        "US-001": steps("src/health.py", "OK = True\n", "Adding /health."),
                        "US-002": steps("src/stock.py", "STOCK = {}\n", "Adding the stock table."),
                        "US-003": [
                            {"text": "Looking at the pricing rules first."},
                            {"tool": "bash", "input": {"command": "sleep 4"}},
                        ],
                    }
                }
            )
        )
        root = make_repo(
            Path(tmp) / "inventory-service",
            [
                story("US-001", "Health endpoint"),
                story("US-002", "Stock table"),
                story("US-003", "Price rules"),
                story("US-004", "Reorder alerts", 2, dependsOn=["US-002"]),
            ],
            extra_config=f'script = "{script}"\nworkers = 3\nsandbox = {{ mode = "off" }}',
        )
        config = load_config(root)
        # a fixed run id and clock: a regenerated screenshot differs only where the app did
        app = RalphApp(
            root,
            config,
            agent=ScriptedAgent.from_file(script, config),
            run_id="screenshot-run",
            clock=lambda: 1000.0,
        )
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            while not (len(app._waiting) >= 2 and app.approval_bar.is_open):
                await pilot.pause(0.05)
            # which change came first and where the cursor is are races: fix both, so a
            # regenerated picture is the same picture
            app.engine.open_approval("US-001")
            while app.supervisor.approval is None or app.supervisor.approval.story_id != "US-001":
                await pilot.pause(0.05)
            app.board.select_story("US-003")  # a move the board reports, whatever it showed
            await pilot.pause(0.2)
            app.board.select_story("US-001")
            # the panes show worker 1 whole: its diff loaded, its gate's result in, no toast
            # (a toast's life is wall-clock time); on a loaded machine these take a while
            while not (
                app.worker_view.selected == app.worker_view.worker_of("US-001")
                and app.diff.selected_path == "src/health.py"
                and "ok" in app.gates.results
                and app.gates.results["ok"].state == "passed"
            ):
                await pilot.pause(0.05)
            app.clear_notifications()
            await pilot.pause(0.5)
            path = app.save_screenshot(filename="workers.svg", path=str(out))
            app.engine.request_stop()
            app.supervisor.settle_for_quit()
            while app.exit_code is None:  # the workers wind up before the folder goes
                app.supervisor.settle_for_quit()
                await pilot.pause(0.1)
    return Path(path)


# what differs between two shots of the same picture: Textual's per-picture id, and the
# measured seconds of a real run's gates (the workers shot runs them)
_NOISE = re.compile(rb"terminal-\d+|\d+\.\ds")


def keep_if_same(new: Path, committed: Path) -> str:
    """Replace ``committed`` only when the picture changed: ``make screenshots`` on an
    unchanged app leaves the repository clean."""
    if committed.exists() and _NOISE.sub(b"", committed.read_bytes()) == _NOISE.sub(
        b"", new.read_bytes()
    ):
        return f"unchanged {committed.name}"
    committed.write_bytes(new.read_bytes())
    return f"updated   {committed.name}"


async def main() -> None:
    out = ROOT / "screenshots"
    out.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ralph-shots-") as tmp:
        fresh = Path(tmp)
        shots = [await shoot(name, fresh) for name in SHOWN] + [await shoot_workers(fresh)]
        for shot in shots:
            print(keep_if_same(shot, out / shot.name))


if __name__ == "__main__":
    asyncio.run(main())
