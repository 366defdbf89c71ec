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
