"""Deterministic app states for snapshot tests and ``scripts/screenshots.py``.

Each scene builds the real app (autostart off, frozen clock) on a real repository, then replays
a fixed list of events into it, as the journal would, and opens the approval or escalation bar
through the real ``TuiSupervisor``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input

from ralph_tui.events import (
    Event,
    GateFinished,
    GateStarted,
    IterationStarted,
    Notice,
    RunStarted,
    RunStateChanged,
    TextDelta,
    ToolCall,
    ToolResult,
    UsageReported,
)
from ralph_tui.supervisor import ApprovalRequest, EscalationRequest
from ralph_tui.tui.app import RalphApp
from tests.support.repo import make_repo, story
from tests.tui.support import build_app

TS = 1_700_000_000.0
STORIES = [
    story("US-001", "Slugs for item names", 1, passes=True),
    story("US-002", "Parse prices typed by humans", 2),
    story("US-003", "Value of the stock", 3),
    story("US-004", "Show amounts to humans", 4),
]
PRICE = '''"""Parse prices typed by humans into cents."""

from __future__ import annotations


def parse_price(text: str) -> int:
    """'12.50', '$3', '0.5' -> cents."""
    cleaned = text.strip().lstrip("$")
    whole, _, frac = cleaned.partition(".")
    return int(whole or 0) * 100 + int((frac + "00")[:2])
'''
TEST_OUTPUT = """...F...                                                                  [100%]
=================================== FAILURES ===================================
_____________________________ test_parse_price[0.5-50] _____________________________
    def test_parse_price(text: str, cents: int) -> None:
>       assert parse_price(text) == cents
E       AssertionError: assert 5 == 50
1 failed, 6 passed in 0.05s
"""


def ev(event: Event) -> Event:
    object.__setattr__(event, "ts", TS)
    return event


def iteration_events() -> list[Event]:
    return [
        ev(
            RunStarted(
                run_id="demo-run",
                role="backend",
                workspace="ws",
                agent="scripted",
                model="claude-sonnet-4-5",
                max_iterations=8,
            )
        ),
        ev(RunStateChanged(state="running")),
        ev(IterationStarted(iteration=2, story_id="US-002", title="Parse prices typed by humans")),
        ev(TextDelta(text="Prices arrive as text like '$3' or '12.50'. I'll split on the dot\n")),
        ev(
            ToolCall(
                call_id="c1",
                name="str_replace_based_edit_tool",
                input={"command": "create", "path": "inventory/price.py", "file_text": PRICE},
            )
        ),
        ev(
            ToolResult(
                call_id="c1",
                name="str_replace_based_edit_tool",
                content="Created inventory/price.py (10 lines)",
            )
        ),
        ev(ToolCall(call_id="c2", name="bash", input={"command": "python -m pytest -q"})),
        ev(ToolResult(call_id="c2", name="bash", content="7 passed in 0.04s\n[exit code 0]")),
        ev(UsageReported(story_id="US-002", input_tokens=5200, output_tokens=830, cost_usd=0.0281)),
        ev(UsageReported(story_id="US-001", input_tokens=4100, output_tokens=610, cost_usd=0.0214)),
        ev(TextDelta(text="Padded the fraction; now asking ralph-tui to run the ga")),
    ]


def gate(
    name: str, state: str, summary: str, output: str = "", duration: float = 0.7
) -> GateFinished:
    return GateFinished(
        name=name,
        command=f"{name} command",
        state=state,  # type: ignore[arg-type]
        exit_code=0 if state == "passed" else 1,
        duration_s=duration,
        summary=summary,
        output=output,
        ts=TS,
    )


PASSED = (gate("tests", "passed", "7 passed"), gate("lint", "passed", "all checks passed", "", 0.1))
FAILED = (
    gate("tests", "failed", "6 passed, 1 failed", TEST_OUTPUT),
    gate("lint", "passed", "all checks passed", "", 0.1),
)


def scene_repo(root: Path) -> Path:
    repo = make_repo(root, STORIES)
    (repo / "inventory").mkdir()
    (repo / "inventory" / "price.py").write_text(PRICE, encoding="utf-8")
    return repo


def scene_app(root: Path) -> RalphApp:
    repo = scene_repo(root)
    app, _ = build_app(repo, {"default": []}, frozen=True, autostart=False, allow_dirty=True)
    return app


async def _settle(pilot: Pilot[Any], app: RalphApp) -> None:
    for widget in app.query(Input):
        widget.cursor_blink = False
    for _ in range(100):
        if app.diff.selected_path is not None:
            break
        await pilot.pause(0.02)
    await pilot.pause(0.1)
    await pilot.pause()


def replay(app: RalphApp, events: list[Event]) -> None:
    for event in events:
        app.batcher(event)
    app.flush_events()


async def running(pilot: Pilot[Any]) -> None:
    app = pilot.app
    assert isinstance(app, RalphApp)
    replay(
        app,
        [
            *iteration_events(),
            ev(GateStarted(name="tests", command="pytest -q")),
            ev(GateStarted(name="lint", command="ruff check .")),
        ],
    )
    await _settle(pilot, app)


async def approval(pilot: Pilot[Any]) -> None:
    app = pilot.app
    assert isinstance(app, RalphApp)
    replay(
        app,
        [
            *iteration_events(),
            ev(TextDelta(text="tes.\n")),
            *PASSED,
            ev(RunStateChanged(state="waiting")),
        ],
    )
    request = ApprovalRequest(
        story_id="US-002",
        title="Parse prices typed by humans",
        commit_message="[backend] Task #US-002: Parse prices typed by humans\n\nImplemented by "
        "autonomous agent.\nAll quality checks passing.\n",
        diffstat=" inventory/price.py | 10 ++++++++++\n 1 file changed, 10 insertions(+)\n",
        summary="Added parse_price; fractions are padded to cents.",
        gates=PASSED,
    )
    app.approval_task = asyncio.create_task(app.supervisor.approve(request))  # type: ignore[attr-defined]
    await _settle(pilot, app)


async def escalation(pilot: Pilot[Any]) -> None:
    app = pilot.app
    assert isinstance(app, RalphApp)
    replay(app, [*iteration_events()[:6], ev(RunStateChanged(state="waiting"))])
    request = EscalationRequest(
        story_id="US-002",
        title="Parse prices typed by humans",
        question="Should '12,50' (a comma decimal) be accepted as 1250 cents?",
        tried="Read the PRD and the tests: only dots are mentioned.",
    )
    app.escalation_task = asyncio.create_task(app.supervisor.answer(request))  # type: ignore[attr-defined]
    await _settle(pilot, app)


async def pm_suggestion(pilot: Pilot[Any]) -> None:
    """[pm] suggest mode: the PM's proposed answer above the box, and in it (enter sends it)."""
    app = pilot.app
    assert isinstance(app, RalphApp)
    replay(app, [*iteration_events()[:6], ev(RunStateChanged(state="waiting"))])
    request = EscalationRequest(
        story_id="US-002",
        title="Parse prices typed by humans",
        question="Should '12,50' (a comma decimal) be accepted as 1250 cents?",
        tried="Read the PRD and the tests: only dots are mentioned.",
        suggestion="Yes: the PRD's context says prices are typed by European staff.",
    )
    app.escalation_task = asyncio.create_task(app.supervisor.answer(request))  # type: ignore[attr-defined]
    await _settle(pilot, app)


async def gate_failure(pilot: Pilot[Any]) -> None:
    app = pilot.app
    assert isinstance(app, RalphApp)
    replay(
        app,
        [
            *iteration_events(),
            ev(TextDelta(text="tes.\n")),
            *FAILED,
            ev(
                Notice(level="warning", message="gates failed; fix attempt 1 of 3 for Task #US-002")
            ),
        ],
    )
    await _settle(pilot, app)
    app.gates.focus()


async def flagged_approval(pilot: Pilot[Any]) -> None:
    """A change that weakens the tests: the flags stand above the commit line."""
    app = pilot.app
    assert isinstance(app, RalphApp)
    replay(app, [*iteration_events(), *PASSED, ev(RunStateChanged(state="waiting"))])
    flags = (
        "[checks] conftest.py: added: configures what checks the code",
        "[marker] tests/test_price.py: line 12: @pytest.mark.skip",
    )
    request = ApprovalRequest(
        story_id="US-002",
        title="Parse prices typed by humans",
        commit_message="[backend] Task #US-002: Parse prices typed by humans\n\nImplemented by "
        "autonomous agent.\nQuality gates passed; a human approved these review flags:\n",
        diffstat=" conftest.py | 6 ++++++\n 1 file changed, 6 insertions(+)\n",
        summary="Done; all checks pass.",
        gates=PASSED,
        flags=flags,
    )
    app.approval_task = asyncio.create_task(app.supervisor.approve(request))  # type: ignore[attr-defined]
    await _settle(pilot, app)


async def reject(pilot: Pilot[Any]) -> None:
    """The approval with the feedback box open (``r``): the diff keeps lines on screen."""
    await approval(pilot)
    await pilot.press("r")
    await pilot.press(*"Pad cents")
    await _settle(pilot, pilot.app)


async def commented_diff(pilot: Pilot[Any]) -> None:
    """The approval with a line comment in the diff: the cursor on the line, the comment in a
    row under it, the file marked in the list, the bar counting the review."""
    await approval(pilot)
    app = pilot.app
    assert isinstance(app, RalphApp)
    app.diff.pane.focus()
    await pilot.press("right_curly_bracket", *["down"] * 10, "c")
    await pilot.press(*"'0.5' gives 5 cents here; pad the fraction on the right", "enter")
    await _settle(pilot, app)


SCENES: dict[str, Callable[[Pilot[Any]], Awaitable[None]]] = {
    "commented_diff": commented_diff,
    "running": running,
    "approval": approval,
    "reject": reject,
    "flagged_approval": flagged_approval,
    "escalation": escalation,
    "pm_suggestion": pm_suggestion,
    "gate_failure": gate_failure,
}
