"""The status line: run state, iteration, story, elapsed time, tokens, cost, branch, and a
standing warning while the agent's commands run without a sandbox. A fallback run
(``fallback = [...]``) also names the agent at work, and while every agent is rate-limited
counts down to the reset the run waits for."""

from __future__ import annotations

from dataclasses import dataclass, replace

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

_STATE_STYLE = {
    "starting": "bold cyan",
    "running": "bold green",
    "pausing": "bold yellow",
    "paused": "bold yellow",
    "waiting": "bold magenta",
    "stopping": "bold red",
    "finished": "bold blue",
}


@dataclass(frozen=True)
class RunStatus:
    state: str = "starting"
    iteration: int = 0
    max_iterations: int = 0
    story: str = ""
    elapsed_s: float = 0.0
    tokens: int = 0
    cost_usd: float = 0.0
    note: str = ""
    branch: str = ""
    unsandboxed: bool = False  # the agent's commands run unconfined: say so on every frame
    agent: str = ""  # a fallback run: the agent working on the story now
    waiting: str = ""  # every agent rate-limited: "anthropic in 4m05s"

    def with_(self, **changes: object) -> RunStatus:
        return replace(self, **changes)  # type: ignore[arg-type]


def format_elapsed(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def format_tokens(tokens: int) -> str:
    if tokens >= 1_000_000:
        return f"{tokens / 1_000_000:.1f}M"
    if tokens >= 10_000:
        return f"{tokens / 1000:.0f}k"
    if tokens >= 1000:
        return f"{tokens / 1000:.1f}k"
    return str(tokens)


def status_text(status: RunStatus, width: int | None = None) -> Text:
    """The line; within ``width`` cells the story's title gives way first (down to its id),
    then the branch name, so state, cost and the rest stay on screen at 80 columns."""
    story, branch = status.story, status.branch
    text = _status_text(status, story, branch)
    if width is None or text.cell_len <= width:
        return text
    if story:
        spare = width - (_status_text(status, "x", branch).cell_len - 1)  # room for the story
        story_id = story.split(" ", 1)[0]
        cut = story[: max(spare - 1, len(story_id))].rstrip() + "…"
        story = cut if len(cut) < len(story) else story
        text = _status_text(status, story, branch)
    if text.cell_len > width and branch:
        spare = width - _status_text(status, story, "").cell_len - len(" │ ⎇ ")  # the name
        branch = branch[: max(spare - 1, 1)] + "…"
        text = _status_text(status, story, branch)
    return text


def _status_text(status: RunStatus, story: str, branch: str) -> Text:
    sep = (" │ ", "dim")
    iteration = (
        f"iteration {status.iteration}/{status.max_iterations}"
        if status.max_iterations
        else f"iteration {status.iteration}"
    )
    text = Text.assemble((f"● {status.state}", _STATE_STYLE.get(status.state, "bold")))
    if status.waiting:
        text.append_text(Text.assemble(sep, (f"⏸ rate-limited: {status.waiting}", "bold yellow")))
    text.append_text(Text.assemble(sep, iteration))
    if status.agent:
        text.append_text(Text.assemble(sep, (status.agent, "magenta")))
    text.append_text(
        Text.assemble(
            sep,
            (story or "no story yet", "bold" if story else "dim"),
            sep,
            format_elapsed(status.elapsed_s),
            sep,
            f"{format_tokens(status.tokens)} tok",
            sep,
            f"${status.cost_usd:.4f}",
        )
    )
    if branch:
        text.append_text(Text.assemble(sep, (f"⎇ {branch}", "cyan")))
    if status.unsandboxed:
        text.append_text(Text.assemble(sep, ("⚠ no sandbox", "bold red")))
    if status.note:
        text.append_text(Text.assemble(sep, (status.note, "italic")))
    text.no_wrap = True
    text.overflow = "ellipsis"
    return text


class StatusLine(Widget):
    """Draws ``status``; setting it (a frozen ``RunStatus``) repaints only when it changed."""

    DEFAULT_CSS = """
    StatusLine { height: 1; padding: 0 1; background: $panel; }
    """

    status: reactive[RunStatus] = reactive(RunStatus, layout=False)

    def render(self) -> Text:
        return status_text(self.status, self.content_size.width or None)
