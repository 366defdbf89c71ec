"""The scripted agent's ``usage`` step: a model turn's usage reported to the engine (how a test
spends a cost budget); a malformed script refused when loaded, in one line naming the file and
the step."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ralph_tui.agents.scripted import ScriptedAgent
from ralph_tui.config import load_config
from ralph_tui.errors import UsageError
from ralph_tui.iteration import IterationRequest, Usage
from ralph_tui.prd.model import Story
from tests.support.fake_tools import FakeIterationHandle
from tests.support.repo import make_repo


def agent_and_request(tmp_path: Path, steps: list[Any]) -> tuple[ScriptedAgent, IterationRequest]:
    root = make_repo(tmp_path / "ws")
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"default": steps}), encoding="utf-8")
    config = load_config(root, {"script": str(script)})
    request = IterationRequest(
        iteration=1,
        story=Story(id="US-001", title="One", priority=1, passes=False),
        system_prompt="s",
        user_prompt="u",
        workspace=root,
        config=config,
    )
    return ScriptedAgent.from_file(script, config), request


async def test_usage_step_is_reported_as_a_turns_usage(tmp_path: Path) -> None:
    agent, request = agent_and_request(
        tmp_path, [{"usage": {"input_tokens": 1200, "output_tokens": 34}}, {"usage": {}}]
    )
    handle = FakeIterationHandle(request.workspace)
    await agent.run_iteration(request, handle)
    assert handle.usages == [Usage(input_tokens=1200, output_tokens=34), Usage()]


@pytest.mark.parametrize(
    "usage", [[], {"input_tokens": -1}, {"output_tokens": "10"}, {"input_tokens": 1.5}]
)
def test_malformed_usage_step_is_one_line_naming_the_script(tmp_path: Path, usage: Any) -> None:
    with pytest.raises(UsageError) as raised:
        agent_and_request(tmp_path, [{"text": "fine"}, {"usage": usage}])
    message = str(raised.value)
    assert message == (
        f"{tmp_path / 'script.json'}: default step 1: 'usage' takes whole numbers "
        "input_tokens and output_tokens"
    )


@pytest.mark.parametrize(
    ("script", "problem"),
    [
        ({"default": [5]}, "default step 0: a step is an object"),
        ({"default": "x"}, "default: must be a list of steps"),
        ({"default": [{"txt": "x"}]}, "default step 0: a step has one of text, tool, usage, wait"),
        ({"default": [{"text": "a", "tool": "bash"}]}, "default step 0: a step has one of"),
        ({"default": [{"text": 3}]}, "default step 0: 'text' takes a string"),
        (
            {"stories": {"US-002": [[{"text": "ok"}], [{"text": "ok"}, {"tool": 1}]]}},
            "stories['US-002'] attempt 2 step 1: 'tool' takes a string",
        ),
        ({"stories": []}, "'stories' must be an object of story id -> steps"),
        ({"step_delay_s": "1"}, "'step_delay_s' must be a number of seconds, 0 or more"),
        ({"stream_delay_s": -1}, "'stream_delay_s' must be a number of seconds, 0 or more"),
        ({"defaults": []}, "unknown key 'defaults' (a script has stories, default,"),
    ],
)
def test_a_mistake_anywhere_in_a_script_is_one_line_when_it_is_loaded(
    tmp_path: Path, script: dict[str, Any], problem: str
) -> None:
    path = tmp_path / "script.json"
    path.write_text(json.dumps(script), encoding="utf-8")
    config = load_config(make_repo(tmp_path / "ws"), {"script": str(path)})
    with pytest.raises(UsageError) as raised:
        ScriptedAgent.from_file(path, config)
    message = str(raised.value)
    assert message.startswith(f"{path}: {problem}") and "\n" not in message
