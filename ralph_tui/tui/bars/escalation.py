"""The escalation bar: the agent's question and what it tried, with an answer box.

The answer box takes focus when the bar opens (the human is needed to type); ``enter`` sends.
With a product manager (``[pm]``) the box opens holding the PM's proposed answer, also shown
above it marked as the PM's: ``enter`` sends it as is, or the human edits it or writes their own.
``s`` (an app binding, so outside the box; ``escape`` leaves the box) skips the story.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, Static

from ralph_tui.supervisor import EscalationRequest


def escalation_text(request: EscalationRequest) -> Text:
    text = Text()
    who = "ralph-tui (repeated failures)" if request.automatic else "the agent"
    text.append(f"{request.story_id}", style="bold yellow")
    text.append(f"  {request.title}", style="bold")
    text.append(f"  — asked by {who}\n", style="dim")
    text.append("Question: ", style="bold")
    text.append(request.question.strip() + "\n")
    if request.tried.strip():
        text.append("Tried: ", style="bold dim")
        text.append(request.tried.strip(), style="dim")
        text.append("\n")
    if request.pm_note:
        text.append(request.pm_note.strip() + "\n", style="italic")
    if request.suggestion:
        text.append("The PM suggests: ", style="bold magenta")
        text.append(request.suggestion.strip() + "\n", style="magenta")
    text.append_text(
        Text.assemble(
            ("enter", "bold reverse"),
            " send the PM's answer as is (or edit it first)   "
            if request.suggestion
            else " send the answer   ",
            ("escape", "bold reverse"),
            " leave the box   ",
            ("s", "bold reverse"),
            " skip the story for this run",
        )
    )
    return text


class EscalationBar(Vertical):
    DEFAULT_CSS = """
    EscalationBar {
        height: auto; max-height: 16; display: none;
        border: heavy $error; border-title-color: $error; padding: 0 1; background: $boost;
    }
    EscalationBar.-open { display: block; }
    """

    class AnswerSubmitted(Message):
        def __init__(self, answer: str) -> None:
            super().__init__()
            self.answer = answer

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "The agent needs you"
        self.request: EscalationRequest | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="escalation-summary")
        yield Input(placeholder="Your answer for the agent (enter sends)", id="escalation-answer")

    @property
    def is_open(self) -> bool:
        return self.has_class("-open")

    @property
    def answer_box(self) -> Input:
        return self.query_one("#escalation-answer", Input)

    def open(self, request: EscalationRequest) -> None:
        self.request = request
        self.query_one("#escalation-summary", Static).update(escalation_text(request))
        # the PM's suggestion ([pm]) is in the box: enter sends it, or edit it, or clear it
        self.answer_box.value = request.suggestion.strip()
        self.add_class("-open")
        self.call_after_refresh(self.answer_box.focus)

    def close(self) -> None:
        self.request = None
        self.remove_class("-open")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        answer = event.value.strip()
        if not answer:
            self.app.notify(
                "Type an answer, or escape then s to skip the story.", severity="warning"
            )
            return
        self.post_message(self.AnswerSubmitted(answer))
