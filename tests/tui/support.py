"""Building the real app on a temp workspace with the scripted agent, and waiting on it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from ralph_tui.agents.scripted import ScriptedAgent
from ralph_tui.config import load_config
from ralph_tui.tui.app import RalphApp
from tests.support.engine import write_script


def create(path: str, text: str) -> dict[str, Any]:
    return {
        "tool": "str_replace_based_edit_tool",
        "input": {"command": "create", "path": path, "file_text": text},
    }


def complete(summary: str = "done", learnings: list[str] | None = None) -> dict[str, Any]:
    return {"tool": "complete_task", "input": {"summary": summary, "learnings": learnings or []}}


def build_app(
    root: Path,
    script: dict[str, Any],
    *,
    frozen: bool = False,
    overrides: dict[str, Any] | None = None,
    **kwargs: Any,
) -> tuple[RalphApp, ScriptedAgent]:
    path = write_script(root, script)
    config = load_config(root, {"script": str(path), **(overrides or {})})
    agent = ScriptedAgent.from_file(path, config)
    if frozen:
        kwargs.setdefault("clock", lambda: 1000.0)
        kwargs.setdefault("run_id", "snapshot-run")
    return RalphApp(root, config, agent=agent, **kwargs), agent


async def wait_for(
    pilot: Pilot[Any], condition: Callable[[], bool], timeout: float = 20.0, what: str = ""
) -> None:
    """Let the app run until ``condition`` holds; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await pilot.pause(0.02)
    await pilot.pause()


async def settle(pilot: Pilot[Any]) -> None:
    await asyncio.sleep(0)
    await pilot.pause()


class ManualClock:
    """A clock the test moves: ``advance`` is the only way time passes."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class ManualTimers:
    """``set_timer`` for the app's flush pacing: records each timer; the test fires them."""

    def __init__(self) -> None:
        self.pending: list[tuple[float, Callable[[], None]]] = []

    def __call__(self, delay: float, callback: Callable[[], None]) -> None:
        self.pending.append((delay, callback))

    def fire_all(self) -> None:
        pending, self.pending = self.pending, []
        for _, callback in pending:
            callback()
