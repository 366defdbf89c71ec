"""The scripted agent's ``usage`` step: a model turn's usage reported to the engine (how a test
spends a cost budget), and a malformed one refused in one line naming the script."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ralph_tui.agents.scripted import ScriptedAgent
from ralph_tui.config import load_config
from ralph_tui.errors import UsageError
from ralph_tui.iteration import IterationRequest, Usage
from ralph_tui.prd import Story
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
async def test_malformed_usage_step_is_one_line_naming_the_script(
    tmp_path: Path, usage: Any
) -> None:
    agent, request = agent_and_request(tmp_path, [{"usage": usage}])
    handle = FakeIterationHandle(request.workspace)
    with pytest.raises(UsageError) as raised:
        await agent.run_iteration(request, handle)
    message = str(raised.value)
    assert message.startswith(f"{tmp_path / 'script.json'}: step 0 of US-001: 'usage'")
    assert "\n" not in message and handle.usages == []
