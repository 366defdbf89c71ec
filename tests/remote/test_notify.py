"""Notifications through the real engine: a webhook receiver on 127.0.0.1, a notify command."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from ralph_tui.agents.scripted import ScriptedAgent
from ralph_tui.config import load_config
from ralph_tui.errors import UsageError
from ralph_tui.events import Notice
from ralph_tui.runs import make_run_factory
from ralph_tui.supervisor import EscalationAnswer
from tests.remote.support import SCRIPT, WaitingSink
from tests.support.engine import ScriptedSupervisor, write_script
from tests.support.repo import make_repo, story

SECRET = "sk-test-notify-0123456789abcdef"
ESCALATE = {
    "default": [
        {"tool": "escalate", "input": {"question": f"Which key, {SECRET}?", "tried": "both"}}
    ]
}


async def run_once(
    root: Path, script: dict[str, Any], notify: dict[str, Any], **overrides: Any
) -> tuple[int, WaitingSink]:
    path = write_script(root, script)
    config = load_config(root, {"script": str(path), "notify": notify, **overrides})
    factory = make_run_factory(root, config, agent=ScriptedAgent.from_file(path, config))
    sink = WaitingSink()
    supervisor = ScriptedSupervisor(answers=[EscalationAnswer("skip")])
    code = await factory(supervisor, sink).run()
    return code, sink


@pytest.fixture
async def receiver() -> Any:
    """A webhook receiver on 127.0.0.1 that records every JSON body, in arrival order."""
    bodies: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        bodies.append(await request.json())
        return web.json_response({"ok": True})

    app = web.Application()
    app.add_routes([web.post("/hook", hook)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/hook", bodies
    await runner.cleanup()


async def test_webhook_gets_the_events_in_order_with_story_and_no_secret(
    tmp_path: Path, receiver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_TEST_API_KEY", SECRET)
    url, bodies = receiver
    root = make_repo(
        tmp_path / "ws", [story("US-001", "First story"), story("US-002", "Second", 2)]
    )
    script = {"stories": {"US-001": SCRIPT["default"]}, **ESCALATE}
    code, _ = await run_once(root, script, {"webhook": url, "desktop": False}, max_iterations=3)
    assert code == 3  # US-002 was skipped: stories left open
    events = [(b["event"], b["story_id"]) for b in bodies]
    assert events == [
        ("approval_needed", "US-001"),
        ("escalated", "US-002"),
        ("run_failed", ""),
    ]
    assert set(bodies[0]) == {"event", "story_id", "title", "run_id", "message", "url"}
    assert bodies[0]["title"] == "First story" and bodies[0]["run_id"]
    assert bodies[1]["title"] == "Second"
    text = json.dumps(bodies)
    assert SECRET not in text and "[REDACTED]" in bodies[1]["message"]


async def test_notify_command_receives_the_message(tmp_path: Path) -> None:
    out = tmp_path / "received.txt"
    command = [
        sys.executable,
        "-c",
        "import os, sys; open(sys.argv[1], 'a').write("
        "os.environ['RALPH_EVENT'] + '|' + os.environ['RALPH_STORY'] + '|' "
        "+ os.environ['RALPH_URL'] + '|' + sys.stdin.read())",
        str(out),
    ]
    root = make_repo(tmp_path / "ws")
    code, _ = await run_once(root, SCRIPT, {"command": command, "desktop": False})
    assert code == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "approval_needed|US-001||Approval needed: US-001 First story"
    assert lines[1].startswith("run_finished|||ralph-tui run finished (exit 0)")


async def test_notify_command_gets_the_secrets_it_names_and_no_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Slack hook needs its token, withheld from ralph-tui's environment at start-up like every
    secret: ``command_env`` names it; the model key and other secrets stay out."""
    from ralph_tui.safety import credentials

    monkeypatch.setenv("SLACK_TOKEN", "xoxb-slack-token-for-the-hook")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-never-for-notify")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp-not-named-either")
    credentials.withhold()
    try:
        out = tmp_path / "env.txt"
        command = [
            sys.executable,
            "-c",
            "import os, sys; e = os.environ; open(sys.argv[1], 'a').write(' '.join("
            "str(e.get(n)) for n in ('SLACK_TOKEN', 'ANTHROPIC_API_KEY', 'GITHUB_TOKEN')) + '\\n')",
            str(out),
        ]
        root = make_repo(tmp_path / "ws")
        options = {"command": command, "command_env": ["SLACK_TOKEN"], "desktop": False}
        code, _ = await run_once(root, SCRIPT, options)
        assert code == 0
        lines = out.read_text().splitlines()
        assert lines and set(lines) == {"xoxb-slack-token-for-the-hook None None"}
    finally:
        credentials.reset()


def test_notify_command_env_refuses_the_model_key(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    with pytest.raises(UsageError, match="ANTHROPIC_API_KEY is ralph-tui's own credential"):
        load_config(root, {"notify": {"command_env": ["ANTHROPIC_API_KEY"]}})


async def test_a_failing_webhook_is_reported_once_and_never_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ralph_tui.notify.RETRY_DELAY_S", 0.0)
    root = make_repo(tmp_path / "ws")
    dead = "http://127.0.0.1:9/hook"  # the discard port: connection refused
    code, sink = await run_once(root, SCRIPT, {"webhook": dead, "desktop": False})
    assert code == 0
    notices = [e for e in sink.of(Notice) if "webhook" in e.message]
    assert len(notices) == 1 and notices[0].level == "warning"
    assert "3 attempts" in notices[0].message


def test_bad_notify_config_is_one_line_naming_the_file(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws", extra_config='[notify]\nwebhook = "ftp://x"')
    with pytest.raises(UsageError, match=r"ralph.toml: notify.webhook: String should match"):
        load_config(root)


def test_terminal_channel_writes_bell_and_osc(tmp_path: Path) -> None:
    from ralph_tui.config import NotifyOptions
    from ralph_tui.events import ApprovalNeeded
    from ralph_tui.notify import Notifier
    from ralph_tui.safety.workspace import Redactor

    written: list[str] = []
    notifier = Notifier(
        NotifyOptions(desktop=False), redact=Redactor(env={}), terminal=written.append
    )
    notifier(
        ApprovalNeeded(story_id="US-1", title="T\x1b]x", commit_message="", diffstat="", summary="")
    )
    assert written == [
        "\a\x1b]777;notify;ralph-tui;Approval needed: US-1 T ]x\x1b\\"
        "\x1b]9;Approval needed: US-1 T ]x\x1b\\"
    ]
