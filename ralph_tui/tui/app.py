"""The Textual app: four panels over one engine run, and the bars where the human decides.

The app is a thin face: it gets a ``RunHandle`` (``runs.build_run`` with ``TuiSupervisor`` and
an ``EventBatcher`` sink, or the factory of a served or attached run), runs it in a named worker
on the app's own loop, and turns batches of events into widget updates. Every decision the
engine waits for is a future the bars resolve.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar, Literal

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.events import DeliveryComplete, Resize
from textual.notifications import SeverityLevel
from textual.reactive import reactive
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Input, TextArea
from textual.worker import Worker, WorkerState

from ralph_tui.agents.fallback import format_wait
from ralph_tui.approvals import approvals_automatic
from ralph_tui.config import RalphConfig
from ralph_tui.errors import RalphError
from ralph_tui.events import (
    AgentsLimited,
    AgentSwitched,
    ApprovalDecided,
    ApprovalNeeded,
    ApprovalsWaiting,
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
from ralph_tui.exit_codes import ExitCode
from ralph_tui.iteration import Agent
from ralph_tui.prd.model import Prd, Story
from ralph_tui.run_handle import RunFactory, RunHandle
from ralph_tui.runs import RunSpec, build_run
from ralph_tui.safety.text import escape_controls
from ralph_tui.supervisor import (
    ApprovalDecision,
    ApprovalRequest,
    EscalationAnswer,
    EscalationRequest,
    QuestionKind,
)
from ralph_tui.tui.bars.approval import ApprovalBar
from ralph_tui.tui.bars.escalation import EscalationBar
from ralph_tui.tui.batcher import EventBatcher, FlushPacer, SetTimer
from ralph_tui.tui.screens import StoryEditor, confirm_quit
from ralph_tui.tui.supervisor import TuiSupervisor
from ralph_tui.tui.tuning import GilLending, freeze_heap_once
from ralph_tui.tui.widgets.diff_view import DiffView
from ralph_tui.tui.widgets.footer import SteadyFooter
from ralph_tui.tui.widgets.gates_panel import GatesPanel
from ralph_tui.tui.widgets.status_line import RunStatus, StatusLine
from ralph_tui.tui.widgets.task_board import BoardState, TaskBoard
from ralph_tui.tui.widgets.transcript import Transcript
from ralph_tui.tui.workers import WorkerTracker

log = logging.getLogger(__name__)

# 10 widget updates a second, however fast the agent streams: each update costs a paint of the
# transcript's region (about 10 ms on a loaded 2-core machine), so 20 a second spent twice the
# UI time for text that reads no differently; keys are handled between flushes, not by them
FLUSH_INTERVAL_S = 0.1
DIFF_DEBOUNCE_S = 0.25
COMPACT_FOOTER_BELOW = 120  # columns
# parallel runs: events that only the selected worker's panes show (the board sees them all); a
# worker's question and its answer are its story's conversation (the bar names the story)
_WORKER_DETAIL = (
    TextDelta, ToolCall, ToolResult, GateStarted, GateFinished, IterationStarted,
    IterationFinished, ApprovalNeeded, ApprovalDecided, Committed, Notice, Escalated,
    EscalationAnswered,
)  # fmt: skip


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
        Binding("p", "toggle_pause", "Pause", id="pause"),
        Binding("m", "toggle_maximize", "Maximize", id="maximize"),
        # moving through the diff (DiffView) from any panel. Priority: acted on as the key is
        # read, so the keys typed right after go to the pane it focused; never in a text box.
        Binding("right_square_bracket", "diff_file(1)", "Next file", show=False, priority=True),
        Binding("left_square_bracket", "diff_file(-1)", "Prev file", show=False, priority=True),
        Binding("right_curly_bracket", "diff_hunk(1)", "Next hunk", show=False, priority=True),
        Binding("left_curly_bracket", "diff_hunk(-1)", "Prev hunk", show=False, priority=True),
        Binding("q", "quit", "Quit", id="quit"),
        Binding("question_mark,f1", "toggle_help", "Keys", id="help", show=False),
        Binding("ctrl+q", "quit", "Quit", id="quit_ctrl", show=False, priority=True),
        # as headless: the first stops at the next safe point, the second at once
        Binding("ctrl+c", "interrupt", "Stop", id="interrupt", show=False),
    ]

    status: reactive[RunStatus] = reactive(RunStatus, init=False, repaint=False)
    """The run as the status line shows it: state, iteration, story, time, tokens, cost."""

    def __init__(
        self,
        workspace: Path,
        config: RalphConfig,
        *,
        agent: Agent | None = None,
        allow_dirty: bool = False,
        clock: Callable[[], float] = time.monotonic,
        flush_timers: SetTimer | None = None,
        autostart: bool = True,
        run_id: str | None = None,
        run_factory: RunFactory | None = None,
    ) -> None:
        freeze_heap_once("start")
        super().__init__()
        if agent is None and run_factory is None:
            from ralph_tui.agents import create_agent

            agent = create_agent(config, workspace)
        self.config = config
        self.workspace = workspace
        self.clock = clock
        self.autostart = autostart
        self.pacer = FlushPacer(
            self.flush_events,
            interval=FLUSH_INTERVAL_S,
            clock=clock,
            set_timer=flush_timers or (lambda delay, callback: self.set_timer(delay, callback)),
            call_soon=self.call_next,
        )
        self.batcher = EventBatcher(on_first=self.pacer.arm_soon, on_urgent=self.pacer.urgent_soon)
        self.supervisor = TuiSupervisor(
            self._on_approval,
            self._on_escalation,
            self._on_settled,
            auto_approve=approvals_automatic(config),
        )
        # run_factory: the same app over a served or an attached run (ralph_tui/server/)
        self.engine: RunHandle = (
            run_factory(self.supervisor, self.batcher)
            if run_factory is not None
            else build_run(
                RunSpec(workspace, config, agent, allow_dirty, run_id),
                self.supervisor,
                self.batcher,
            )
        )
        self.set_reactive(RalphApp.status, RunStatus(max_iterations=config.max_iterations))
        self.exit_code: int | None = None
        self.error_message: str | None = None
        self._started_at: float | None = None
        self._finished_at: float | None = None
        self._limited_until: tuple[float, str] | None = None  # every fallback agent limited
        self._run_started = False
        self._quitting = False
        self._diff_timer_pending = False
        self._loop_worker: Worker[int] | None = None
        self._gil = GilLending()
        self._prd_edit_lock = asyncio.Lock()
        self.worker_view = WorkerTracker()
        self._waiting: tuple[str, ...] = ()  # stories whose approval waits (parallel runs)
        self._pinned_notice: str | None = None  # the approval whose pinned panes were said

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Toasts carry PRD, agent and gate text, so they are plain text unless asked otherwise."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def deliver_screenshot(
        self, filename: str | None = None, path: str | None = None, time_format: str | None = None
    ) -> str | None:
        """The palette's Screenshot: into ``.ralph/screenshots`` of the workspace (always
        there and writable), not ~/Downloads, which many machines do not have (it failed)."""
        if path is None:
            folder = self.workspace / ".ralph" / "screenshots"
            try:
                folder.mkdir(parents=True, exist_ok=True)
                path = str(folder)
            except OSError as exc:  # a read-only or vanished workspace: the current folder
                log.warning("screenshots go to the current folder: %s", exc)
                path = "."
        return super().deliver_screenshot(filename, path, time_format)

    @on(DeliveryComplete)
    def _on_delivery_complete(self, event: DeliveryComplete) -> None:
        """Textual's own toast for this carries markup; toasts here are plain text."""
        event.prevent_default()  # not Textual's handler as well
        if event.name == "screenshot":
            where = f" to {event.path}" if event.path is not None else ""
            self.notify(f"Saved screenshot{where}", title="Screenshot")

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
        yield SteadyFooter()

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

    def on_resize(self, event: Resize) -> None:
        """Below 120 columns the footer drops its padding, so quit and the rest still fit."""
        for footer in self.query(SteadyFooter):
            footer.compact = event.size.width < COMPACT_FOOTER_BELOW

    def on_mount(self) -> None:
        self.pacer.bind(asyncio.get_running_loop())  # engine threads reach the UI through it
        if len(self.batcher):  # queued before the loop was known: drawn now
            self.pacer.arm()
        self.board.state = BoardState(skipped=frozenset(self.engine.skipped))
        tracker = self.config.tracker
        try:
            if tracker is not None and not self.config.prd_path(self.workspace).exists():
                # the run's first sync writes it: the board fills in when it has
                self.board.border_subtitle = f"waiting for the {tracker.kind} sync"
            else:
                self._show_board(self.engine.store.load())
        except RalphError as exc:
            # the run's preflight reports it as the one error line; the board stays empty
            self.board.border_subtitle = "PRD unreadable"
            self.notify(str(exc), severity="error", timeout=6)
        self.board.focus()
        self.board.focus_next_pick(self.engine.skipped)
        self.watch_status(self.status)
        self.set_interval(1.0, self._show_status)
        if self.autostart:
            self._gil.start()
            self.start_run()
        self.call_after_refresh(self._after_first_paint)

    def _after_first_paint(self) -> None:
        freeze_heap_once("painted")
        if self.autostart:  # the agent's SDK loads now, not while the first frame is drawn
            from ralph_tui.agents import warm_up

            warm_up(self.config)

    def on_unmount(self) -> None:
        self._gil.end()

    def start_run(self) -> None:
        self._loop_worker = self.run_engine()

    # ------------------------------------------------------------------ the loop worker

    @work(exclusive=True, group="loop", exit_on_error=False, name="loop")
    async def run_engine(self) -> int:
        return await self.engine.run()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place worker outcomes land: show failures, never crash the app."""
        worker = event.worker
        if worker.group == "loop" and event.state not in (WorkerState.PENDING, WorkerState.RUNNING):
            self._gil.end()  # a run refused by its preflight never sends RunStarted
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
            self.exit_code = ExitCode.INTERRUPTED
            if self._quitting:
                self._exit_with(ExitCode.INTERRUPTED)

    @property
    def run_active(self) -> bool:
        worker = self._loop_worker
        return worker is not None and worker.state in (WorkerState.PENDING, WorkerState.RUNNING)

    # ------------------------------------------------------------------ events -> widgets

    def flush_events(self) -> None:
        """Apply every queued event to the widgets; cheap when nothing is queued."""
        self.pacer.flushed()
        events = self.batcher.drain()
        if not events:
            return
        try:
            transcript, board, gates = self.transcript, self.board, self.gates
        except NoMatches:  # a flush queued while the app closes: its panes are gone
            return
        for event in events:
            self.worker_view.observe(event)
            board.apply(event)  # the board sees every worker's stories
            if isinstance(event, ApprovalsWaiting):
                self._waiting = tuple(event.story_ids)
                self._show_waiting_count()
            if not self.worker_view.shows(event) and isinstance(event, _WORKER_DETAIL):
                continue  # another worker's detail: only its own panes show it
            transcript.apply(event)
            gates.apply(event)
            self._apply(event)
        self._show_workers()
        # the status line repaints only when its fields change (elapsed ticks once a second):
        # a repaint at the top of the screen on every flush would widen the region redrawn

    def _apply(self, event: Event) -> None:
        """What the app itself does with an event: status, diff refreshes, toasts, PRD re-reads."""
        match event:
            case ToolResult() | IterationStarted() | IterationFinished() | Committed():
                # any tool of any backend may have edited the tree (Bash, NotebookEdit, a CLI)
                self.request_diff()
                if isinstance(event, IterationFinished):
                    self._show_waiting(None)
                if isinstance(event, IterationStarted):
                    self._show_iteration(event)
            case UsageReported():
                self.status = self.status.with_(
                    tokens=self.status.tokens + event.input_tokens + event.output_tokens,
                    cost_usd=self.status.cost_usd + event.cost_usd,
                )
            case AgentSwitched(agent=agent):
                self.status = self.status.with_(agent=agent)
                self._show_waiting(None)
            case AgentsLimited(wait_s=wait, resume_agent=resume):
                self._show_waiting((self.clock() + wait, resume))
            case PrdChanged():
                self.reload_board()
            case RunStateChanged(state=state):
                self.status = self.status.with_(state=state)
                self.refresh_bindings()
            case RunStarted():
                self._gil.end()
                self._run_started = True
                self._started_at = self.clock()
                self.status = self.status.with_(
                    max_iterations=event.max_iterations,
                    branch=(event.branch or "").removeprefix("refs/heads/"),
                    unsandboxed=event.sandbox == "none",
                )
            case RunFinished():
                self._show_waiting(None)
                self._finished("finished", event.reason)
                self.exit_code = event.exit_code
                self.notify(f"Run finished: {event.reason}", timeout=8)
            case Notice(level="warning" | "error" as level):
                self.notify(event.message, severity=level)
            case _:
                pass

    def _finished(self, state: str, note: str) -> None:
        self._finished_at = self.clock()
        self.status = self.status.with_(state=state, note=note)
        self._show_status()
        self.refresh_bindings()

    def watch_status(self, status: RunStatus) -> None:
        for line in self.query("#status").results(StatusLine):  # none while closing
            line.status = status

    def _show_waiting(self, until: tuple[float, str] | None) -> None:
        """Start (``until``: the app clock's time of the reset, the agent it resumes on) or end
        the status line's countdown while every fallback agent is rate-limited."""
        self._limited_until = until
        self._show_status()

    def _show_status(self) -> None:
        """Bring the elapsed time and a rate-limit countdown up to date (the rest of
        ``status`` is set as events come)."""
        waiting = ""
        if self._limited_until is not None:
            until, agent = self._limited_until
            waiting = f"{agent} in {format_wait(until - self.clock())}"
        if waiting != self.status.waiting:
            self.status = self.status.with_(waiting=waiting)
        if self._started_at is not None:
            end = self._finished_at if self._finished_at is not None else self.clock()
            # whole seconds, as shown: a new float every call would repaint for nothing
            elapsed = float(int(max(0.0, end - self._started_at)))
            self.status = self.status.with_(elapsed_s=elapsed)

    @work(exclusive=True, group="prd", exit_on_error=False, name="prd")
    async def reload_board(self) -> None:
        """Re-read the PRD off the UI thread (only when the engine says it changed)."""
        try:
            prd = await asyncio.to_thread(self.engine.store.load)
        except RalphError as exc:
            # an external edit may leave the file half-written or invalid for a moment
            self.board.border_subtitle = "PRD unreadable"
            self.notify(str(exc), severity="error", timeout=6)
            return
        self._show_board(prd)

    def _show_workers(self) -> None:
        """Parallel runs: which worker runs which story, and which wait for approval."""
        self.board.show_workers(self.worker_view.running(), frozenset(self._waiting))

    def _show_board(self, prd: Prd) -> None:
        self.board.border_subtitle = ""
        self.board.show(prd)
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
        # parallel runs: the selected worker's change, wherever it runs (a worktree, a node)
        files = await self.engine.story_diff(
            self.worker_view.story_of.get(self.worker_view.selected)
        )
        self.diff.show_files(files, last=self._bookkeeping_paths())
        count = f"{len(files)} file{'' if len(files) == 1 else 's'}"
        self.query_one("#diff-panel", Panel).border_subtitle = (
            f"{count} +{sum(f.additions for f in files)} -{sum(f.deletions for f in files)}"
            if files
            else ""
        )

    def _bookkeeping_paths(self) -> frozenset[str]:
        """The PRD and progress log, relative to the repo: listed after the code in the diff."""
        paths = set()
        for path in (
            self.config.prd_path(self.workspace),
            self.config.progress_path(self.workspace),
        ):
            try:
                paths.add(path.resolve().relative_to(self.workspace.resolve()).as_posix())
            except ValueError:
                continue
        return frozenset(paths)

    # ------------------------------------------------------------------ supervisor callbacks

    def _on_approval(self, request: ApprovalRequest) -> None:
        self.flush_events()
        if request.worker and request.worker != self.worker_view.selected:
            self._show_worker(request.worker)
        self.gates.show_results(request.gates)
        self.diff.start_review()
        self.approval_bar.open(request)
        self.load_diff()
        self.refresh_bindings()
        self.bell()
        # the bar is the notice (a toast over the transcript hid what the reader came to see);
        # only what the bar does not say gets one
        if request.waiting:
            self.notify(f"{request.waiting} more waiting for approval: o opens one", timeout=4)
        self._show_workers()

    def _on_escalation(self, request: EscalationRequest) -> None:
        self.flush_events()
        self.escalation_bar.open(request)
        self.refresh_bindings()
        self.bell()  # the bar asks the question; no toast over the transcript

    def _on_settled(self, question: QuestionKind) -> None:
        """Close the bar of the question that settled, and only that one: with workers another
        story's approval or question can still be open beside it."""
        if not self.is_running:  # the app is closing; nothing left to tidy on screen
            return
        bar: ApprovalBar | EscalationBar = (
            self.approval_bar if question == "approval" else self.escalation_bar
        )
        focused = self.focused
        stranded = focused is None or bar in focused.ancestors_with_self
        if question == "approval":
            self.diff.end_review()
        bar.close()
        if stranded:  # the keys go where the human acts next
            if self.escalation_bar.is_open:
                self.escalation_bar.answer_box.focus()
            else:
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
            return bool(self._waiting)
        if action == "leave_box":
            return isinstance(self.focused, Input) or self._help_open()
        if action in ("diff_file", "diff_hunk"):
            # priority keys: never while typing (a box, the story editor) or over a dialog
            typing = isinstance(self.focused, Input | TextArea)
            return not typing and not isinstance(self.screen, ModalScreen)
        if action == "toggle_pause":
            return self.run_active and not self._quitting
        return True

    # ------------------------------------------------------------------ parallel workers

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """Moving the board's cursor to a running story shows its worker in the panes."""
        # no query here: a highlight can still be queued while the app closes and its
        # widgets are gone (a quick run's exit raised NoMatches from this handler)
        board = event.data_table
        if not isinstance(board, TaskBoard) or board.selected_story is None:
            return
        worker = self.worker_view.worker_of(board.selected_story)
        if worker is None or worker == self.worker_view.selected:
            return
        shown = self.supervisor.approval
        if shown is not None and shown.worker:
            # the panes are the approval's evidence: while it is open they stay on its worker,
            # or ``a`` would approve one story with another story's diff on screen
            if self._pinned_notice != shown.story_id:
                self._pinned_notice = shown.story_id
                self.notify(
                    f"The panes stay on {shown.story_id} until you decide it "
                    "(o on a waiting story opens that one instead).",
                    timeout=4,
                )
            return
        self._show_worker(worker)

    def _show_waiting_count(self) -> None:
        if self.approval_bar.is_open:
            self.approval_bar.show_waiting(max(0, len(self._waiting) - 1))

    def _show_iteration(self, event: IterationStarted) -> None:
        story = f"{event.story_id} {event.title}"
        self.status = self.status.with_(iteration=event.iteration, story=story)

    def _show_worker(self, worker: int) -> None:
        self.transcript.clear()
        self.gates.reset()
        for event in self.worker_view.select(worker):
            self.transcript.apply(event)
            self.gates.apply(event)
            if isinstance(event, IterationStarted):  # the status line names what the panes show
                self._show_iteration(event)
        self.query_one("#transcript-panel", Panel).border_subtitle = f"worker {worker}"
        self.request_diff()

    def action_open_approval(self) -> None:
        """Show the approval of the story under the board's cursor (parallel runs)."""
        story = self.board.selected_story
        if story is None or not self._waiting:
            return
        if story not in self._waiting or not self.engine.open_approval(story):
            self.notify(f"{story} is not waiting for approval.", severity="warning")

    def action_approve(self) -> None:
        """Approve, leaving out what the reviewer dropped (the engine gates the rest and asks
        again before it commits)."""
        review = self.diff.review
        self.supervisor.decide(ApprovalDecision.approve(review.drop_list(), review.comment_list()))

    def action_reject(self) -> None:
        if self.supervisor.approval is not None:
            self.approval_bar.start_reject()
            self.refresh_bindings()

    def on_approval_bar_feedback_submitted(self, message: ApprovalBar.FeedbackSubmitted) -> None:
        comments = self.diff.review.comment_list()
        self.supervisor.decide(ApprovalDecision.reject(message.feedback, comments))

    def on_diff_view_review_changed(self, message: DiffView.ReviewChanged) -> None:
        self.approval_bar.show_review(self.diff.review.summary(), bool(self.diff.review.comments))

    def action_discard(self) -> None:
        self.supervisor.decide(ApprovalDecision.discard())

    def action_skip(self) -> None:
        self.supervisor.reply(EscalationAnswer("skip"))

    def on_escalation_bar_answer_submitted(self, message: EscalationBar.AnswerSubmitted) -> None:
        self.supervisor.reply(EscalationAnswer("answer", message.answer))

    def _help_open(self) -> bool:
        return len(self.screen.query("HelpPanel")) > 0

    def action_toggle_help(self) -> None:
        """``?`` / F1: the keys of the focused panel and of the app, beside the panels (Textual's
        HelpPanel follows the focus); again, or Escape, closes it."""
        if self._help_open():
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    def action_leave_box(self) -> None:
        if self._help_open():  # Escape closes the keys first
            self.action_hide_help_panel()
            return
        if self.diff.commenting:  # Escape in the comment box: back to the line
            self.diff.close_comment()
            self.refresh_bindings()
            return
        if self.approval_bar.rejecting:
            self.approval_bar.cancel_reject()
        self.board.focus()
        self.refresh_bindings()

    def action_diff_file(self, step: int) -> None:
        self.diff.action_file(step)
        self.diff.focus_pane()

    def action_diff_hunk(self, step: int) -> None:
        self.diff.action_hunk(step)

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
        if self._quitting:  # a second quit: the human is done waiting
            self.stop_now()
            return
        self.push_screen(confirm_quit(self.status.state), self._quit_confirmed)

    def action_interrupt(self) -> None:
        """Ctrl-C, as headless has it: the first stops at the next safe point, the second
        stops at once."""
        if not self.run_active:
            self._exit_with(self.exit_code if self.exit_code is not None else ExitCode.INTERRUPTED)
        elif self._quitting:
            self.stop_now()
        else:
            self.stop_and_quit()
            self.notify("Stopping at the next safe point; Ctrl-C or q again stops at once")

    def stop_now(self) -> None:
        """Cancel the run where it stands (a long tool call included), as headless's second
        Ctrl-C: the engine rolls the iteration back and keeps its change as a patch."""
        self._quitting = True
        self.engine.request_stop()
        self.status = self.status.with_(state="stopping", note="stopping now")
        self._show_status()
        if self._loop_worker is not None and self.run_active:
            self._loop_worker.cancel()
        else:
            self._exit_with(self.exit_code if self.exit_code is not None else ExitCode.INTERRUPTED)

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
            self._exit_with(self.exit_code if self.exit_code is not None else ExitCode.INTERRUPTED)

    @work(group="prd-edit", exit_on_error=False, name="prd edit")
    async def edit_prd(self, change: Callable[[], Any], done: Callable[[Any], None]) -> None:
        """A story edit: write and fsync in a thread, one edit at a time, then show the result."""
        async with self._prd_edit_lock:
            try:
                result = await asyncio.to_thread(change)
            except RalphError as exc:
                self.notify(str(exc), severity="error")
                return
        done(result)

    def action_move_story(self, direction: str) -> None:
        key = self.board.selected_story
        if key is None or direction not in ("up", "down"):
            return
        why_not = _unmovable(self.board.prd, key, direction)
        if why_not:  # say why nothing happens, rather than nothing
            self.notify(why_not, timeout=4)
            return

        def moved(prd: Prd) -> None:
            self._show_board(prd)
            self.board.select_story(key)

        where: Literal["up", "down"] = "up" if direction == "up" else "down"
        self.edit_prd(lambda: self.engine.store.move_story(key, where), moved)

    def action_edit_story(self) -> None:
        key = self.board.selected_story
        prd = self.board.prd
        story = prd.story(key) if prd is not None and key is not None else None
        if story is None:
            return

        def written(prd: Prd) -> None:
            self._show_board(prd)
            self.notify(f"Saved {story.key}.")

        def saved(changes: dict[str, Any] | None) -> None:
            if changes:
                self.edit_prd(lambda: self.engine.store.update_story(story.key, changes), written)

        self.push_screen(StoryEditor(story), saved)

    def action_new_story(self) -> None:
        prd = self.board.prd
        lowest = prd.next_priority() if prd else 1

        def added(story: Story) -> None:
            self._show_board(self.engine.store.load())
            self.board.select_story(story.key)
            self.notify(f"Added {story.key}.")

        def saved(fields: dict[str, Any] | None) -> None:
            if fields:
                self.edit_prd(lambda: self.engine.store.add_story(fields), added)

        self.push_screen(StoryEditor(None, lowest), saved)

    # ------------------------------------------------------------------ command palette

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        # Textual's Maximize/Minimize is "Maximize panel" below (m): listed once
        yield from (c for c in super().get_system_commands(screen) if c.title not in _OWN_COMMANDS)
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


_OWN_COMMANDS = frozenset({"Maximize", "Minimize"})  # Textual's, replaced by "Maximize panel"


def _unmovable(prd: Prd | None, key: str, direction: str) -> str | None:
    """Why ``+``/``-`` cannot move this story, or None: only open stories have a pick order."""
    story = prd.story(key) if prd is not None else None
    if prd is None or story is None:
        return None
    shown = escape_controls(key, multiline=False)
    if story.passes:
        return f"{shown} already passes: only open stories have a place in the pick order"
    order = [s.key for s in prd.open_order()]
    if order and order[0 if direction == "up" else -1] == key:
        return f"{shown} is already {'first' if direction == 'up' else 'last'} in pick order"
    return None
