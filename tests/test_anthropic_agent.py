"""The Anthropic agent through the real SDK against the fake Messages API server."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from ralph_tui.agents.anthropic_agent import AnthropicAgent
from ralph_tui.config import RalphConfig
from ralph_tui.errors import AgentError, AgentRateLimited, UsageError
from ralph_tui.events import Notice, TextDelta, ToolCall, ToolResult
from ralph_tui.iteration import AgentOutcome, IterationRequest, ToolOutcome, Usage
from ralph_tui.prd.model import Story
from tests.support.fake_anthropic import (
    FakeAnthropic,
    http_error,
    reply,
    stream_error,
    tool_use,
)
from tests.support.fake_tools import FakeIterationHandle

CONFIG = RalphConfig(model="claude-test", max_tokens=1024)


@pytest.fixture
def api() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server


@pytest.fixture
def tools(ws: Path) -> FakeIterationHandle:
    return FakeIterationHandle(ws)


def make_agent(api: FakeAnthropic, *, max_retries: int = 4, **kw: Any) -> AnthropicAgent:
    client = anthropic.AsyncAnthropic(
        api_key="sk-ant-test-0000", base_url=api.base_url, max_retries=max_retries
    )
    return AnthropicAgent(CONFIG, client=client, retry_backoff_s=0, **kw)


def make_request(ws: Path) -> IterationRequest:
    story = Story(id="US-001", title="Greeting", priority=1, passes=False)
    return IterationRequest(
        iteration=1,
        story=story,
        system_prompt="You are a careful engineer.\n\nLOOP RULES",
        user_prompt="# Task #US-001: Greeting\n",
        workspace=ws,
        config=CONFIG,
    )


async def run(agent: AnthropicAgent, tools: FakeIterationHandle) -> AgentOutcome:
    try:
        return await agent.run_iteration(make_request(tools.root), tools)
    finally:
        await agent.aclose()


def create(path: str, file_text: str) -> dict[str, Any]:
    return tool_use(
        "str_replace_based_edit_tool", {"command": "create", "path": path, "file_text": file_text}
    )


def complete(summary: str = "done", learnings: list[str] | None = None) -> dict[str, Any]:
    return tool_use("complete_task", {"summary": summary, "learnings": learnings or ["a fact"]})


def tool_results(body: dict[str, Any]) -> list[dict[str, Any]]:
    last = body["messages"][-1]
    assert last["role"] == "user"
    return [b for b in last["content"] if b["type"] == "tool_result"]


async def test_tool_loop_until_the_engine_finishes(
    api: FakeAnthropic, tools: FakeIterationHandle, ws: Path
) -> None:
    source = 'def hello() -> str:\n    return "héllo, \\"world\\""\n' * 3
    api.add(
        reply("I will add the module first.", create("src/hello.py", source)),
        reply(tool_use("bash", {"command": "cat src/hello.py | wc -l"})),
        reply("Done.", complete("added hello", ["hello lives in src/"])),
    )
    outcome = await run(make_agent(api), tools)

    assert outcome == AgentOutcome("finished")
    assert (ws / "src/hello.py").read_text() == source  # input_json_delta reassembled exactly
    assert tools.completions == [("added hello", ["hello lives in src/"])]
    requests = api.requests
    assert len(requests) == 3
    assert all(r.stream for r in requests)
    assert [r.path for r in requests] == ["/v1/messages"] * 3
    first = requests[0].body
    assert first["model"] == "claude-test" and first["max_tokens"] == 1024
    assert first["system"][0]["text"].startswith("You are a careful engineer.")
    assert first["messages"][0]["content"][0]["text"] == "# Task #US-001: Greeting\n"
    assert [t["name"] for t in first["tools"]][-1] == "complete_task"
    # the bash result went back to the model
    (result,) = tool_results(requests[2].body)
    assert result["content"] == "6\n[exit code 0]" and "is_error" not in result

    deltas = [e.text for e in tools.events if isinstance(e, TextDelta)]
    assert "".join(deltas) == "I will add the module first.Done."
    assert len(deltas) > 2  # arrived in pieces, as streamed
    calls = [e for e in tools.events if isinstance(e, ToolCall)]
    assert [c.name for c in calls] == ["str_replace_based_edit_tool", "bash", "complete_task"]
    assert calls[0].input["file_text"] == source
    assert len(tools.usages) == 3


async def test_tool_errors_go_back_flagged(api: FakeAnthropic, tools: FakeIterationHandle) -> None:
    api.add(
        reply(
            tool_use(
                "str_replace_based_edit_tool",
                {"command": "str_replace", "path": "nope.py", "old_str": "a", "new_str": "b"},
            ),
            tool_use("str_replace_based_edit_tool", {"command": "view", "path": "../../etc"}),
        ),
        reply("I give up."),
    )
    outcome = await run(make_agent(api), tools)
    assert outcome.reason == "end_turn" and outcome.message == "I give up."
    results = tool_results(api.requests[1].body)
    assert [r["is_error"] for r in results] == [True, True]
    assert "no such file" in results[0]["content"]
    assert "outside the workspace" in results[1]["content"]
    ids = [b["id"] for b in api.requests[1].body["messages"][1]["content"]]
    assert [r["tool_use_id"] for r in results] == ids


async def test_gate_failure_from_complete_task_reaches_the_model(
    api: FakeAnthropic, tools: FakeIterationHandle
) -> None:
    tools.complete_results.append(ToolOutcome("tests failed:\nE assert 1 == 2", is_error=True))
    api.add(reply(complete()), reply("Fixing.", complete()))
    outcome = await run(make_agent(api), tools)
    assert outcome.reason == "finished"
    (result,) = tool_results(api.requests[1].body)
    assert result["is_error"] is True and "assert 1 == 2" in result["content"]
    assert len(tools.completions) == 2


async def test_calls_after_the_iteration_ended_are_not_run(
    api: FakeAnthropic, tools: FakeIterationHandle, ws: Path
) -> None:
    api.add(reply(complete(), create("late.txt", "too late")))
    assert (await run(make_agent(api), tools)).reason == "finished"
    assert not (ws / "late.txt").exists()
    assert [e.name for e in tools.events if isinstance(e, ToolCall)] == ["complete_task"]
    assert len(api.requests) == 1


async def test_http_errors_are_retried_by_the_sdk(
    api: FakeAnthropic, tools: FakeIterationHandle
) -> None:
    api.add(http_error(429), http_error(529), http_error(500), reply("All good."))
    outcome = await run(make_agent(api), tools)
    assert outcome == AgentOutcome("end_turn", "All good.")
    assert len(api.requests) == 4
    assert [r.headers.get("x-stainless-retry-count") for r in api.requests] == ["0", "1", "2", "3"]


async def test_retries_exhausted_raise_agent_error_naming_the_status(
    api: FakeAnthropic, tools: FakeIterationHandle
) -> None:
    api.add(*[http_error(529, message="Overloaded")] * 3)
    with pytest.raises(AgentError) as caught:
        await run(make_agent(api, max_retries=2), tools)
    assert str(caught.value) == "Anthropic API: 529 overloaded_error: Overloaded"
    assert len(api.requests) == 3


async def test_401_is_reported_at_once(api: FakeAnthropic, tools: FakeIterationHandle) -> None:
    api.add(http_error(401, message="invalid x-api-key"), reply("never sent"))
    with pytest.raises(AgentError) as caught:
        await run(make_agent(api), tools)
    message = str(caught.value)
    assert message.startswith("Anthropic API: 401 authentication_error: invalid x-api-key")
    assert "ANTHROPIC_API_KEY" in message
    assert len(api.requests) == 1


@pytest.mark.parametrize("drop", [False, True], ids=["error-event", "dropped-connection"])
async def test_mid_stream_failure_is_retried_at_turn_level(
    api: FakeAnthropic, tools: FakeIterationHandle, drop: bool
) -> None:
    api.add(stream_error(drop=drop), reply("Recovered."))
    outcome = await run(make_agent(api), tools)
    assert outcome == AgentOutcome("end_turn", "Recovered.")
    assert len(api.requests) == 2
    assert api.requests[0].body == api.requests[1].body  # the same turn, sent again
    notices = [e.message for e in tools.events if isinstance(e, Notice)]
    assert len(notices) == 1 and "retrying the turn (1 of 3)" in notices[0]
    if not drop:
        assert "overloaded_error" in notices[0]


async def test_mid_stream_failures_exhausted(
    api: FakeAnthropic, tools: FakeIterationHandle
) -> None:
    api.add(stream_error(), stream_error(), reply("too late"))
    with pytest.raises(AgentError) as caught:
        await run(make_agent(api, turn_retries=1), tools)
    assert str(caught.value) == "Anthropic API: overloaded_error: Overloaded (after 2 attempts)"
    assert len(api.requests) == 2
    # overloaded past the retries is a rate limit: a fallback agent may take over
    assert isinstance(caught.value, AgentRateLimited)


async def test_a_stream_broken_otherwise_is_no_rate_limit(
    api: FakeAnthropic, tools: FakeIterationHandle
) -> None:
    api.add(stream_error("api_error", "Internal"), stream_error("api_error", "Internal"))
    with pytest.raises(AgentError) as caught:
        await run(make_agent(api, turn_retries=1), tools)
    assert "api_error: Internal (after 2 attempts)" in str(caught.value)
    assert not isinstance(caught.value, AgentRateLimited)


async def test_refusal_ends_the_iteration(api: FakeAnthropic, tools: FakeIterationHandle) -> None:
    api.add(reply("I can't help with that.", stop_reason="refusal"))
    outcome = await run(make_agent(api), tools)
    assert outcome.reason == "refusal" and "refus" in outcome.message
    assert len(api.requests) == 1


async def test_max_tokens_continues(api: FakeAnthropic, tools: FakeIterationHandle) -> None:
    api.add(reply("First half of my plan ", stop_reason="max_tokens"), reply("Second half."))
    outcome = await run(make_agent(api), tools)
    assert outcome == AgentOutcome("end_turn", "Second half.")
    body = api.requests[1].body
    assert body["messages"][1] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "First half of my plan"}],
    }
    note = body["messages"][2]["content"][-1]["text"]
    assert "max_tokens" in note


async def test_max_tokens_inside_a_tool_call_does_not_run_it(
    api: FakeAnthropic, tools: FakeIterationHandle, ws: Path
) -> None:
    api.add(reply("Writing.", create("big.txt", "trunc"), stop_reason="max_tokens"), reply("Ok."))
    await run(make_agent(api), tools)
    assert not (ws / "big.txt").exists()
    assert not [e for e in tools.events if isinstance(e, ToolCall)]
    body = api.requests[1].body
    assert [b["type"] for b in body["messages"][1]["content"]] == ["text"]
    assert "str_replace_based_edit_tool call was incomplete" in json.dumps(body["messages"][2])


async def test_pause_turn_sends_the_turn_back(
    api: FakeAnthropic, tools: FakeIterationHandle
) -> None:
    api.add(reply("Still working", stop_reason="pause_turn"), reply("Finished."))
    outcome = await run(make_agent(api), tools)
    assert outcome.message == "Finished."
    last = api.requests[1].body["messages"][-1]
    assert last["role"] == "assistant" and last["content"][0]["text"] == "Still working"


async def test_usage_is_reported_per_call(api: FakeAnthropic, tools: FakeIterationHandle) -> None:
    usage = {
        "input_tokens": 11,
        "output_tokens": 22,
        "cache_creation_input_tokens": 33,
        "cache_read_input_tokens": 44,
    }
    api.add(reply(tool_use("run_quality_gates", {}), usage=usage), reply("Ok.", usage=usage))
    await run(make_agent(api), tools)
    assert tools.usages == [Usage(11, 22, 33, 44)] * 2
    assert tools.checkpoints == 2  # a safe point before each call


def marks(body: dict[str, Any]) -> dict[str, list[int]]:
    """Where the cache breakpoints are: tool indexes, system indexes, (message, block) pairs."""
    found: dict[str, list[Any]] = {"tools": [], "system": [], "messages": []}
    for i, t in enumerate(body["tools"]):
        if "cache_control" in t:
            found["tools"].append(i)
    for i, b in enumerate(body["system"]):
        if "cache_control" in b:
            found["system"].append(i)
    for m, message in enumerate(body["messages"]):
        for b, block in enumerate(message["content"]):
            if "cache_control" in block:
                assert block["cache_control"] == {"type": "ephemeral"}
                found["messages"].append((m, b))
    return found


async def test_cache_breakpoints_on_prefix_and_latest_message(
    api: FakeAnthropic, tools: FakeIterationHandle
) -> None:
    api.add(
        reply(
            "Looking.", tool_use("bash", {"command": "true"}), tool_use("bash", {"command": "true"})
        ),
        reply(tool_use("run_quality_gates", {})),
        reply("Done."),
    )
    await run(make_agent(api), tools)
    bodies = [r.body for r in api.requests]
    for body in bodies:
        found = marks(body)
        assert found["tools"] == [len(body["tools"]) - 1]
        assert found["system"] == [0]
        last = len(body["messages"]) - 1
        assert found["messages"] == [(last, len(body["messages"][last]["content"]) - 1)]
    # the simulated cache: later calls read the earlier conversation back
    assert tools.usages[0].cache_read_input_tokens == 0
    assert tools.usages[0].cache_creation_input_tokens > 0
    for before, after in zip(tools.usages, tools.usages[1:], strict=False):
        assert after.cache_read_input_tokens > before.cache_read_input_tokens
        assert after.input_tokens == 0  # everything before the moving breakpoint


async def test_client_from_environment(
    api: FakeAnthropic, tools: FakeIterationHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-from-env-1234")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", api.base_url)
    api.add(reply("Hi."))
    agent = AnthropicAgent(CONFIG)
    await run(agent, tools)
    headers = api.requests[0].headers
    sent = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")
    assert sent == "sk-ant-from-env-1234"


def test_missing_api_key_is_a_one_line_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(UsageError) as caught:
        AnthropicAgent(CONFIG)
    assert "ANTHROPIC_API_KEY is not set" in str(caught.value)
    assert "\n" not in str(caught.value)


async def test_tool_results_are_events(api: FakeAnthropic, tools: FakeIterationHandle) -> None:
    api.add(reply(tool_use("escalate", {"question": "Which DB?", "tried": "docs"})), reply("Ok."))
    await run(make_agent(api), tools)
    (result,) = [e for e in tools.events if isinstance(e, ToolResult)]
    assert result.name == "escalate" and result.content == tools.answer
    assert tool_results(api.requests[1].body)[0]["content"] == tools.answer


def test_fake_server_runs_as_its_own_process(tmp_path: Path) -> None:
    """Other processes (the Claude Code CLI) use it: ``python -m tests.support.fake_anthropic``."""
    script = tmp_path / "replies.json"
    script.write_text(json.dumps([reply("from a script")]))
    record = tmp_path / "requests.jsonl"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.fake_anthropic",
            "--script",
            str(script),
            "--record",
            str(record),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        client = anthropic.Anthropic(api_key="k", base_url=base_url, max_retries=0)
        first = client.messages.create(
            model="m", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
        second = client.messages.create(
            model="m", max_tokens=5, messages=[{"role": "user", "content": "again"}]
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert first.content[0].type == "text" and first.content[0].text == "from a script"
    assert second.stop_reason == "end_turn"  # an empty queue answers a plain end_turn
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert [line["body"]["messages"][0]["content"] for line in lines] == ["hi", "again"]


def test_fake_server_accepts_the_beta_route(api: FakeAnthropic) -> None:
    """Claude Code posts to ``/v1/messages?beta=true``."""
    api.add(reply("beta ok"))
    payload = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    post = urllib.request.Request(
        f"{api.base_url}/v1/messages?beta=true",
        data=json.dumps(payload).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(post, timeout=10) as response:
        message = json.loads(response.read())
    assert message["content"] == [{"type": "text", "text": "beta ok"}]
    (request,) = api.requests
    assert request.query == {"beta": ["true"]} and request.body == payload
