"""The terminal supervisor's prompts (``--approve ask``), read from a real text stream."""

from __future__ import annotations

import io

from ralph_tui.headless import ConsoleSink, TerminalSupervisor
from ralph_tui.safety.workspace import Redactor
from ralph_tui.supervisor import ApprovalRequest, EscalationRequest

APPROVAL = ApprovalRequest(
    story_id="US-001",
    title="T",
    commit_message="m",
    diffstat=" a.py | 1 +\n \x1b[2J1 file changed",
    summary="s",
    gates=(),
)
QUESTION = EscalationRequest(
    story_id="US-001", title="T", question="Which \x1b]52;c;eA==\x07?", tried="x"
)


def supervisor(typed: str) -> tuple[TerminalSupervisor, io.StringIO]:
    out = io.StringIO()
    return TerminalSupervisor("ask", ConsoleSink(out, Redactor(env={})), io.StringIO(typed)), out


async def test_approve_reject_discard_and_closed_stdin() -> None:
    sup, out = supervisor("x\na\n")
    assert (await sup.approve(APPROVAL)).kind == "approve"  # "x" is asked again
    assert out.getvalue().count("[a]pprove") == 2 and "\x1b" not in out.getvalue()
    sup, _ = supervisor("r\nuse a dict\n")
    decision = await sup.approve(APPROVAL)
    assert (decision.kind, decision.feedback) == ("reject", "use a dict")
    sup, _ = supervisor("")  # stdin closed: nothing is committed
    assert (await sup.approve(APPROVAL)).kind == "discard"


async def test_escalation_answer_skip_and_closed_stdin() -> None:
    sup, out = supervisor("use sqlite\n")
    answer = await sup.answer(QUESTION)
    assert (answer.kind, answer.text) == ("answer", "use sqlite")
    assert "Which \\x1b]52" in out.getvalue() and "\x1b" not in out.getvalue()
    sup, _ = supervisor("\n")
    assert (await sup.answer(QUESTION)).kind == "skip"
    sup, _ = supervisor("")
    assert (await sup.answer(QUESTION)).kind == "stop"


async def test_line_comments_at_the_prompt_go_back_with_a_reject() -> None:
    typed = (
        "c\n"
        "app/my models.py:12 use a dict here\n"
        "nonsense\n"  # said and asked again
        "a.py:-3 why remove this?\n"
        "\n"
        "and add a test\n"
    )
    sup, out = supervisor(typed)
    decision = await sup.approve(APPROVAL)
    assert (decision.kind, decision.feedback) == ("reject", "and add a test")
    assert [(c.path, c.line, c.side, c.text) for c in decision.comments] == [
        ("app/my models.py", 12, "new", "use a dict here"),
        ("a.py", 3, "old", "why remove this?"),
    ]
    assert "not path:line text" in out.getvalue()
    # no comment typed: back to the choice; stdin closed while commenting: nothing lands
    sup, _ = supervisor("c\n\na\n")
    assert (await sup.approve(APPROVAL)).kind == "approve"
    sup, _ = supervisor("c\na.py:1 x\n")
    assert (await sup.approve(APPROVAL)).kind == "discard"


async def test_an_approval_and_another_storys_question_are_asked_one_at_a_time() -> None:
    """With workers both are open together. Both prompts were printed and both read stdin, so
    the "a" typed at the last prompt on screen (the approval) became the agent's answer."""
    import asyncio
    import os

    read_end, write_end = os.pipe()
    out = io.StringIO()
    with open(read_end, encoding="utf-8") as typed, open(write_end, "w") as keys:
        sup = TerminalSupervisor("ask", ConsoleSink(out, Redactor(env={})), typed)
        question = EscalationRequest(story_id="US-002", title="B", question="Port?", tried="x")
        answering = asyncio.create_task(sup.answer(question))
        for _ in range(5):  # each task runs up to its read of stdin
            await asyncio.sleep(0)
        approving = asyncio.create_task(sup.approve(APPROVAL))
        for _ in range(5):
            await asyncio.sleep(0)
        assert "[a]pprove" not in out.getvalue()  # asked once the question is answered
        assert "your answer for US-002" in out.getvalue()
        keys.write("Use 8080.\n")
        keys.flush()
        answer = await asyncio.wait_for(answering, 30)
        assert (answer.kind, answer.text) == ("answer", "Use 8080.")
        keys.write("a\n")
        keys.flush()
        assert (await asyncio.wait_for(approving, 30)).kind == "approve"
        assert "US-001: [a]pprove" in out.getvalue()
