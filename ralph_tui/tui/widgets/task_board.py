"""The Tasks panel: the PRD as a board, in the order the loop will pick stories.

The board keeps the run's view of each story (running, blocked, skipped, cost so far) from the
engine's events (``apply``) and redraws only the cells an event changes; the PRD itself is
re-read by the app only when the engine says it changed (``PrdChanged``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import ClassVar, Literal

from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.widgets import DataTable

from ralph_tui.events import (
    Escalated,
    EscalationAnswered,
    Event,
    IterationFinished,
    IterationStarted,
    UsageReported,
)
from ralph_tui.prd.model import Prd, Story

StoryStatus = Literal["open", "running", "passed", "skipped", "blocked", "waiting"]

_STATUS_STYLE: dict[StoryStatus, str] = {
    "open": "",
    "running": "bold yellow",
    "passed": "green",
    "skipped": "dim",
    "blocked": "bold red",
    "waiting": "italic",
}


@dataclass(frozen=True)
class BoardState:
    """What the board needs besides the PRD: the run's view of each story."""

    running: str | None = None
    blocked: frozenset[str] = frozenset()
    skipped: frozenset[str] = frozenset()
    costs: Mapping[str, float] | None = None
    workers: Mapping[str, int] | None = None  # parallel runs: story -> the worker running it
    approvals: frozenset[str] = frozenset()  # parallel runs: stories waiting for approval
    nodes: Mapping[str, str] | None = None  # story id -> cluster node it runs on (Ray)


# The board's columns in the order shown, each with the board width (columns) it needs to be
# shown: on a narrow board the priority (the rows are already in pick order) and the cost (the
# status line has the run's) give their width to the titles.
_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("id", "ID", 0),
    ("priority", "Pri", 44),
    ("status", "Status", 0),
    ("cost", "Cost", 60),
    ("title", "Title", 0),
)


def columns_for(width: int) -> tuple[str, ...]:
    """The keys of the columns a board ``width`` columns wide shows."""
    return tuple(key for key, _, needs in _COLUMNS if width >= needs)


def board_order(prd: Prd) -> list[Story]:
    """Open stories in pick order, then the ones that pass: what the human reads top to bottom."""
    return prd.ordered()


def story_status(story: Story, state: BoardState, waiting_on: Sequence[str] = ()) -> StoryStatus:
    if story.passes:
        return "passed"
    if story.key in state.blocked:
        return "blocked"
    if story.key == state.running or story.key in (state.workers or {}):
        return "running"
    if story.key in state.skipped:
        return "skipped"
    if waiting_on:
        return "waiting"
    return "open"


class TaskBoard(DataTable[Text | str]):
    """Rows keyed by story id, so the cursor stays on a story when the PRD is reordered."""

    BINDINGS: ClassVar[list[BindingType]] = [
        # the app owns the PRD store, so the actions are the app's; bound here so the footer
        # shows them only while the board has focus
        Binding("plus,equals_sign", "app.move_story('up')", "Up", id="story_up", key_display="+"),
        Binding("minus", "app.move_story('down')", "Down", id="story_down", key_display="-"),
        # in the ? panel and the palette: the footer keeps its width for the run's own keys
        Binding("e", "app.edit_story", "Edit", id="story_edit", show=False),
        Binding("n", "app.new_story", "New", id="story_new", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.prd: Prd | None = None
        self.state = BoardState()
        self._order: list[str] = []
        self._followed: str | None = None  # where following the run last put the cursor
        self._shown: tuple[str, ...] = ()

    def on_mount(self) -> None:
        self._fit(columns_for(10_000))

    def on_resize(self, event: events.Resize) -> None:
        self._fit(columns_for(event.size.width))

    def _fit(self, shown: tuple[str, ...]) -> None:
        """Show ``shown`` columns (the title last: on a narrow screen it is the one cut)."""
        if shown == self._shown:
            return
        self._shown = shown
        labels = {key: label for key, label, _ in _COLUMNS}
        self.clear(columns=True)
        for key in shown:
            self.add_column(labels[key], key=key)
        if self.prd is not None:
            self.show(self.prd)

    @property
    def selected_story(self) -> str | None:
        if not self._order or not 0 <= self.cursor_row < len(self._order):
            return None
        return self._order[self.cursor_row]

    def show(self, prd: Prd, state: BoardState | None = None) -> None:
        """Rebuild the rows, keeping the cursor on the same story where it still exists."""
        keep = self.selected_story
        self.prd = prd
        if state is not None:
            self.state = state
        stories = board_order(prd)
        self._order = [s.key for s in stories]
        self.clear()
        for story in stories:
            cells = self._row(story)
            self.add_row(*(cells[key] for key in self._shown), key=story.key)
        if keep is not None and keep in self._order:
            self.move_cursor(row=self._order.index(keep), animate=False)

    def apply(self, event: Event) -> None:
        """The run's view of the stories moves with the engine's events; cells follow."""
        state = self.state
        match event:
            case UsageReported(story_id=key, cost_usd=cost):
                costs = dict(state.costs or {})
                costs[key] = costs.get(key, 0.0) + cost
                self._set(replace(state, costs=costs), key)
            case IterationStarted(story_id=key, node=node):
                before = state.running
                nodes = {**(state.nodes or {}), key: node} if node else state.nodes
                self._set(replace(state, running=key, nodes=nodes), key, before)
                # the cursor follows the run, unless the human has put it somewhere else
                if self.selected_story in (None, self._followed):
                    self.select_story(key)
                    self._followed = key
            case IterationFinished(story_id=key):
                self._set(replace(state, running=None), key)
            case Escalated(story_id=key):
                self._set(replace(state, blocked=state.blocked | {key}), key)
            case EscalationAnswered(story_id=key, skipped=skipped):
                skipped_now = state.skipped | {key} if skipped else state.skipped
                self._set(replace(state, blocked=state.blocked - {key}, skipped=skipped_now), key)
            case _:
                pass

    def show_workers(self, workers: Mapping[str, int], approvals: frozenset[str]) -> None:
        """Parallel runs: redraw the cells of stories whose worker or approval state changed."""
        before = self.state
        if dict(before.workers or {}) == dict(workers) and before.approvals == approvals:
            return
        changed = set(before.workers or {}) ^ set(workers) | before.approvals ^ approvals
        changed |= {k for k, w in workers.items() if (before.workers or {}).get(k) != w}
        self._set(replace(before, workers=dict(workers), approvals=approvals), *changed)

    def _set(self, state: BoardState, *keys: str | None) -> None:
        self.state = state
        if self.prd is None:
            return
        for key in keys:
            story = self.prd.story(key) if key is not None else None
            if story is None or key not in self._order:
                continue
            cells = self._row(story)
            self.update_cell(key, "status", cells["status"], update_width=True)
            if "cost" in self._shown:
                self.update_cell(key, "cost", cells["cost"], update_width=True)

    def focus_next_pick(self, skip: Collection[str] = ()) -> None:
        """Put the cursor on the story the loop will pick next."""
        if self.prd is None:
            return
        nxt = self.prd.next_story(skip)
        if nxt is not None and nxt.key in self._order:
            self.move_cursor(row=self._order.index(nxt.key), animate=False)
            self._followed = nxt.key

    def select_story(self, key: str) -> None:
        if key in self._order:
            self.move_cursor(row=self._order.index(key), animate=False)

    def _row(self, story: Story) -> dict[str, Text | str]:
        waiting_on = self.prd.waiting_on(story) if self.prd is not None else []
        status = story_status(story, self.state, waiting_on)
        label = f"waiting on {', '.join(waiting_on)}" if status == "waiting" else status
        cost = (self.state.costs or {}).get(story.key, 0.0)
        worker = (self.state.workers or {}).get(story.key)
        if worker is not None:  # parallel runs: which worker, and whether it waits for you
            waits = " approve?" if story.key in self.state.approvals else ""
            label = f"w{worker}{waits}"
        node = (self.state.nodes or {}).get(story.key)
        if node and (worker is not None or status == "running"):
            label += f" @ {node}"  # the Ray executor: the node it runs on
        return {
            # a story from a tracker: its id is a link to the issue (OSC 8, where supported)
            "id": Text(story.key, style=Style(bold=True, link=story.link)),
            "priority": Text(
                "" if story.priority is None else str(story.priority), justify="right"
            ),
            "status": Text(label, style=_STATUS_STYLE[status]),
            "cost": Text(f"${cost:.2f}" if cost else "-", justify="right"),
            "title": Text(story.title),  # PRD text: never parsed as markup
        }
