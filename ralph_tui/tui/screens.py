"""Small modal screens: confirm quitting or stopping a run, edit or add a story."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, TextArea

from ralph_tui.prd.model import Story


class Confirm(ModalScreen[bool]):
    """A yes/no question before something that ends a run: ``y`` (or the first button) is yes,
    ``n``/``esc`` no. ``danger`` frames it in the error colour (stopping a run for every face)
    instead of the warning colour."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes", id="confirm_yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm_no"),
    ]
    DEFAULT_CSS = """
    Confirm { align: center middle; }
    Confirm > Vertical {
        width: 64; max-width: 100%; height: auto; border: heavy $warning; background: $surface;
        padding: 1 2;
    }
    Confirm.-danger > Vertical { border: heavy $error; }
    Confirm Label { width: 100%; }
    Confirm Horizontal { height: auto; margin-top: 1; }
    Confirm Button { margin-right: 2; }
    """

    def __init__(
        self, title: str, detail: str, yes: str, *, no: str = "Keep running", danger: bool = False
    ) -> None:
        super().__init__(classes="-danger" if danger else None)
        self._title = title
        self._detail = detail
        self._yes = yes
        self._no = no
        self._danger = danger

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(self._title, style="bold"))
            yield Label(self._detail)
            with Horizontal():
                yield Button(
                    f"{self._yes} (y)", variant="error" if self._danger else "warning", id="yes"
                )
                yield Button(f"{self._no} (n)", id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


def confirm_quit(state: str = "running") -> Confirm:
    """Quitting the TUI while an iteration runs (the run stops at its next safe point); the
    title says what the status line says (a run waiting for the human is not "running")."""
    title = {
        "waiting": "The run is waiting for you.",
        "paused": "The run is paused.",
        "pausing": "The run is pausing.",
    }.get(state, "An iteration is running.")
    return Confirm(
        title,
        "Stop at the next safe point and quit? Nothing is committed half-way; "
        "an unfinished change is saved as a patch in the run folder.",
        "Stop and quit",
    )


def confirm_stop_run() -> Confirm:
    """Stopping a run this face is attached to (``attach``: ``q`` only detaches)."""
    return Confirm(
        "Stop the run itself?",
        "The run stops at its next safe point for every attached face. "
        "To leave the run going, detach with q instead.",
        "Stop the run",
        danger=True,
    )


class StoryEditor(ModalScreen[dict[str, Any] | None]):
    """Edit (or add, when ``story`` is None) title, description, criteria and priority.

    Returns only the fields that changed (all of them for a new story), or None on cancel.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save", id="story_editor_save"),
        Binding("escape", "cancel", "Cancel", id="story_editor_cancel"),
    ]
    DEFAULT_CSS = """
    StoryEditor { align: center middle; }
    StoryEditor > Vertical {
        width: 90%; max-width: 100; height: auto; max-height: 95%;
        border: heavy $accent; background: $surface; padding: 0 1;
    }
    StoryEditor TextArea { height: 5; }
    StoryEditor #story-criteria { height: 6; }
    StoryEditor Horizontal { height: auto; }
    StoryEditor Button { margin-right: 2; }
    """

    def __init__(self, story: Story | None, default_priority: float = 1) -> None:
        super().__init__()
        self.story = story
        self._default_priority = default_priority

    def compose(self) -> ComposeResult:
        story = self.story
        heading = f"Edit {story.key}" if story else "New story"
        with Vertical() as box:
            box.border_title = heading
            yield Label("Title")
            yield Input(story.title if story else "", id="story-title")
            yield Label("Priority (lower = more urgent; empty = after every numbered story)")
            priority = story.priority if story else self._default_priority
            yield Input(
                "" if priority is None else str(priority), id="story-priority", type="number"
            )
            yield Label("Description")
            yield TextArea(story.description if story else "", id="story-description")
            yield Label("Acceptance criteria (one per line)")
            yield TextArea("\n".join(story.criteria) if story else "", id="story-criteria")
            with Horizontal():
                yield Button("Save (ctrl+s)", variant="primary", id="save")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#story-title", Input).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.action_save()
        else:
            self.action_cancel()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_save()

    def values(self) -> dict[str, Any] | None:
        """The form as PRD fields, or None (with a notification) when it is not valid."""
        title = self.query_one("#story-title", Input).value.strip()
        if not title:
            self.notify("A story needs a title.", severity="error")
            return None
        raw_priority = self.query_one("#story-priority", Input).value.strip()
        priority = _number(raw_priority)
        if raw_priority and priority is None:
            self.notify("Priority is a number (lower = more urgent).", severity="error")
            return None
        criteria = self.query_one("#story-criteria", TextArea).text.splitlines()
        return {
            "title": title,
            "priority": priority,
            "description": self.query_one("#story-description", TextArea).text.strip(),
            "acceptanceCriteria": [c.strip() for c in criteria if c.strip()],
        }

    def action_save(self) -> None:
        values = self.values()
        if values is None:
            return
        if self.story is not None:
            current = {**self.story.model_dump(), "acceptanceCriteria": self.story.criteria}
            values = {k: v for k, v in values.items() if current.get(k) != v}
        elif values["priority"] is None:
            del values["priority"]
        self.dismiss(values)

    def action_cancel(self) -> None:
        self.dismiss(None)


def _number(text: str) -> int | float | None:
    """A priority as typed: whole numbers stay integers; anything not finite is refused."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value and abs(value) != float("inf") else None
