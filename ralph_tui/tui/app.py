"""The Textual app: four panels over one engine run, and the bars where the human decides.

The app is a thin face: it builds an ``Engine`` with ``TuiSupervisor`` and an ``EventBatcher``
sink, runs ``engine.run()`` in a named worker on the app's own loop, and turns batches of events
into widget updates. Every decision the engine waits for is a future the bars resolve.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input
from textual.worker import Worker, WorkerState

from ralph_tui.config import RalphConfig
from ralph_tui.errors import RalphError
from ralph_tui.events import (
    ApprovalDecided,
    ApprovalNeeded,
    Committed,
    Escalated,
    EscalationAnswered,
    Event,
    GateFinished,
    GateStarted,
    IterationFinished,
    IterationStarted,
    Notice,
    PrdChanged,
    RunFinished,
    RunStarted,
    RunStateChanged,
    TextDelta,
    ToolCall,
    ToolResult,
    UsageReported,
)
from ralph_tui.iteration import Agent
from ralph_tui.parallel import ParallelEngine, build_engine
from ralph_tui.prd import Prd
from ralph_tui.run_handle import RunFactory, RunHandle
from ralph_tui.supervisor import (
    ApprovalDecision,
    ApprovalRequest,
    EscalationAnswer,
    EscalationRequest,
)
from ralph_tui.tui.bars.approval import ApprovalBar
from ralph_tui.tui.bars.escalation import EscalationBar
from ralph_tui.tui.batcher import EventBatcher
from ralph_tui.tui.screens import ConfirmQuit, StoryEditor
from ralph_tui.tui.supervisor import TuiSupervisor
from ralph_tui.tui.widgets.diff_view import DiffView
from ralph_tui.tui.widgets.gates_panel import GatesPanel
from ralph_tui.tui.widgets.status_line import RunStatus, StatusLine
from ralph_tui.tui.widgets.task_board import BoardState, TaskBoard
from ralph_tui.tui.widgets.transcript import Transcript
from ralph_tui.tui.workers import WorkerTracker
from ralph_tui.worktrees import worker_diff

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 0.04  # ~25 widget updates a second, however fast the agent streams
DIFF_DEBOUNCE_S = 0.25
# parallel runs: events that only the selected worker's panes show (the board sees them all)
_WORKER_DETAIL = (
    TextDelta, ToolCall, ToolResult, GateStarted, GateFinished, IterationStarted,
    IterationFinished, ApprovalNeeded, ApprovalDecided, Committed, Notice,
)  # fmt: skip
# tool results after which the working tree may have changed
_EDITING_TOOLS = frozenset({"str_replace_based_edit_tool", "bash", "Write", "Edit", "MultiEdit"})


class Panel(Vertical):
    """A titled, maximisable frame around one panel widget."""

    ALLOW_MAXIMIZE = True

    def __init__(self, title: str, *, id: str) -> None:
        super().__init__(id=id, classes="panel")
        self.border_title = title


class RalphApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "ralph-tui"
    ENABLE_COMMAND_PALETTE = True

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "approve", "Approve", id="approve"),
        Binding("r", "reject", "Reject", id="reject"),
        Binding("d", "discard", "Discard", id="discard"),
        Binding("s", "skip", "Skip story", id="skip"),
        Binding("o", "open_approval", "Open approval", id="open_approval"),
        Binding("escape", "leave_box", "Leave box", id="leave_box"),
        Binding("p", "toggle_pause", "Pause/resume", id="pause"),
        Binding("m", "toggle_maximize", "Maximize", id="maximize"),
        Binding("q", "quit", "Quit", id="quit"),
        Binding("ctrl+q", "quit", "Quit", id="quit_ctrl", show=False, priority=True),
    ]

    def __init__(
        self,
        workspace: Path,
        config: RalphConfig,
        *,
        agent: Agent | None = None,
        allow_dirty: bool = False,
        clock: Callable[[], float] = time.monotonic,
        autostart: bool = True,
        run_id: str | None = None,
        run_factory: RunFactory | None = None,
    ) -> None:
        super().__init__()
        if agent is None and run_factory is None:
            from ralph_tui.agents import create_agent

            agent = create_agent(config, workspace)
        self.config = config
        self.workspace = workspace
        self.clock = clock
        self.autostart = autostart
        self.batcher = EventBatcher(on_first=self._schedule_flush)
        self.supervisor = TuiSupervisor(self._on_approval, self._on_escalation, self._on_settled)
        # run_factory: the same app over a served or an attached run (ralph_tui/server/)
        self.engine: RunHandle = (
            run_factory(self.supervisor, self.batcher)
            if run_factory is not None
            else build_engine(
                workspace,
                config,
                agent,
                self.supervisor,
                self.batcher,
                allow_dirty=allow_dirty,
                run_id=run_id,
            )
        )
        if self.parallel is not None:
            self.parallel.approvals_automatic = False  # a human approves here, in any order
        self.status = RunStatus(max_iterations=config.max_iterations)
        self.exit_code: int | None = None
        self.error_message: str | None = None
        self.events_seen = 0
        self._started_at: float | None = None
        self._finished_at: float | None = None
        self._run_started = False
        self._quitting = False
        self._running_story: str | None = None
        self._story_nodes: dict[str, str] = {}  # story id -> cluster node of its latest iteration
        self._blocked: set[str] = set()
        self._costs: dict[str, float] = {}
        self._flush_scheduled = False
        self._diff_timer_pending = False
        self._loop_worker: Worker[int] | None = None
        self.worker_view = WorkerTracker()

    @property
    def parallel(self) -> ParallelEngine | None:
        """The workers' engine, when this face drives one (directly or served on a socket)."""
        inner = getattr(self.engine, "engine", self.engine)  # ServedRun wraps the engine
        return inner if isinstance(inner, ParallelEngine) else None

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield StatusLine(id="status")
        with Horizontal(id="panels"):
            with Vertical(id="left"):
                with Panel("Tasks", id="tasks-panel"):
                    yield TaskBoard(id="tasks")
                with Panel("Gates", id="gates-panel"):
                    yield GatesPanel(id="gates")
            with Vertical(id="right"):
                with Panel("Transcript", id="transcript-panel"):
                    yield Transcript(id="transcript")
                with Panel("Diff", id="diff-panel"):
                    yield DiffView(id="diff")
        yield ApprovalBar(id="approval")
        yield EscalationBar(id="escalation")
        yield Footer()

    @property
    def board(self) -> TaskBoard:
        return self.query_one("#tasks", TaskBoard)

    @property
    def transcript(self) -> Transcript:
        return self.query_one("#transcript", Transcript)

    @property
    def gates(self) -> GatesPanel:
        return self.query_one("#gates", GatesPanel)

    @property
    def diff(self) -> DiffView:
        return self.query_one("#diff", DiffView)

    @property
    def approval_bar(self) -> ApprovalBar:
        return self.query_one("#approval", ApprovalBar)

    @property
    def escalation_bar(self) -> EscalationBar:
        return self.query_one("#escalation", EscalationBar)

    def on_mount(self) -> None:
        self._reload_board()
        self.board.focus()
        self.board.focus_next_pick(self.engine.skipped)
        self._show_status()
        self.set_interval(1.0, self._show_status)
        if self.autostart:
            self.start_run()

    def start_run(self) -> None:
        self._loop_worker = self.run_engine()

    # ------------------------------------------------------------------ the loop worker

    @work(exclusive=True, group="loop", exit_on_error=False, name="loop")
    async def run_engine(self) -> int:
        return await self.engine.run()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place worker outcomes land: show failures, never crash the app."""
        worker = event.worker
        if event.state == WorkerState.ERROR:
            error = worker.error
            if isinstance(error, RalphError):
                message, code = str(error), error.exit_code
            else:
                log.error("worker %s failed", worker.name, exc_info=error)
                message, code = f"internal error in {worker.name}: {error!r}", 1
            if worker.group != "loop":
                self.notify(message, severity="error", timeout=8)
                return
            self.flush_events()
            self.error_message = message
            self.exit_code = code
            self._finished("error", message)
            if not self._run_started or self._quitting:
                # preflight refused the run (dirty tree, bad PRD): the CLI prints the one line
                self._exit_with(code)
        elif event.state == WorkerState.SUCCESS and worker.group == "loop":
            self.flush_events()
            result = worker.result
            self.exit_code = int(result) if isinstance(result, int) else 0
            if self._quitting:
                self._exit_with(self.exit_code)
        elif event.state == WorkerState.CANCELLED and worker.group == "loop":
            self.exit_code = 130
            if self._quitting:
                self._exit_with(130)

    @property
    def run_active(self) -> bool:
        worker = self._loop_worker
        return worker is not None and worker.state in (WorkerState.PENDING, WorkerState.RUNNING)

    # ------------------------------------------------------------------ events -> widgets

    def _schedule_flush(self) -> None:
        # thread-safe: some engine callbacks may come from gate or git threads
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None and loop is self._loop:
            self._arm_flush()
        elif self._loop is not None:
            self._loop.call_soon_threadsafe(self._arm_flush)

    def _arm_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.set_timer(FLUSH_INTERVAL_S, self.flush_events)

    def flush_events(self) -> None:
        """Apply every queued event to the widgets; cheap when nothing is queued."""
        self._flush_scheduled = False
        events = self.batcher.drain()
        if not events:
            return
        board_dirty = False
        for event in events:
            self.events_seen += 1
            self.worker_view.observe(event)
            if isinstance(event, ApprovalNeeded | ApprovalDecided):
                self._show_waiting_count()
            if not self.worker_view.shows(event) and isinstance(event, _WORKER_DETAIL):
                board_dirty = True  # another worker's story moved on: only the board shows it
                continue
            board_dirty |= self._apply(event)
        if board_dirty:
            self._reload_board()
        self._show_status()

    def _apply(self, event: Event) -> bool:
        """One event; returns True when the board must be redrawn."""
        transcript = self.transcript
        if isinstance(event, TextDelta):
            transcript.add_text(event.text)
        elif isinstance(event, ToolCall):
            transcript.add_tool_call(event.name, event.input)
        elif isinstance(event, ToolResult):
            transcript.add_tool_result(event.name, event.content, event.is_error)
            if event.name in _EDITING_TOOLS:
                self.request_diff()
        elif isinstance(event, UsageReported):
            self._costs[event.story_id] = self._costs.get(event.story_id, 0.0) + event.cost_usd
            tokens = self.status.tokens + event.input_tokens + event.output_tokens
            self.status = self.status.with_(
                tokens=tokens, cost_usd=self.status.cost_usd + event.cost_usd
            )
            return True
        elif isinstance(event, GateStarted):
            self.gates.gate_started(event)
        elif isinstance(event, GateFinished):
            self.gates.gate_finished(event)
            style = "green" if event.state == "passed" else "red"
            transcript.add_line(
                Text.assemble(
                    ("gate ", "bold"),
                    (event.name, "bold"),
                    ": ",
                    (event.state, f"bold {style}"),
                    f" in {event.duration_s:.1f}s",
                    (f" — {event.summary}" if event.summary else "", "dim"),
                )
            )
        elif isinstance(event, IterationStarted):
            self._running_story = event.story_id
            if event.node:  # the Ray executor: the board says where it runs
                self._story_nodes[event.story_id] = event.node
            self.gates.reset()
            transcript.add_rule(f"Iteration {event.iteration} · {event.story_id} {event.title}")
            self.status = self.status.with_(
                iteration=event.iteration, story=f"{event.story_id} {event.title}"
            )
            self.request_diff()
            return True
        elif isinstance(event, IterationFinished):
            self._running_story = None
            style = "green" if event.outcome == "committed" else "yellow"
            line = Text.assemble(
                ("■ iteration ", "bold"),
                (f"{event.iteration} {event.outcome}", f"bold {style}"),
                (f" — {event.message}" if event.message else "", "dim"),
            )
            if event.patch_path:
                line.append(f" (patch: {event.patch_path})", style="dim")
            transcript.add_line(line)
            self.request_diff()
            return True
        elif isinstance(event, ApprovalNeeded):
            transcript.add_line(
                Text(f"? approval needed for {event.story_id}: {event.title}", style="bold yellow")
            )
        elif isinstance(event, ApprovalDecided):
            note = f": {event.feedback}" if event.feedback else ""
            transcript.add_line(Text(f"» {event.decision}{note}", style="bold yellow"))
        elif isinstance(event, Committed):
            subject = event.message.splitlines()[0] if event.message else ""
            transcript.add_line(
                Text.assemble(
                    ("● committed ", "bold green"), (event.sha[:10], "bold"), " ", subject
                )
            )
            self.request_diff()
            return True
        elif isinstance(event, Escalated):
            self._blocked.add(event.story_id)
            transcript.add_line(Text(f"? escalated: {event.question}", style="bold red"))
            return True
        elif isinstance(event, EscalationAnswered):
            self._blocked.discard(event.story_id)
            what = "skipped" if event.skipped else f"answered: {event.answer}"
            transcript.add_line(Text(f"» {what}", style="bold yellow"))
            return True
        elif isinstance(event, PrdChanged):
            return True
        elif isinstance(event, RunStateChanged):
            self.status = self.status.with_(state=event.state)
            self.refresh_bindings()
        elif isinstance(event, RunStarted):
            self._run_started = True
            self._started_at = self.clock()
            self.status = self.status.with_(max_iterations=event.max_iterations)
            transcript.add_line(
                Text(f"run {event.run_id} · {event.agent} · {event.model}", style="dim")
            )
        elif isinstance(event, RunFinished):
            self._finished("finished", event.reason)
            self.exit_code = event.exit_code
            transcript.add_line(
                Text(f"■ run finished (exit {event.exit_code}): {event.reason}", style="bold blue")
            )
            self.notify(f"Run finished: {event.reason}", timeout=8)
            return True
        elif isinstance(event, Notice):
            style = {"info": "dim", "warning": "yellow", "error": "bold red"}[event.level]
            transcript.add_line(Text(f"! {event.message}", style=style))
            if event.level != "info":
                self.notify(event.message, severity=event.level)
        return False

    def _finished(self, state: str, note: str) -> None:
        self._finished_at = self.clock()
        self._running_story = None
        self.status = self.status.with_(state=state, note=note)
        self._show_status()
        self.refresh_bindings()

    def _show_status(self) -> None:
        if self._started_at is not None:
            end = self._finished_at if self._finished_at is not None else self.clock()
            self.status = self.status.with_(elapsed_s=max(0.0, end - self._started_at))
        self.query_one("#status", StatusLine).show(self.status)

    def _board_state(self) -> BoardState:
        return BoardState(
            running=self._running_story,
            blocked=frozenset(self._blocked),
            skipped=frozenset(self.engine.skipped),
            costs=dict(self._costs),
            workers=self.worker_view.running(),
            approvals=frozenset(self.parallel.approvals.waiting_ids() if self.parallel else ()),
            nodes=dict(self._story_nodes),
        )

    def _reload_board(self, prd: Prd | None = None) -> None:
        if prd is None:
            try:
                prd = self.engine.store.load()
            except RalphError as exc:
                # an external edit may leave the file half-written or invalid for a moment
                self.board.border_subtitle = "PRD unreadable"
                self.notify(str(exc), severity="error", timeout=6)
                return
        self.board.border_subtitle = ""
        self.board.show(prd, self._board_state())
        self.query_one(
            "#tasks-panel", Panel
        ).border_subtitle = f"{sum(s.passes for s in prd.userStories)}/{len(prd.userStories)} pass"

    # ------------------------------------------------------------------ diff

    def request_diff(self) -> None:
        """Refresh the diff soon; edits come in bursts, so one refresh covers a burst."""
        if self._diff_timer_pending:
            return
        self._diff_timer_pending = True
        self.set_timer(DIFF_DEBOUNCE_S, self._refresh_diff_now)

    def _refresh_diff_now(self) -> None:
        self._diff_timer_pending = False
        self.load_diff()

    @work(exclusive=True, group="diff", exit_on_error=False, name="diff")
    async def load_diff(self) -> None:
        story = self.worker_view.story_of.get(self.worker_view.selected)
        parallel = self.parallel
        if story is not None and parallel is not None:
            # parallel runs: the selected worker's change in its worktree
            files = await asyncio.to_thread(worker_diff, parallel.root, story)
        else:
            files = await asyncio.to_thread(self.engine.git.diff)
        self.diff.show_files(files)
        self.query_one("#diff-panel", Panel).border_subtitle = (
            f"{len(files)} files +{sum(f.additions for f in files)} "
            f"-{sum(f.deletions for f in files)}"
            if files
            else ""
        )

    # ------------------------------------------------------------------ supervisor callbacks

    def _on_approval(self, request: ApprovalRequest) -> None:
        self.flush_events()
        if request.worker and request.worker != self.worker_view.selected:
            self._show_worker(request.worker)
        self.gates.show_results(request.gates)
        self.approval_bar.open(request)
        self.load_diff()
        self.refresh_bindings()
        self.bell()
        more = f" ({request.waiting} more waiting: o opens one)" if request.waiting else ""
        self.notify(
            f"Approve {request.story_id}? a approve · r reject · d discard{more}", timeout=6
        )
        self._reload_board()

    def _on_escalation(self, request: EscalationRequest) -> None:
        self.flush_events()
        self._blocked.add(request.story_id)
        self._reload_board()
        self.escalation_bar.open(request)
        self.refresh_bindings()
        self.bell()
        self.notify(
            f"{request.story_id}: the agent needs an answer.", severity="warning", timeout=6
        )

    def _on_settled(self) -> None:
        if not self.is_running:  # the app is closing; nothing left to tidy on screen
            return
        had_focus_in_bar = isinstance(self.focused, Input)
        self.approval_bar.close()
        self.escalation_bar.close()
        if had_focus_in_bar or self.focused is None:
            self.board.focus()
        self.refresh_bindings()

    # ------------------------------------------------------------------ actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        sup = self.supervisor
        if action in ("approve", "discard"):
            return sup.approval is not None
        if action == "reject":
            return sup.approval is not None and not self.approval_bar.rejecting
        if action == "skip":
            return sup.escalation is not None
        if action == "open_approval":
            return self.parallel is not None and self.parallel.approvals.waiting > 0
        if action == "leave_box":
            return isinstance(self.focused, Input)
        if action == "toggle_pause":
            return self.run_active and not self._quitting
        return True

    # ------------------------------------------------------------------ parallel workers

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """Moving the board's cursor to a running story shows its worker in the panes."""
        if event.data_table is not self.board or self.board.selected_story is None:
            return
        worker = self.worker_view.worker_of(self.board.selected_story)
        if worker is not None and worker != self.worker_view.selected:
            self._show_worker(worker)

    def _show_waiting_count(self) -> None:
        if self.parallel is not None and self.approval_bar.is_open:
            self.approval_bar.show_waiting(max(0, self.parallel.approvals.waiting - 1))

    def _show_worker(self, worker: int) -> None:
        self.transcript.clear()
        self.gates.reset()
        for event in self.worker_view.select(worker):
            self._apply(event)
        self.query_one("#transcript-panel", Panel).border_subtitle = f"worker {worker}"
        self.request_diff()

    def action_open_approval(self) -> None:
        """Show the approval of the story under the board's cursor (parallel runs)."""
        story = self.board.selected_story
        engine = self.parallel
        if engine is None or story is None:
            return
        if not engine.approvals.select(story):
            self.notify(f"{story} is not waiting for approval.", severity="warning")

    def action_approve(self) -> None:
        self.supervisor.decide(ApprovalDecision.approve())

    def action_reject(self) -> None:
        if self.supervisor.approval is not None:
            self.approval_bar.start_reject()
            self.refresh_bindings()

    def on_approval_bar_feedback_submitted(self, message: ApprovalBar.FeedbackSubmitted) -> None:
        self.supervisor.decide(ApprovalDecision.reject(message.feedback))

    def action_discard(self) -> None:
        self.supervisor.decide(ApprovalDecision.discard())

    def action_skip(self) -> None:
        self.supervisor.reply(EscalationAnswer("skip"))

    def on_escalation_bar_answer_submitted(self, message: EscalationBar.AnswerSubmitted) -> None:
        self.supervisor.reply(EscalationAnswer("answer", message.answer))

    def action_leave_box(self) -> None:
        if self.approval_bar.rejecting:
            self.approval_bar.cancel_reject()
        self.board.focus()
        self.refresh_bindings()

    def action_toggle_pause(self) -> None:
        if self.engine.paused:
            self.engine.resume()
            self.notify("Resumed.")
        else:
            self.engine.pause()
            self.notify("Pausing at the next safe point.")

    def action_toggle_maximize(self) -> None:
        screen = self.screen
        if screen.maximized is not None:
            screen.minimize()
        elif screen.focused is not None:
            screen.maximize(screen.focused)

    async def action_quit(self) -> None:
        if not self.run_active:
            self._exit_with(self.exit_code if self.exit_code is not None else 0)
            return
        if self._quitting:
            self.notify("Stopping at the next safe point…")
            return
        self.push_screen(ConfirmQuit(), self._quit_confirmed)

    def _exit_with(self, code: int) -> None:
        """Exit with the run's exit code as both the app's result and its return code."""
        self.exit(code, return_code=code)

    def _quit_confirmed(self, yes: bool | None) -> None:
        if not yes:
            return
        self.stop_and_quit()

    def stop_and_quit(self) -> None:
        """Stop at the engine's next safe point, then exit with the run's exit code."""
        self._quitting = True
        self.engine.request_stop()
        self.supervisor.settle_for_quit()
        self.status = self.status.with_(state="stopping", note="stopping at the next safe point")
        self._show_status()
        self.refresh_bindings()
        if not self.run_active:
            self._exit_with(self.exit_code if self.exit_code is not None else 130)

    def action_move_story(self, direction: str) -> None:
        key = self.board.selected_story
        if key is None or direction not in ("up", "down"):
            return
        try:
            prd = self.engine.store.move_story(key, "up" if direction == "up" else "down")
        except RalphError as exc:
            self.notify(str(exc), severity="error")
            return
        self._reload_board(prd)
        self.board.select_story(key)

    def action_edit_story(self) -> None:
        key = self.board.selected_story
        prd = self.board.prd
        story = prd.story(key) if prd is not None and key is not None else None
        if story is None:
            return

        def saved(changes: dict[str, Any] | None) -> None:
            if not changes:
                return
            try:
                self._reload_board(self.engine.store.update_story(story.key, changes))
            except RalphError as exc:
                self.notify(str(exc), severity="error")
                return
            self.notify(f"Saved {story.key}.")

        self.push_screen(StoryEditor(story), saved)

    def action_new_story(self) -> None:
        prd = self.board.prd
        lowest = prd.next_priority() if prd else 1

        def saved(fields: dict[str, Any] | None) -> None:
            if not fields:
                return
            try:
                story = self.engine.store.add_story(fields)
            except RalphError as exc:
                self.notify(str(exc), severity="error")
                return
            self._reload_board()
            self.board.select_story(story.key)
            self.notify(f"Added {story.key}.")

        self.push_screen(StoryEditor(None, lowest), saved)

    # ------------------------------------------------------------------ command palette

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        commands: list[tuple[str, str, str]] = [
            ("Approve", "Approve and commit the change waiting for approval", "approve"),
            ("Reject", "Reject the change with feedback for the agent", "reject"),
            ("Discard", "Discard the change; the story stays open", "discard"),
            ("Skip story", "Skip the escalated story for this run", "skip"),
            ("Pause / resume", "Pause or resume the loop at the next safe point", "toggle_pause"),
            ("Maximize panel", "Maximize or restore the focused panel", "toggle_maximize"),
        ]
        for title, help_text, action in commands:
            if self.check_action(action, ()):
                yield SystemCommand(title, help_text, self._runner(action))
        story_commands = [
            ("Move story up", "Pick the selected story earlier", "move_story('up')"),
            ("Move story down", "Pick the selected story later", "move_story('down')"),
            ("Edit story", "Edit the selected story", "edit_story"),
            ("New story", "Add a story to the PRD", "new_story"),
        ]
        for title, help_text, action in story_commands:
            yield SystemCommand(title, help_text, self._runner(action))

    def _runner(self, action: str) -> Callable[[], Any]:
        async def run() -> None:
            await self.run_action(action)

        return run


def run_tui(
    workspace: Path,
    config: RalphConfig,
    *,
    allow_dirty: bool = False,
    run_factory: RunFactory | None = None,
) -> int:
    """``ralph-tui run`` without ``--headless``; returns the exit code of SPEC section 7."""
    app = RalphApp(workspace, config, allow_dirty=allow_dirty, run_factory=run_factory)
    code = app.run()
    if app.error_message:
        print(app.error_message, file=sys.stderr)
    if code is None:
        return app.exit_code if app.exit_code is not None else 1
    return code
