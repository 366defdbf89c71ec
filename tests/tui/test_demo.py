"""The demo project, driven through the TUI end to end: real gates, one failure, approvals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ralph_tui.config import load_config
from ralph_tui.demo import create_demo_project
from ralph_tui.errors import UsageError
from ralph_tui.events import GateFinished, event_from_dict
from ralph_tui.tui.app import RalphApp
from tests.support.repo import git
from tests.tui.support import wait_for


def test_demo_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("", encoding="utf-8")
    with pytest.raises(UsageError, match="not empty"):
        create_demo_project(tmp_path)


async def test_demo_runs_to_the_end(tmp_path: Path) -> None:
    root = create_demo_project(tmp_path / "demo")
    assert git(root, "status", "--porcelain") == ""
    config = load_config(root, {})
    app = RalphApp(root, config)
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(3):
            await wait_for(pilot, lambda: app.supervisor.approval is not None, 60, "approval")
            await pilot.press("a")
            await wait_for(pilot, lambda: app.supervisor.approval is None, 10, "commit")
        await wait_for(pilot, lambda: app.supervisor.escalation is not None, 60, "escalation")
        await pilot.press(*"euros", "enter")
        await wait_for(pilot, lambda: app.supervisor.approval is not None, 60, "last approval")
        await pilot.press("a")
        await wait_for(pilot, lambda: app.exit_code is not None, 30, "run end")
    assert app.exit_code == 0
    subjects = git(root, "log", "--format=%s").splitlines()
    assert [s.split(":")[0] for s in subjects[:4]] == [
        "[backend] Task #US-004",
        "[backend] Task #US-003",
        "[backend] Task #US-002",
        "[backend] Task #US-001",
    ]
    journal = (app.engine.engine.run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()
    gates = [
        e for e in map(event_from_dict, map(json.loads, journal)) if isinstance(e, GateFinished)
    ]
    failed = [g for g in gates if g.state == "failed"]
    assert len(failed) == 1 and failed[0].name == "tests"
    assert git(root, "status", "--porcelain") == ""


async def test_rejecting_in_the_demo_brings_a_change_that_uses_the_feedback(
    tmp_path: Path,
) -> None:
    """The scripted agent hears the rejection: it says what it heard and changes the code for
    it, so the second approval shows a new diff (it used to show the rejected one again)."""
    root = create_demo_project(tmp_path / "demo")
    app = RalphApp(root, load_config(root, {}))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.supervisor.approval is not None, 60, "approval")
        first = app.supervisor.approval
        assert first is not None and first.story_id == "US-001"
        await pilot.press("r")
        await pilot.press(*"name the slug rule", "enter")
        await wait_for(
            pilot,
            lambda: app.supervisor.approval is not None and app.supervisor.approval is not first,
            60,
            "the second approval",
        )
        second = app.supervisor.approval
        assert second is not None and second.story_id == "US-001"
        assert "name the slug rule" in second.summary
        assert "# Review: name the slug rule" in (root / "inventory/slug.py").read_text()
        transcript = "\n".join(app.transcript.plain_lines())
        assert 'You said: "name the slug rule"' in transcript
        await pilot.press("a")
        await wait_for(pilot, lambda: app.supervisor.approval is None, 10, "commit")
        app.stop_and_quit()
        await wait_for(pilot, lambda: app.exit_code is not None, 30, "stop")
    assert "# Review: name the slug rule" in git(root, "show", "HEAD:inventory/slug.py")
