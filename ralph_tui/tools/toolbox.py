"""One entry point for every agent tool call, so each backend gets the same events and rules.

``ToolBox.call`` emits ``ToolCall`` before and ``ToolResult`` after, validates inputs (a bad
input is an error result the model can correct, never a crash), and routes file and shell work
to the confined tools here and the engine's tools to ``IterationHandle``.

No text field of any tool may hold a NUL byte or a lone surrogate (``"\\udcff"`` is valid JSON):
no path, command or file can carry them, and a surrogate cannot even be written as UTF-8, so
they are refused here, once, before any tool sees them. Results are made encodable too (a file
name that is not UTF-8 reaches a listing as a surrogate), so the journal and the API never choke.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ralph_tui.config import RalphConfig
from ralph_tui.events import ToolCall, ToolResult
from ralph_tui.iteration import IterationHandle, ToolOutcome
from ralph_tui.safety.text import encodable, escape_controls, has_lone_surrogate
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

MAX_INPUT_DEPTH = 8  # the tools' inputs are flat; deeper nesting is garbage or an attack


class ToolBox:
    def __init__(self, tools: IterationHandle, config: RalphConfig) -> None:
        self.tools = tools
        self.config = config

    async def call(self, call_id: str, name: str, tool_input: Mapping[str, Any]) -> ToolOutcome:
        problem = input_problem(tool_input)
        shown = {"invalid input": problem} if problem else dict(tool_input)
        self.tools.emit(ToolCall(call_id=call_id, name=name, input=shown))
        if problem:
            outcome = ToolOutcome(f"{name}: {problem}", is_error=True)
        else:
            outcome = await self._route(name, tool_input)
        if has_lone_surrogate(outcome.content):
            outcome = replace(outcome, content=encodable(outcome.content))
        self.tools.emit(
            ToolResult(
                call_id=call_id, name=name, content=outcome.content, is_error=outcome.is_error
            )
        )
        return outcome

    async def _route(self, name: str, tool_input: Mapping[str, Any]) -> ToolOutcome:
        if name == EDITOR:
            return await run_editor(self.tools.workspace, tool_input)
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


def input_problem(tool_input: object) -> str | None:
    """Why ``tool_input`` is refused before any tool sees it (one line), or None."""
    if not isinstance(tool_input, Mapping):
        return "input must be an object"
    stack: list[tuple[object, str, int]] = [(tool_input, "input", 0)]
    while stack:
        value, where, depth = stack.pop()
        if depth > MAX_INPUT_DEPTH:
            return "input is nested too deeply"
        if isinstance(value, str):
            if "\x00" in value:
                return f"{where} contains a NUL byte"
            if has_lone_surrogate(value):
                return f"{where} is not valid UTF-8 (it contains a lone surrogate)"
        elif isinstance(value, Mapping):
            for key, item in value.items():
                if not isinstance(key, str) or "\x00" in key or has_lone_surrogate(key):
                    return f"{where} has a key that is not a plain string"
                field = f"'{escape_controls(key, multiline=False)}'" if depth == 0 else where
                stack.append((item, field, depth + 1))
        elif isinstance(value, list | tuple):
            stack.extend((item, where, depth + 1) for item in value)
    return None


def _learnings(value: object) -> list[str]:
    """Models sometimes send one string, or nothing; the progress log wants a list of lines."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, list | tuple):
        return [str(v) for v in value if str(v).strip()]
    return [str(value)]
