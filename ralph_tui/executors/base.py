"""Executors: run one story's iteration in an isolated checkout and hand back a change.

This is the contract between the scheduler (``ralph_tui.parallel``, which owns the main branch,
the PRD, the progress log, the approval queue and every commit) and whatever runs an agent on a
story somewhere else: a git worktree on this machine (``LocalWorktreeExecutor``, below), a
container, a cluster node. An executor never writes the main checkout, the PRD or the progress
log; the engine never reaches into an executor's checkout except through ``Checkout``.

What an executor receives, per story (``Executor.run``):

- a ``StoryJob``: the worker number (1..N, it tags every event), the story as of the pick
  (read-only), ``base_commit`` (the main branch's HEAD at pick time: the checkout starts there),
  the prompts (``system_prompt`` and ``user_prompt``, which already hold the progress log's
  latest entries and any feedback), the iteration number and the ``RalphConfig``;
- a ``WorkerHost``: the engine's side, supervisor-facing. ``emit`` (events already tagged with
  the worker), ``wait_at_safe_point``/``stop_requested`` (pause, stop, cost budget, a story
  removed from the PRD: how cancel/stop reach a running agent, at its next safe point),
  ``add_usage`` (the run's summed cost), ``ask_human`` (escalation), ``ask_approval`` (the one
  approval queue; the answer may be reject-with-feedback or discard) and ``merge`` (approve =
  land the change on main, verified; raises ``MergeRetry`` when the change must go back to the
  agent: a rebase conflict or a red gate on the rebased tree, which counts as a fix attempt).

What it hands back:

- during the run, to ``WorkerHost.merge``: a ``Checkout`` on which the engine calls
  ``snapshot`` (the change as a ``StoryChange``: the branch ``ralph/<story-id>`` holding it as
  one commit on its base, and the same change as a binary patch, which is all a remote executor
  needs to ship back), ``rebase(onto)`` and ``run_gates`` (the gates on the rebased tree, inside
  the executor's own sandbox);
- at the end, a ``WorkerResult``: the iteration's outcome (committed, discarded, failed,
  skipped, stopped, error), a message, the saved patch of a change that did not land, and the
  cost the worker spent.

Cancellation: ``Executor.run`` runs in an asyncio task. A stop at a safe point comes through the
host (``stop_requested``), a hard stop is the task being cancelled: the executor must then save
the change as a patch and remove its checkout before re-raising. A crash (kill -9) leaves the
checkout behind; ``LocalWorktreeExecutor.recover`` (called before a run starts) saves every
leftover worktree's change as a patch and removes the worktree and its branch.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ralph_tui.config import RalphConfig
from ralph_tui.control import (
    ForwardingHost,
    IterationControl,
    MergeConflict,
    RunEnded,
    RunHost,
    drive_agent,
    gate_event,
)
from ralph_tui.errors import RalphError
from ralph_tui.events import GateStarted, IterationOutcome, ReviewRecorded
from ralph_tui.executors import ExecutorSite
from ralph_tui.gates import GateResult, run_story_gates
from ralph_tui.git.repo import FileDiff, GitRepo
from ralph_tui.git.worktrees import Worktree, WorktreeManager, worker_diff
from ralph_tui.iteration import Agent, IterationRequest
from ralph_tui.pr_review import anchor_comments, comment_lines, drop_lines, drop_parts
from ralph_tui.prd.model import Story
from ralph_tui.review import ReviewOptions, review_commit
from ralph_tui.safety.sandbox import resolve_sandbox
from ralph_tui.safety.workspace import Workspace
from ralph_tui.supervisor import ApprovalDecision

log = logging.getLogger(__name__)


CHANGED_AFTER_APPROVAL = (
    "Your working tree changed after the change was approved (a process still writing?), so "
    "it is not what the human approved and nothing landed. Make sure nothing runs in the "
    "background, run the quality gates, then call complete_task again: the change is "
    "reviewed as it is."
)


class MergeRetry(Exception):
    """The approved change could not land as it is; ``message`` goes back to the agent."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class StoryJob:
    worker: int
    story: Story
    base_commit: str
    iteration: int
    system_prompt: str
    user_prompt: str
    config: RalphConfig
    feedback: tuple[str, ...] = field(default=())
    # --approve auto with nobody to show a flagged change to (as the job started)
    approvals_unattended: bool = False


@dataclass(frozen=True)
class StoryChange:
    """A story's change: one commit on ``base_commit`` (``branch``), and the same as a patch."""

    story_id: str
    base_commit: str
    commit: str
    branch: str | None
    patch: bytes
    diffstat: str


@dataclass(frozen=True)
class WorkerResult:
    outcome: IterationOutcome
    message: str = ""
    patch_path: Path | None = None
    cost_usd: float = 0.0
    run_ended: RunEnded | None = None


class Checkout(Protocol):
    """An executor's isolated checkout, as the engine's merge sees it."""

    @property
    def base_commit(self) -> str:
        """The commit the change currently applies to (moves when ``rebase`` succeeds)."""
        ...

    async def snapshot(self) -> StoryChange:
        """The change as it is now (the PRD and progress log as of the base: read-only)."""
        ...

    async def rebase(self, onto: str, *, keep_conflicts: bool = True) -> list[str]:
        """Move the change onto ``onto``; the conflicting paths, or ``[]`` when it applied.

        On a conflict the checkout holds the change on ``onto`` with conflict markers, ready
        for the agent to resolve (``keep_conflicts=False``: it stays as it was).
        """
        ...

    async def code_tree_on(self, onto: str) -> str | None:
        """``code_tree`` of the snapshotted change applied onto ``onto`` without moving the
        checkout; ``None`` when it does not apply as it is."""
        ...

    async def code_tree(self) -> str:
        """An id of the snapshotted tree without the PRD and progress log (a git tree sha):
        equal ids mean the gates saw the same code."""
        ...

    async def run_gates(self) -> list[GateResult]: ...


class WorkerHost(RunHost, Protocol):
    """The engine's side of one job (``ralph_tui.parallel`` implements it; ``ray_node`` on a
    node): ``RunHost`` plus the worker's number, the one approval queue, the merge train's
    gate and the verified merge in place of the single loop's gates, approval and commit."""

    @property
    def worker(self) -> int: ...

    @property
    def approvals_unattended(self) -> bool:
        """``--approve auto`` and nobody to show a flagged change to."""
        ...

    async def ask_approval(
        self,
        story: Story,
        summary: str,
        results: Sequence[GateResult],
        diffstat: str,
        flags: Sequence[str],
    ) -> ApprovalDecision: ...

    async def merge(self, story: Story, checkout: Checkout, learnings: Sequence[str]) -> str:
        """Land the approved change on main in one commit; its sha, or ``MergeRetry``."""
        ...

    async def gate(self, checkout: Checkout) -> list[GateResult]:
        """Run the gates on the change where it will land: main's HEAD plus the changes queued
        ahead of it (moved there by ``Checkout.rebase`` when that applies cleanly). When the
        queue lands as predicted, the check at merge time finds nothing to re-run."""
        ...


class Executor(Protocol):
    name: str

    async def place(self, job: StoryJob) -> str:
        """Reserve where ``job`` will run, before its ``IterationStarted``; the node's name
        ("" for this machine). ``run`` then uses that place."""
        ...

    def expect(self, stories: int) -> None:
        """How many stories may still be placed (those being placed now included): what an
        executor that prepares places ahead (the Ray executor's warm actors) should prepare."""
        ...

    async def run(self, job: StoryJob, host: WorkerHost) -> WorkerResult: ...

    async def story_diff(self, story_id: str) -> list[FileDiff]:
        """A running story's change as it is now (empty when it is not running here)."""
        ...

    async def aclose(self) -> None: ...


# ------------------------------------------------------------------------- local worktrees


def local_executor(site: ExecutorSite) -> LocalWorktreeExecutor:
    """``executor = "local"`` (``executors.EXECUTORS``): worktrees of this checkout."""
    return LocalWorktreeExecutor(site.root, site.agent_for, site.bookkeeping, site.patch_dir)


class LocalWorktreeExecutor:
    """Each job in ``.ralph/worktrees/<story>`` on branch ``ralph/<story-id>``, agent in-process.

    The agent's tools, the bash tool and the gates are all rooted at the worktree (its own
    ``Workspace``), so its confinement is the worktree, never the main checkout.
    """

    name = "local-worktree"

    def __init__(
        self,
        main_root: Path,
        agent_for: Callable[[int], Agent],
        bookkeeping: Sequence[str],
        patch_dir: Path,
    ) -> None:
        self.worktrees = WorktreeManager(main_root, bookkeeping)
        self._agent_for = agent_for
        self._patch_dir = patch_dir

    async def place(self, job: StoryJob) -> str:
        return ""

    def expect(self, stories: int) -> None:
        return None  # a worktree is made when its story starts: nothing to prepare

    async def story_diff(self, story_id: str) -> list[FileDiff]:
        return await asyncio.to_thread(worker_diff, self.worktrees.main_root, story_id)

    async def run(self, job: StoryJob, host: WorkerHost) -> WorkerResult:
        tree = await asyncio.to_thread(self.worktrees.create, job.story.key, job.base_commit)
        try:
            checkout = WorktreeCheckout(tree, host, job.config, job.story)
        except BaseException:
            await asyncio.shield(asyncio.to_thread(self.worktrees.remove, tree))
            raise
        control = IterationControl(_WorktreeHost(host, checkout), job.story)
        request = IterationRequest(
            iteration=job.iteration,
            story=job.story,
            system_prompt=job.system_prompt,
            user_prompt=job.user_prompt,
            workspace=tree.root,
            config=job.config,
            feedback=job.feedback,
        )
        try:
            outcome, message, ended = await drive_agent(
                self._agent_for(job.worker), request, control
            )
        except (RalphError, asyncio.CancelledError):
            await asyncio.shield(asyncio.to_thread(self._wind_up, tree, job, "error"))
            raise
        patch = None
        if outcome != "committed":
            patch = await asyncio.to_thread(self._wind_up, tree, job, "iter")
        else:
            await asyncio.to_thread(self.worktrees.remove, tree)
        return WorkerResult(outcome, message, patch, run_ended=ended or control.run_ended)

    def _wind_up(self, tree: Worktree, job: StoryJob, prefix: str) -> Path | None:
        """Keep the change that did not land as a patch, then remove the worktree and branch."""
        dest = self._patch_dir / f"{prefix}-{job.iteration:03d}-{job.story.slug}.patch"
        try:
            return self.worktrees.save_patch(tree, dest)
        finally:
            self.worktrees.remove(tree)

    async def aclose(self) -> None:
        return None


class WorktreeCheckout:
    """``Checkout`` over a local worktree; gates run there, in the worktree's own tree."""

    def __init__(self, tree: Worktree, host: WorkerHost, config: RalphConfig, story: Story) -> None:
        self.tree = tree
        self._host = host
        self._config = config
        self._story = story
        self.approved_commit: str | None = None  # the snapshot the human was asked about
        # the worker's own confinement: the editor, the bash tool, a command agent's CLI and
        # the gates are rooted at the worktree, where the PRD and progress log are read-only
        books = tuple(tree.root / rel for rel in tree.bookkeeping)
        self.workspace = Workspace(tree.root)
        self.workspace.protect(*books)
        self.workspace.sandbox = resolve_sandbox(config.sandbox, tree.root, read_only=books)

    @property
    def base_commit(self) -> str:
        return self.tree.base

    @property
    def options(self) -> ReviewOptions:
        return self._config.review

    async def snapshot(self) -> StoryChange:
        notes: list[str] = []
        base = self.tree.base
        commit, patch, stat = await asyncio.to_thread(self.tree.snapshot, notes)
        for note in notes:
            self._host.notice(note, "warning")
        return StoryChange(self.tree.story_id, base, commit, self.tree.branch, patch, stat)

    async def rebase(self, onto: str, *, keep_conflicts: bool = True) -> list[str]:
        return await asyncio.to_thread(self.tree.rebase, onto, keep_conflicts=keep_conflicts)

    async def code_tree(self) -> str:
        return await asyncio.to_thread(self.tree.code_tree)

    async def adopt(self, onto: str, commit: str) -> None:
        """Take a rebase of this change made elsewhere (``Worktree.adopt``): a Ray node's
        checkout after the driver rebased its change."""
        await asyncio.to_thread(self.tree.adopt, onto, commit)

    async def code_tree_on(self, onto: str) -> str | None:
        return await asyncio.to_thread(self.tree.code_tree_on, onto)

    async def run_gates(self) -> list[GateResult]:
        """The project's gates plus the story's own commands (as picked), in the worktree."""
        host = self._host
        return await run_story_gates(
            self._config,
            self._story,
            self.tree.root,
            self.workspace.sandbox,
            on_start=lambda name, command, criterion: host.emit(
                GateStarted(name=name, command=command, criterion=criterion)
            ),
            on_finish=lambda result: host.emit(gate_event(result)),
            base=self.tree.base,
        )


class _WorktreeHost(ForwardingHost):
    """``IterationHost`` for ``IterationControl`` inside a worktree: the same rules as with one
    worker, with the workspace, the gates and the commit redirected."""

    def __init__(self, host: WorkerHost, checkout: WorktreeCheckout) -> None:
        super().__init__(host)
        self._host = host
        self._checkout = checkout

    @property
    def workspace(self) -> Workspace:
        return self._checkout.workspace

    async def run_gates(self, story: Story | None = None) -> list[GateResult]:
        return await self._host.gate(self._checkout)

    @property
    def approvals_unattended(self) -> bool:
        return self._host.approvals_unattended

    async def review(self, story: Story) -> list[str]:
        """Judged here, where the change is (on a Ray node: the node's checkout)."""
        change = await self._checkout.snapshot()
        tree = self._checkout.tree
        return await asyncio.to_thread(
            review_commit, tree.root, change.base_commit, change.commit, self._checkout.options
        )

    async def ask_approval(
        self, story: Story, summary: str, results: Sequence[GateResult], flags: Sequence[str]
    ) -> ApprovalDecision:
        change = await self._checkout.snapshot()
        # the merge lands this commit or nothing (a tree that changed after approval goes back)
        self._checkout.approved_commit = change.commit
        return await self._host.ask_approval(story, summary, results, change.diffstat, flags)

    async def apply_review(self, story: Story, decision: ApprovalDecision) -> ApprovalDecision:
        """As the engine's, on the worktree's change against its base commit (the journal
        gets the review; dropped parts leave the worktree before the next snapshot)."""
        tree = self._checkout.tree
        git = GitRepo(tree.root)
        files = await asyncio.to_thread(git.diff, tree.base)
        decision = dataclasses.replace(
            decision, comments=tuple(anchor_comments(files, decision.comments))
        )
        dropped = drop_lines(files, decision.drops) if decision.kind == "approve" else []
        if dropped:
            await asyncio.to_thread(
                drop_parts, git, files, decision.drops, tuple(tree.bookkeeping), tree.base
            )
        self.emit(
            ReviewRecorded(
                story_id=story.key,
                decision=decision.kind,
                dropped=tuple(dropped),
                comments=tuple(comment_lines(decision.comments)),
            )
        )
        return decision

    async def commit_story(self, story: Story, learnings: Sequence[str]) -> str:
        try:
            return await self._host.merge(story, self._checkout, learnings)
        except MergeRetry as exc:
            raise MergeConflict(exc.message) from None
