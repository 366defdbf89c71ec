"""A backend registered by a test, to show that adding one is its module and one registration.

It is the scripted agent playing a fixed script (each story writes ``echo-<id>.txt``), with the
two module functions the registry calls.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ralph_tui.agents.scripted import ScriptedAgent
from ralph_tui.checks import Check
from ralph_tui.config import RalphConfig

CREATED: list[Path] = []  # workspaces an agent was created for


def create(config: RalphConfig, workspace: Path) -> ScriptedAgent:
    CREATED.append(workspace)
    steps = {
        story: [
            {"tool": "str_replace_based_edit_tool",
             "input": {"command": "create", "path": f"echo-{story}.txt", "file_text": "echo\n"}},
            {"tool": "complete_task", "input": {"summary": "echoed"}},
        ]
        for story in ("US-001", "US-002")
    }  # fmt: skip
    return ScriptedAgent({"stories": steps}, config, source="echo backend")


def doctor_checks(root: Path, config: RalphConfig) -> Iterator[Check]:
    yield Check("ok", "echo", "always ready")
