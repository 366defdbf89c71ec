"""The serial loop (SPEC section 1): pick -> context -> agent -> gates -> approve -> commit -> log.

One story per iteration, in the main checkout. ``SerialLoop`` is one of the two strategies over
a run (``ralph_tui.run_core``; the other is ``parallel.ParallelLoop``): the run core owns the
lock, the preflight, the journal and events, cost, pause/stop, escalation and the tracker; this
loop owns what one iteration in the main checkout needs. It is the ``IterationHost`` the agent's
``IterationControl`` talks to: the engine, not the agent, decides "done" (``complete_task``
runs the gates here and asks the ``Supervisor``).

The pieces around the loop live in their own modules: ``control`` (what the engine's tools
mean for one iteration), ``recovery`` (the state file and what a restart does with it),
``git.guard`` and ``bookkeeping`` (the agent cannot move HEAD, plant hooks or config, or mark
its own story done), ``runlock`` (one run per workspace).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from pathlib import Path

from ralph_tui.baseline import (
    BASELINE_FILE,
    Baselines,
    baseline_flags,
    code_key,
    test_runner_gates,
)
from ralph_tui.bookkeeping import BookkeepingSnapshot
from ralph_tui.config import RalphConfig
from ralph_tui.control import (
    ForwardingHost,
    IterationControl,
    RunEnded,
    approval_request,
    drive_agent,
    gate_event,
)
from ralph_tui.errors import RalphError
from ralph_tui.events import (
    ApprovalDecided,
    Event,
    EventSink,
    GateStarted,
    IterationOutcome,
    IterationStarted,
    PrdChanged,
    ReviewRecorded,
)
from ralph_tui.exit_codes import ExitCode
from ralph_tui.gates import GateResult, run_gates, run_story_gates
from ralph_tui.git.guard import GitSnapshot
from ralph_tui.git.ignored import IgnoredSnapshot
from ralph_tui.git.repo import FileDiff
from ralph_tui.iteration import Agent
from ralph_tui.landing import commit_message
from ralph_tui.pr_review import anchor_comments, comment_lines, drop_lines, drop_parts
from ralph_tui.prd.model import Story
from ralph_tui.review import review_flags
from ralph_tui.run_core import RunCore
from ralph_tui.safety.workspace import Redactor, Workspace
from ralph_tui.supervisor import ApprovalDecision, ApprovalRequest, Supervisor

__all__ = ["Engine", "SerialLoop", "commit_message"]


class SerialLoop(ForwardingHost):
    """One story per iteration in the main checkout (``workers = 1`` on this machine).

    The run's shared calls (events, cost, safe points, the human) go straight to the core
    (``ForwardingHost``); what is its own is the iteration's snapshots (git, bookkeeping,
    ignored files), the gates' baseline, approval in the main checkout and the story commit.
    """

    def __init__(self, core: RunCore[SerialLoop]) -> None:
        super().__init__(core)
        self.core = core
        # what the current iteration started from (None between iterations)
        self._git_snapshot: GitSnapshot | None = None
        self._ignored: IgnoredSnapshot | None = None  # ignored files as the iteration began
        self._books: BookkeepingSnapshot | None = None
        # the test gates' counts per base code tree (review flags when a change runs fewer)
        self._baselines = Baselines(core.root / ".ralph" / BASELINE_FILE)
        self._base_key: str | None = None  # the code tree the iteration started from
        self._last_gates: list[GateResult] = []  # the latest run of the change's gates

    # ----------------------------------------------------------------- LoopStrategy

    def preflight(self) -> None:
        """Nothing beyond the core's: the one checkout is the main one."""

    async def run(self) -> tuple[int, str]:
        return await self._loop()

    def on_event(self, event: Event) -> Event:
        return event

    def wake(self) -> None:
        """The loop waits on the core's own pause state; nothing else to wake."""

    def stop(self) -> None:
        """A stop is seen at the next safe point (``_safe_point``, ``checkpoint``)."""

    async def before_bookkeeping(self) -> None:
        await self._enforce()

    async def approve(self, request: ApprovalRequest) -> ApprovalDecision:
        return await self.core.supervisor_approve(request)

    def open_approval(self, story_id: str) -> bool:
        """One story at a time: the approval on screen is the only one."""
        return False

    async def story_diff(self, story_id: str | None = None) -> list[FileDiff]:
        """The iteration's change, in the main checkout (where the one story runs)."""
        return await asyncio.to_thread(self.core.git.diff)

    # ----------------------------------------------------------------- IterationHost

    @property
    def workspace(self) -> Workspace:
        return self.core.workspace

    @property
    def approvals_unattended(self) -> bool:
        return self.core.approvals_unattended

    # ----------------------------------------------------------------- the loop

    async def _loop(self) -> tuple[int, str]:
        while True:
            await self._safe_point()
            prd = await asyncio.to_thread(self.core.store.load)
            if prd.all_pass:
                return ExitCode.DONE, "every story passes"
            story = prd.next_story(skip=self.core.skipped)
            if story is None:
                waiting = len(prd.open_order(skip=self.core.skipped))
                return ExitCode.LIMIT, (
                    f"no story left to pick ({len(self.core.skipped)} skipped this run"
                    + (f", {waiting} waiting on dependencies)" if waiting else ")")
                )
            if self.core.iteration >= self.core.config.max_iterations:
                return ExitCode.LIMIT, f"reached max_iterations ({self.core.config.max_iterations})"
            if self.core.budget_spent:
                return ExitCode.LIMIT, f"cost budget spent (${self.core.run_cost:.2f})"
            self.core.iteration += 1
            await self._iteration(story)

    async def _safe_point(self) -> None:
        await self.wait_at_safe_point()
        if self.stop_requested:
            raise RunEnded(ExitCode.INTERRUPTED, "stopped by the supervisor")

    async def _iteration(self, story: Story) -> None:
        number = self.core.iteration
        self.emit(IterationStarted(iteration=number, story_id=story.key, title=story.title))
        await asyncio.to_thread(self._begin_iteration, story)
        await self._ensure_baseline()
        control = IterationControl(self, story)
        request = await asyncio.to_thread(self.core.build_request, story, number)
        try:
            outcome, message, ended = await drive_agent(self.core.agent, request, control)
        except RalphError as exc:  # AgentError, or a bookkeeping file that cannot be read
            await self._finish_uncommitted(story, number, "error", str(exc))
            raise
        except asyncio.CancelledError:
            # no await that can suspend: the tree is restored before the cancellation goes on
            await self._finish_uncommitted(story, number, "stopped", "interrupted", blocking=True)
            raise
        if outcome == "committed":
            self.core.failures[story.key] = 0
            # --allow-dirty: an edit of the agent's to the user's own files stayed out of the
            # commit; it does not stay in them either
            for rel in await asyncio.to_thread(self.core.put_back_user_files):
                self.notice(
                    f"{rel}: your uncommitted file, changed by the agent; put back as you left "
                    "it (the change was not committed)",
                    "warning",
                )
            await asyncio.to_thread(self._end_iteration)
            self.core.iteration_finished(number, story, outcome)
        else:
            await self._finish_uncommitted(story, number, outcome, message)
        ended = ended or control.run_ended
        if ended is not None:
            raise ended
        if outcome in ("failed", "error"):
            await self.core.count_failure(story)

    def _begin_iteration(self, story: Story) -> None:
        """Record what the iteration starts from: the state marker, git, the bookkeeping."""
        self.core.state_file.write(self.core.marker("iteration", story))
        self._git_snapshot = GitSnapshot.take(self.core.git)
        self._books = BookkeepingSnapshot.take(self.core.store, self.core.progress)
        self._ignored = IgnoredSnapshot.take(self.core.root, self.core.run_dir / "ignored-backup")

    def _end_iteration(self) -> None:
        self._git_snapshot = None
        self._books = None
        if self._ignored is not None:
            self._ignored.discard()
            self._ignored = None
        self.core.state_file.clear()

    async def _finish_uncommitted(
        self,
        story: Story,
        number: int,
        outcome: IterationOutcome,
        message: str,
        *,
        blocking: bool = False,
    ) -> None:
        """Save the change as a patch and restore the tree, so the next iteration starts clean.

        The git and file work runs in a worker thread (or right here when ``blocking``, on the
        cancellation path); the events are emitted afterwards, on the loop.
        """
        notes: list[str] = []
        patch_path: Path | None = None
        try:
            if blocking:
                patch_path = self._wind_up(story, number, notes)
            else:
                patch_path = await asyncio.to_thread(self._wind_up, story, number, notes)
        finally:
            self._report(notes)
            self.core.iteration_finished(number, story, outcome, message, patch_path)

    def _wind_up(self, story: Story, number: int, notes: list[str]) -> Path | None:
        try:
            notes.extend(self._enforce_sync())
            patch_path = self.core.git.save_patch(
                self.core.run_dir / "patches" / f"iter-{number:03d}-{story.slug}.patch"
            )
            if self._ignored is not None:  # the agent's .gitignore lines hide nothing now
                for rel in self._ignored.restore_rules():
                    notes.append(f"{rel}: a .gitignore the agent added; removed")
            self.core.git.restore_to_head(keep=(*self.core.bookkeeping, *self.core.user_dirty))
            self.core.put_back_user_files()
            if self._ignored is not None:
                notes.extend(self._ignored.restore())
            return patch_path
        finally:
            self._end_iteration()

    def _enforce_sync(self) -> list[str]:
        """Undo what the agent did to git and the bookkeeping (``git_guard``, ``bookkeeping``)."""
        self.core.check_bookkeeping_paths()  # a tasks/ swapped for a link mid-run stops the run
        notes: list[str] = []
        reset = False
        if self._git_snapshot is not None:
            git_notes, reset = self._git_snapshot.enforce(self.core.git)
            notes += git_notes
        if self._books is not None:
            if reset:
                notes += self._books.reset_files(self.core.store, self.core.progress)
            notes += self._books.enforce(self.core.store, self.core.progress)
        return notes

    async def _enforce(self) -> None:
        """Before the gates, before approval and before the commit."""
        self._report(await asyncio.to_thread(self._enforce_sync))

    def _report(self, notes: Sequence[str]) -> None:
        for note in notes:
            self.notice(note, "warning")
        if notes:
            self.emit(PrdChanged(source="engine"))

    async def _ensure_baseline(self) -> None:
        """The test gates' counts on the tree this iteration starts from: known from the
        change that made it, else measured now, once, on the clean tree (``baseline``)."""
        if not self.core.config.review.baseline:
            return
        key = await asyncio.to_thread(code_key, self.core.root, "HEAD", self.core.bookkeeping)
        self._base_key = key
        tests = test_runner_gates(self.core.config.gates)
        if not tests or self._baselines.get(key) is not None:
            return
        self.notice(
            f"measuring the test gates on the base tree once ({', '.join(tests)}): a change "
            "that runs fewer tests than this is flagged for review"
        )
        results = await run_gates(
            tests,
            self.core.root,
            self.core.config.gate_options.timeout_s,
            sandbox=self.core.workspace.sandbox,
        )
        await asyncio.to_thread(self._baselines.put, key, results)

    async def run_gates(self, story: Story | None = None) -> list[GateResult]:
        await self._enforce()
        self._last_gates = await self._run_story_gates(story)
        return self._last_gates

    async def _run_story_gates(self, story: Story | None) -> list[GateResult]:
        # the story's own commands (as the story was when picked) run beside the project's
        return await run_story_gates(
            self.core.config,
            story,
            self.core.root,
            self.core.workspace.sandbox,
            on_start=lambda name, command, criterion: self.emit(
                GateStarted(name=name, command=command, criterion=criterion)
            ),
            on_finish=lambda result: self.emit(gate_event(result)),
        )

    async def review(self, story: Story) -> list[str]:
        """The change's review flags, judged on what the human is shown (``describe_change``)."""
        files = await asyncio.to_thread(self.core.git.diff)

        def before(path: str) -> str | None:
            data = self.core.git.show_file("HEAD", Path(path))
            return data.decode("utf-8", "replace") if data is not None else None

        flags = await asyncio.to_thread(review_flags, files, self.core.config.review, before)
        lines = [flag.line() for flag in flags]
        if self._base_key is not None:
            lines += baseline_flags(self._baselines.get(self._base_key), self._last_gates)
        if self._ignored is not None:
            lines += (await asyncio.to_thread(self._ignored.changes)).flags()
        return [self.core.redactor(line) for line in lines]

    async def ask_approval(
        self, story: Story, summary: str, results: Sequence[GateResult], flags: Sequence[str]
    ) -> ApprovalDecision:
        await self._enforce()
        diffstat = await asyncio.to_thread(self.core.git.diffstat)
        if self._ignored is not None:  # never committed, but the human sees what happened
            ignored = (await asyncio.to_thread(self._ignored.changes)).lines()
            diffstat = "\n".join([*(f" ! {line}" for line in ignored), diffstat]).strip("\n")
        message = commit_message(self.core.config.role, story, flags)
        needed, request = approval_request(story, message, summary, diffstat, results, 0, flags)
        self.emit(needed)
        self.core.set_state("waiting")
        try:
            decision = await self.core.supervisor.approve(request)
        finally:
            self.core.set_state("running")
        self.emit(
            ApprovalDecided(story_id=story.key, decision=decision.kind, feedback=decision.feedback)
        )
        self.core.approved_flags[story.key] = tuple(flags)
        return decision

    async def apply_review(self, story: Story, decision: ApprovalDecision) -> ApprovalDecision:
        """The decision's comments anchored to the diff shown (quoted), recorded for the
        journal and the story's progress entry; an approval's drops taken out of the tree."""
        await self._enforce()
        files = await asyncio.to_thread(self.core.git.diff)
        decision = dataclasses.replace(
            decision, comments=tuple(anchor_comments(files, decision.comments))
        )
        dropped = [self.core.redactor(line) for line in drop_lines(files, decision.drops)]
        comments = [self.core.redactor(line) for line in comment_lines(decision.comments)]
        if decision.kind == "approve" and decision.drops:
            await asyncio.to_thread(
                drop_parts, self.core.git, files, decision.drops, self.core.bookkeeping
            )
        else:
            dropped = []  # a reject or a discard leaves the change as it is
        self.emit(
            ReviewRecorded(
                story_id=story.key,
                decision=decision.kind,
                dropped=tuple(dropped),
                comments=tuple(comments),
            )
        )
        return decision

    async def commit_story(self, story: Story, learnings: Sequence[str]) -> str:
        """Mark the story, log it, and make ONE commit holding the change and the bookkeeping
        (``landing``). The user's own uncommitted files (``--allow-dirty``) stay out of it; a
        failed commit leaves the change in the tree for the agent to fix."""
        await self._enforce()

        def rebase_books() -> None:  # the engine itself cut the log back
            if self._books is not None:
                self._books.rebase_progress(self.core.progress)

        flags = self.core.approved_flags.pop(story.key, ())
        sha = await self.core.landing.land(
            story,
            learnings,
            marker=self.core.marker("committing", story),
            after=self.core.marker("iteration", story),
            user_files=self.core.user_dirty,
            undo=rebase_books,
            flags=flags,
            review=self.core.review_notes.pop(story.key, ()),
        )
        await self.core.tracker_landed(story, sha, self._last_gates, flags)
        if self._git_snapshot is not None:
            self._git_snapshot.moved_to(sha)
        if self.core.config.review.baseline and self._last_gates:
            # the gates' last run was on exactly this code: the next story's baseline
            key = await asyncio.to_thread(code_key, self.core.root, sha, self.core.bookkeeping)
            await asyncio.to_thread(self._baselines.put, key, self._last_gates)
        return sha


class Engine(RunCore[SerialLoop]):
    """A run with the serial loop: the named constructor the single-worker faces and tests use
    (``runs.build_engine`` picks it or ``parallel.ParallelEngine``). It adds nothing to the
    core; the loop is ``self.loop``."""

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
    ) -> None:
        super().__init__(
            workspace,
            config,
            agent,
            supervisor,
            sink,
            loop=SerialLoop,
            allow_dirty=allow_dirty,
            run_id=run_id,
            redactor=redactor,
        )
