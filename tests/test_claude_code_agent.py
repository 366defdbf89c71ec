"""``agent = "claude-code"``: the real bundled Claude Code CLI against the suite's fake API.

The tests that start the CLI need the ``claude`` extra (``make test`` installs it) and skip,
saying so, without it. With the extra installed they never skip: a CLI that cannot start is a
failure to look at, not a quiet pass.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ralph_tui.agents.claude_code import (
    INSTALL_HINT,
    ClaudeCodeAgent,
    bundled_cli_path,
    offered_tools,
    policy_decision,
)
from ralph_tui.config import ClaudeCodeOptions, RalphConfig, load_config
from ralph_tui.engine import Engine
from ralph_tui.errors import StopRequested, UsageError
from ralph_tui.events import (
    Committed,
    GateFinished,
    Notice,
    TextDelta,
    ToolCall,
    ToolResult,
    UsageReported,
)
from ralph_tui.iteration import IterationRequest, ToolOutcome
from ralph_tui.prd.model import Story
from ralph_tui.safety.workspace import Workspace
from ralph_tui.supervisor import EscalationAnswer
from tests.support.engine import RecordingSink, ScriptedSupervisor
from tests.support.fake_anthropic import FakeAnthropic, RecordedRequest, reply, tool_use
from tests.support.fake_tools import FakeIterationHandle
from tests.support.optional import require_claude_sdk
from tests.support.repo import git, make_repo, story

API_KEY = "sk-ant-fake-claude-code-key"


@pytest.fixture
def claude_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAnthropic]:
    """The fake API, and an environment that keeps the CLI offline and out of the real HOME."""
    require_claude_sdk()
    assert bundled_cli_path() is not None, "claude-agent-sdk is installed without its bundled CLI"
    home = tmp_path / "home"
    home.mkdir()
    server = FakeAnthropic().start()
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(home / ".claude"))
    monkeypatch.setenv("DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("DISABLE_AUTOUPDATER", "1")
    monkeypatch.setenv("DISABLE_ERROR_REPORTING", "1")
    monkeypatch.setenv("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
    yield server
    server.close()


def tool_results(request: RecordedRequest) -> list[dict[str, Any]]:
    """The tool_result blocks of the last user message the CLI sent."""
    last = request.body["messages"][-1]
    content = last["content"] if isinstance(last["content"], list) else []
    return [b for b in content if b.get("type") == "tool_result"]


def result_text(block: dict[str, Any]) -> str:
    content = block.get("content")
    if isinstance(content, list):
        return "\n".join(str(c.get("text", "")) for c in content)
    return str(content)


async def test_a_whole_story_through_the_real_cli(
    tmp_path: Path, claude_env: FakeAnthropic
) -> None:
    check = f"{sys.executable} -c 'import hello; assert hello.GREETING == \"hi\", hello.GREETING'"
    root = make_repo(tmp_path / "ws", [story("US-001", "Greet")], gates={"tests": check})
    outside = tmp_path / "outside.txt"
    hello = str(root / "hello.py")
    api = claude_env
    api.add(
        reply(
            "I will add the module.",
            tool_use("Write", {"file_path": hello, "content": "GREETING = 'hello'\n"}),
        ),
        reply(tool_use("Write", {"file_path": str(outside), "content": "escape\n"})),
        reply(tool_use("mcp__ralph__complete_task", {"summary": "first try", "learnings": []})),
        reply(tool_use("mcp__ralph__escalate", {"question": "Which word?", "tried": "hello"})),
        reply(tool_use("Write", {"file_path": hello, "content": "GREETING = 'hi'\n"})),
        reply(
            tool_use(
                "mcp__ralph__complete_task",
                {"summary": "Added hello.py", "learnings": ["GREETING lives in hello.py"]},
            )
        ),
        reply("All done."),
    )
    config = load_config(root, {"agent": "claude-code"})
    sink = RecordingSink()
    supervisor = ScriptedSupervisor(answers=[EscalationAnswer("answer", "Use hi.")])
    engine = Engine(root, config, ClaudeCodeAgent(config), supervisor, sink)

    exit_code = await engine.run()

    assert exit_code == 0, [e for e in sink.events if isinstance(e, Notice)]
    # the commit: the implementation and the bookkeeping, nothing from outside
    assert not outside.exists()
    assert git(root, "show", "HEAD:hello.py") == "GREETING = 'hi'\n"
    assert git(root, "log", "-1", "--format=%s").strip() == "[backend] Task #US-001: Greet"
    files = git(root, "show", "--name-only", "--format=", "HEAD").split()
    assert sorted(files) == ["hello.py", "tasks/backend_prd.json", "tasks/backend_progress.txt"]
    prd = json.loads((root / "tasks" / "backend_prd.json").read_text())
    assert prd["userStories"][0]["passes"] is True
    assert "GREETING lives in hello.py" in (root / "tasks" / "backend_progress.txt").read_text()
    assert len(sink.of(Committed)) == 1

    # the transcript: streamed text, Claude Code's own tools, the denial, ralph-tui's tools
    text = "".join(e.text for e in sink.of(TextDelta))
    assert "I will add the module.\n" in text
    calls = [(c.name, c.call_id) for c in sink.of(ToolCall)]
    assert [n for n, _ in calls] == [
        "Write",
        "Write",
        "complete_task",
        "escalate",
        "Write",
        "complete_task",
    ]
    results = {r.call_id: r for r in sink.of(ToolResult)}
    assert set(results) == {cid for _, cid in calls}
    denied = results[calls[1][1]]
    assert denied.is_error and denied.content.startswith("denied by ralph-tui: ")
    assert "outside the workspace" in denied.content
    first_claim = results[calls[2][1]]
    assert first_claim.is_error and "fix attempt 1 of 3" in first_claim.content
    assert results[calls[3][1]].content.endswith("Use hi.")
    assert results[calls[5][1]].content.startswith("Approved and committed")
    assert [g.state for g in sink.of(GateFinished)] == ["failed", "passed"]

    # what reached the model: the denial, the gate failure, the human's answer
    sent = api.requests
    assert len(sent) == 7
    assert "denied" not in result_text(tool_results(sent[1])[0])  # the first Write went through
    assert "outside the workspace" in result_text(tool_results(sent[2])[0])
    assert tool_results(sent[2])[0].get("is_error") is True
    assert "AssertionError: hello" in result_text(tool_results(sent[3])[0])  # the gate's output
    assert "Use hi." in result_text(tool_results(sent[4])[0])
    assert "Approved and committed" in result_text(tool_results(sent[6])[0])
    system = json.dumps(sent[0].body["system"])
    assert "mcp__ralph__complete_task" in system
    assert "# Task #US-001: Greet" in json.dumps(sent[0].body["messages"])
    offered = {t["name"] for t in sent[0].body["tools"]}
    assert {"mcp__ralph__complete_task", "mcp__ralph__escalate", "Write", "Bash"} <= offered
    assert "WebFetch" not in offered

    # the CLI had the key; the run folder never does
    written = {
        p.name: p.read_text(encoding="utf-8") for p in engine.run_dir.iterdir() if p.is_file()
    }
    assert {"events.jsonl", "transcript.md"} <= set(written)
    assert all(API_KEY not in text for text in written.values())

    # Claude Code's own cost feeds the cost column
    usage = sink.of(UsageReported)
    assert usage and sum(u.cost_usd for u in usage) > 0
    assert engine.story_cost["US-001"] == pytest.approx(sum(u.cost_usd for u in usage))


def _request(root: Path, config: RalphConfig) -> IterationRequest:
    return IterationRequest(
        iteration=1,
        story=Story(id="US-001", title="Greet", priority=1, passes=False),
        system_prompt="You are a careful engineer.",
        user_prompt="# Task #US-001: Greet",
        workspace=root,
        config=config,
    )


async def test_a_turn_without_a_claim_gets_one_nudge(
    tmp_path: Path, claude_env: FakeAnthropic
) -> None:
    root = make_repo(tmp_path / "ws")
    claude_env.add(
        reply("I looked around."),
        reply(tool_use("mcp__ralph__complete_task", {"summary": "nothing to do", "learnings": []})),
        reply("Stopping."),
    )
    config = RalphConfig(agent="claude-code")
    tools = FakeIterationHandle(root)
    outcome = await ClaudeCodeAgent(config).run_iteration(_request(root, config), tools)
    assert outcome.reason == "finished"
    assert tools.completions == [("nothing to do", [])]
    assert "without calling mcp__ralph__complete_task" in json.dumps(
        claude_env.requests[1].body["messages"]
    )
    # two results (the turn, the nudged turn): costs are reported as increments, not totals
    assert len(tools.usages) == 2
    assert all(u.cost_usd is not None and u.cost_usd > 0 for u in tools.usages)


async def test_a_second_silent_turn_ends_the_iteration(
    tmp_path: Path, claude_env: FakeAnthropic
) -> None:
    root = make_repo(tmp_path / "ws")
    claude_env.add(reply("Thinking."), reply("Still thinking."))
    config = RalphConfig(agent="claude-code")
    tools = FakeIterationHandle(root)
    outcome = await ClaudeCodeAgent(config).run_iteration(_request(root, config), tools)
    assert outcome.reason == "end_turn"
    assert outcome.message == "Still thinking."
    assert tools.completions == []


async def test_an_api_failure_is_an_agent_error(
    tmp_path: Path, claude_env: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ralph_tui.errors import AgentError
    from tests.support.fake_anthropic import http_error

    monkeypatch.setenv("CLAUDE_CODE_MAX_RETRIES", "1")
    root = make_repo(tmp_path / "ws")
    claude_env.add(http_error(401), http_error(401))
    config = RalphConfig(agent="claude-code")
    tools = FakeIterationHandle(root)
    with pytest.raises(AgentError, match="API error 401: Failed to authenticate"):
        await ClaudeCodeAgent(config).run_iteration(_request(root, config), tools)
    retries = [e for e in tools.events if isinstance(e, Notice) and e.level == "warning"]
    assert [n.message for n in retries] == [
        "Claude Code: API error 401 (authentication_failed), retry 1 of 1"
    ]


async def test_gate_failure_is_returned_to_claude_code(
    tmp_path: Path, claude_env: FakeAnthropic
) -> None:
    root = make_repo(tmp_path / "ws")
    claude_env.add(
        reply(tool_use("mcp__ralph__run_quality_gates", {})),
        reply(tool_use("mcp__ralph__complete_task", {"summary": "s", "learnings": []})),
    )
    config = RalphConfig(agent="claude-code")
    tools = FakeIterationHandle(root, gate_results=[ToolOutcome("lint: 2 errors", is_error=True)])
    agent = ClaudeCodeAgent(config)
    agent.wrap_up_s = 0.5  # the fake answers the wrap-up turn with its default text anyway
    outcome = await agent.run_iteration(_request(root, config), tools)
    assert outcome.reason == "finished"
    block = tool_results(claude_env.requests[1])[0]
    assert block.get("is_error") is True
    assert "lint: 2 errors" in result_text(block)
    gate_result = next(e for e in tools.events if isinstance(e, ToolResult))
    assert gate_result.name == "run_quality_gates" and gate_result.is_error


async def test_a_stop_at_the_next_tool_call_ends_the_session(
    tmp_path: Path, claude_env: FakeAnthropic
) -> None:
    root = make_repo(tmp_path / "ws")
    claude_env.add(
        reply(tool_use("Write", {"file_path": str(root / "a.py"), "content": "A = 1\n"})),
        reply(tool_use("Write", {"file_path": str(root / "b.py"), "content": "B = 1\n"})),
    )

    class StoppingTools(FakeIterationHandle):
        async def checkpoint(self) -> None:
            await super().checkpoint()
            if self.checkpoints == 2:  # the human pressed stop while the first Write ran
                raise StopRequested

    config = RalphConfig(agent="claude-code")
    tools = StoppingTools(root)
    with pytest.raises(StopRequested):
        await ClaudeCodeAgent(config).run_iteration(_request(root, config), tools)
    assert (root / "a.py").exists()
    assert not (root / "b.py").exists()
    refused = [e for e in tools.events if isinstance(e, ToolResult) and e.is_error]
    assert [r.content for r in refused] == ["denied by ralph-tui: ralph-tui is stopping"]


async def test_tools_are_refused_once_the_iteration_ended(
    tmp_path: Path, claude_env: FakeAnthropic
) -> None:
    root = make_repo(tmp_path / "ws")
    claude_env.add(
        reply(tool_use("mcp__ralph__complete_task", {"summary": "done", "learnings": []})),
        reply(tool_use("Write", {"file_path": str(root / "late.py"), "content": "L = 1\n"})),
        reply("Ok, stopping."),
    )
    config = RalphConfig(agent="claude-code")
    tools = FakeIterationHandle(root)
    outcome = await ClaudeCodeAgent(config).run_iteration(_request(root, config), tools)
    assert outcome.reason == "finished"
    assert not (root / "late.py").exists()
    late = [e for e in tools.events if isinstance(e, ToolResult) and e.name == "Write"]
    assert [r.content for r in late] == ["denied by ralph-tui: the iteration has ended"]
    assert len(tools.usages) == 1  # the wrap-up turn's result still brought the cost


# ---- the policy, without the CLI -----------------------------------------------------------


def test_file_tools_stay_in_the_workspace(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)
    ws = Workspace(root)
    options = ClaudeCodeOptions()
    assert policy_decision("Write", {"file_path": str(root / "a.py")}, ws, options) is None
    assert policy_decision("Edit", {"file_path": "src/a.py"}, ws, options) is None
    for path in (str(tmp_path / "x.py"), "../x.py", "link/x.py"):
        reason = policy_decision("Write", {"file_path": path}, ws, options)
        assert reason is not None and "outside the workspace" in reason
    for path in (".git/config", ".ralph/state.json"):
        reason = policy_decision("Edit", {"file_path": path}, ws, options)
        assert reason is not None and "off limits" in reason
    assert policy_decision("Read", {"file_path": "/etc/passwd"}, ws, options) is not None
    assert policy_decision("Grep", {"pattern": "x"}, ws, options) is None
    assert policy_decision("Grep", {"pattern": "x", "path": "/"}, ws, options) is not None


def test_allow_and_deny_policy(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    options = ClaudeCodeOptions(allow=["Bash", "mcp__github__*"], deny=["WebFetch", "mcp__*_admin"])
    assert policy_decision("Bash", {"command": "ls"}, ws, options) is None
    assert policy_decision("mcp__github__search", {}, ws, options) is None
    assert policy_decision("mcp__ralph__complete_task", {}, ws, options) is None
    denied = policy_decision("WebFetch", {}, ws, options)
    assert denied == "WebFetch is denied by [claude_code] deny in ralph.toml"
    # deny wins over allow
    assert policy_decision("mcp__github__admin", {}, ws, options) == (
        "mcp__github__admin is denied by [claude_code] deny in ralph.toml"
    )
    unlisted = policy_decision("Write", {"file_path": "a.py"}, ws, options)
    assert unlisted == "Write is not in [claude_code] allow in ralph.toml"


def test_offered_tools_follow_the_allow_list() -> None:
    assert offered_tools(ClaudeCodeOptions(allow=["Read", "Bash", "mcp__x__*"])) == ["Read", "Bash"]
    assert offered_tools(ClaudeCodeOptions(allow=["Read", "Notebook*"])) is None


def test_missing_sdk_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "claude_agent_sdk", None)
    with pytest.raises(UsageError) as caught:
        ClaudeCodeAgent(RalphConfig(agent="claude-code"))
    assert str(caught.value) == INSTALL_HINT
    assert "pip install ralph-supervisor[claude]" in INSTALL_HINT


async def test_a_rate_limited_claude_code_hands_the_story_to_the_fallback_agent(
    tmp_path: Path, claude_env: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``agent = "claude-code"`` with ``fallback = ["anthropic:claude-haiku-4-5"]``: the real
    CLI gets 429s past its retries, and the Anthropic agent finishes the story from the
    CLI's change (the rest of the fallback paths: tests/test_fallback.py)."""
    from ralph_tui.agents import create_agent
    from ralph_tui.agents.fallback import FallbackAgent
    from ralph_tui.events import AgentSwitched
    from tests.support.fake_anthropic import rate_limited

    monkeypatch.setenv("CLAUDE_CODE_MAX_RETRIES", "1")
    check = f"{sys.executable} -c 'import hello; assert hello.GREETING == \"hi\", hello.GREETING'"
    root = make_repo(tmp_path / "ws", [story("US-001", "Greet")], gates={"tests": check})
    api = claude_env
    api.add(
        reply(
            tool_use("Write", {"file_path": str(root / "hello.py"), "content": "GREETING = 'h'\n"})
        ),
        *rate_limited(2),  # the CLI's request and its one retry
        reply(
            tool_use(
                "str_replace_based_edit_tool",
                {"command": "str_replace", "path": "hello.py", "old_str": "'h'", "new_str": "'hi'"},
            )
        ),
        reply(tool_use("complete_task", {"summary": "GREETING is hi", "learnings": []})),
    )
    config = load_config(root, {"agent": "claude-code", "fallback": ["anthropic:claude-haiku-4-5"]})
    agent = create_agent(config, root)
    assert isinstance(agent, FallbackAgent)
    sink = RecordingSink()
    engine = Engine(root, config, agent, ScriptedSupervisor(), sink)

    assert await engine.run() == 0, [e for e in sink.events if isinstance(e, Notice)]

    assert git(root, "show", "HEAD:hello.py") == "GREETING = 'hi'\n"
    assert [(e.agent, e.previous) for e in sink.of(AgentSwitched)] == [
        ("claude-code", ""),
        ("anthropic:claude-haiku-4-5", "claude-code"),
    ]
    assert [r.body["model"] for r in api.requests][-2:] == ["claude-haiku-4-5"] * 2
    handed = json.dumps(api.requests[-2].body["messages"][0])
    assert "Claude Code: API error 429" in handed
    assert "+GREETING = 'h'" in handed
    assert {u.agent for u in sink.of(UsageReported)} == {
        "claude-code",
        "anthropic:claude-haiku-4-5",
    }
