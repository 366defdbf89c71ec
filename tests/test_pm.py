"""The product-manager agent ([pm]) through the real engine and the fake Messages API.

The engineering agent is scripted (it escalates); the PM is the built-in Anthropic agent code
talking to ``FakeAnthropic``. ``answer_after`` is waited on an injected clock a test releases.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from ralph_tui.agents.scripted import ScriptedAgent
from ralph_tui.cli import INIT_CONFIG
from ralph_tui.config import PmOptions, load_config
from ralph_tui.engine import Engine
from ralph_tui.errors import UsageError
from ralph_tui.events import (
    Escalated,
    EscalationAnswered,
    Event,
    Notice,
    PmAnswered,
    PmProposal,
    PmToolUsed,
    RunFinished,
    UsageReported,
)
from ralph_tui.headless import ConsoleSink
from ralph_tui.iteration import AgentOutcome, IterationHandle, IterationRequest
from ralph_tui.notify import Notifier
from ralph_tui.pm import ProductManager
from ralph_tui.runs import build_engine
from ralph_tui.safety.workspace import Redactor
from ralph_tui.server.protocol import escalation_from_dict, escalation_to_dict
from ralph_tui.supervisor import (
    ApprovalDecision,
    ApprovalRequest,
    EscalationAnswer,
    EscalationRequest,
)
from tests.support.engine import (
    RecordingSink,
    ScriptedSupervisor,
    complete,
    create,
    make_engine,
    write_script,
)
from tests.support.fake_anthropic import FakeAnthropic, http_error, reply, tool_use
from tests.support.repo import git, make_repo, story

QUESTION = {"tool": "escalate", "input": {"question": "Which port?", "tried": "read the docs"}}
PM_ANSWER = "Use 8080: the PRD's context says so."


@pytest.fixture
def api() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server


class Clock:
    """``answer_after`` on the test's word: ``sleep`` returns once ``fire`` is set."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.started = asyncio.Event()
        self.fire = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.started.set()
        await self.fire.wait()


class HeldSupervisor(ScriptedSupervisor):
    """A human who answers an escalation only when the test says so (``reply``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.asked = asyncio.Event()
        self.pending: asyncio.Future[EscalationAnswer] | None = None

    async def answer(self, request: EscalationRequest) -> EscalationAnswer:
        self.escalations.append(request)
        self.pending = asyncio.get_running_loop().create_future()
        self.asked.set()
        return await self.pending

    def reply(self, answer: EscalationAnswer) -> None:
        assert self.pending is not None
        self.pending.set_result(answer)


class Unattended(ScriptedSupervisor):
    reaches_human = False

    async def answer(self, request: EscalationRequest) -> EscalationAnswer:
        raise AssertionError("nobody can be asked")


def pm_engine(
    root: Path,
    api: FakeAnthropic,
    sup: ScriptedSupervisor,
    script: dict[str, Any] | None = None,
    *,
    clock: Clock | None = None,
    **pm: Any,
) -> tuple[Engine, Any, Any]:
    engine, agent, sink, _ = make_engine(
        root, script or {"default": [QUESTION, complete()]}, sup, pm=pm, max_iterations=3
    )
    assert engine.config.pm is not None
    client = anthropic.AsyncAnthropic(api_key="sk-ant-test-0000", base_url=api.base_url)
    engine.pm = ProductManager(engine.config.pm, engine.config, client=client, clock=clock)
    return engine, agent, sink


def answers(text: str = PM_ANSWER) -> dict[str, Any]:
    return reply(tool_use("answer", {"answer": text}))


def told(agent: Any) -> str:
    name, outcome = agent.received[0]
    assert name == "escalate"
    return str(outcome.content)


def log_of(root: Path) -> str:
    return (root / "tasks/backend_progress.txt").read_text()


async def test_suggest_mode_shows_the_pm_answer_and_the_human_sends_it_as_is(
    tmp_path: Path, api: FakeAnthropic
) -> None:
    root = make_repo(tmp_path / "ws")
    api.add(
        reply(tool_use("git", {"args": ["log", "--oneline", "-3"]})),
        reply(tool_use("view_file", {"path": "README.md"})),
        answers(),
    )
    sup = HeldSupervisor()
    engine, agent, sink = pm_engine(root, api, sup, model="claude-pm-test")
    run = asyncio.create_task(engine.run())
    await sup.asked.wait()
    shown = sup.escalations[0]
    assert shown.suggestion == PM_ANSWER  # at once, before any human said a word
    assert not agent.received  # the agent still waits
    sup.reply(EscalationAnswer("answer", PM_ANSWER))  # the send-as-is key
    assert await run == 0

    assert told(agent).startswith("Answer from the human supervisor (the product manager's")
    assert sink.of(Escalated)[0].pm == "suggested"
    assert sink.of(PmAnswered)[0].answer == PM_ANSWER
    assert sink.of(EscalationAnswered)[0].by == "human (the PM's suggestion as is)"
    tools = [(e.name, e.refused) for e in sink.of(PmToolUsed)]
    assert tools == [("git", False), ("view_file", False), ("answer", False)]
    # the PM's read-only tools ran for real: its git log saw the repository's commit
    pm_calls = api.requests
    git_result = pm_calls[1].body["messages"][-1]["content"][0]["content"]
    assert "initial" in git_result
    # the PM's own model, and its cost accounted as the PM's
    assert {r.body["model"] for r in pm_calls} == {"claude-pm-test"}
    pm_usage = [u for u in sink.of(UsageReported) if u.by == "pm"]
    assert len(pm_usage) == 3
    log = log_of(root)
    assert "PM note (" in log and f"The PM's answer: {PM_ANSWER}" in log
    assert ", the PM's suggestion, sent by a human):\n" + PM_ANSWER in log


async def test_suggest_mode_the_human_writes_their_own(tmp_path: Path, api: FakeAnthropic) -> None:
    root = make_repo(tmp_path / "ws")
    api.add(answers())
    sup = ScriptedSupervisor(answers=[EscalationAnswer("answer", "Use 9090")])
    engine, agent, sink = pm_engine(root, api, sup)
    assert await engine.run() == 0
    assert told(agent) == "Answer from the human supervisor:\nUse 9090"
    assert sink.of(EscalationAnswered)[0].by == "human"


async def test_answer_mode_answers_after_the_delay_then_a_human_corrects(
    tmp_path: Path, api: FakeAnthropic
) -> None:
    root = make_repo(tmp_path / "ws")
    api.add(answers())
    clock = Clock()
    requests: list[IterationRequest] = []

    corrected = asyncio.Event()

    async def human_corrects_then_rejects(_: ApprovalRequest) -> None:
        if not corrected.is_set():  # the first approval: the human is back, corrects
            sup.reply(EscalationAnswer("answer", "No: use 9090"))
            await corrected.wait()

    sup = HeldSupervisor(
        decisions=[ApprovalDecision.reject("see the correction")],
        on_approve=human_corrects_then_rejects,
    )
    script = {"stories": {"US-001": [[QUESTION, complete()], [complete()]]}}
    engine, agent, sink = pm_engine(
        root, api, sup, script, clock=clock, mode="answer", answer_after=120
    )
    record = engine._sink

    def sink_and_watch(event: Event) -> None:
        record(event)
        if isinstance(event, EscalationAnswered) and event.correction:
            corrected.set()

    engine._sink = sink_and_watch
    run_iteration = agent.run_iteration

    async def spy(request: IterationRequest, tools: IterationHandle) -> AgentOutcome:
        requests.append(request)
        result: AgentOutcome = await run_iteration(request, tools)
        return result

    agent.run_iteration = spy
    run = asyncio.create_task(engine.run())
    await clock.started.wait()
    await sup.asked.wait()
    assert clock.waits == [120]
    assert not agent.received  # no answer before the delay, and no human answered
    assert sup.escalations[0].suggestion == PM_ANSWER
    assert "in 120s unless you answer first" in sup.escalations[0].pm_note
    clock.fire.set()
    assert await run == 0

    assert told(agent) == (
        f"Answer from the product manager (an AI agent, not a human):\n{PM_ANSWER}"
    )
    assert sink.of(Escalated)[0].pm == "answers_later"
    first, correction = sink.of(EscalationAnswered)
    assert (first.by, first.correction) == ("pm", False)
    assert (correction.by, correction.correction, correction.answer) == (
        "human",
        True,
        "No: use 9090",
    )
    # the correction reaches the agent in the story's next iteration
    assert len(requests) == 2
    assert "Correction from the human supervisor" in requests[1].user_prompt
    assert "No: use 9090" in requests[1].user_prompt
    log = log_of(root)
    assert ", the PM):\n" + PM_ANSWER in log
    assert ", correction by a human):\nNo: use 9090" in log


async def test_answer_mode_a_human_who_answers_first_wins(
    tmp_path: Path, api: FakeAnthropic
) -> None:
    root = make_repo(tmp_path / "ws")
    api.add(answers())
    clock = Clock()
    sup = HeldSupervisor()
    engine, agent, sink = pm_engine(root, api, sup, clock=clock, mode="answer", answer_after=60)
    run = asyncio.create_task(engine.run())
    await sup.asked.wait()
    await clock.started.wait()
    sup.reply(EscalationAnswer("answer", "Use 7070"))
    assert await run == 0
    assert told(agent) == "Answer from the human supervisor:\nUse 7070"
    assert [e.by for e in sink.of(EscalationAnswered)] == ["human"]


async def test_answer_mode_under_approve_auto_answers_at_once(
    tmp_path: Path, api: FakeAnthropic
) -> None:
    root = make_repo(tmp_path / "ws")
    api.add(answers())
    clock = Clock()
    sup = Unattended()  # headless --approve auto: nobody to ask
    engine, agent, sink = pm_engine(root, api, sup, clock=clock, mode="answer", answer_after=600)
    engine.config = engine.config.model_copy(update={"approve": "auto"})
    assert await engine.run() == 0
    assert clock.waits == []  # no delay: nobody would answer
    assert told(agent).endswith(PM_ANSWER)
    assert sink.of(Escalated)[0].pm == "answered"
    assert [e.by for e in sink.of(EscalationAnswered)] == ["pm"]
    transcript = (engine.run_dir / "transcript.md").read_text()
    assert f"**answer (the PM, not a human)**: {PM_ANSWER}" in transcript


async def test_pm_that_does_not_know_leaves_it_to_the_human(
    tmp_path: Path, api: FakeAnthropic
) -> None:
    root = make_repo(tmp_path / "ws")
    api.add(reply(tool_use("i_dont_know", {"reason": "the PRD does not say"})))
    sup = ScriptedSupervisor(answers=[EscalationAnswer("answer", "Use 8443")])
    engine, agent, sink = pm_engine(root, api, sup, mode="answer", answer_after=0)
    assert await engine.run() == 0
    notifier = Notifier(engine.config.notify, redact=Redactor(env={}))
    note = notifier._notification(sink.of(Escalated)[0])
    assert note is not None and "the PM could not answer" in note.message

    asked = sup.escalations[0]
    assert asked.suggestion == ""
    assert asked.pm_note == "The PM could not answer: the PRD does not say"
    assert told(agent) == "Answer from the human supervisor:\nUse 8443"
    assert sink.of(PmAnswered)[0].known is False
    assert sink.of(Escalated)[0].pm == "unknown"
    assert "The PM could not answer: the PRD does not say" in log_of(root)


def prd_stories(root: Path) -> dict[str, dict[str, Any]]:
    data = json.loads((root / "tasks/backend_prd.json").read_text())
    return {str(s["id"]): s for s in data["userStories"]}


async def test_prd_proposals_one_accepted_one_rejected(tmp_path: Path, api: FakeAnthropic) -> None:
    root = make_repo(tmp_path / "ws", [story("A", "Export"), story("B", "Import", priority=2)])
    api.add(
        reply(
            tool_use(
                "propose_prd_change",
                {
                    "kind": "priority",
                    "story_id": "B",
                    "priority": 0,
                    "reason": "import comes first",
                },
            ),
            tool_use(
                "propose_prd_change",
                {"kind": "add", "reason": "missing", "stories": [{"title": "CSV header"}]},
            ),
        ),
        answers(),
    )
    sup = ScriptedSupervisor(
        answers=[EscalationAnswer("answer", PM_ANSWER)],
        decisions=[ApprovalDecision.approve(), ApprovalDecision.reject("")],
    )
    script = {"stories": {"A": [QUESTION, complete()], "B": [complete()]}}
    engine, _, sink = pm_engine(root, api, sup, script)
    engine.config = engine.config.model_copy(update={"max_iterations": 1})
    assert await engine.run() == 3  # B is left for a next run

    proposals = sup.approval_requests[:2]
    assert [p.title for p in proposals] == [
        "PRD change proposed by the PM (priority)",
        "PRD change proposed by the PM (add)",
    ]
    assert all(p.flags for p in proposals)  # never approved by the auto policy
    decided = [(e.proposal.split(" —")[0], e.decision) for e in sink.of(PmProposal)]
    assert ("set the priority of Task #B to 0", "accepted") in decided
    assert ("add a story: CSV header", "rejected") in decided
    stories = prd_stories(root)
    assert stories["B"]["priority"] == 0  # accepted: applied
    assert len(stories) == 2  # rejected: never added


async def test_pm_proposal_is_not_applied_when_nobody_can_accept_it(
    tmp_path: Path, api: FakeAnthropic
) -> None:
    root = make_repo(tmp_path / "ws", [story("A", "Export"), story("B", "Import", priority=2)])
    api.add(
        reply(
            tool_use(
                "propose_prd_change",
                {
                    "kind": "dependency",
                    "story_id": "A",
                    "depends_on": ["B"],
                    "reason": "needs data",
                },
            )
        ),
        answers(),
    )
    engine, _, sink = pm_engine(root, api, Unattended(), mode="answer")
    engine.config = engine.config.model_copy(update={"max_iterations": 1})
    await engine.run()
    assert [e.decision for e in sink.of(PmProposal)] == ["proposed", "not asked"]
    assert "dependsOn" not in prd_stories(root)["A"]


async def test_pm_write_or_mutating_command_is_refused(tmp_path: Path, api: FakeAnthropic) -> None:
    root = make_repo(tmp_path / "ws")
    api.add(
        reply(
            tool_use(
                "str_replace_based_edit_tool",
                {"command": "create", "path": "pwned.txt", "file_text": "x"},
            ),
            tool_use("bash", {"command": "touch pwned.txt"}),
            tool_use("view_file", {"path": "README.md", "command": "create", "file_text": "x"}),
            tool_use("git", {"args": ["commit", "--allow-empty", "-m", "pm"]}),
            tool_use("git", {"args": ["log", "--output=pwned.txt"]}),
            tool_use("git", {"args": ["show", "--ext-diff", "HEAD"]}),
        ),
        answers(),
    )
    sup = ScriptedSupervisor(
        answers=[EscalationAnswer("answer", "ok")], decisions=[ApprovalDecision.discard()]
    )
    engine, _, sink = pm_engine(root, api, sup)
    engine.config = engine.config.model_copy(update={"max_iterations": 1})
    await engine.run()

    results = api.requests[1].body["messages"][-1]["content"]
    assert len(results) == 6
    assert all(r.get("is_error") for r in results)
    assert all(str(r["content"]).startswith("refused") for r in results)
    used = sink.of(PmToolUsed)
    assert [u.refused for u in used[:2]] == [True, True]  # tools the PM does not have
    assert not (root / "pwned.txt").exists()
    subjects = git(root, "log", "--format=%s").splitlines()
    assert subjects[-1] == "initial" and all("pm" not in s for s in subjects)  # no PM commit
    assert (root / "README.md").read_text() == "# test project\n"


async def test_pm_api_failure_is_an_i_dont_know(tmp_path: Path, api: FakeAnthropic) -> None:
    root = make_repo(tmp_path / "ws")
    api.add(http_error(400))
    sup = ScriptedSupervisor(answers=[EscalationAnswer("answer", "Use 1")])
    engine, agent, sink = pm_engine(root, api, sup, mode="answer")
    assert await engine.run() == 0
    assert told(agent) == "Answer from the human supervisor:\nUse 1"
    assert sup.escalations[0].pm_note.startswith("The PM could not answer: its model failed")
    assert any("the PM could not answer" in n.message for n in sink.of(Notice))


def test_pm_section_is_checked() -> None:
    assert PmOptions().mode == "suggest"
    with pytest.raises(ValueError):
        PmOptions.model_validate({"mode": "decide"})
    with pytest.raises(ValueError):
        PmOptions.model_validate({"answer_after": -1})


@pytest.mark.parametrize("workers", [1, 2])
async def test_pm_with_one_and_two_workers(
    tmp_path: Path, api: FakeAnthropic, workers: int
) -> None:
    """The PM answers a worker's escalation; its PRD proposal waits in the approval queue."""
    root = make_repo(tmp_path / "ws", [story("A", "Export"), story("B", "Import", priority=2)])
    api.add(
        reply(
            tool_use(
                "propose_prd_change",
                {"kind": "priority", "story_id": "B", "priority": 7, "reason": "later"},
            )
        ),
        answers(),
    )
    script = {
        "stories": {
            "A": [QUESTION, create("a.txt", "a\n"), complete()],
            "B": [create("b.txt", "b\n"), complete()],
        }
    }
    sup = ScriptedSupervisor(answers=[EscalationAnswer("answer", PM_ANSWER)])
    path = write_script(root, script)
    config = load_config(
        root, {"script": str(path), "workers": workers, "pm": {}, "sandbox": {"mode": "off"}}
    )
    sink = RecordingSink()
    engine = build_engine(root, config, ScriptedAgent.from_file(path, config), sup, sink)
    assert config.pm is not None
    client = anthropic.AsyncAnthropic(api_key="sk-ant-test-0000", base_url=api.base_url)
    engine.pm = ProductManager(config.pm, config, client=client)
    assert await engine.run() == 0

    assert [e.by for e in sink.of(EscalationAnswered)] == ["human (the PM's suggestion as is)"]
    assert [e.decision for e in sink.of(PmProposal)] == ["proposed", "accepted"]
    assert prd_stories(root)["B"]["priority"] == 7
    assert all(s["passes"] for s in prd_stories(root).values())


def test_headless_console_marks_the_pm_and_its_cost() -> None:
    out = io.StringIO()
    sink = ConsoleSink(out, Redactor(env={}))
    sink(UsageReported(story_id="A", cost_usd=0.5))
    sink(UsageReported(story_id="A", cost_usd=0.25, by="pm"))
    sink(PmAnswered(story_id="A", answer="Use 8080"))
    sink(EscalationAnswered(story_id="A", answer="Use 8080", by="pm"))
    sink(EscalationAnswered(story_id="A", answer="No, 9090", correction=True))
    sink(RunFinished(exit_code=0, reason="every story passes"))
    lines = out.getvalue().splitlines()
    assert "  PM: Use 8080" in lines
    assert "  answer (the PM, not a human): Use 8080" in lines
    assert "  correction: No, 9090" in lines
    assert lines[-1].endswith("(exit 0, est. cost $0.7500, the PM $0.2500 of it)")


def test_remote_faces_receive_the_pm_suggestion() -> None:
    request = EscalationRequest(
        "A", "Export", "Which port?", "-", suggestion=PM_ANSWER, pm_note="The PM answers in 5s"
    )
    assert escalation_from_dict(escalation_to_dict(request)) == request
    old_server = {k: v for k, v in escalation_to_dict(request).items() if k != "suggestion"}
    assert escalation_from_dict(old_server).suggestion == ""


async def test_pm_without_a_key_stops_the_run_before_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_repo(tmp_path / "ws")
    monkeypatch.setattr("ralph_tui.safety.credentials.get", lambda name: None)
    engine, _, _, _ = make_engine(root, {"default": [complete()]}, pm={"mode": "answer"})
    head = git(root, "rev-parse", "HEAD")
    with pytest.raises(UsageError, match=r"^\[pm\] \(the product-manager agent\): ANTHROPIC_API"):
        await engine.run()
    assert git(root, "rev-parse", "HEAD") == head
    assert git(root, "branch", "--show-current").strip() == "main"  # nothing changed


async def test_answer_mode_under_auto_with_a_human_watching_answers_at_once(
    tmp_path: Path, api: FakeAnthropic
) -> None:
    """The TUI under --approve auto: the PM's answer goes at once, the bar stays for a
    correction, and the human sending the PM's own answer corrects nothing."""
    root = make_repo(tmp_path / "ws")
    api.add(answers())
    clock = Clock()
    sup = HeldSupervisor()
    engine, agent, sink = pm_engine(root, api, sup, clock=clock, mode="answer")
    engine.config = engine.config.model_copy(update={"approve": "auto"})

    async def confirm(_: ApprovalRequest) -> None:
        sup.reply(EscalationAnswer("answer", PM_ANSWER))

    sup.on_approve = confirm
    assert await engine.run() == 0
    assert clock.waits == []
    assert told(agent).endswith(PM_ANSWER)
    assert sup.escalations[0].pm_note.startswith("The PM answered the agent")
    assert [(e.by, e.correction) for e in sink.of(EscalationAnswered)] == [("pm", False)]


def test_the_init_template_pm_section_loads_when_uncommented(tmp_path: Path) -> None:
    text = INIT_CONFIG.format(prd_line="", role="backend", agents="anthropic")
    lines = [
        line.removeprefix("# ") if line.startswith(("# [pm]", "# mode", "# answer_after")) else line
        for line in text.splitlines()
    ]
    (tmp_path / "ralph.toml").write_text("\n".join(lines) + "\n")
    config = load_config(tmp_path)
    assert config.pm is not None and config.pm.mode == "suggest"
    assert config.pm.answer_after == 300
    (tmp_path / "ralph.toml").write_text(text)  # as init writes it: no PM
    assert load_config(tmp_path).pm is None
