"""Parallel stories: up to N workers, each in its own checkout, one approval queue, verified merges.

``ParallelLoop`` is one of the two strategies over a run (``ralph_tui.run_core``; the other is
``engine.SerialLoop``): a scheduler in place of the one-story loop. It picks up to ``workers``
stories by the PRD's pick rule (priority, file order, dependencies that must pass: so never two
stories where one depends on the other), and hands each to an ``Executor``
(``ralph_tui.executors.base``). Everything that must happen once stays in the run core or here,
in the main checkout: the PRD and the progress log are only written by the run, approvals go
through one ``ApprovalQueue``, and merges run one at a time:

approve -> rebase the change onto main's HEAD -> if main moved since the gates last passed, run
the gates again on the rebased tree -> one commit on main holding the change, ``passes: true``
and the progress entry. A conflict or a red gate goes back to the worker's agent as a fix
attempt (``MergeRetry``).

Every event a worker causes, in its own task or in the run on its behalf, is tagged with the
worker's number (a context variable read by ``on_event``).
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from ralph_tui.agents import create_agent
from ralph_tui.agents.fallback import FallbackAgent
from ralph_tui.agents.registry import agent_spec
from ralph_tui.approvals import ApprovalQueue, approvals_automatic
from ralph_tui.config import RalphConfig
from ralph_tui.control import ForwardingHost, RunEnded, approval_request, gate_report
from ralph_tui.events import (
    ApprovalDecided,
    ApprovalsWaiting,
    Event,
    EventSink,
    IterationStarted,
    PrdChanged,
)
from ralph_tui.executors import ExecutorSite, build_executor
from ralph_tui.executors.base import (
    CHANGED_AFTER_APPROVAL,
    Checkout,
    Executor,
    MergeRetry,
    StoryJob,
    WorkerResult,
)
from ralph_tui.exit_codes import ExitCode
from ralph_tui.gates import GateResult
from ralph_tui.git.repo import FileDiff, numstat_paths, run_git
from ralph_tui.git.worktrees import WorktreeManager
from ralph_tui.iteration import Agent
from ralph_tui.landing import commit_message
from ralph_tui.prd.model import Prd, Story
from ralph_tui.run_core import RunCore
from ralph_tui.safety.credentials import Redactor
from ralph_tui.supervisor import ApprovalDecision, ApprovalRequest, EscalationAnswer, Supervisor

log = logging.getLogger(__name__)

_WORKER: contextvars.ContextVar[int] = contextvars.ContextVar("ralph_worker", default=0)


class ParallelLoop:
    """The scheduler over an executor: a ``LoopStrategy`` for ``workers > 1`` or a remote
    executor. It owns the workers' agents, the executor, the approval queue, the merge train
    and main's HEAD during the run; the rest of the run is its ``core``'s."""

    def __init__(
        self,
        core: RunCore[ParallelLoop],
        *,
        agent: Agent | None = None,
        workers: int | None = None,
        executor: Executor | None = None,
        executor_credentials: Mapping[str, str] | None = None,
    ) -> None:
        self.core = core
        self.workers = workers or core.config.workers
        self.approvals = ApprovalQueue(core.supervisor, self._approvals_changed)
        self._waiting_shown: tuple[str, ...] = ()
        # the configured executor (``executors.EXECUTORS``), unless one is given (tests)
        self.executor: Executor = executor or build_executor(
            ExecutorSite(
                root=core.root,
                config=core.config,
                agent=agent,
                agent_for=self._agent_for,
                bookkeeping=core.bookkeeping,
                patch_dir=core.run_dir / "patches",
                credentials=executor_credentials,
            )
        )
        self._agents: dict[int, Agent] = {}
        self._merge_lock = asyncio.Lock()
        self._human_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        # story id -> (worker, reason) for workers told to stop at their next safe point
        self._stopping: dict[str, str] = {}
        self.running: dict[str, int] = {}  # story id -> worker number
        self._head = ""  # main's HEAD: only this loop moves it during the run
        self._landed: set[str] = set()  # committed by this run (their workers are winding up)
        # story id -> (gates, flags) of a landing the tracker has not heard of yet
        self._to_report: dict[str, tuple[Sequence[GateResult], Sequence[str]]] = {}
        self._train: list[_Ticket] = []
        self._train_moved = asyncio.Event()  # approved changes waiting to land, in order
        self._gated: dict[str, list[GateResult]] = {}  # code tree -> the gates' verdict on it
        self._picked_priority: dict[str, float | None] = {}

    # ----------------------------------------------------------------- events and control

    def on_event(self, event: Event) -> Event:
        worker = _WORKER.get()
        if worker and not event.worker:
            event = dataclasses.replace(event, worker=worker)
        if isinstance(event, PrdChanged) and event.source == "external":
            self._wake.set()
        return event

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self.approvals.stop()
        self._wake.set()

    async def before_bookkeeping(self) -> None:
        """The workers never touch the main checkout's bookkeeping: only its folders are
        checked (a ``tasks/`` swapped for a link mid-run stops the run)."""
        await asyncio.to_thread(self.core.check_bookkeeping_paths)

    def _approvals_changed(self) -> None:
        waiting = tuple(self.approvals.waiting_ids())
        if waiting != self._waiting_shown:
            self._waiting_shown = waiting
            self.core.emit(ApprovalsWaiting(story_ids=waiting))

    def stopping(self, story_id: str) -> bool:
        """Whether ``story_id``'s worker was told to stop at its next safe point."""
        return story_id in self._stopping

    async def ask_human_in_turn(
        self, story: Story, question: str, tried: str, *, automatic: bool
    ) -> EscalationAnswer:
        """Workers' escalations, one at a time: the supervisor answers one question at once."""
        async with self._human_lock:
            return await self.core.ask_human(story, question, tried, automatic=automatic)

    def open_approval(self, story_id: str) -> bool:
        return self.approvals.select(story_id)

    async def story_diff(self, story_id: str | None = None) -> list[FileDiff]:
        """A running story's change in its checkout (a worktree here, or on a Ray node);
        ``None``: the main checkout's."""
        if story_id is None:
            return await asyncio.to_thread(self.core.git.diff)
        return await self.executor.story_diff(story_id)

    # ----------------------------------------------------------------- the run

    def preflight(self) -> None:
        """Worktrees a killed run left behind: their changes saved as patches, then removed."""
        WorktreeManager(self.core.root, self.core.bookkeeping).recover(
            self.core.run_dir / "patches", self.core.startup_notes.append
        )

    def _agent_for(self, worker: int) -> Agent:
        shared = agent_spec(self.core.config.agent).shared and not self.core.config.fallback
        if worker == 1 or shared:
            return self.core.agent  # the scripted agent keeps no per-conversation state
        if worker not in self._agents:
            agent = create_agent(self.core.config, self.core.root)
            if isinstance(agent, FallbackAgent) and isinstance(self.core.agent, FallbackAgent):
                agent.follow(self.core.agent)  # a rate limit one worker meets holds for all
            self._agents[worker] = agent
        return self._agents[worker]

    async def run(self) -> tuple[int, str]:
        tasks: dict[asyncio.Task[Any], str] = {}
        self._head = await asyncio.to_thread(self.core.git.head_sha)
        ended: RunEnded | None = None
        error: BaseException | None = None
        try:
            while True:
                self._wake.clear()
                prd = await asyncio.to_thread(self.core.store.load)
                self._check_running(prd)
                finish: tuple[int, str] | None = None
                if error is None and ended is None:
                    finish = self._why_stop(prd)
                    if finish is None and not self.core.paused:
                        self._start_jobs(prd, tasks)
                        if not tasks:
                            finish = self._nothing_to_pick(prd)
                if not tasks:
                    if error is not None:
                        raise error
                    if ended is not None:
                        raise ended
                    if finish is not None:
                        return finish
                    await self.core.wait_at_safe_point()  # paused with no worker running
                    continue
                waker = asyncio.create_task(self._wake.wait())
                done, _ = await asyncio.wait({*tasks, waker}, return_when=asyncio.FIRST_COMPLETED)
                waker.cancel()
                for task in done:
                    if task is waker:
                        continue
                    story_id = tasks.pop(task)
                    self.running.pop(story_id, None)
                    self._stopping.pop(story_id, None)
                    self._picked_priority.pop(story_id, None)
                    exc = task.exception()
                    if isinstance(exc, RunEnded):
                        ended = ended or exc
                        self._stop_all()
                    elif exc is not None:
                        error = error or exc
                        self._stop_all()
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            await self.approvals.aclose()
            await self.executor.aclose()  # e.g. the Ray executor's warm actors
            for agent in self._agents.values():
                try:
                    await agent.aclose()
                except Exception:  # closing must not hide the run's own outcome
                    log.warning("closing a worker's agent failed", exc_info=True)

    def _why_stop(self, prd: Prd) -> tuple[int, str] | None:
        if self.core.stop_requested:
            return ExitCode.INTERRUPTED, "stopped by the supervisor"
        if self.core.budget_spent:
            return ExitCode.LIMIT, f"cost budget spent (${self.core.run_cost:.2f})"
        if prd.all_pass:
            return ExitCode.DONE, "every story passes"
        if self.core.iteration >= self.core.config.max_iterations:
            return ExitCode.LIMIT, f"reached max_iterations ({self.core.config.max_iterations})"
        return None

    def _nothing_to_pick(self, prd: Prd) -> tuple[int, str]:
        if prd.all_pass:
            return ExitCode.DONE, "every story passes"
        blocked = [
            s.key for s in prd.open_order(skip=self.core.skipped) if s.key not in self.running
        ]
        if blocked:
            return ExitCode.LIMIT, (
                f"no story left to pick ({len(self.core.skipped)} skipped this run, "
                f"{len(blocked)} waiting for dependencies that do not pass)"
            )
        return ExitCode.LIMIT, f"no story left to pick ({len(self.core.skipped)} skipped this run)"

    def _stop_all(self) -> None:
        for story_id in self.running:
            self._stopping.setdefault(story_id, "the run is ending")

    def _start_jobs(self, prd: Prd, tasks: dict[asyncio.Task[Any], str]) -> None:
        free = [n for n in range(1, self.workers + 1) if n not in self.running.values()]
        if free:
            left = len(prd.open_order(skip={*self.core.skipped, *self.running}))
            self.executor.expect(min(left, self.core.config.max_iterations - self.core.iteration))
        # the PRD's pick rule leaves out stories whose dependencies do not pass yet, so two
        # stories where one depends on the other never run at once
        for story in prd.pick_order(skip={*self.core.skipped, *self.running}):
            if not free or self.core.iteration >= self.core.config.max_iterations:
                break
            worker = free.pop(0)
            self.core.iteration += 1
            self.running[story.key] = worker
            self._picked_priority[story.key] = story.priority
            ctx = contextvars.copy_context()
            ctx.run(_WORKER.set, worker)
            task = asyncio.create_task(
                self._work(worker, story, self.core.iteration),
                name=f"worker-{worker}",
                context=ctx,
            )
            task.add_done_callback(lambda _t: self._wake.set())
            tasks[task] = story.key

    def _check_running(self, prd: Prd) -> None:
        """Live PRD edits: a running story removed (or marked passing by hand) is stopped at
        its worker's next safe point; one reprioritised is finished. The UI is told which."""
        for story_id, worker in self.running.items():
            if story_id in self._stopping or story_id in self._landed:
                continue
            current = prd.story(story_id)
            if current is None or current.passes:
                why = "removed from the PRD" if current is None else "marked as passing by hand"
                self._stopping[story_id] = why
                self.core.notice(
                    f"Task #{story_id} was {why}; worker {worker} stops at its next safe point",
                    "warning",
                )
            elif current.priority != self._picked_priority.get(story_id, current.priority):
                self._picked_priority[story_id] = current.priority
                self.core.notice(
                    f"Task #{story_id} was reprioritised (now {current.priority}); "
                    f"worker {worker} finishes it"
                )

    # ----------------------------------------------------------------- one worker

    async def _work(self, worker: int, story: Story, number: int) -> None:
        job = await asyncio.to_thread(self._job, worker, story, number)
        node = await self.executor.place(job)
        self.core.emit(
            IterationStarted(
                iteration=number,
                story_id=story.key,
                title=story.title,
                executor=self.executor.name,
                node=node,
            )
        )
        host = _JobHost(self, worker, story)
        try:
            result: WorkerResult = await self.executor.run(job, host)
        finally:
            self._leave_train(worker)
        self.core.iteration_finished(
            number, story, result.outcome, result.message, result.patch_path
        )
        if result.run_ended is not None:
            raise result.run_ended
        if result.outcome == "committed":
            self.core.failures[story.key] = 0
        elif result.outcome in ("failed", "error"):
            async with self._human_lock:
                await self.core.count_failure(story)

    def _job(self, worker: int, story: Story, number: int) -> StoryJob:
        """The prompts exactly as the single-worker loop builds them (progress tail included)."""
        request = self.core.build_request(story, number)
        return StoryJob(
            worker=worker,
            story=story,
            base_commit=self.core.git.head_sha(),
            iteration=number,
            system_prompt=request.system_prompt,
            user_prompt=request.user_prompt,
            config=self.core.config,
            feedback=request.feedback,
            approvals_unattended=self.core.approvals_unattended,
        )

    # ----------------------------------------------------------------- approval and merge

    async def approve(self, request: ApprovalRequest) -> ApprovalDecision:
        """A PRD change the PM proposed waits in the same queue as the workers' changes."""
        return await self.approvals.approve(request)

    async def queue_approval(
        self,
        worker: int,
        story: Story,
        summary: str,
        results: Sequence[GateResult],
        stat: str,
        flags: Sequence[str],
    ) -> ApprovalDecision:
        flags = [self.core.redactor(flag) for flag in flags]
        message = commit_message(self.core.config.role, story, flags)
        needed, request = approval_request(story, message, summary, stat, results, worker, flags)
        self.core.emit(needed)
        decision = await self.approvals.approve(request)
        self.core.emit(
            ApprovalDecided(story_id=story.key, decision=decision.kind, feedback=decision.feedback)
        )
        if decision.kind != "approve":  # rejected or discarded: it will not land as gated
            self._leave_train(worker)
        else:
            self.core.approved_flags[story.key] = tuple(flags)
        return decision

    def _ticket(self, worker: int) -> _Ticket | None:
        return next((t for t in self._train if t.worker == worker), None)

    def _leave_train(self, worker: int) -> None:
        ticket = self._ticket(worker)
        if ticket is not None:
            if ticket.state != "landed":
                # the changes behind it may have been gated on top of it: their commits hold a
                # change that will not land, so nothing new is stacked on them (their own
                # landing re-checks the tree that really lands, see ``merge``)
                for follower in self._train[self._train.index(ticket) + 1 :]:
                    follower.tainted = True
            self._train.remove(ticket)
            ticket.placed.set()
            self._train_moved.set()

    async def gate(self, worker: int, story: Story, checkout: Checkout) -> list[GateResult]:
        """Gate the change on top of the changes ahead of it in the train (see ``merge``)."""
        self._leave_train(worker)
        ticket = _Ticket(worker, story.key)
        ahead = self._train[-1] if self._train else None
        self._train.append(ticket)
        try:
            await checkout.snapshot()  # this change's own commit: no need to wait for that
            if ahead is not None:  # its place in the train is known in a few git calls
                await ahead.placed.wait()
            target = next(
                (t.commit for t in reversed(self._train) if t.commit and not t.tainted),
                self._head,
            )
            if target != checkout.base_commit:
                await checkout.rebase(target, keep_conflicts=False)  # a conflict waits
            ticket.commit = (await checkout.snapshot()).commit  # followers stack on it now
            ticket.placed.set()
            tree = await checkout.code_tree()
            results = await checkout.run_gates()
            if not all(r.passed for r in results) and target != self._head:
                # gated on top of changes still in flight: the failure may be theirs (one that
                # fails its own gates leaves the train), so what goes back to the agent is the
                # verdict on main alone
                self._gated[tree] = results
                if not await checkout.rebase(self._head, keep_conflicts=False):
                    self.core.notice(
                        f"Task #{story.key}'s gates failed on top of changes still in flight; "
                        "running them again on main alone"
                    )
                    ticket.commit = (await checkout.snapshot()).commit
                    tree = await checkout.code_tree()
                    results = await checkout.run_gates()
        except BaseException:
            self._leave_train(worker)
            raise
        self._gated[tree] = results
        if all(r.passed for r in results):
            ticket.state = "approval"
        else:
            self._leave_train(worker)
        self._train_moved.set()
        return results

    async def merge(self, story: Story, checkout: Checkout, learnings: Sequence[str]) -> str:
        """Approve = land on main, verified; then the tracker hears of it, outside the merge
        lock and the train: a slow tracker (a rate limit is waited out) holds up only this
        worker, not every landing behind it."""
        sha = await self._merge(story, checkout, learnings)
        report = self._to_report.pop(story.key, None)
        if report is not None:
            await self.core.tracker_landed(story, sha, *report)
        return sha

    async def _merge(self, story: Story, checkout: Checkout, learnings: Sequence[str]) -> str:
        """Land on main, verified (see the module docstring).

        Changes form a train in the order their gates started: each is gated on top of the
        ones ahead of it, all at once. A change lands after those ahead of it that are still
        being gated or merged (with automatic approvals: also those waiting for approval), so
        when the train lands as predicted the tree a change lands with is one its gates
        already passed on, and the re-check under the merge lock finds nothing to re-run. When
        it does not (a human approved out of order, a change ahead was dropped), the gates run
        again on the rebased change.
        """
        worker = _WORKER.get()
        ticket = self._ticket(worker)
        if ticket is None:
            ticket = _Ticket(worker, story.key)
            self._train.append(ticket)
        ticket.state = "merging"
        # approvals come from a policy, not a human: a merge waits for those ahead of it
        waits = {"gating", "merging"} | (
            {"approval"} if approvals_automatic(self.core.config) else set()
        )
        try:
            while any(t.state in waits for t in self._train[: self._train.index(ticket)]):
                self._train_moved.clear()
                await self._train_moved.wait()
            async with self._merge_lock:
                # git, not the remembered value: a human may have committed on main meanwhile
                head = self._head = await asyncio.to_thread(self.core.git.head_sha)
                change = await checkout.snapshot()
                approved = getattr(checkout, "approved_commit", None)
                if approved is not None and change.commit != approved:
                    raise MergeRetry(CHANGED_AFTER_APPROVAL)
                landed = await checkout.code_tree_on(head)
                known = self._gated.get(landed) if landed is not None else None
                if known is not None and all(r.passed for r in known):
                    # the tree that lands is one the gates passed on: no rebase, no re-run
                    sha = await self._land(story, change.patch, learnings, known)
                    ticket.state = "landed"
                    return sha
                conflicts = await checkout.rebase(head)
                if conflicts:
                    self.core.notice(
                        f"Task #{story.key} conflicts with main: {', '.join(conflicts)}"
                    )
                    raise MergeRetry(
                        "The main branch moved since you started and your change conflicts "
                        f"with it in: {', '.join(conflicts)}.\nYour working tree now holds your "
                        "change on top of the current main branch, with conflict markers in "
                        "those files. Resolve the conflicts (keep both sides' intent), run the "
                        "quality gates, then call complete_task again."
                    )
                # what lands is the approved change rebased, taken before the gates run again:
                # whatever the agent's test code writes during that run never lands
                rebased = await checkout.snapshot()
                results = await self._verify(story, checkout)
                if not all(r.passed for r in results):
                    raise MergeRetry(
                        "Your change was rebased onto the current main branch and the quality "
                        "gates fail on the result:\n\n" + gate_report(results)
                    )
                sha = await self._land(story, rebased.patch, learnings, results)
                ticket.state = "landed"
                return sha
        finally:
            self._leave_train(worker)

    async def _verify(self, story: Story, checkout: Checkout) -> list[GateResult]:
        """The gates' verdict on the checkout's tree: from an earlier run on the same code, or
        a new run (said in the UI: main moved since the gates passed)."""
        await checkout.snapshot()
        tree = await checkout.code_tree()
        known = self._gated.get(tree)
        if known is not None:
            return known
        self.core.notice(
            f"main moved since Task #{story.key}'s gates passed; "
            "running them again on the rebased change"
        )
        results = await checkout.run_gates()
        self._gated[tree] = results
        return results

    async def _land(
        self,
        story: Story,
        patch: bytes,
        learnings: Sequence[str],
        gates: Sequence[GateResult],
    ) -> str:
        """ONE commit on main (``landing``): the worker's change applied from its patch; a
        failure leaves main's tree as it was and no state marker behind."""
        keep = (*self.core.bookkeeping, *self.core.user_dirty)
        flags = self.core.approved_flags.pop(story.key, ())

        # --allow-dirty: the user's own uncommitted files stay out of the commit, as with one
        # worker (their version in the main checkout is left as it is)
        skip = [f"--exclude={_glob_literal(path)}" for path in self.core.user_dirty]
        for path in self.core.user_dirty:
            if f"\n+++ b/{path}\n".encode() in patch or f"\n--- a/{path}\n".encode() in patch:
                self.core.notice(
                    f"Task #{story.key} changed {path}, your uncommitted file: that part stays "
                    "out of the commit and your version stays as it is",
                    "warning",
                )

        def put_in() -> list[str]:
            if not patch:
                return []
            # --numstat with --apply: applied, and the files it changed listed, in one call
            applied = run_git(
                self.core.root, "apply", "--binary", "--index", "--numstat", "-z", "--apply", *skip,
                stdin=patch,
            )  # fmt: skip
            if applied.returncode != 0:
                self.core.git.restore_to_head(keep)
                raise MergeRetry(
                    "Your change does not apply to the main branch: "
                    + applied.stderr.decode("utf-8", "replace").strip()
                )
            return numstat_paths(applied.stdout)

        sha = await self.core.landing.land(
            story,
            learnings,
            marker=self.core.marker("committing", story),
            after=None,
            user_files=self.core.user_dirty,
            put_in=put_in,
            undo=lambda: self.core.git.restore_to_head(keep=keep),
            flags=flags,
            review=self.core.review_notes.pop(story.key, ()),
        )
        self._head = sha
        self._to_report[story.key] = (gates, flags)  # told by ``merge``, after the lock
        self._landed.add(story.key)
        self._wake.set()  # a dependency may have just passed
        return sha


def _glob_literal(path: str) -> str:
    """``path`` as a pattern matching only itself (``git apply --exclude`` takes globs)."""
    return "".join(f"\\{ch}" if ch in "*?[]\\" else ch for ch in path)


@dataclasses.dataclass(eq=False)
class _Ticket:
    """A change in the merge train: gated on top of the ones ahead of it."""

    worker: int
    story_id: str
    state: Literal["gating", "approval", "merging", "landed"] = "gating"
    commit: str | None = None  # the change on top of the ones ahead (None: not yet known)
    tainted: bool = False  # a change ahead of it left the train without landing
    placed: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)


class _JobHost(ForwardingHost):
    """The run's side of one job (``executor.WorkerHost``): the run core's own host, with this
    worker's stop, its escalations taken one at a time, and the loop's queue and train."""

    def __init__(self, loop: ParallelLoop, worker: int, story: Story) -> None:
        super().__init__(loop.core)
        self._core = loop.core
        self._loop = loop
        self.worker = worker
        self.story = story

    @property
    def stop_requested(self) -> bool:
        return self._core.stop_requested or self._loop.stopping(self.story.key)

    async def ask_human(
        self, story: Story, question: str, tried: str, *, automatic: bool
    ) -> EscalationAnswer:
        return await self._loop.ask_human_in_turn(story, question, tried, automatic=automatic)

    @property
    def approvals_unattended(self) -> bool:
        return self._core.approvals_unattended

    async def ask_approval(
        self,
        story: Story,
        summary: str,
        results: Sequence[GateResult],
        diffstat: str,
        flags: Sequence[str],
    ) -> ApprovalDecision:
        return await self._loop.queue_approval(
            self.worker, story, summary, results, diffstat, flags
        )

    async def merge(self, story: Story, checkout: Checkout, learnings: Sequence[str]) -> str:
        return await self._loop.merge(story, checkout, learnings)

    async def gate(self, checkout: Checkout) -> list[GateResult]:
        return await self._loop.gate(self.worker, self.story, checkout)


class ParallelEngine(RunCore[ParallelLoop]):
    """A run with the parallel loop: the named constructor ``runs.build_engine`` and tests use.
    It adds nothing to the core; the loop is ``self.loop``."""

    def __init__(
        self,
        workspace: Path,
        config: RalphConfig,
        agent: Agent | None,
        supervisor: Supervisor,
        sink: EventSink,
        *,
        workers: int | None = None,
        executor: Executor | None = None,
        allow_dirty: bool = False,
        run_id: str | None = None,
        redactor: Redactor | None = None,
        executor_credentials: Mapping[str, str] | None = None,
    ) -> None:
        def loop(core: RunCore[ParallelLoop]) -> ParallelLoop:
            return ParallelLoop(
                core,
                agent=agent,
                workers=workers,
                executor=executor,
                executor_credentials=executor_credentials,
            )

        super().__init__(
            workspace,
            config,
            agent,
            supervisor,
            sink,
            loop=loop,
            allow_dirty=allow_dirty,
            run_id=run_id,
            redactor=redactor,
        )


__all__ = ["ParallelEngine", "ParallelLoop"]
