"""Attachable runs: a real engine served on 127.0.0.1, real clients over a real socket."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import stat
import sys
import textwrap
from pathlib import Path

import pytest

from ralph_tui.events import ApprovalDecided, Committed, RunFinished
from ralph_tui.server.client import RemoteError, RemoteRun, http_json
from ralph_tui.server.http import SERVE_FILE
from ralph_tui.supervisor import ApprovalDecision, EscalationAnswer
from tests.remote.support import HandSupervisor, WaitingSink, served_run, waiting
from tests.support.engine import approval_beside_question, complete, create
from tests.support.repo import git, make_repo, story


def committed(root: Path) -> str:
    return git(root, "log", "--format=%s", "-1")


async def test_attach_after_the_approval_is_waiting(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    async with served_run(root) as served:
        await served.sink.wait(waiting)
        assert served.run.server is not None and served.run.server.hub.pending is not None
        face = HandSupervisor()
        _client, seen = served.attach(face)
        request, decision = await asyncio.wait_for(face.approvals.get(), 30)
        assert request.story_id == "US-001"
        assert "src/x.py" in request.diffstat
        assert [g.name for g in request.gates] == ["ok"]
        # the replay brought the run so far before the question
        assert any(e.kind == "iteration_started" for e in seen.events)
        decision.set_result(ApprovalDecision.approve())
        assert await asyncio.wait_for(served.task, 30) == 0
        await seen.wait(lambda e: isinstance(e, RunFinished))
    assert committed(root).startswith("[backend] Task #US-001")
    assert any(isinstance(e, Committed) for e in seen.events)


async def test_two_clients_first_decision_wins_the_other_bar_closes(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    async with served_run(root) as served:
        first, second = HandSupervisor(), HandSupervisor()
        _, _seen_first = served.attach(first)
        _, seen_second = served.attach(second)
        _, decide_first = await asyncio.wait_for(first.approvals.get(), 30)
        _, decide_second = await asyncio.wait_for(second.approvals.get(), 30)
        decide_first.set_result(ApprovalDecision.approve())
        assert await asyncio.wait_for(second.closed.get(), 30) == "US-001"
        assert decide_second.cancelled()
        decided = await seen_second.wait(lambda e: isinstance(e, ApprovalDecided))
        assert isinstance(decided, ApprovalDecided) and decided.decision == "approve"
        assert await asyncio.wait_for(served.task, 30) == 0
    assert committed(root).startswith("[backend] Task #US-001")


async def test_an_approval_and_another_workers_question_open_at_once_are_both_answered(
    tmp_path: Path,
) -> None:
    """With workers, one story's approval and another's escalation are open together; the hub
    kept only the newest, so the client's decision on the other was dropped as stale and the
    run waited for ever (seen once in a loaded whole-suite run)."""
    root, script = approval_beside_question(tmp_path / "ws")
    async with served_run(root, script, workers=2) as served:
        face = HandSupervisor()
        served.attach(face)
        (request, decide), (question, reply) = await asyncio.gather(
            asyncio.wait_for(face.approvals.get(), 30),
            asyncio.wait_for(face.escalations.get(), 30),
        )  # both open before either is answered
        assert (request.story_id, question.story_id) == ("US-001", "US-002")
        late = HandSupervisor()  # a client attaching now is asked both
        served.attach(late)
        late_asks = await asyncio.gather(
            asyncio.wait_for(late.approvals.get(), 30),
            asyncio.wait_for(late.escalations.get(), 30),
        )
        assert (late_asks[0][0].story_id, late_asks[1][0].story_id) == ("US-001", "US-002")
        reply.set_result(EscalationAnswer("answer", "Use 8080."))
        decide.set_result(ApprovalDecision.approve())
        second, approve_second = await asyncio.wait_for(face.approvals.get(), 30)
        assert second.story_id == "US-002"
        approve_second.set_result(ApprovalDecision.approve())
        assert await asyncio.wait_for(served.task, 30) == 0
    log = git(root, "log", "--format=%s")
    assert "Task #US-001" in log and "Task #US-002" in log


CLIENT = textwrap.dedent(
    """
    import asyncio, sys
    from ralph_tui.server.client import RemoteRun

    class Holds:
        async def approve(self, request):
            print("asked", request.story_id, flush=True)
            await asyncio.Event().wait()
        async def answer(self, request):
            await asyncio.Event().wait()

    asyncio.run(RemoteRun(sys.argv[1], sys.argv[2], Holds(), lambda e: None).run())
    """
)


async def test_a_killed_client_leaves_the_run_waiting_for_the_next(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    async with served_run(root) as served:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CLIENT,
            served.url,
            served.token,
            stdout=asyncio.subprocess.PIPE,
            cwd=Path(__file__).parents[2],
        )
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line.decode().split() == ["asked", "US-001"]
        proc.send_signal(signal.SIGKILL)
        assert await proc.wait() == -signal.SIGKILL
        assert not served.task.done()
        face = HandSupervisor()
        served.attach(face)
        _, decision = await asyncio.wait_for(face.approvals.get(), 30)
        decision.set_result(ApprovalDecision.approve())
        assert await asyncio.wait_for(served.task, 30) == 0
    assert committed(root).startswith("[backend] Task #US-001")


async def test_wrong_or_missing_token_is_refused_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = make_repo(tmp_path / "ws")
    caplog.set_level(logging.WARNING, logger="ralph_tui.server.http")
    async with served_run(root) as served:
        with pytest.raises(RemoteError, match="missing or wrong token"):
            await asyncio.to_thread(http_json, served.url, "not-the-token", "/api/info")
        with pytest.raises(RemoteError, match="missing or wrong token"):
            await asyncio.to_thread(http_json, served.url, "", "/api/prd")
        with pytest.raises(RemoteError, match="refused"):
            await RemoteRun(served.url, "x" * 43, HandSupervisor(), WaitingSink()).run()
        info = await asyncio.to_thread(http_json, served.url, served.token, "/api/info")
        assert info["role"] == "backend"
        assert served.run.server is not None and served.run.server.refused == 3
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 3
    assert "a wrong token" in refusals[0] and "no token" in refusals[1]


async def test_serve_file_is_private_and_removed_at_the_end(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    async with served_run(root, max_iterations=1) as served:
        path = root / SERVE_FILE
        data = json.loads(path.read_text())
        assert data == {"url": served.url, "token": served.token, "pid": os.getpid()}
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert len(served.token) >= 43  # 32 random bytes, url-safe base64
        face = HandSupervisor()
        served.attach(face)
        _, decision = await asyncio.wait_for(face.approvals.get(), 30)
        decision.set_result(ApprovalDecision.discard())
        await asyncio.wait_for(served.task, 30)
    assert not path.exists()


async def test_remote_prd_edits_and_pause_go_through_the_run(tmp_path: Path) -> None:

    root = make_repo(tmp_path / "ws", [story("US-001", "First"), story("US-002", "Second", 2)])
    async with served_run(root, max_iterations=1) as served:
        face = HandSupervisor()
        client, seen = served.attach(face)
        await asyncio.wait_for(face.approvals.get(), 30)
        prd = await asyncio.to_thread(client.store.move_story, "US-002", "up")
        assert next(s.key for s in prd.pick_order()) == "US-002"
        await asyncio.to_thread(client.store.update_story, "US-002", {"title": "Second, edited"})
        added = await asyncio.to_thread(
            client.store.add_story,
            {
                "title": "Third",
                "description": "d",
                "acceptanceCriteria": ["c"],
                "priority": 3,
            },
        )
        on_disk = json.loads((root / "tasks" / "backend_prd.json").read_text())
        titles = [s["title"] for s in on_disk["userStories"]]
        assert "Second, edited" in titles and added.title == "Third"
        with pytest.raises(RemoteError, match="US-999"):
            await asyncio.to_thread(client.store.move_story, "US-999", "up")
        files = await asyncio.to_thread(client.git.diff)
        assert "src/x.py" in [f.path for f in files]
        client.pause()
        await seen.wait(lambda e: getattr(e, "state", None) == "pausing")
        assert served.run.engine.paused
        client.resume()
        await seen.wait(lambda e: getattr(e, "state", None) == "running")
        client.request_stop()  # the stop control discards the pending change, the run ends
        code = await asyncio.wait_for(served.task, 30)
        finished = await seen.wait(lambda e: isinstance(e, RunFinished))
        assert isinstance(finished, RunFinished) and finished.exit_code == code
        assert "stop" in finished.reason
    assert "Task #" not in committed(root)


async def test_a_client_answers_an_escalation_and_the_answer_reaches_the_agent(
    tmp_path: Path,
) -> None:
    from ralph_tui.agents.scripted import ScriptedAgent
    from ralph_tui.events import Escalated, EscalationAnswered, ToolResult
    from ralph_tui.supervisor import EscalationAnswer

    root = make_repo(tmp_path / "ws")
    ask = {"tool": "escalate", "input": {"question": "Which port?", "tried": "read the docs"}}
    script = {"default": [ask, create("src/port.py", "PORT = 8080\n"), complete()]}
    async with served_run(root, script) as served:
        # the run's local face is a ScriptedSupervisor that would answer "skip": with
        # ask_local=False only clients are asked, so only the client's answer can get through
        face = HandSupervisor()
        _client, seen = served.attach(face)
        request, answer = await asyncio.wait_for(face.escalations.get(), 30)
        assert (request.story_id, request.question, request.tried) == (
            "US-001",
            "Which port?",
            "read the docs",
        )
        answer.set_result(EscalationAnswer("answer", "Use 8080."))
        _, decision = await asyncio.wait_for(face.approvals.get(), 30)
        decision.set_result(ApprovalDecision.approve())
        assert await asyncio.wait_for(served.task, 30) == 0
        await seen.wait(lambda e: isinstance(e, RunFinished))
        agent = served.run.engine.agent
        assert isinstance(agent, ScriptedAgent)
        told = [o.content for name, o in agent.received if name == "escalate"]
        assert told == ["Answer from the human supervisor:\nUse 8080."]
        # every face saw the question and the answer; the tool result carries it too
        assert any(isinstance(e, Escalated) and e.question == "Which port?" for e in seen.events)
        answered = [e for e in seen.events if isinstance(e, EscalationAnswered)]
        assert [(e.answer, e.skipped) for e in answered] == [("Use 8080.", False)]
        results = [e for e in served.sink.events if isinstance(e, ToolResult)]
        assert any(e.name == "escalate" and "Use 8080." in e.content for e in results)
    assert committed(root).startswith("[backend] Task #US-001")
    progress = (root / "tasks/backend_progress.txt").read_text()
    assert "Which port?" in progress and "Use 8080." in progress
