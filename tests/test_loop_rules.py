"""The loop rules name no backend's tools; each backend adds its own tools section, and only it."""

from __future__ import annotations

import re
from pathlib import Path

from ralph_tui.agents.claude_code import SESSION_NOTES
from ralph_tui.agents.command import DONE_MARKER, SIGNALS_HELP, build_prompt
from ralph_tui.context import LOOP_RULES, RALPH_TOOL_RULES, build_system_prompt
from ralph_tui.iteration import IterationRequest
from ralph_tui.persona import DEFAULT_PERSONA
from ralph_tui.prd.model import Story
from ralph_tui.tools import TOOL_NAMES


def bare_tool_names(text: str) -> set[str]:
    """ralph-tui's tool names used as words (not as part of Claude Code's mcp__ralph__ names)."""
    return {n for n in TOOL_NAMES if re.search(rf"(?<![\w</]){re.escape(n)}(?![\w])", text)}


def test_the_common_rules_name_no_tool() -> None:
    assert bare_tool_names(LOOP_RULES) == set()
    assert "bash" not in LOOP_RULES and "complete_task" not in LOOP_RULES


def test_each_backend_names_only_its_own_tools(tmp_path: Path) -> None:
    system = build_system_prompt(DEFAULT_PERSONA)
    request = IterationRequest(
        iteration=1,
        story=Story(id="US-001", title="T", priority=1, passes=False),
        system_prompt=system,
        user_prompt="# Task #US-001: T\n",
        workspace=tmp_path,
        config=None,  # type: ignore[arg-type]
    )
    command_prompt = build_prompt(request, [])
    assert DONE_MARKER in command_prompt and SIGNALS_HELP.strip() in command_prompt
    assert bare_tool_names(command_prompt) == set()
    assert bare_tool_names(SESSION_NOTES) == set()  # Claude Code gets the mcp__ralph__ names
    assert "mcp__ralph__complete_task" in SESSION_NOTES
    assert bare_tool_names(RALPH_TOOL_RULES) >= {"complete_task", "escalate", "bash"}
