"""One entry point for every agent tool call, so each backend gets the same events and rules.

``ToolBox.call`` emits ``ToolCall`` before and ``ToolResult`` after, validates inputs (a bad
input is an error result the model can correct, never a crash), and routes file and shell work
to the confined tools here and the engine's tools to ``IterationHandle``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ralph_tui.config import RalphConfig
from ralph_tui.events import ToolCall, ToolResult
from ralph_tui.iteration import IterationHandle, ToolOutcome
from ralph_tui.tools.definitions import (
    BASH,
    COMPLETE_TASK,
    EDITOR,
    ESCALATE,
    RUN_QUALITY_GATES,
    TOOL_NAMES,
)
from ralph_tui.tools.editor import run_editor
from ralph_tui.tools.shell import RESTART_MESSAGE, run_bash


class ToolBox:
    def __init__(self, tools: IterationHandle, config: RalphConfig) -> None:
        self.tools = tools
        self.config = config

    async def call(self, call_id: str, name: str, tool_input: Mapping[str, Any]) -> ToolOutcome:
        self.tools.emit(ToolCall(call_id=call_id, name=name, input=dict(tool_input)))
        outcome = await self._route(name, tool_input)
        self.tools.emit(
            ToolResult(
                call_id=call_id, name=name, content=outcome.content, is_error=outcome.is_error
            )
        )
        return outcome

    async def _route(self, name: str, tool_input: Mapping[str, Any]) -> ToolOutcome:
        if not isinstance(tool_input, Mapping):
            return ToolOutcome(f"{name}: input must be an object", is_error=True)
        if name == EDITOR:
            return run_editor(self.tools.workspace, tool_input)
        if name == BASH:
            return await self._bash(tool_input)
        if name == RUN_QUALITY_GATES:
            return await self.tools.run_quality_gates()
        if name == ESCALATE:
            question = tool_input.get("question")
            if not isinstance(question, str) or not question.strip():
                return ToolOutcome("escalate: missing 'question' (a string)", is_error=True)
            tried = tool_input.get("tried", "")
            return await self.tools.escalate(
                question, tried if isinstance(tried, str) else str(tried)
            )
        if name == COMPLETE_TASK:
            summary = tool_input.get("summary")
            if not isinstance(summary, str) or not summary.strip():
                return ToolOutcome("complete_task: missing 'summary' (a string)", is_error=True)
            return await self.tools.complete_task(summary, _learnings(tool_input.get("learnings")))
        return ToolOutcome(
            f"unknown tool {name!r}; the tools are {', '.join(TOOL_NAMES)}", is_error=True
        )

    async def _bash(self, tool_input: Mapping[str, Any]) -> ToolOutcome:
        if tool_input.get("restart") is True:
            return ToolOutcome(RESTART_MESSAGE)
        command = tool_input.get("command")
        if not isinstance(command, str) or not command.strip():
            return ToolOutcome("bash: missing 'command' (a string)", is_error=True)
        sandbox = self.tools.workspace.sandbox
        return await run_bash(
            command,
            cwd=self.tools.workspace.root,
            env=sandbox.env(),
            timeout_s=self.config.bash_timeout_s,
            sandbox=sandbox,
        )

    async def aclose(self) -> None:
        """Nothing outlives a call: each command's process group is killed when it ends."""


def _learnings(value: object) -> list[str]:
    """Models sometimes send one string, or nothing; the progress log wants a list of lines."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, list | tuple):
        return [str(v) for v in value if str(v).strip()]
    return [str(value)]
