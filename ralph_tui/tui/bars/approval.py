"""The approval bar: docked under the panels so the Diff and Gates stay in view.

The keys (``a`` / ``r`` / ``d``) are app bindings, so they work wherever focus is; only the
feedback box (shown after ``r``) takes typing, and ``enter`` there sends the rejection.
"""

from __future__ import annotations

import dataclasses

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, Static

from ralph_tui.supervisor import ApprovalRequest

_GATE_STYLE = {"passed": "green", "failed": "red", "error": "red", "timed_out": "red"}


def approval_text(request: ApprovalRequest, review: str = "") -> Text:
    """The bar's text; ``review``: the diff's draft (``2 comments · 1 hunk dropped``)."""
    text = Text()
    text.append("Approve ", style="bold")
    text.append(f"{request.story_id}", style="bold yellow")
    text.append(f"  {request.title}", style="bold")
    if request.worker:
        text.append(f"  (worker {request.worker})", style="dim")
    if request.waiting:  # parallel runs: more approvals queued (o on the board opens one)
        text.append(f"  +{request.waiting} waiting", style="bold magenta")
    text.append("\n")
    gates = Text("gates: ", style="dim")
    for i, gate in enumerate(request.gates):
        if i:
            gates.append(" · ")
        gates.append(f"{gate.name} {gate.state}", style=_GATE_STYLE.get(gate.state, ""))
        if gate.criterion:  # a story's own command names the criterion it checks
            gates.append(f" [checks: {gate.criterion}]", style="dim")
        if gate.summary:
            gates.append(f" ({gate.summary})", style="dim")
    if not request.gates:
        gates.append("none configured", style="dim")
    text.append_text(gates)
    text.append("\n")
    stat = request.diffstat.strip().splitlines()
    if stat:
        text.append("diff: ", style="dim")
        text.append(stat[-1].strip())
        text.append("\n")
    if request.flags:  # what changes the checks or hides itself: read before approving
        shown = request.flags[:4]
        for flag in shown:
            text.append("⚑ ", style="bold red")
            text.append(flag, style="bold yellow")
            text.append("\n")
        if len(request.flags) > len(shown):
            text.append(f"⚑ +{len(request.flags) - len(shown)} more flags (see the Diff)\n")
    subject = request.commit_message.strip().splitlines()
    text.append("commit: ", style="dim")
    text.append(subject[0] if subject else "", style="italic")
    if request.summary.strip():
        text.append("\nagent: ", style="dim")
        text.append(request.summary.strip().splitlines()[0])
    text.append("\n")
    if review:
        text.append("review: ", style="dim")
        text.append(review, style="bold cyan")
        text.append("  (a: gate the rest, ask again · r: send the comments)\n", "dim")
    text.append_text(
        Text.assemble(
            ("a", "bold reverse"),
            " approve & commit   ",
            ("r", "bold reverse"),
            " reject with feedback   ",
            ("d", "bold reverse"),
            " discard the change",
        )
    )
    return text


class ApprovalBar(Vertical):
    DEFAULT_CSS = """
    ApprovalBar {
        height: auto; max-height: 14; display: none;
        border: heavy $warning; border-title-color: $warning; padding: 0 1;
        background: $boost;
    }
    ApprovalBar.-open { display: block; }
    ApprovalBar > #approval-feedback { display: none; }
    ApprovalBar.-rejecting > #approval-feedback { display: block; }
    """

    class FeedbackSubmitted(Message):
        def __init__(self, feedback: str) -> None:
            super().__init__()
            self.feedback = feedback

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Approval needed"
        self.request: ApprovalRequest | None = None
        self.review = ""  # the diff's draft, summed up
        self._has_comments = False  # a rejection may then go without typed feedback

    def compose(self) -> ComposeResult:
        yield Static(id="approval-summary")
        yield Input(
            placeholder="What should the agent change? (enter sends, escape cancels)",
            id="approval-feedback",
        )

    @property
    def is_open(self) -> bool:
        return self.has_class("-open")

    @property
    def rejecting(self) -> bool:
        return self.has_class("-rejecting")

    def open(self, request: ApprovalRequest) -> None:
        self.request = request
        self.review, self._has_comments = "", False
        self.query_one("#approval-summary", Static).update(approval_text(request))
        self.remove_class("-rejecting")
        self.query_one("#approval-feedback", Input).value = ""
        self.add_class("-open")

    def show_waiting(self, waiting: int) -> None:
        """Parallel runs: more approvals were queued (or decided) behind the one shown."""
        if self.request is not None and self.request.waiting != waiting:
            self.request = dataclasses.replace(self.request, waiting=waiting)
            self.query_one("#approval-summary", Static).update(
                approval_text(self.request, self.review)
            )

    def show_review(self, review: str, has_comments: bool) -> None:
        """The diff's comments and drops changed."""
        self._has_comments = has_comments
        if self.request is not None and review != self.review:
            self.review = review
            self.query_one("#approval-summary", Static).update(approval_text(self.request, review))

    def close(self) -> None:
        self.request = None
        self.remove_class("-open", "-rejecting")

    def start_reject(self) -> None:
        self.add_class("-rejecting")
        self.query_one("#approval-feedback", Input).focus()

    def cancel_reject(self) -> None:
        self.remove_class("-rejecting")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        feedback = event.value.strip()
        if not feedback and not self._has_comments:
            self.app.notify(
                "Type what the agent should change, or escape to cancel.", severity="warning"
            )
            return
        self.post_message(self.FeedbackSubmitted(feedback))
