"""Fallback agents (``fallback = [...]``) through the real engine.

The Anthropic agents are the real backend and SDK against the fake Messages API (a 429 with
``retry-after`` outlasting the SDK's retries); the CLI agent is ``tests/support/fake_cli.py``
running out of its usage plan. The clock is injected: a wait of minutes takes no time.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ralph_tui.agents import create_agent
from ralph_tui.agents.anthropic_agent import AnthropicAgent
from ralph_tui.agents.fallback import FallbackAgent, usage_limit
from ralph_tui.config import load_config
from ralph_tui.engine import Engine
from ralph_tui.errors import AgentError, AgentRateLimited, UsageError
from ralph_tui.events import (
    AgentsLimited,
    AgentSwitched,
    Committed,
    IterationFinished,
    IterationStarted,
    UsageReported,
)
from ralph_tui.exit_codes import ExitCode
from ralph_tui.iteration import IterationRequest, Usage
from ralph_tui.prd.model import Story
from ralph_tui.pricing import estimate_cost
from ralph_tui.runs import build_engine
from ralph_tui.supervisor import ApprovalRequest
from tests.support.engine import RecordingSink, ScriptedSupervisor, write_script
from tests.support.fake_anthropic import FakeAnthropic, rate_limited, reply, tool_use
from tests.support.fake_tools import FakeIterationHandle
from tests.support.repo import git, make_repo, story

PRIMARY = "claude-sonnet-4-5"
HAIKU = "claude-haiku-4-5"
FAKE_CLI = str(Path(__file__).parent / "support" / "fake_cli.py")
HELLO = "def hello() -> str:\n    return 'hello'\n"
# the SDK's max_retries (4) plus the first request: the limit outlasts the retries
SDK_ATTEMPTS = 5
GATE = {"hello": f"{sys.executable} -c \"import hello; assert hello.hello() == 'hello'\""}


class FakeClock:
    """Epoch seconds that move only when the run sleeps (or a test moves them)."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start
        self.slept: list[float] = []
        self.on_sleep: list[Any] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        for hook in self.on_sleep:
            hook()
        await asyncio.sleep(0)


def editor(**tool_input: Any) -> dict[str, Any]:
    return tool_use("str_replace_based_edit_tool", tool_input)


def complete(summary: str = "hello() works") -> dict[str, Any]:
    return tool_use("complete_task", {"summary": summary, "learnings": ["hello lives in hello.py"]})


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Any:
    with FakeAnthropic() as server:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-fallback-0000")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
        yield server


def repo(tmp_path: Path, stories: list[dict[str, Any]] | None = None, **kw: Any) -> Path:
    return make_repo(tmp_path / "ws", stories or [story("US-001", "Say hello")], **kw)


def engine_for(
    root: Path, clock: FakeClock, supervisor: ScriptedSupervisor | None = None, **config: Any
) -> tuple[Engine, FallbackAgent, RecordingSink]:
    overrides = {"agent": "anthropic", "model": PRIMARY, "sandbox": {"mode": "off"}, **config}
    cfg = load_config(root, overrides)
    agent = create_agent(cfg, root)
    assert isinstance(agent, FallbackAgent)
    agent.clock, agent.sleep = clock, clock.sleep
    sink = RecordingSink()
    # one worker: the Engine itself; workers = 2: the parallel engine over the same agent
    return build_engine(root, cfg, agent, supervisor or ScriptedSupervisor(), sink), agent, sink


def cli(mode: str, logdir: Path) -> list[str]:
    return [sys.executable, FAKE_CLI, mode, str(logdir), "--prompt", "{prompt_file}"]


def first_user_text(body: dict[str, Any]) -> str:
    content = body["messages"][0]["content"]
    return "".join(block.get("text", "") for block in content)


def switches(sink: RecordingSink) -> list[tuple[str, str]]:
    return [(e.agent, e.previous) for e in sink.of(AgentSwitched)]


async def test_a_rate_limit_hands_the_iteration_to_the_next_agent(
    tmp_path: Path, api: FakeAnthropic
) -> None:
    root = repo(tmp_path, gates=GATE)
    clock = FakeClock()
    engine, agent, sink = engine_for(root, clock, fallback=[f"anthropic:{HAIKU}"])
    api.add(
        reply(editor(command="create", path="hello.py", file_text="def hello() -> str:\n")),
        *rate_limited(SDK_ATTEMPTS, retry_after="120"),
        reply(editor(command="str_replace", path="hello.py", old_str=":\n", new_str=HELLO[18:])),
        reply(complete()),
    )

    assert await engine.run() == ExitCode.DONE

    assert git(root, "show", "HEAD:hello.py") == HELLO
    models = [r.body["model"] for r in api.requests]
    assert models == [PRIMARY] * (1 + SDK_ATTEMPTS) + [HAIKU] * 2
    # the same story, the change so far and what happened, in the next agent's prompt
    handed = first_user_text(api.requests[1 + SDK_ATTEMPTS].body)
    assert "Task #US-001: Say hello" in handed
    assert "# Handed over mid-iteration" in handed
    assert "anthropic: Anthropic API: 429 rate_limit_error" in handed
    assert "+def hello() -> str:" in handed  # the diff of the primary's new file
    # one iteration, continued: the engine's verdict is the commit
    assert [e.outcome for e in sink.of(IterationFinished)] == ["committed"]
    assert switches(sink) == [("anthropic", ""), (f"anthropic:{HAIKU}", "anthropic")]
    assert "resets in 2m00s" in sink.of(AgentSwitched)[1].reason
    assert agent.limits[agent.slots[0].label] == clock.now + 120
    # the cost table: which agent spent what, each priced by its own model
    usage = sink.of(UsageReported)
    assert [u.agent for u in usage] == ["anthropic"] + [f"anthropic:{HAIKU}"] * 2
    last = usage[-1]
    tokens = Usage(
        input_tokens=last.input_tokens,
        output_tokens=last.output_tokens,
        cache_creation_input_tokens=last.cache_creation_input_tokens,
        cache_read_input_tokens=last.cache_read_input_tokens,
    )
    assert last.cost_usd == pytest.approx(estimate_cost(HAIKU, tokens))
    assert last.cost_usd != pytest.approx(estimate_cost(PRIMARY, tokens))
    # the journal keeps who did what
    lines = [json.loads(x) for x in (engine.run_dir / "events.jsonl").read_text().splitlines()]
    assert [x["agent"] for x in lines if x["kind"] == "agent_switched"] == [
        "anthropic",
        f"anthropic:{HAIKU}",
    ]
    transcript = (engine.run_dir / "transcript.md").read_text()
    assert f"**agent** anthropic:{HAIKU} takes over from anthropic" in transcript


async def test_a_cli_usage_cap_hands_the_iteration_to_the_next_agent(
    tmp_path: Path, api: FakeAnthropic
) -> None:
    root = repo(tmp_path, gates=GATE)
    logdir = tmp_path / "cli"
    logdir.mkdir()
    (logdir / "resets-in").write_text("2 hours 5 minutes")
    clock = FakeClock()
    engine, agent, sink = engine_for(
        root,
        clock,
        agent="command",
        command=cli("usage-cap", logdir),
        fallback=[f"anthropic:{HAIKU}"],
    )
    api.add(
        reply(
            editor(
                command="str_replace",
                path="hello.py",
                old_str="# hello() goes here\n",
                new_str=HELLO,
            )
        ),
        reply(complete()),
    )

    assert await engine.run() == ExitCode.DONE

    assert git(root, "show", "HEAD:hello.py") == HELLO + "STARTED = True\n"
    handed = first_user_text(api.requests[0].body)
    assert "You've hit your usage limit. Try again in 2 hours 5 minutes." in handed
    assert "+STARTED = True" in handed
    assert switches(sink) == [("command", ""), (f"anthropic:{HAIKU}", "command")]
    assert agent.limits[agent.slots[0].label] == clock.now + 2 * 3600 + 5 * 60
    assert [e.outcome for e in sink.of(IterationFinished)] == ["committed"]


async def test_every_agent_limited_waits_for_the_earliest_reset_then_resumes(
    tmp_path: Path, api: FakeAnthropic
) -> None:
    root = repo(tmp_path, gates=GATE)
    logdir = tmp_path / "cli"
    logdir.mkdir()
    (logdir / "resets-in").write_text("10 minutes")
    clock = FakeClock()
    start = clock.now
    engine, _, sink = engine_for(
        root, clock, fallback=["command"], command=cli("usage-cap", logdir)
    )
    api.add(
        *rate_limited(SDK_ATTEMPTS, retry_after="120"),  # the primary: back in 2 minutes
        # then the CLI runs out too (10 minutes), the run waits, and the primary finishes
        reply(
            editor(
                command="str_replace",
                path="hello.py",
                old_str="# hello() goes here\n",
                new_str=HELLO,
            )
        ),
        reply(complete()),
    )

    assert await engine.run() == ExitCode.DONE

    limited = sink.of(AgentsLimited)
    assert [(e.wait_s, e.resume_agent) for e in limited] == [(120.0, "anthropic")]
    assert sum(clock.slept) == pytest.approx(120.0)
    assert max(clock.slept) <= 1.0  # a safe point every tick: pause and stop still work
    assert clock.now == pytest.approx(start + 120)
    assert switches(sink) == [("anthropic", ""), ("command", "anthropic"), ("anthropic", "command")]
    # one iteration throughout: the story never failed
    assert len(sink.of(IterationStarted)) == 1
    assert [e.outcome for e in sink.of(IterationFinished)] == ["committed"]
    assert git(root, "show", "HEAD:hello.py") == HELLO + "STARTED = True\n"
    resumed = first_user_text(api.requests[SDK_ATTEMPTS].body)
    assert "- anthropic: Anthropic API: 429" in resumed
    assert "- command: " in resumed and "Try again in 10 minutes" in resumed


async def test_a_stop_during_the_wait_ends_the_iteration_with_the_tree_restored(
    tmp_path: Path, api: FakeAnthropic
) -> None:
    root = repo(tmp_path, gates=GATE)
    clock = FakeClock()
    engine, _, sink = engine_for(root, clock, fallback=[f"anthropic:{HAIKU}"])
    api.add(
        reply(editor(command="create", path="hello.py", file_text="def hello() -> str:\n")),
        *rate_limited(SDK_ATTEMPTS, retry_after="3600"),
        *rate_limited(SDK_ATTEMPTS, retry_after="3600"),
    )
    clock.on_sleep.append(lambda: len(clock.slept) == 5 and engine.request_stop())

    assert await engine.run() == ExitCode.INTERRUPTED

    assert len(clock.slept) == 5  # stopped at the next tick, not an hour later
    assert [e.outcome for e in sink.of(IterationFinished)] == ["stopped"]
    assert not (root / "hello.py").exists()  # the change is saved as a patch, the tree clean
    patch = sink.of(IterationFinished)[0].patch_path
    assert patch is not None and "def hello" in Path(patch).read_text()


async def test_the_primary_is_tried_again_after_its_reset(
    tmp_path: Path, api: FakeAnthropic
) -> None:
    stories = [story(f"US-00{n}", f"Story {n}", priority=n) for n in (1, 2, 3)]
    root = repo(tmp_path, stories)
    clock = FakeClock()

    async def on_approve(request: ApprovalRequest) -> None:
        if request.story_id == "US-002":  # the primary's reset passes while story 2 lands
            clock.now += 121

    supervisor = ScriptedSupervisor(on_approve=on_approve)
    engine, _, sink = engine_for(root, clock, supervisor, fallback=[f"anthropic:{HAIKU}"])

    def story_replies(n: int) -> list[dict[str, Any]]:
        created = editor(command="create", path=f"s{n}.txt", file_text=f"story {n}\n")
        return [reply(created), reply(complete(f"story {n}"))]

    api.add(
        *rate_limited(SDK_ATTEMPTS, retry_after="120"),
        *story_replies(1),  # on haiku
        *story_replies(2),  # still on haiku: the primary's reset has not passed
        *story_replies(3),  # on the primary again
    )

    assert await engine.run() == ExitCode.DONE

    models = [r.body["model"] for r in api.requests]
    assert models == [PRIMARY] * SDK_ATTEMPTS + [HAIKU] * 4 + [PRIMARY] * 2
    started = [(e.story_id, e.agent, e.previous) for e in sink.of(AgentSwitched)]
    assert started == [
        ("US-001", "anthropic", ""),
        ("US-001", f"anthropic:{HAIKU}", "anthropic"),
        ("US-002", f"anthropic:{HAIKU}", ""),
        ("US-003", "anthropic", ""),
    ]
    assert "anthropic is rate-limited for 2m00s more" in sink.of(AgentSwitched)[2].reason
    assert len(sink.of(Committed)) == 3
    # without a rate limit nothing is handed over: story 3's prompt is the plain one
    assert "Handed over" not in first_user_text(api.requests[-2].body)


# ---- the pieces: configuration, the limit messages, the API's headers ---------------------------


def test_an_unknown_fallback_agent_is_one_line_naming_ralph_toml_and_the_entry(
    tmp_path: Path,
) -> None:
    root = repo(tmp_path, extra_config='fallback = ["claude-code", "codex"]')
    with pytest.raises(UsageError) as caught:
        load_config(root)
    message = str(caught.value)
    assert message.startswith(f"{root / 'ralph.toml'}: fallback: ")
    assert "unknown agent 'codex'" in message
    assert "anthropic:claude-haiku-4-5" in message  # what an entry looks like
    assert "\n" not in message


def test_a_fallback_model_needs_a_name_after_the_colon(tmp_path: Path) -> None:
    root = repo(tmp_path, extra_config='fallback = ["anthropic:"]')
    with pytest.raises(UsageError, match=r"ralph.toml: fallback: .*'anthropic:': no model"):
        load_config(root)


def test_the_fallback_list_is_built_in_order_without_repeats(
    tmp_path: Path, api: FakeAnthropic
) -> None:
    root = repo(tmp_path)
    cfg = load_config(
        root,
        {
            "agent": "anthropic",
            "model": PRIMARY,
            "fallback": [
                "anthropic",
                f"anthropic:{PRIMARY}",  # the primary itself, by its model
                f"anthropic:{HAIKU}",
                "scripted",
                f"anthropic:{HAIKU}",
            ],
            "script": str(write_script(root, {"default": []})),
        },
    )
    agent = create_agent(cfg, root)
    assert isinstance(agent, FallbackAgent)
    assert [(s.label, s.model) for s in agent.slots] == [
        ("anthropic", PRIMARY),
        (f"anthropic:{HAIKU}", HAIKU),
        ("scripted", PRIMARY),
    ]
    assert agent.name == f"anthropic (fallback: anthropic:{HAIKU}, scripted)"


NOW = datetime(2026, 12, 4, 5, 30, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("line", "reset_at", "retry_after_s"),
    [
        ("Claude AI usage limit reached|1796448600", 1796448600.0, None),
        ("You've hit your usage limit. Try again in 2 days 3 hours 5 minutes.", None, 183900.0),
        ("Error: rate limit exceeded, retry after 90s", None, 90.0),
        ("5-hour limit reached ∙ resets 7am", NOW + 1.5 * 3600, None),
        ("You've hit your limit · resets 5am (UTC)", NOW + 23.5 * 3600, None),
        ("You've hit your limit · resets 3:15pm (Europe/Paris)", NOW + 8.75 * 3600, None),
        ("429 Too Many Requests", None, None),
    ],
)
def test_a_cli_usage_limit_message_and_its_reset(
    line: str, reset_at: float | None, retry_after_s: float | None
) -> None:
    limited = usage_limit(["working on it", line, ""], NOW, UTC)
    assert limited is not None
    assert str(limited) == line
    assert limited.reset_at == reset_at
    assert limited.retry_after_s == retry_after_s


def test_ordinary_output_is_no_usage_limit() -> None:
    assert usage_limit(["error: not logged in", "tests failed: 3"], NOW) is None
    # the agent's own work talking about rate limits, long before it crashed, is not a limit
    work = ["adding a rate limit to the API", "wrote limiter.py", "running tests", "", "3 failed"]
    assert usage_limit([*work, "Traceback: KeyError"], NOW) is None


async def test_a_429_reset_header_says_when_the_agent_may_be_tried_again(
    tmp_path: Path, api: FakeAnthropic
) -> None:
    """Without ``retry-after``, the latest ``anthropic-ratelimit-*-reset`` time is the reset;
    a 529 (overloaded) past the retries is a rate limit too. Without fallback agents both stop
    the run as before: ``AgentRateLimited`` is an ``AgentError``."""
    root = repo(tmp_path)
    cfg = load_config(root, {"agent": "anthropic", "model": PRIMARY})
    agent = AnthropicAgent(cfg, max_retries=0)
    tools = FakeIterationHandle(root)
    request = IterationRequest(
        iteration=1,
        story=Story(id="US-001", title="Say hello", priority=1, passes=False),
        system_prompt="rules",
        user_prompt="# Task #US-001",
        workspace=root,
        config=cfg,
    )
    api.add(*rate_limited(1, reset="2026-12-04T06:00:00Z"), *rate_limited(1, status=529))
    with pytest.raises(AgentRateLimited) as first:
        await agent.run_iteration(request, tools)
    assert first.value.reset_at == datetime(2026, 12, 4, 6, 0, tzinfo=UTC).timestamp()
    assert first.value.retry_after_s is None
    with pytest.raises(AgentRateLimited, match="529 overloaded_error") as second:
        await agent.run_iteration(request, tools)
    assert isinstance(second.value, AgentError)
    await agent.aclose()


def test_headless_says_who_took_over_and_what_each_agent_cost(
    tmp_path: Path, api: FakeAnthropic
) -> None:
    """``ralph-tui run --headless`` as a subprocess with ``fallback`` in ralph.toml."""
    root = repo(tmp_path, gates=GATE, extra_config=f'fallback = ["anthropic:{HAIKU}"]')
    api.add(
        reply(editor(command="create", path="hello.py", file_text="def hello() -> str:\n")),
        *rate_limited(SDK_ATTEMPTS, retry_after="120"),
        reply(editor(command="str_replace", path="hello.py", old_str=":\n", new_str=HELLO[18:])),
        reply(complete()),
    )
    env = {
        **os.environ,
        "ANTHROPIC_API_KEY": "sk-ant-test-fallback-0000",
        "ANTHROPIC_BASE_URL": api.base_url,
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ralph_tui",
            "run",
            "--headless",
            "--approve",
            "auto",
            "--agent",
            "anthropic",
            "--workspace",
            str(root),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert f"agent anthropic (fallback: anthropic:{HAIKU})" in out  # the run's first line
    assert "  agent: anthropic\n" in out
    assert "warning: anthropic is rate-limited (Anthropic API: 429 rate_limit_error" in out
    assert f"  agent: anthropic:{HAIKU} takes over from anthropic\n" in out
    assert re.search(
        rf"by agent: anthropic \$\d+\.\d{{4}}, anthropic:{HAIKU} \$\d+\.\d{{4}}\)", out
    ), out
    assert git(root, "show", "HEAD:hello.py") == HELLO


async def test_parallel_workers_share_what_one_learned_about_a_limit(
    tmp_path: Path, api: FakeAnthropic
) -> None:
    """Two workers: the primary's limit, met by worker 1 on US-001, holds for worker 2's agent
    too (its own wrapper, made later), so neither worker asks the primary again before the
    reset. US-002 and US-003 wait on US-001, so they start after the limit is known."""
    stories = [
        story("US-001", "One"),
        story("US-002", "Two", 2, dependsOn=["US-001"]),
        story("US-003", "Three", 3, dependsOn=["US-001"]),
    ]
    root = repo(tmp_path, stories)
    clock = FakeClock()
    engine, _, sink = engine_for(
        root, clock, fallback=[f"anthropic:{HAIKU}"], workers=2, approve="auto"
    )

    def respond(body: dict[str, Any]) -> dict[str, Any]:
        if body["model"] == PRIMARY:
            return rate_limited(1, retry_after="120")[0]
        key = re.search(r"Task #(US-\d+)", first_user_text(body))
        assert key is not None
        if len(body["messages"]) == 1:
            name = f"{key.group(1).lower()}.txt"
            return reply(editor(command="create", path=name, file_text=f"{key.group(1)}\n"))
        return reply(complete(key.group(1)))

    api.respond_with(respond)

    assert await engine.run() == ExitCode.DONE

    primary = [r for r in api.requests if r.body["model"] == PRIMARY]
    assert len(primary) == SDK_ATTEMPTS  # one conversation's attempts, then never again
    started = {(e.story_id, e.agent, e.previous) for e in sink.of(AgentSwitched)}
    assert started == {
        ("US-001", "anthropic", ""),
        ("US-001", f"anthropic:{HAIKU}", "anthropic"),
        ("US-002", f"anthropic:{HAIKU}", ""),
        ("US-003", f"anthropic:{HAIKU}", ""),
    }
    assert {e.worker for e in sink.of(AgentSwitched) if e.story_id != "US-001"} == {1, 2}
    assert len(sink.of(Committed)) == 3
