"""A pull-request review from an attached client: line comments and dropped parts travel in
the ``decide`` frame, validated like every other field, and the engine acts on them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from ralph_tui.agents.scripted import ScriptedAgent
from ralph_tui.events import ReviewRecorded, RunFinished
from ralph_tui.server.protocol import FrameError, decision_to_dict, parse_frame
from ralph_tui.supervisor import ApprovalDecision, DroppedPart, ReviewComment
from tests.remote.support import HandSupervisor, served_run
from tests.support.engine import complete, create
from tests.support.repo import git, make_repo


def test_a_decision_round_trips_through_the_frame() -> None:
    decision = ApprovalDecision.approve(
        [DroppedPart("a.py", 2), DroppedPart("b.py")], [ReviewComment("a.py", 3, "why?", "old")]
    )
    frame = parse_frame(
        json.dumps({"t": "decide", "id": 1, "decision": decision_to_dict(decision)})
    )
    assert frame.t == "decide"
    assert frame.decision.to_decision() == decision


def test_a_discard_carries_no_review_and_a_reject_no_drops() -> None:
    body = {
        "kind": "reject",
        "feedback": "no",
        "comments": [{"path": "a.py", "line": 1, "text": "this"}],
        "drops": [{"path": "a.py", "hunk": 0}],
    }
    frame = parse_frame(json.dumps({"t": "decide", "id": 1, "decision": body}))
    assert frame.t == "decide"
    rejected = frame.decision.to_decision()
    assert rejected.drops == () and rejected.comments == (ReviewComment("a.py", 1, "this"),)
    body["kind"] = "discard"
    frame = parse_frame(json.dumps({"t": "decide", "id": 1, "decision": body}))
    assert frame.t == "decide"
    assert frame.decision.to_decision() == ApprovalDecision.discard()


@pytest.mark.parametrize(
    ("decision", "said"),
    [
        ({"kind": "reject", "comments": [{"path": "a", "line": 0, "text": "x"}]}, "line"),
        ({"kind": "reject", "comments": [{"path": "", "line": 1, "text": "x"}]}, "path"),
        ({"kind": "reject", "comments": [{"path": "a", "line": 1, "text": ""}]}, "text"),
        ({"kind": "reject", "comments": [{"path": "a", "line": "1", "text": "x"}]}, "line"),
        ({"kind": "reject", "comments": [{"path": "a", "line": 1, "text": "x", "q": 1}]}, "q"),
        (
            {"kind": "reject", "comments": [{"path": "a", "line": 1, "side": "x", "text": "x"}]},
            "side",
        ),
        ({"kind": "approve", "drops": [{"path": "a", "hunk": -1}]}, "hunk"),
        ({"kind": "approve", "drops": "a.py"}, "drops"),
        ({"kind": "approve", "drops": [{"path": "a"}] * 1001}, "drops"),
    ],
)
def test_bad_review_fields_are_refused_in_one_line(decision: dict[str, object], said: str) -> None:
    with pytest.raises(FrameError) as caught:
        parse_frame(json.dumps({"t": "decide", "id": 1, "decision": decision}))
    message = str(caught.value)
    assert "\n" not in message and said in message


async def test_a_client_comments_then_drops_a_file_and_the_engine_acts(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    script = {
        "default": [
            create("src/x.py", "x = 1\n"),
            create("src/extra.py", "import os\n"),
            complete(),
            create("src/x.py", "x = 2\n"),
            complete(),
        ]
    }
    async with served_run(root, script) as served:
        face = HandSupervisor()
        _client, seen = served.attach(face)
        _, decide = await asyncio.wait_for(face.approvals.get(), 30)
        decide.set_result(
            ApprovalDecision.reject("", [ReviewComment("src/x.py", 1, "x should be 2")])
        )
        request, decide = await asyncio.wait_for(face.approvals.get(), 30)
        assert "src/extra.py" in request.diffstat
        decide.set_result(ApprovalDecision.approve([DroppedPart("src/extra.py")]))
        request, decide = await asyncio.wait_for(face.approvals.get(), 30)
        assert "src/extra.py" not in request.diffstat  # asked again about what remains
        decide.set_result(ApprovalDecision.approve())
        assert await asyncio.wait_for(served.task, 30) == 0
        await seen.wait(lambda e: isinstance(e, RunFinished))
        agent = served.run.engine.agent
        assert isinstance(agent, ScriptedAgent)
        told = next(o.content for name, o in agent.received if name == "complete_task")
        assert "- src/x.py:1\n  > +x = 1\n  x should be 2" in told
        recorded = [e for e in seen.events if isinstance(e, ReviewRecorded)]
        assert [list(r.dropped) for r in recorded] == [
            [],
            ["dropped src/extra.py (the whole file)"],
        ]
    files = git(root, "show", "--name-only", "--format=", "HEAD").split()
    assert "src/x.py" in files and "src/extra.py" not in files
    assert git(root, "show", "HEAD:src/x.py") == "x = 2\n"


async def test_the_attached_tui_comments_and_drops_like_the_local_one(tmp_path: Path) -> None:
    from tests.remote.test_attached_app import attached
    from tests.tui.support import wait_for

    root = make_repo(tmp_path / "ws")
    script = {
        "default": [
            create("src/x.py", "x = 1\n"),
            create("src/zz.py", "import pdb\n"),
            complete(),
            create("src/x.py", "x = 2\n"),
            complete(),
        ]
    }
    async with served_run(root, script) as served:
        async with attached(served) as (app, pilot):
            await wait_for(pilot, lambda: app.approval_bar.display, what="the approval bar")
            await wait_for(pilot, lambda: app.diff.selected_path == "src/x.py", what="the diff")
            await pilot.press("right_curly_bracket", "down", "c", *"x should be 2", "enter")
            assert app.diff.review.summary() == "1 comment"
            await pilot.press("r", "enter")
            agent = served.run.engine.agent
            assert isinstance(agent, ScriptedAgent)
            await wait_for(pilot, lambda: len(agent.received) >= 4, what="the agent told")
            told = next(o.content for name, o in agent.received if name == "complete_task")
            assert "- src/x.py:1\n  > +x = 1\n  x should be 2" in told
            await wait_for(pilot, lambda: app.supervisor.approval is not None, what="2nd ask")
            await wait_for(pilot, lambda: "x = 2" in app.diff.files[0].patch, what="new diff")
            await pilot.press("right_square_bracket", "X")
            assert app.diff.review.summary() == "1 file dropped"
            first = app.supervisor.approval
            await pilot.press("a")
            await wait_for(
                pilot,
                lambda: app.supervisor.approval not in (None, first),
                what="asked again about what remains",
            )
            await pilot.press("a")
            await wait_for(pilot, lambda: served.task.done(), what="the run to end")
        assert served.task.result() == 0
    files = git(root, "show", "--name-only", "--format=", "HEAD").split()
    assert "src/x.py" in files and "src/zz.py" not in files
