"""An offline agent that replays a script of text and tool calls (the demo and many tests).

Script format (JSON)::

    {"stream_delay_s": 0.02,
     "step_delay_s": 0.3,                                # before each step: model latency
     "stories": {"US-001": [step, ...],                  # the same steps every attempt
                 "US-002": [[step, ...], [step, ...]]},  # attempt 1, attempt 2 (and later)
     "default": [step, ...]}

A step is ``{"text": "..."}`` (streamed as deltas), ``{"tool": name, "input": {...}}`` or
``{"usage": {"input_tokens": n, "output_tokens": n}}`` (reported as a model turn's usage, so a
script can spend the run's cost budget).
Tests can also use ``{"wait": "name"}``: the agent marks ``reached(name)`` and waits until the
test calls ``release(name)``, so a test orders itself against the agent with events, not sleeps.
Only code can release a wait, so a script file that uses one would hang: it is for tests.
Tool calls go through the same ``ToolBox`` the Anthropic backend uses, so a script exercises the
real tools, the real gates and the real approval path.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ralph_tui.checks import Check
from ralph_tui.config import RalphConfig
from ralph_tui.errors import UsageError
from ralph_tui.events import TextDelta
from ralph_tui.iteration import (
    REJECTED_FOOTER,
    REJECTED_HEADER,
    AgentOutcome,
    IterationHandle,
    IterationRequest,
    ToolOutcome,
    Usage,
)
from ralph_tui.tools import ToolBox

CHUNK = 12  # characters per streamed delta


class ScriptedAgent:
    name = "scripted"

    def __init__(self, script: dict[str, Any], config: RalphConfig, source: str = "script") -> None:
        self.script = script
        self.config = config
        self.source = source
        self.attempts: dict[str, int] = {}
        # every tool result the agent received, in order: tests read feedback and answers here
        self.received: list[tuple[str, ToolOutcome]] = []
        self.requests: list[IterationRequest] = []
        self.feedback = ""  # the latest rejection's feedback: ``{feedback}`` in a step
        self._reached: dict[str, asyncio.Event] = {}
        self._released: dict[str, asyncio.Event] = {}
        check_script(script, source)

    def _signal(self, table: dict[str, asyncio.Event], name: str) -> asyncio.Event:
        return table.setdefault(name, asyncio.Event())

    def reached(self, name: str) -> bool:
        """True once the agent is waiting at (or went past) the step ``{"wait": name}``."""
        return self._signal(self._reached, name).is_set()

    async def wait_reached(self, name: str) -> None:
        """Until the agent is waiting at (or went past) ``{"wait": name}``."""
        await self._signal(self._reached, name).wait()

    def release(self, name: str) -> None:
        """Let the agent go on past ``{"wait": name}`` (now, or as soon as it gets there)."""
        self._signal(self._released, name).set()

    @classmethod
    def from_file(cls, path: Path, config: RalphConfig) -> ScriptedAgent:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UsageError(f"{path}: script file not found") from None
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path}:{exc.lineno}:{exc.colno}: {exc.msg}") from exc
        if not isinstance(data, dict):
            raise UsageError(f"{path}: a script is a JSON object")
        return cls(data, config, source=str(path))

    def steps_for(self, story_id: str) -> list[dict[str, Any]]:
        attempt = self.attempts.get(story_id, 0)
        plan = self.script.get("stories", {}).get(story_id, self.script.get("default", []))
        if plan and isinstance(plan[0], list):
            return list(plan[min(attempt, len(plan) - 1)])
        return list(plan)

    async def run_iteration(
        self, request: IterationRequest, tools: IterationHandle
    ) -> AgentOutcome:
        self.requests.append(request)
        story_id = request.story.key
        steps = self.steps_for(story_id)
        self.attempts[story_id] = self.attempts.get(story_id, 0) + 1
        delay = float(self.script.get("stream_delay_s", 0.0))
        step_delay = float(self.script.get("step_delay_s", 0.0))
        box = ToolBox(tools, self.config)
        for index, step in enumerate(steps):
            await tools.checkpoint()
            if step_delay:
                await asyncio.sleep(step_delay)
            if "text" in step:
                await self._stream(self._with_feedback(str(step["text"])), tools, delay)
            elif "tool" in step:
                call_id = f"script-{story_id}-{self.attempts[story_id]}-{index}"
                tool_input = self._with_feedback(step.get("input", {}))
                outcome = await box.call(call_id, str(step["tool"]), tool_input)
                self.received.append((str(step["tool"]), outcome))
                self._note_feedback(outcome)
            elif "usage" in step:
                tools.report_usage(self._usage(step["usage"], story_id, index))
            else:  # "wait": check_script let nothing else through
                name = str(step["wait"])
                self._signal(self._reached, name).set()
                await self._signal(self._released, name).wait()
            if tools.finished:
                return AgentOutcome("finished")
        return AgentOutcome("end_turn", "the script ran out of steps")

    def _note_feedback(self, outcome: ToolOutcome) -> None:
        if outcome.is_error and outcome.content.startswith(REJECTED_HEADER):
            said = outcome.content[len(REJECTED_HEADER) :].removesuffix(REJECTED_FOOTER)
            self.feedback = " ".join(said.split())  # one line: it may go into a comment

    def _with_feedback(self, value: Any) -> Any:
        """``{feedback}`` in a step's text or tool input: the human's latest rejection, so a
        rehearsal (the demo) shows the agent acting on what was said."""
        if isinstance(value, str):
            return value.replace("{feedback}", self.feedback or "(no feedback yet)")
        if isinstance(value, dict):
            return {key: self._with_feedback(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self._with_feedback(item) for item in value]
        return value

    def _usage(self, value: object, story_id: str, index: int) -> Usage:
        assert isinstance(value, dict)  # check_script: whole numbers, nothing else
        return Usage(
            input_tokens=value.get("input_tokens", 0), output_tokens=value.get("output_tokens", 0)
        )

    @staticmethod
    async def _stream(text: str, tools: IterationHandle, delay: float) -> None:
        for start in range(0, len(text), CHUNK):
            tools.emit(TextDelta(text=text[start : start + CHUNK]))
            if delay:
                await asyncio.sleep(delay)
        tools.emit(TextDelta(text="\n"))

    async def aclose(self) -> None:
        return None


SCRIPT_KEYS = ("stories", "default", "stream_delay_s", "step_delay_s")
STEP_KINDS = ("text", "tool", "usage", "wait")


def check_script(script: dict[str, Any], source: str) -> None:
    """The whole script checked when it is loaded, so a mistake in the step a run reaches last
    is one line naming the file and the step before anything starts, not a traceback mid-run.
    Raises ``UsageError``."""
    unknown = sorted(set(script) - set(SCRIPT_KEYS))
    if unknown:
        raise UsageError(
            f"{source}: unknown key {unknown[0]!r} (a script has {', '.join(SCRIPT_KEYS)}; see "
            "'Rehearse without a model: the scripted agent' in the README)"
        )
    for key in ("stream_delay_s", "step_delay_s"):
        value = script.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            raise UsageError(f"{source}: {key!r} must be a number of seconds, 0 or more")
    stories = script.get("stories", {})
    if not isinstance(stories, dict):
        raise UsageError(f"{source}: 'stories' must be an object of story id -> steps")
    plans = [(f"stories[{key!r}]", plan) for key, plan in stories.items()]
    for where, plan in [*plans, *([("default", script["default"])] if "default" in script else [])]:
        _check_plan(plan, f"{source}: {where}")


def _check_plan(plan: object, where: str) -> None:
    if not isinstance(plan, list):
        raise UsageError(f"{where}: must be a list of steps (or of step lists, one per attempt)")
    if plan and all(isinstance(attempt, list) for attempt in plan):
        for number, attempt in enumerate(plan, start=1):
            for index, step in enumerate(attempt):
                _check_step(step, f"{where} attempt {number} step {index}")
        return
    for index, step in enumerate(plan):
        _check_step(step, f"{where} step {index}")


def _check_step(step: object, where: str) -> None:
    if not isinstance(step, dict):
        raise UsageError(f'{where}: a step is an object ({{"text": ...}}, {{"tool": ...}}, ...)')
    kinds = [kind for kind in STEP_KINDS if kind in step]
    allowed = {*kinds, "input"} if kinds == ["tool"] else set(kinds)
    extra = sorted(set(step) - allowed)
    if len(kinds) != 1 or extra:
        found = ", ".join(repr(k) for k in sorted(step)) or "nothing"
        raise UsageError(
            f"{where}: a step has one of {', '.join(STEP_KINDS)} (a tool step also 'input'); "
            f"found {found}"
        )
    kind, value = kinds[0], step[kinds[0]]
    if kind in ("text", "tool", "wait") and not isinstance(value, str):
        raise UsageError(f"{where}: {kind!r} takes a string")
    # a tool step's 'input' may be any JSON value: a script replays what a model might send,
    # a malformed input included, and the tools refuse that at the call as they would a model's
    if kind == "usage":
        fields = ("input_tokens", "output_tokens")
        if (
            not isinstance(value, dict)
            or set(value) - set(fields)
            or not all(
                type(value.get(name, 0)) is int and value.get(name, 0) >= 0 for name in fields
            )
        ):
            raise UsageError(f"{where}: 'usage' takes whole numbers input_tokens and output_tokens")


# ---- registration (``agents.registry``) -------------------------------------------------------


def create(config: RalphConfig, workspace: Path) -> ScriptedAgent:
    if not config.script:
        raise UsageError(
            "ralph.toml: agent 'scripted' needs script = \"<path to a JSON script>\" (its "
            "format: 'Rehearse without a model: the scripted agent' in the README)"
        )
    path = Path(config.script).expanduser()
    return ScriptedAgent.from_file(path if path.is_absolute() else workspace / path, config)


def doctor_checks(root: Path, config: RalphConfig) -> Iterator[Check]:
    if not config.script:
        yield Check(
            "missing",
            "script",
            'agent = "scripted" without a script',
            "set script = \"<path>\" (the format: 'Rehearse without a model: the scripted agent' "
            "in the README)",
        )
        return
    path = Path(config.script).expanduser()
    path = path if path.is_absolute() else root / path
    if not path.is_file():
        yield Check("missing", "script", f"{path}: file not found", "fix script in ralph.toml")
        return
    try:
        ScriptedAgent.from_file(path, config)  # checks every step, as a run does first
    except UsageError as exc:
        yield Check("missing", "script", str(exc), "fix the script")
        return
    yield Check("ok", "script", str(path))
