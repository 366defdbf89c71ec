"""Adding an agent backend, an executor or a notification channel is its module and one
registration: everything else (the configuration's choices, --agent, doctor, the engines,
the notifier) follows from the registries."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from ralph_tui import notify
from ralph_tui.agents import create_agent
from ralph_tui.agents.registry import AGENTS, AgentSpec
from ralph_tui.config import load_config
from ralph_tui.doctor import diagnose
from ralph_tui.errors import UsageError
from ralph_tui.executors import EXECUTORS, ExecutorSpec
from ralph_tui.headless import run_headless
from tests.support.engine import complete, create, write_script
from tests.support.plugins import echo_backend, inline_executor
from tests.support.repo import git, make_repo, story


@pytest.fixture
def echo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        AGENTS, "echo", AgentSpec("echo", "tests.support.plugins.echo_backend", shared=True)
    )


def test_an_unregistered_agent_is_one_line_naming_the_file_and_the_choices(
    tmp_path: Path,
) -> None:
    root = make_repo(tmp_path / "ws")
    toml = root / "ralph.toml"
    toml.write_text(toml.read_text().replace('agent = "scripted"', 'agent = "echo"'))
    with pytest.raises(UsageError) as refused:
        load_config(root)
    message = str(refused.value)
    assert message.startswith(f"{root / 'ralph.toml'}: agent: should be one of 'anthropic',")
    assert "\n" not in message


@pytest.mark.usefixtures("echo")
@pytest.mark.parametrize("workers", [1, 2])
async def test_a_registered_backend_is_configured_checked_and_runs(
    tmp_path: Path, workers: int
) -> None:
    root = make_repo(tmp_path / "ws", [story("US-001", "One"), story("US-002", "Two")])
    config = load_config(root, {"agent": "echo", "workers": workers, "approve": "auto"})
    assert config.agent == "echo"
    assert create_agent(config, root).source == "echo backend"
    checks = {c.name: c for c in diagnose(root, {"agent": "echo"})}
    assert checks["echo"].status == "ok" and checks["echo"].detail == "always ready"
    echo_backend.CREATED.clear()
    code = await run_headless(root, config, out=io.StringIO())
    assert code == 0
    assert (root / "echo-US-001.txt").is_file() and (root / "echo-US-002.txt").is_file()
    # shared = True: one agent serves every worker (the run creates it once)
    assert len(echo_backend.CREATED) == 1
    assert git(root, "log", "--format=%s").count("Task #") == 2


async def test_a_registered_executor_is_built_by_the_parallel_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(
        EXECUTORS,
        "inline",
        ExecutorSpec("inline", "tests.support.plugins.inline_executor", "inline"),
    )
    root = make_repo(tmp_path / "ws", [story("US-001", "One")], extra_config='executor = "inline"')
    script = write_script(root, {"default": [create("x.txt", "x\n"), complete()]})
    config = load_config(root, {"script": str(script), "approve": "auto"})
    inline_executor.BUILT.clear()
    assert await run_headless(root, config, out=io.StringIO()) == 0
    assert [site.root for site in inline_executor.BUILT] == [root.resolve()]
    assert (root / "x.txt").read_text() == "x\n"


async def test_a_registered_notification_channel_gets_the_run_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    received: list[notify.Notification] = []

    async def deliver(notifier: notify.Notifier, note: notify.Notification) -> None:
        received.append(note)

    channel = notify.Channel("memo", lambda notifier: True, deliver)
    monkeypatch.setattr(notify, "CHANNELS", (*notify.CHANNELS, channel))
    root = make_repo(tmp_path / "ws", [story("US-001", "One")])
    script = write_script(root, {"default": [create("x.txt", "x\n"), complete()]})
    config = load_config(root, {"script": str(script), "approve": "auto"})
    from ralph_tui.runs import make_run_factory

    factory = make_run_factory(root, config)
    await run_headless(root, config, out=io.StringIO(), run_factory=factory)
    assert [note.event for note in received][-1] in ("run_finished", "run_failed")
