"""The PM's suggestion in the real TUI ([pm], suggest mode): the escalation bar opens with the
PM's answer shown and in the box; enter sends it as is, typing replaces it with the human's own.
The PM is the built-in Anthropic agent code against the fake Messages API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import anthropic
import pytest

from ralph_tui.engine import Engine
from ralph_tui.pm import ProductManager
from ralph_tui.tui.app import RalphApp
from tests.support.engine import complete
from tests.support.fake_anthropic import FakeAnthropic, reply, tool_use
from tests.support.repo import make_repo
from tests.tui.support import build_app, wait_for

PM_ANSWER = "Use 8080, as the PRD says."
SCRIPT = {
    "default": [
        {"tool": "escalate", "input": {"question": "Which port?", "tried": "read the docs"}},
        complete(),
    ]
}


@pytest.fixture
def api() -> Iterator[FakeAnthropic]:
    with FakeAnthropic([reply(tool_use("answer", {"answer": PM_ANSWER}))]) as server:
        yield server


@pytest.mark.parametrize(
    ("keys", "told"),
    [
        (
            ["enter"],
            f"Answer from the human supervisor (the product manager's suggestion):\n{PM_ANSWER}",
        ),
        ([*"Use 9090", "enter"], "Answer from the human supervisor:\nUse 9090"),
    ],
    ids=["as-is", "own"],
)
async def test_the_bar_offers_the_pm_answer(
    tmp_path: Path, api: FakeAnthropic, keys: list[str], told: str
) -> None:
    root = make_repo(tmp_path / "ws")
    overrides = {"approve": "auto", "pm": {}, "sandbox": {"mode": "off"}}
    app, agent = build_app(root, SCRIPT, overrides=overrides)
    engine = getattr(app.engine, "engine", app.engine)  # ServedRun wraps the engine
    assert isinstance(engine, Engine) and engine.config.pm is not None
    client = anthropic.AsyncAnthropic(api_key="sk-ant-test-0000", base_url=api.base_url)
    engine.pm = ProductManager(engine.config.pm, engine.config, client=client)
    async with app.run_test(size=(120, 40)) as pilot:
        bar = app.escalation_bar
        await wait_for(pilot, lambda: bar.is_open, what="the escalation bar")
        assert bar.answer_box.value == PM_ANSWER
        await wait_for(pilot, lambda: app.focused is bar.answer_box, what="the box's focus")
        await pilot.press(*keys)
        await wait_for(pilot, lambda: app.exit_code is not None, what="run end")
        transcript = " ".join(app.transcript.plain_lines())
        assert f"PM » {PM_ANSWER}" in transcript
    assert [str(outcome.content) for tool, outcome in agent.received if tool == "escalate"] == [
        told
    ]


def commit_asked(app: RalphApp) -> bool:
    shown = app.supervisor.approval
    return shown is not None and shown.title == "First story" and app.approval_bar.is_open


@pytest.mark.parametrize(("key", "priority"), [("a", 9), ("d", 1)], ids=["accept", "reject"])
async def test_a_pm_proposal_is_an_approval_the_human_decides(
    tmp_path: Path, key: str, priority: int
) -> None:
    root = make_repo(tmp_path / "ws")
    propose = tool_use(
        "propose_prd_change",
        {"kind": "priority", "story_id": "US-001", "priority": 9, "reason": "less urgent"},
    )
    answer = tool_use("answer", {"answer": PM_ANSWER})
    overrides = {"approve": "auto", "pm": {}, "sandbox": {"mode": "off"}}
    app, _ = build_app(root, SCRIPT, overrides=overrides)
    engine = getattr(app.engine, "engine", app.engine)  # ServedRun wraps the engine
    assert isinstance(engine, Engine) and engine.config.pm is not None
    with FakeAnthropic([reply(propose, answer)]) as api:
        client = anthropic.AsyncAnthropic(api_key="sk-ant-test-0000", base_url=api.base_url)
        engine.pm = ProductManager(engine.config.pm, engine.config, client=client)
        async with app.run_test(size=(120, 40)) as pilot:
            bar = app.escalation_bar
            await wait_for(pilot, lambda: bar.is_open, what="the escalation bar")
            await wait_for(pilot, lambda: app.focused is bar.answer_box, what="the box's focus")
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.approval_bar.is_open, what="the proposal")
            shown = app.supervisor.approval
            assert shown is not None and shown.title == "PRD change proposed by the PM (priority)"
            assert "set the priority of Task #US-001 to 9" in shown.summary
            await pilot.press(key)
            if key == "a":  # the story's commit now holds a PRD change: a flag, asked again
                await wait_for(pilot, lambda: commit_asked(app), what="the commit's approval")
                await pilot.press("a")
            await wait_for(pilot, lambda: app.exit_code is not None, what="run end")
    stories = json.loads((root / "tasks/backend_prd.json").read_text())["userStories"]
    assert stories[0]["priority"] == priority
