"""The run core: what a run does once, whichever loop works through its stories.

A run is a ``RunCore`` and one ``LoopStrategy`` over it: the serial loop (``engine.SerialLoop``:
one story per iteration in the main checkout) or the parallel scheduler
(``parallel.ParallelLoop``: workers in an executor's checkouts, one approval queue, verified
merges). The core owns the run lock, the preflight, the journal and the events, cost and the
budget, pause/resume/stop, escalation (the PM, the human), the tracker, the approval path up to
the supervisor and the bookkeeping commit at the end; a strategy owns its loop and the few hooks
the faces need (``open_approval``, ``story_diff``). Neither strategy subclasses the other, and
the core knows neither: it is built with a factory for its strategy (``runs.build_engine``
picks one, through the named constructors ``engine.Engine`` and ``parallel.ParallelEngine``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Generic, Literal, Protocol, TypeVar

from ralph_tui.agents import create_agent
from ralph_tui.approvals import approvals_unattended
from ralph_tui.bookkeeping import GuardedPrdStore
from ralph_tui.config import RalphConfig
from ralph_tui.context import StoryContext, build_system_prompt, build_user_prompt
from ralph_tui.control import RunEnded
from ralph_tui.errors import AgentError, GitError, UsageError
from ralph_tui.events import (
    Escalated,
    EscalationAnswered,
    Event,
    EventSink,
    IterationFinished,
    IterationOutcome,
    Notice,
    PrdChanged,
    ReviewRecorded,
    RunFinished,
    RunStarted,
    RunState,
    RunStateChanged,
    UsageReported,
)
from ralph_tui.exit_codes import ExitCode
from ralph_tui.gates import GateResult, workspace_programs
from ralph_tui.git.branching import switch_to, wanted_branch
from ralph_tui.git.repo import FileDiff, GitRepo
from ralph_tui.iteration import Agent, IterationRequest, Usage
from ralph_tui.journal import Journal
from ralph_tui.landing import StoryLanding
from ralph_tui.persona import load_persona
from ralph_tui.pm import AS_IS, ProductManager
from ralph_tui.prd.format import require_stories
from ralph_tui.prd.model import Story
from ralph_tui.prd.progress import ProgressLog
from ralph_tui.pricing import estimate_cost
from ralph_tui.recovery import StateFile, new_run_id, recover
from ralph_tui.runlock import RunLock
from ralph_tui.safety.safe_open import BookkeepingError, inside, read_capped, replace_regular
from ralph_tui.safety.sandbox import resolve_sandbox
from ralph_tui.safety.text import counted
from ralph_tui.safety.workspace import Redactor, Workspace, agent_env
from ralph_tui.supervisor import (
    ApprovalDecision,
    ApprovalRequest,
    EscalationAnswer,
    EscalationRequest,
    Supervisor,
)
from ralph_tui.trackers import TrackerError, TrackerIssue, withhold_credentials

if TYPE_CHECKING:
    from ralph_tui.trackers.link import TrackerLink
    from ralph_tui.trackers.sync import SyncResult

log = logging.getLogger(__name__)

__all__ = ["LoopStrategy", "RunCore"]

CONTEXT_FILE_CHARS = 20_000  # AGENTS.md / CLAUDE.md given to the agent

FAILURES_BEFORE_ESCALATION = 3
# whose answer, as the progress log says it ([pm]): a human's needs no label
_LOGGED_BY = {"human": "", "pm": "the PM", AS_IS: "the PM's suggestion, sent by a human"}


class LoopStrategy(Protocol):
    """How a run works through its stories, over the one ``RunCore`` it is built with:
    ``engine.SerialLoop`` (one story at a time in the main checkout) or
    ``parallel.ParallelLoop`` (a scheduler over an executor's checkouts). The core calls these
    hooks; everything else the run does once lives in the core."""

    def preflight(self) -> None:
        """The strategy's own start-up checks, after the core's, in a worker thread."""
        ...

    async def run(self) -> tuple[int, str]:
        """Work through the PRD; the exit code (SPEC section 7) and why. May raise
        ``RunEnded``."""
        ...

    def on_event(self, event: Event) -> Event:
        """Every event before the journal and the sink see it (a worker's number added)."""
        ...

    def wake(self) -> None:
        """The run was paused or resumed: whatever waits for work should look again."""
        ...

    def stop(self) -> None:
        """A stop was requested (the core already set ``stop_requested``)."""
        ...

    async def before_bookkeeping(self) -> None:
        """The core is about to write the progress log itself (an escalation's blocker
        entry): what the agent did to the bookkeeping is undone first."""
        ...

    async def approve(self, request: ApprovalRequest) -> ApprovalDecision:
        """A decision that is not a story's commit (a PRD change the PM proposed), through
        the strategy's own approval path."""
        ...

    def open_approval(self, story_id: str) -> bool:
        """Show ``story_id``'s waiting approval next; False when it is not waiting."""
        ...

    async def story_diff(self, story_id: str | None = None) -> list[FileDiff]:
        """A story's change as it is now, wherever it runs; ``None``: the main checkout's."""
        ...


L = TypeVar("L", bound=LoopStrategy)


class RunCore(Generic[L]):
    """One run in one workspace, whatever loop works through its stories (``self.loop``).

    It owns what every strategy shares, once: the run lock, the preflight, the journal and the
    events (``emit`` and the sink), cost and the budget, pause/resume/stop, escalation (the PM,
    the human), the tracker, the approval path up to the supervisor, the state file, the one
    way a story lands (``landing``) and the progress log's own commit at the end.
    """

    def __init__(
        self,
        workspace: Path,
        config: RalphConfig,
        agent: Agent | None,
        supervisor: Supervisor,
        sink: EventSink,
        *,
        allow_dirty: bool = False,
        run_id: str | None = None,
        redactor: Redactor | None = None,
        loop: Callable[[RunCore[L]], L],
    ) -> None:
        self.workspace = Workspace(workspace)
        self.root = self.workspace.root
        self.config = config = config.pinned(self.root)
        self._agent = agent  # None: built from config after the preflight checks pass
        # [pm]: built with the agent (a test may set its own, with a fake API and clock)
        self.pm: ProductManager | None = None
        self.supervisor = supervisor
        self.approved_flags: dict[str, tuple[str, ...]] = {}  # story -> flags a human approved
        self.review_notes: dict[str, list[str]] = {}  # story -> drops and comments made
        self.git = GitRepo.open(self.root)
        for path in (config.prd_path(self.root), config.progress_path(self.root)):
            if not path.is_relative_to(self.root):  # before anything reads or changes
                raise UsageError(
                    f"{path}: outside the repository {self.root}; the PRD and its progress "
                    "log are committed with each story, so they must live in it"
                )
        self.store = GuardedPrdStore(config.prd_path(self.root))
        self.progress = ProgressLog(config.progress_path(self.root))
        self.workspace.protect(self.store.path, self.progress.path)  # the agent's editor may not
        self.allow_dirty = allow_dirty
        self.run_id = run_id or new_run_id()
        self.run_dir = self.root / ".ralph" / "runs" / self.run_id
        self.state_path = self.root / ".ralph" / "state.json"
        self.state_file = StateFile(self.state_path, self.run_id)
        self._lock = RunLock(self.root / ".ralph")
        self.skipped: set[str] = set()
        self.feedback: dict[str, list[str]] = {}
        self.failures: dict[str, int] = {}
        self.story_cost: dict[str, float] = {}
        self.run_cost = 0.0
        self.iteration = 0
        self.state: RunState = "starting"
        self._sink = sink
        self._journal: Journal | None = None
        # secrets leave os.environ before anything is spawned (the CLI did it too, if it ran)
        # [tracker]: its token variable withheld and its credential resolved before the
        # redactor is built (a `gh auth token` joins the vault), so the redactor knows it
        withhold_credentials(config.tracker)
        self.tracker: TrackerLink | None = None
        if config.tracker is not None:
            from ralph_tui.trackers.link import TrackerLink

            self.tracker = TrackerLink.from_config(config.tracker)
        # the run's faces (server, notifier) are built with the same one (ralph_tui.runs)
        self._redact = redactor if redactor is not None else Redactor()
        self._running = asyncio.Event()
        self._running.set()
        self._stop_requested = False
        self.budget_spent = False
        self.bookkeeping = (
            self.workspace.relative(self.store.path),
            self.workspace.relative(self.progress.path),
        )
        self.landing = StoryLanding(
            git=self.git,
            store=self.store,
            progress=self.progress,
            state=self.state_file,
            redact=self._redact,
            emit=self.emit,
            role=config.role,
            bookkeeping=self.bookkeeping,
        )
        self.startup_notes: list[str] = []  # warnings found before the run started
        self._startup_info: list[str] = []
        if config.prd_note:
            self._startup_info.append(config.prd_note)
        self.branch: str | None = None  # the branch the run commits to (set at start-up)
        self._branch_ref: str | None = None
        # --allow-dirty: the user's own uncommitted files at start (None: deleted), never
        # committed and put back after a failed iteration
        self.user_dirty: tuple[str, ...] = ()
        self._user_files: dict[str, bytes | None] = {}
        # last: the strategy is built over the finished core (its executor reads the paths)
        self.loop: L = loop(self)

    # ----------------------------------------------------------------- control (any thread-safe
    # caller on the engine's loop: the TUI, the headless signal handler, tests)

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def pause(self) -> None:
        if self._running.is_set():
            self._running.clear()
            self.set_state("pausing")
        self.loop.wake()

    def resume(self) -> None:
        if not self._running.is_set():
            self._running.set()
            self.set_state("running")
        self.loop.wake()

    def open_approval(self, story_id: str) -> bool:
        """Show ``story_id``'s waiting approval next (the parallel loop's queue)."""
        return self.loop.open_approval(story_id)

    async def story_diff(self, story_id: str | None = None) -> list[FileDiff]:
        """``story_id``'s change wherever its checkout is; ``None``: the main checkout's."""
        return await self.loop.story_diff(story_id)

    def request_stop(self) -> None:
        self._stop_requested = True
        self._running.set()  # a paused loop must wake up to stop
        self.loop.stop()

    @property
    def redactor(self) -> Redactor:  # for the faces that show or send run text (server, notify)
        return self._redact

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested

    @property
    def agent(self) -> Agent:
        if self._agent is None:
            raise RuntimeError("the agent is created when the run starts")
        return self._agent

    # ----------------------------------------------------------------- events

    def emit(self, event: Event) -> None:
        event = self.loop.on_event(event)
        if isinstance(event, ReviewRecorded):  # a worker's too: for the story's progress entry
            self.review_notes.setdefault(event.story_id, []).extend(
                [*event.dropped, *event.comments]
            )
        if self._journal is not None:
            self._journal(event)
        self._sink(event)

    def set_state(self, state: RunState) -> None:
        """The run's state for the faces (``RunStateChanged``), emitted only on a change."""
        if state != self.state:
            self.state = state
            self.emit(RunStateChanged(state=state))

    def notice(self, message: str, level: Literal["info", "warning", "error"] = "info") -> None:
        self.emit(Notice(level=level, message=message))

    @property
    def max_fix_attempts(self) -> int:
        return self.config.max_fix_attempts

    # ----------------------------------------------------------------- the run

    async def run(self) -> int:
        """The whole run, the strategy's loop inside it; the exit code of SPEC section 7."""
        self._lock.acquire()  # a second run in this workspace: WorkspaceBusy (exit 2)
        try:
            return await self._run_locked()
        finally:
            self._lock.release()

    async def _run_locked(self) -> int:
        try:
            # the issues are read first: a refused token stops the run before anything changes
            tracker = self.tracker
            issues = await tracker.read() if tracker is not None else None
            created = None
            if tracker is not None and issues is not None and not self.store.path.exists():
                # a first PRD, so the preflight knows the run's branch (its branchName)
                created = await tracker.sync(self.store.path, issues)
            await asyncio.to_thread(self._preflight)
            if issues is not None:  # on the run's branch: into the PRD it has there
                await self._sync_tracker(issues, created)
        except BaseException:
            if self.tracker is not None:
                await self.tracker.aclose()
            raise
        self._journal = Journal(self.run_dir, self._redact)
        self.emit(
            RunStarted(
                run_id=self.run_id,
                role=self.config.role,
                workspace=str(self.root),
                agent=self.agent.name,
                model=self.config.model,
                max_iterations=self.config.max_iterations,
                branch=self.branch,
                sandbox=self.workspace.sandbox.kind,
            )
        )
        if self.workspace.sandbox.warning:
            self.notice(self.workspace.sandbox.warning, "warning")
        if self._lock.stale_pid is not None:
            self.notice(f"took over the run lock left by pid {self._lock.stale_pid} (not running)")
        for note in self.startup_notes:
            self.notice(note, "warning")
        for note in self._startup_info:
            self.notice(note)
        if self.tracker is not None:  # the faces read the PRD the sync wrote
            self.emit(PrdChanged(source="engine"))
        self.set_state("running")
        stop_watch = asyncio.Event()
        watcher = asyncio.create_task(self._watch_prd(stop_watch), name="prd-watch")
        exit_code: int = ExitCode.RUNTIME
        reason = "not started"
        try:
            exit_code, reason = await self.loop.run()
            if exit_code == ExitCode.DONE and self.branch is not None:
                exit_code, reason = await self._end_with_pull_request(exit_code, reason)
        except RunEnded as ended:
            exit_code, reason = ended.exit_code, ended.reason
        except (AgentError, GitError) as exc:
            exit_code, reason = ExitCode.RUNTIME, str(exc)
        except asyncio.CancelledError:
            exit_code, reason = ExitCode.INTERRUPTED, "interrupted"
            raise
        finally:
            stop_watch.set()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            if self.pm is not None:
                try:
                    await self.pm.aclose()
                except Exception:  # closing must not hide the run's own outcome
                    log.warning("closing the PM failed", exc_info=True)
            if self.tracker is not None:
                await self.tracker.aclose()
            if self._agent is not None:
                try:
                    await self._agent.aclose()
                except Exception:  # closing must not hide the run's own outcome
                    log.warning("closing the agent failed", exc_info=True)
            await asyncio.shield(asyncio.to_thread(self._commit_log_entries))
            self.set_state("finished")
            self.emit(RunFinished(exit_code=exit_code, reason=reason))
            if self._journal is not None:
                self._journal.close()
                self._journal = None
        return exit_code

    # ----------------------------------------------------------------- [tracker]

    async def _sync_tracker(
        self, issues: Sequence[TrackerIssue], created: SyncResult | None
    ) -> None:
        """The tracker's open issues into the PRD on the run's branch, committed.
        ``created``: the sync that wrote a first PRD before the preflight."""
        assert self.tracker is not None
        result = await self.tracker.sync(self.store.path, issues)
        said = created if created is not None and not result.changed else result
        summary = said.summary(self.tracker.source)
        self._startup_info.append(summary)
        await asyncio.to_thread(self._commit_synced_prd, summary)

    def _commit_synced_prd(self, summary: str) -> None:
        """The synced PRD committed on the run's branch: a story's commit holds only its own
        change, and a clean tree is what the next run starts from."""
        path = self.workspace.relative(self.store.path)
        committed = self.git.show_file("HEAD", Path(path))
        if committed == self.store.path.read_bytes():
            return
        sha = self.git.commit_paths([path], f"[{self.config.role}] {summary}\n")
        self._startup_info.append(f"committed the synced PRD as {sha[:10]}")

    async def tracker_landed(
        self, story: Story, sha: str, gates: Sequence[GateResult], flags: Sequence[str]
    ) -> None:
        """A landed story's issue: commented on with the commit and the gates, then closed."""
        if self.tracker is None:
            return
        flags = [self._redact(flag) for flag in flags]  # they may quote the agent's files
        for report in await self.tracker.landed(
            story, sha, branch=self.branch, gates=gates, flags=flags
        ):
            self.notice(self._redact(report.message), report.level)

    async def _end_with_pull_request(self, exit_code: int, reason: str) -> tuple[int, str]:
        """Every story passes: the pull request when ``[tracker] pull_request`` (``--pr``)
        asks for it, else the hint to open one."""
        assert self.branch is not None
        if self.tracker is None or not self.tracker.options.pull_request:
            self.notice(
                f"every story passes on {self.branch}; for a pull request: "
                f"git push -u origin {self.branch}"
            )
            return exit_code, reason
        prd = await asyncio.to_thread(self.store.load)
        try:
            url = await self.tracker.pull_request(self.git, self.branch, prd)
        except (TrackerError, GitError) as exc:
            message = f"pull request for {self.branch} not opened: {exc}"
            self.notice(self._redact(message), "error")
            return ExitCode.RUNTIME, message
        self.notice(f"pull request opened: {url}")
        return exit_code, f"{reason}; pull request {url}"

    def _commit_log_entries(self) -> None:
        """Commit what the run appended to the progress log and nothing landed with (a blocker,
        its answer or skip): left in the tree, each run added its own copy, and the log showed
        as a change the user had not made. Only appended entries, only the log."""
        path = self.workspace.relative(self.progress.path)
        if path in self.user_dirty or self.branch is None:
            return  # the user's own edits, or no branch of the run's: leave it as it is
        try:
            committed = self.git.show_file("HEAD", Path(path)) or b""
            now = self.progress.read_bytes()
            if now == committed or not now.startswith(committed):
                return
            entries = now[len(committed) :].decode("utf-8", errors="replace").count("## Blocker")
            sha = self.git.commit_paths(
                [path],
                f"[{self.config.role}] Progress log: "
                f"{counted(entries, 'escalation')} recorded in run {self.run_id}\n",
            )
        except (GitError, OSError, BookkeepingError) as exc:
            self.notice(f"{path}: its new entries stay uncommitted: {exc}", "warning")
            return
        self.notice(f"committed the progress log's new entries as {sha[:10]}")

    def check_bookkeeping_paths(self) -> None:
        """The PRD and the log live in the repository: a folder on the way that is a link out
        of it (``tasks/`` -> somewhere in ``~``) is refused, read or write."""
        for path in (self.store.path, self.progress.path):
            if (path.exists() or path.parent.exists()) and not inside(path.parent, self.root):
                raise BookkeepingError(
                    f"{path}: its folder leads outside the repository {self.root} (a symlinked "
                    "folder?); ralph-tui reads and writes its bookkeeping only inside it"
                )

    def _preflight(self) -> None:
        # first: the run lock is in .ralph/ already, and a refused run must not leave it in
        # the user's `git status`
        self.git.ensure_excluded(".ralph/")
        self.check_bookkeeping_paths()
        prd = self.store.load()  # a malformed or symlinked PRD is a UsageError naming the file
        require_stories(prd, self.store.path, tracker=self.config.tracker is not None)
        self.progress.read_bytes()  # so is a symlinked progress log
        recover(
            self.state_file,
            git=self.git,
            store=self.store,
            progress=self.progress,
            patch_dir=self.run_dir / "patches",
            keep=self.bookkeeping,
            report=self.startup_notes.append,
        )
        dirty = self.git.dirty_paths(ignore=self.bookkeeping)
        if dirty and not self.allow_dirty:
            listed = ", ".join(dirty[:3]) + (
                f" and {len(dirty) - 3} more" if len(dirty) > 3 else ""
            )
            raise UsageError(
                f"{self.root}: working tree has uncommitted changes ({listed}); "
                "commit or stash them, or pass --allow-dirty"
            )
        wanted = wanted_branch(self.config.branch, prd.branchName)
        self.user_dirty = tuple(dirty)
        self._user_files = self._read_user_files(dirty)
        self.workspace.sandbox = resolve_sandbox(
            self.config.sandbox,
            self.root,
            read_only=(self.store.path, self.progress.path),
            hidden=(self.root / ".ralph",),
        )
        if self.config.persona:
            load_persona(self._persona_path())  # fail before the run starts, not mid-iteration
        if self._agent is None:  # a missing key or CLI is refused here, before any change
            self._agent = create_agent(self.config, self.root)
        if self.config.pm is not None and self.pm is None:
            self.pm = ProductManager(self.config.pm, self.config)
        if not self.config.gates:  # `[gates]` written empty: nothing checks a story but itself
            self.startup_notes.append(
                "no quality gates ([gates] is empty): a story is done when the agent says so, "
                "checked only by its own commands in the PRD, if any, and by your approval"
            )
        # a gate whose program lives in the workspace runs what the agent may have rewritten
        confined = self.workspace.sandbox.confined
        for name, program in workspace_programs(
            self.root, self.config.gates, agent_env().get("PATH")
        ):
            where = (
                "it runs in the sandbox"
                if confined
                else "the sandbox is off: it runs unconfined, as you"
            )
            self.startup_notes.append(
                f"gate {name} starts {self.workspace.relative(program)} from the workspace, a "
                f"file the agent can change; {where}"
            )
        # every refusal above comes before this: a refused run leaves the user on their branch
        if wanted is not None:
            self._startup_info.append(switch_to(self.git, wanted))
        self._branch_ref = self.git.head_branch()
        self.branch = self._branch_ref.removeprefix("refs/heads/") if self._branch_ref else None
        self.loop.preflight()

    def _read_user_files(self, dirty: Sequence[str]) -> dict[str, bytes | None]:
        """--allow-dirty: the content of the user's dirty regular files (``None``: deleted).

        Symlinks and other special entries are left out: they are kept in place by the
        restore (``keep``) and excluded from commits, but not rewritten.
        """
        saved: dict[str, bytes | None] = {}
        for rel in dirty:
            path = self.root / rel
            if path.is_symlink():
                continue
            if not path.exists():
                saved[rel] = None
            elif path.is_file():
                saved[rel] = path.read_bytes()
        return saved

    async def _watch_prd(self, stop: asyncio.Event) -> None:
        def changed() -> None:
            self.emit(PrdChanged(source="external"))

        try:
            await self.store.watch(changed, stop)
        except OSError as exc:  # inotify limits and the like: the loop still re-reads per pick
            log.warning("PRD watch stopped: %s", exc)

    # ----------------------------------------------------------------- for the strategies

    async def wait_at_safe_point(self) -> None:
        """Hold here while paused; then end the run if the budget is spent.

        A stop request is left to the caller: between iterations it ends the run, inside an
        iteration it first ends the iteration (``StopRequested``) so the tree is restored.
        """
        if not self._running.is_set() and not self._stop_requested:
            self.set_state("paused")
            await self._running.wait()
            self.set_state("running")
        if self.budget_spent and not self._stop_requested:
            raise RunEnded(ExitCode.LIMIT, f"cost budget spent (${self.run_cost:.2f})")

    def marker(self, phase: str, story: Story) -> dict[str, object]:
        """The state file's marker for ``story`` (what a restart's ``recover`` reads)."""
        return {"phase": phase, "story": story.key, "branch": self._branch_ref}

    def iteration_finished(
        self,
        number: int,
        story: Story,
        outcome: IterationOutcome,
        message: str = "",
        patch_path: Path | None = None,
    ) -> None:
        """How an iteration ended, the single loop's and every worker's alike."""
        self.emit(
            IterationFinished(
                iteration=number,
                story_id=story.key,
                outcome=outcome,
                message=message,
                patch_path=str(patch_path) if patch_path else None,
            )
        )

    def put_back_user_files(self) -> list[str]:
        """--allow-dirty: the user's own uncommitted files, as they were when the run started;
        the ones that had changed (the agent's edits, never committed)."""
        put_back: list[str] = []
        for rel, data in self._user_files.items():
            path = self.root / rel
            if data is None:
                if path.is_file() or path.is_symlink():
                    path.unlink()
                    put_back.append(rel)
                continue
            if path.is_file() and not path.is_symlink() and path.read_bytes() == data:
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            replace_regular(path, data)
            put_back.append(rel)
        return put_back

    async def count_failure(self, story: Story) -> None:
        """A failed iteration of ``story``, by either loop; the third in a row escalates."""
        count = self.failures.get(story.key, 0) + 1
        self.failures[story.key] = count
        if count < FAILURES_BEFORE_ESCALATION:
            return
        self.failures[story.key] = 0
        answer = await self.ask_human(
            story,
            question=(
                f"Task #{story.key} failed {count} iterations in a row. "
                "What should the agent do differently? (Or skip the story.)"
            ),
            tried="See the transcript and the saved patches of the failed iterations.",
            automatic=True,
        )
        if answer.kind == "stop":
            raise RunEnded.waiting_for_human()

    def build_request(self, story: Story, number: int) -> IterationRequest:
        """The prompts for one iteration, the same for the serial loop and every worker."""
        path = self._persona_path() if self.config.persona else None
        in_repo = path is not None and path.absolute().is_relative_to(self.root)
        persona = load_persona(path, self.root if in_repo else None)
        feedback = tuple(self.feedback.get(story.key, ()))
        ctx = StoryContext(
            git_log=self.git.recent_log(10),
            progress_tail=self.progress.tail(),
            agents_md=self._agents_md(),
            feedback=feedback,
            prd_about=self._prd_about(),
        )
        return IterationRequest(
            iteration=number,
            story=story,
            system_prompt=build_system_prompt(persona),
            user_prompt=build_user_prompt(story, ctx),
            workspace=self.root,
            config=self.config,
            feedback=feedback,
        )

    def _persona_path(self) -> Path:
        assert self.config.persona is not None
        path = Path(self.config.persona).expanduser()
        return path if path.is_absolute() else self.root / path

    def _prd_about(self) -> str:
        """The PRD's description and context (as edited now), capped like AGENTS.md."""
        prd = self.store.load()
        text = "\n\n".join(t.strip() for t in (prd.description, prd.context) if t.strip())
        if len(text) > CONTEXT_FILE_CHARS:
            text = text[:CONTEXT_FILE_CHARS] + (
                f"\n[... the PRD's context cut at {CONTEXT_FILE_CHARS} characters]"
            )
        return text

    def _agents_md(self) -> str:
        parts = []
        for name in ("AGENTS.md", "CLAUDE.md"):
            path = self.root / name
            if not (path.is_file() or path.is_symlink()):
                continue
            try:  # the agent wrote these too: no link out of the repository, a size cap
                data, more = read_capped(path, CONTEXT_FILE_CHARS * 4, root=self.root)
            except (OSError, BookkeepingError) as exc:
                self.notice(f"{name} not given to the agent: {exc}", "warning")
                continue
            text = data.decode("utf-8", errors="replace")
            if more or len(text) > CONTEXT_FILE_CHARS:
                text = text[:CONTEXT_FILE_CHARS] + (
                    f"\n[... {name} cut at {CONTEXT_FILE_CHARS} characters]"
                )
            parts.append(text)
        return "\n\n".join(parts)

    @property
    def approvals_unattended(self) -> bool:
        return approvals_unattended(self.config, self.supervisor)

    def add_feedback(self, story: Story, feedback: str) -> None:
        self.feedback.setdefault(story.key, []).append(feedback)

    # ----------------------------------------------------------------- escalation

    async def ask_human(
        self, story: Story, question: str, tried: str, *, automatic: bool
    ) -> EscalationAnswer:
        await self.loop.before_bookkeeping()  # the blocker entry goes to the run's own log
        question, tried = self._redact(question), self._redact(tried)
        await asyncio.to_thread(
            self.progress.append_blocker, story.key, story.title, tried, question
        )
        request = EscalationRequest(story.key, story.title, question, tried, automatic)
        if self.tracker is not None:  # [tracker]: the question as a comment on the issue
            for report in await self.tracker.escalated(story, question, tried):
                self.notice(self._redact(report.message), report.level)
        if self.pm is not None:  # [pm]: the PM answers or suggests first (ralph_tui.pm)
            answer, by = await self.pm.escalate(self, story, request)
        else:
            answer, by = await self.ask_supervisor(request), "human"
        text = answer.text.strip() if answer.kind == "answer" else None
        if answer.kind != "stop":
            await asyncio.to_thread(
                self.progress.append_answer,
                self._redact(text) if text else None,
                by=_LOGGED_BY.get(by, by),
            )
        self.emit(
            EscalationAnswered(
                story_id=story.key, answer=text or "", skipped=answer.kind != "answer", by=by
            )
        )
        if answer.kind == "answer" and text:
            whose = "the PM (product-manager agent)" if by == "pm" else "the human"
            self.feedback.setdefault(story.key, []).append(
                f"Answer from {whose} to '{question}': {text}"
            )
        elif answer.kind == "skip":
            self.skipped.add(story.key)
        return dataclasses.replace(answer, by=by)

    async def ask_supervisor(self, request: EscalationRequest, *, pm: str = "") -> EscalationAnswer:
        """Put the escalation to the supervisor (``pm``: what the PM did, for the faces)."""
        self.emit(
            Escalated(
                story_id=request.story_id,
                question=request.question,
                tried=request.tried,
                automatic=request.automatic,
                pm=pm,
            )
        )
        self.set_waiting(True)
        try:
            return await self.supervisor.answer(request)
        finally:
            self.set_waiting(False)

    def set_waiting(self, waiting: bool) -> None:
        self.set_state("waiting" if waiting else "running")

    async def ask_supervisor_approval(self, request: ApprovalRequest) -> ApprovalDecision:
        """A decision that is not a commit (a PRD change the PM proposed), through the
        strategy's approval path (the parallel loop's queue holds the workers' changes too)."""
        return await self.loop.approve(request)

    async def supervisor_approve(self, request: ApprovalRequest) -> ApprovalDecision:
        """Straight to the supervisor, the run shown as waiting meanwhile."""
        self.set_waiting(True)
        try:
            return await self.supervisor.approve(request)
        finally:
            self.set_waiting(False)

    # ----------------------------------------------------------------- cost

    def add_usage(
        self, story: Story, usage: Usage, *, by: str = "agent", model: str | None = None
    ) -> None:
        """``by="pm"``: the PM's own calls, at its own model's price, in the same budget; a
        fallback agent's usage is priced by its own model (agents/fallback.py)."""
        cost = estimate_cost(model or usage.model or self.config.model, usage, self.config.pricing)
        self.story_cost[story.key] = self.story_cost.get(story.key, 0.0) + cost
        self.run_cost += cost
        self.emit(
            UsageReported(
                story_id=story.key,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cache_creation_input_tokens=usage.cache_creation_input_tokens,
                cache_read_input_tokens=usage.cache_read_input_tokens,
                cost_usd=cost,
                agent=usage.agent,
                by=by,
            )
        )
        limit = self.config.max_cost_usd
        if limit is not None and self.run_cost >= limit and not self.budget_spent:
            self.budget_spent = True
            self.notice(
                f"cost budget ${limit:.2f} spent; stopping at the next safe point", "warning"
            )
