"""``agent = "command"`` with a real subprocess (tests/support/fake_cli.py) as the CLI."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ralph_tui.agents.command import DONE_MARKER, CommandAgent
from ralph_tui.config import RalphConfig
from ralph_tui.errors import AgentError, UsageError
from ralph_tui.events import Event, Notice, TextDelta, ToolCall, ToolResult
from ralph_tui.iteration import IterationRequest, ToolOutcome
from ralph_tui.prd.model import Story
from tests.support.fake_tools import FakeIterationHandle
from tests.support.repo import git, make_repo, story

FAKE_CLI = str(Path(__file__).parent / "support" / "fake_cli.py")
# The fake CLI logs its prompts outside the workspace, which a sandbox would not let it write;
# the sandboxed CLI is tested in tests/security/.
UNSANDBOXED = 'sandbox = { mode = "off" }'


def config(mode: str, logdir: Path, *, stdin: bool = False, timeout_s: float = 30.0) -> RalphConfig:
    argv = [sys.executable, FAKE_CLI, mode, str(logdir)]
    if not stdin:
        argv += ["--prompt", "{prompt_file}"]
    return RalphConfig(agent="command", command=argv, agent_timeout_s=timeout_s)


def request(root: Path, cfg: RalphConfig) -> IterationRequest:
    story = Story(id="US-001", title="Say hello", priority=1, passes=False)
    return IterationRequest(
        iteration=1,
        story=story,
        system_prompt="You are a careful engineer.",
        user_prompt="# Task #US-001: Say hello",
        workspace=root,
        config=cfg,
    )


def texts(events: list[Event]) -> list[str]:
    return [e.text for e in events if isinstance(e, TextDelta)]


async def test_output_streams_line_by_line_while_the_process_runs(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    logdir = tmp_path / "log"
    seen_while_running: list[str] = []

    class Tools(FakeIterationHandle):
        def emit(self, event: Event) -> None:
            super().emit(event)
            # The CLI blocks until this file exists: the test only passes if the first line
            # reached us before the process could finish.
            if isinstance(event, TextDelta) and not (logdir / "go").exists():
                seen_while_running.append(event.text)
                (logdir / "go").touch()

    tools = Tools(root)
    cfg = config("stream", logdir)
    outcome = await CommandAgent(cfg).run_iteration(request(root, cfg), tools)

    assert outcome.reason == "finished"
    assert seen_while_running == ["reading the story\n"]
    assert texts(tools.events) == ["reading the story\n", "writing hello.py\n", "all done\n"]
    assert (root / "hello.py").read_text() == "GREETING = 'hello'\n"
    # the exit is the claim of done, reported like any backend's complete_task
    assert tools.completions == [("reading the story\nwriting hello.py\nall done", [])]
    calls = [e for e in tools.events if isinstance(e, ToolCall)]
    assert [c.name for c in calls] == ["complete_task"]
    assert any(isinstance(e, ToolResult) and e.name == "complete_task" for e in tools.events)
    # the prompt went through the placeholder file, which is gone now
    prompt = (logdir / "prompt-1.md").read_text()
    assert prompt.startswith("You are a careful engineer.\n\n# Task #US-001: Say hello")
    assert DONE_MARKER in prompt  # the CLI is told how to signal
    assert not list(root.rglob("prompt.md"))


async def test_done_marker_claims_done_without_waiting_for_exit(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    cfg = config("marker", tmp_path / "log", timeout_s=60)
    agent = CommandAgent(cfg)
    agent.done_grace_s = 0.2
    tools = FakeIterationHandle(root)
    started = time.monotonic()
    outcome = await agent.run_iteration(request(root, cfg), tools)
    assert outcome.reason == "finished"
    # the CLI sleeps 60 s after the marker; the agent killed it after the grace instead
    assert time.monotonic() - started < 15
    assert tools.completions == [("wrote hello.py", [])]
    assert DONE_MARKER + "\n" in texts(tools.events)


async def test_prompt_on_stdin_when_there_is_no_placeholder(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    logdir = tmp_path / "log"
    cfg = config("work", logdir, stdin=True)
    tools = FakeIterationHandle(root)
    await CommandAgent(cfg).run_iteration(request(root, cfg), tools)
    assert "# Task #US-001: Say hello" in (logdir / "prompt-1.md").read_text()


async def test_failed_claim_reruns_with_the_feedback_in_the_prompt(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    logdir = tmp_path / "log"
    cfg = config("work", logdir)
    tools = FakeIterationHandle(
        root, complete_results=[ToolOutcome("Gate tests failed: FIXME left", is_error=True)]
    )
    outcome = await CommandAgent(cfg).run_iteration(request(root, cfg), tools)
    assert outcome.reason == "finished"
    assert [s for s, _ in tools.completions] == ["implemented hello()", "fixed the gate failure"]
    assert "FIXME left" not in (logdir / "prompt-1.md").read_text()
    assert "Gate tests failed: FIXME left" in (logdir / "prompt-2.md").read_text()
    assert "FIXME" not in (root / "hello.py").read_text()
    assert tools.checkpoints == 2


async def test_escalation_answer_reaches_the_running_process(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    cfg = config("escalate", tmp_path / "log")
    tools = FakeIterationHandle(root, answer="Use SQLite.")
    outcome = await CommandAgent(cfg).run_iteration(request(root, cfg), tools)
    assert outcome.reason == "finished"
    assert len(tools.escalations) == 1
    question, tried = tools.escalations[0]
    assert question == "Which database should I use?"
    assert "I need a decision." in tried
    assert (root / "answer.txt").read_text() == "Use SQLite.\n"
    assert "got answer: Use SQLite.\n" in texts(tools.events)
    assert [e.name for e in tools.events if isinstance(e, ToolCall)] == [
        "escalate",
        "complete_task",
    ]


async def test_escalation_answer_goes_into_the_next_prompt_when_stdin_is_closed(
    tmp_path: Path,
) -> None:
    root = make_repo(tmp_path / "ws")
    logdir = tmp_path / "log"
    cfg = config("ask-once", logdir, stdin=True)
    tools = FakeIterationHandle(
        root,
        answer="Spaces, four of them.",
        complete_results=[ToolOutcome("Gate ok failed: nothing changed", is_error=True)],
    )
    await CommandAgent(cfg).run_iteration(request(root, cfg), tools)
    assert tools.escalations[0][0] == "Tabs or spaces?"
    assert "The human answered: Spaces, four of them." in (logdir / "prompt-2.md").read_text()
    assert (root / "answer.txt").read_text() == "Spaces, four of them.\n"


def _exits_within(pid: int, timeout_s: float) -> bool:
    """Waits on a pidfd, which turns readable when the process dies (zombie or reaped)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([fd], [], [], timeout_s)
        return bool(readable)
    finally:
        os.close(fd)


async def test_a_hung_command_is_killed_with_its_process_group(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    logdir = tmp_path / "log"
    cfg = config("hang", logdir, timeout_s=1.5)
    tools = FakeIterationHandle(root)
    started = time.monotonic()
    outcome = await CommandAgent(cfg).run_iteration(request(root, cfg), tools)
    assert outcome.reason == "timeout"
    assert "agent_timeout_s = 1.5s" in outcome.message
    assert 1.4 < time.monotonic() - started < 10
    assert tools.completions == []
    assert "thinking very hard\n" in texts(tools.events)
    assert any(isinstance(e, Notice) and e.level == "error" for e in tools.events)
    child = int((logdir / "child.pid").read_text())
    assert _exits_within(child, 5.0), f"child {child} of the hung command survived"


async def test_a_failing_command_is_a_crash_not_a_claim(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    cfg = config("fail", tmp_path / "log")
    tools = FakeIterationHandle(root)
    outcome = await CommandAgent(cfg).run_iteration(request(root, cfg), tools)
    assert outcome.reason == "crashed"
    assert outcome.message.endswith("exited with status 2: error: not logged in")
    assert tools.completions == []


async def test_missing_executable_is_a_one_line_agent_error(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    cfg = RalphConfig(agent="command", command=["no-such-coding-cli-xyz", "{prompt_file}"])
    with pytest.raises(AgentError) as caught:
        await CommandAgent(cfg).run_iteration(request(root, cfg), FakeIterationHandle(root))
    message = str(caught.value)
    assert "'no-such-coding-cli-xyz' not found" in message
    assert "\n" not in message


def test_agent_command_is_required() -> None:
    with pytest.raises(UsageError, match="command ="):
        CommandAgent(RalphConfig(agent="command"))


async def test_secrets_do_not_reach_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_repo(tmp_path / "ws")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-secret-value")
    monkeypatch.setenv("RALPH_VISIBLE", "yes")
    script = "import os; e = os.environ; print(e.get('ANTHROPIC_API_KEY'), e.get('RALPH_VISIBLE'))"
    cfg = RalphConfig(agent="command", command=[sys.executable, "-c", script])
    tools = FakeIterationHandle(root)
    await CommandAgent(cfg).run_iteration(request(root, cfg), tools)
    assert texts(tools.events) == ["None yes\n"]


async def test_command_env_passes_only_the_named_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_repo(tmp_path / "ws")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-secret-value")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-for-the-cli")
    script = "import os; e = os.environ; print(e.get('ANTHROPIC_API_KEY'), e.get('OPENAI_API_KEY'))"
    cfg = RalphConfig(
        agent="command", command=[sys.executable, "-c", script], command_env=["OPENAI_API_KEY"]
    )
    tools = FakeIterationHandle(root)
    await CommandAgent(cfg).run_iteration(request(root, cfg), tools)
    assert texts(tools.events) == ["None sk-openai-for-the-cli\n"]


# ---- end to end: `ralph-tui run --headless --approve auto --agent command` -------------------


def _ralph(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ralph_tui", *args, "--workspace", str(root)],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def test_headless_run_with_real_gates_fixes_and_commits(tmp_path: Path) -> None:
    logdir = tmp_path / "log"
    gate = f'{sys.executable} -c \'import hello; assert not hasattr(hello, "FIXME"), "FIXME left"\''
    command = [sys.executable, FAKE_CLI, "work", str(logdir), "--prompt", "{prompt_file}"]
    root = make_repo(
        tmp_path / "ws",
        [story("US-001", "Say hello")],
        gates={"tests": gate},
        extra_config=f"command = {json.dumps(command)}\n{UNSANDBOXED}",
    )
    done = _ralph(root, "run", "--headless", "--approve", "auto", "--agent", "command")
    assert done.returncode == 0, done.stdout + done.stderr
    assert git(root, "log", "-1", "--format=%s").strip() == "[backend] Task #US-001: Say hello"
    assert "FIXME" not in git(root, "show", "HEAD:hello.py")
    # run 1 claimed done with a FIXME left, the gate failed, run 2 got the failure and fixed it
    assert "FIXME left" not in (logdir / "prompt-1.md").read_text()
    assert "FIXME left" in (logdir / "prompt-2.md").read_text()
    assert not (logdir / "prompt-3.md").exists()
    transcript = next((root / ".ralph" / "runs").glob("*/transcript.md")).read_text()
    assert "implemented hello()" in transcript
    assert "fixed the gate failure" in transcript
    assert git(root, "status", "--porcelain") == ""


def test_headless_auto_stops_at_an_escalation(tmp_path: Path) -> None:
    logdir = tmp_path / "log"
    command = [sys.executable, FAKE_CLI, "escalate", str(logdir), "--prompt", "{prompt_file}"]
    root = make_repo(
        tmp_path / "ws", extra_config=f"command = {json.dumps(command)}\n{UNSANDBOXED}"
    )
    done = _ralph(root, "run", "--headless", "--approve", "auto", "--agent", "command")
    assert done.returncode == 4, done.stdout + done.stderr
    assert "Which database should I use?" in done.stdout
    progress = (root / "tasks" / "backend_progress.txt").read_text()
    assert "Question:\nWhich database should I use?" in progress
    assert "I need a decision." in progress  # what it tried: its output so far
    assert not (root / "answer.txt").exists()
