"""The node side of the Ray executor: one ``StoryRunner`` actor per running story.

The actor clones the base bundle into a temp dir and runs the story there with the very code a
local worker runs (``LocalWorktreeExecutor.run``: the agent, its tools, the gates, the fix
attempts), so remote and local iterations cannot drift apart. What the local executor asks of the
engine (``WorkerHost``) goes back to the driver as messages on one stream: ``Emit`` for events,
``Call`` for questions the engine answers (safe points, approval, escalation, the merge), which
the driver answers through ``reply``. During a merge the driver works on the node's checkout
through ``checkout_*`` (rebase onto main, the gates again, the change as a bundle).

This module imports no Ray: the driver wraps ``StoryRunner`` with ``ray.remote``. Credentials
arrive as an argument and go into this actor process's environment only (one process per actor,
ended when the story ends); they are never part of a message. An actor may be started before its
story (a warm actor of ``.pool``: ``preload`` imports the agent's backend then), but
it never serves a second story.

The checkout's state travels with the calls that hand it to the driver (``NodeSnapshot`` with
``gate`` and ``merge``, and with a rebase's answer), so the merge asks the node only for what
must happen there: the gates, and a rebase that conflicts (its markers are for the agent). A
clean rebase is made by the driver from the verified change; the node takes it (``Adopt``) with
its next call.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib
import logging
import os
import platform
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ralph_tui.agents import create_agent
from ralph_tui.control import RunEnded
from ralph_tui.errors import GitError, RalphError, StopRequested
from ralph_tui.events import Event, Notice
from ralph_tui.executors.base import (
    CHANGED_AFTER_APPROVAL,
    Checkout,
    LocalWorktreeExecutor,
    MergeRetry,
    StoryJob,
    WorktreeCheckout,
)
from ralph_tui.gates import GateResult
from ralph_tui.git.bundles import clone_bundle, fetch_bundle, make_bundle
from ralph_tui.git.repo import FileDiff
from ralph_tui.iteration import Agent, Usage
from ralph_tui.prd.model import Story
from ralph_tui.safety.credentials import withhold
from ralph_tui.safety.tempdirs import process_dir, sweep
from ralph_tui.supervisor import ApprovalDecision, EscalationAnswer

log = logging.getLogger(__name__)

CANCEL_GRACE_S = 0.5  # the iteration's own cleanup; then every process left is killed
_PR_SET_CHILD_SUBREAPER = 36


@dataclass(frozen=True)
class NodeInfo:
    node_id: str
    hostname: str
    pid: int
    python: str
    ray: str

    @property
    def label(self) -> str:
        return f"{self.hostname}:{self.node_id[:8]}"


@dataclass(frozen=True)
class NodeJob:
    """What the driver sends with a story (the credentials travel separately)."""

    job: StoryJob
    bookkeeping: tuple[str, ...]
    script: dict[str, Any] | None = None  # agent = "scripted": the script itself, not its path
    attempts: int = 0  # earlier attempts at this story (the scripted agent's attempt plans)


@dataclass(frozen=True)
class NodeSnapshot:
    """The node's checkout as of a snapshot: the change is ``commit``, one commit on ``base``
    (or ``base`` itself: no change); ``bundle`` holds it, empty when the driver already got
    this commit (or there is none). Sent with the ``gate`` and ``merge`` calls and with a
    rebase's answer, so the driver needs no round trip to learn it."""

    base: str
    commit: str
    bundle: bytes = b""


@dataclass(frozen=True)
class Adopt:
    """A rebase the driver made of the node's change (``Scratch.rebase_change``): the node
    fetches ``bundle`` and takes ``commit``, one commit on ``onto``, as its change."""

    onto: str
    commit: str
    bundle: bytes = b""


@dataclass(frozen=True)
class Emit:
    event: Event


@dataclass(frozen=True)
class Call:
    call_id: int
    name: str
    args: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Done:
    outcome: str
    message: str = ""
    patch: bytes | None = None
    patch_name: str = ""
    run_ended: tuple[int, str] | None = None
    error: str | None = None  # a RalphError that must end the run, as one line


Message = Emit | Call | Done

ErrorKind = Literal["merge_retry", "run_ended", "git", "stop", "error"]


@dataclass(frozen=True)
class Reply:
    value: Any = None
    error: ErrorKind | None = None
    args: tuple[Any, ...] = field(default=())

    def unwrap(self) -> Any:
        if self.error is None:
            return self.value
        if self.error == "merge_retry":
            raise MergeRetry(str(self.args[0]))
        if self.error == "run_ended":
            raise RunEnded(int(self.args[0]), str(self.args[1]))
        if self.error == "git":
            raise GitError(str(self.args[0]))
        if self.error == "stop":
            raise StopRequested
        raise RalphError(str(self.args[0]) if self.args else "the driver failed")


def reply_error(exc: BaseException) -> Reply:
    """The driver's side: an exception a host method raised, as a ``Reply`` the node re-raises."""
    if isinstance(exc, MergeRetry):
        return Reply(error="merge_retry", args=(exc.message,))
    if isinstance(exc, RunEnded):
        return Reply(error="run_ended", args=(exc.exit_code, exc.reason))
    if isinstance(exc, GitError):
        return Reply(error="git", args=(str(exc),))
    if isinstance(exc, StopRequested):
        return Reply(error="stop")
    return Reply(error="error", args=(str(exc) or type(exc).__name__,))


def become_subreaper() -> None:
    """Orphans of the agent's processes re-parent to this actor, so a cancel finds them all."""
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        log.warning("prctl(PR_SET_CHILD_SUBREAPER) failed: errno %s", ctypes.get_errno())


def descendants(pid: int) -> list[int]:
    """Live (non-zombie) descendants of ``pid``, read from /proc."""
    children: dict[int, list[int]] = {}
    proc = Path("/proc")
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) >= 2 and fields[0] not in ("Z", "X"):
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_descendants() -> list[int]:
    """SIGKILL every process this actor started (directly or not); the pids that were alive."""
    me = os.getpid()
    killed: list[int] = []
    for _ in range(5):  # a dying parent can fork once more
        pids = descendants(me)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        for pid in pids:  # reap our own children; others are reaped by their (dead) parents' reaper
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
        time.sleep(0.01)
    return killed


class _Link:
    """The actor's end of the stream: an outbox the driver reads, and calls awaiting replies."""

    def __init__(self) -> None:
        self.outbox: asyncio.Queue[Message] = asyncio.Queue()
        self._calls: dict[int, asyncio.Future[Reply]] = {}
        self._next = 0

    def send(self, message: Message) -> None:
        self.outbox.put_nowait(message)

    async def call(self, name: str, *args: Any) -> Any:
        self._next += 1
        call_id = self._next
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._calls[call_id] = future
        self.send(Call(call_id, name, args))
        try:
            reply = await future
        finally:
            self._calls.pop(call_id, None)
        return reply.unwrap()

    def answer(self, call_id: int, reply: Reply) -> None:
        future = self._calls.get(call_id)
        if future is not None and not future.done():
            future.set_result(reply)


class RemoteHost:
    """``executor.WorkerHost`` on the node: every engine decision is a call to the driver."""

    def __init__(self, link: _Link, runner: StoryRunner, job: StoryJob) -> None:
        self._link = link
        self._runner = runner
        self.worker = job.worker
        self.max_fix_attempts = job.config.max_fix_attempts
        self._unattended = job.approvals_unattended
        self._stop = False

    @property
    def stop_requested(self) -> bool:
        return self._stop

    def emit(self, event: Event) -> None:
        self._link.send(Emit(event))

    def notice(self, message: str, level: Literal["info", "warning", "error"] = "info") -> None:
        self._link.send(Emit(Notice(level=level, message=message)))

    async def wait_at_safe_point(self) -> None:
        self._stop = bool(await self._link.call("safe_point"))

    def add_usage(self, story: Story, usage: Usage) -> None:
        self._link.send(Call(0, "add_usage", (usage,)))

    async def ask_human(
        self, story: Story, question: str, tried: str, *, automatic: bool
    ) -> EscalationAnswer:
        answer: EscalationAnswer = await self._link.call("ask_human", question, tried, automatic)
        return answer

    @property
    def approvals_unattended(self) -> bool:
        return self._unattended

    async def ask_approval(
        self,
        story: Story,
        summary: str,
        results: Sequence[GateResult],
        diffstat: str,
        flags: Sequence[str],
    ) -> ApprovalDecision:
        decision: ApprovalDecision = await self._link.call(
            "ask_approval", summary, list(results), diffstat, list(flags)
        )
        return decision

    async def merge(self, story: Story, checkout: Checkout, learnings: Sequence[str]) -> str:
        checkout_id = self._runner.register(checkout)
        try:
            snap = await self._runner.snapshot_of(checkout)
            approved = getattr(checkout, "approved_commit", None)
            if approved is not None and snap.commit != approved:
                raise MergeRetry(CHANGED_AFTER_APPROVAL)
            sha: str = await self._link.call("merge", checkout_id, snap, list(learnings))
            return sha
        finally:
            self._runner.unregister(checkout_id)

    def add_feedback(self, story: Story, feedback: str) -> None:
        self._link.send(Call(0, "add_feedback", (feedback,)))

    async def gate(self, checkout: Checkout) -> list[GateResult]:
        """The driver decides where the gates run (the merge train) and moves this checkout
        there through ``checkout_*``; the gates run here, their events streamed as they go."""
        checkout_id = self._runner.register(checkout)
        try:
            snap = await self._runner.snapshot_of(checkout)
            results: list[GateResult] = await self._link.call("gate", checkout_id, snap)
            return results
        finally:
            self._runner.unregister(checkout_id)


class StoryRunner:
    """One story on one node (wrapped by ``ray.remote`` on the driver; an async actor)."""

    def __init__(self, preload: Sequence[str] = ()) -> None:
        become_subreaper()
        sweep()  # what killed actors of this node left (a killed actor runs no atexit)
        for module in preload:  # the agent's backend, before a story waits for it
            try:
                importlib.import_module(module)
            except ImportError as exc:  # create_agent says what is missing, in the story
                log.warning("could not preload %s: %s", module, exc)
        self._link: _Link | None = None
        self._task: asyncio.Task[Any] | None = None
        self._dir: Path | None = None
        self._repo: Path | None = None
        self._checkouts: dict[int, Checkout] = {}
        self._story: tuple[LocalWorktreeExecutor, str] | None = None  # for ``diff``
        self._next_checkout = 0
        self._sent: set[str] = set()  # change commits the driver was sent a bundle of

    def where(self) -> NodeInfo:
        import ray  # present: this runs inside a Ray worker

        return NodeInfo(
            node_id=ray.get_runtime_context().get_node_id(),
            hostname=socket.gethostname(),
            pid=os.getpid(),
            python=platform.python_version(),
            ray=ray.__version__,
        )

    def which(self, program: str) -> str | None:
        """Where the agent's CLI is on this node (``doctor``); ``claude``: the SDK's own."""
        if program == "claude":
            from ralph_tui.agents.claude_code import bundled_cli_path, sdk_available

            cli = bundled_cli_path() if sdk_available() else None
            return str(cli) if cli is not None else None
        return shutil.which(program)

    def credential_names(self) -> list[str]:
        """The names (never the values) of the credentials this actor holds: for tests."""
        return sorted(self._credentials)

    _credentials: tuple[str, ...] = ()

    # ------------------------------------------------------------------ the story

    async def run(
        self, bundle: bytes, spec: NodeJob, credentials: dict[str, str], delta: bytes = b""
    ) -> AsyncIterator[list[Message]]:
        """Run the story from ``bundle`` (the run's first base) plus ``delta`` (the commits a
        later base adds); yields batches of messages as they happen, ``Done`` last."""
        given = dict(credentials)
        withhold(given)  # secrets into this process's vault, the rest into its environment
        os.environ.update(given)
        for name in ("GIT_AUTHOR", "GIT_COMMITTER"):  # the node's work-in-progress commits
            os.environ.setdefault(f"{name}_NAME", "ralph-tui node")
            os.environ.setdefault(f"{name}_EMAIL", "node@ralph-tui.invalid")
        self._credentials = tuple(credentials)
        link = self._link = _Link()
        self._dir = Path(tempfile.mkdtemp(dir=process_dir(), prefix="ralph-ray-"))
        try:
            self._repo = repo = self._dir / "repo"
            await asyncio.to_thread(clone_bundle, bundle, repo)
            if delta:
                await asyncio.to_thread(fetch_bundle, repo, delta)
            agent: Agent | None = None
            job = spec.job

            def agent_for(worker: int) -> Agent:
                nonlocal agent
                if agent is None:
                    agent = self._make_agent(spec, repo)
                return agent

            executor = LocalWorktreeExecutor(
                repo, agent_for, spec.bookkeeping, self._dir / "patches"
            )
            host = RemoteHost(link, self, job)
            self._story = (executor, job.story.key)
            self._task = asyncio.create_task(executor.run(job, host), name="ralph-story")
            while True:
                getter = asyncio.create_task(link.outbox.get())
                await asyncio.wait({getter, self._task}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await getter
                batch = [getter.result()] if getter.done() and not getter.cancelled() else []
                while not link.outbox.empty():
                    batch.append(link.outbox.get_nowait())
                if batch:
                    yield batch
                if self._task.done():
                    break
            yield [await self._done(self._task)]
            if agent is not None:
                await agent.aclose()
        finally:
            self._story = None
            self._cleanup()

    async def diff(self) -> list[FileDiff]:
        """The running story's change as it is now in this node's worktree (the supervisor's
        Diff pane); empty between stories."""
        if self._story is None:
            return []
        executor, story_id = self._story
        return await executor.story_diff(story_id)

    @staticmethod
    def _make_agent(spec: NodeJob, repo: Path) -> Agent:
        config = spec.job.config
        if spec.script is not None:
            from ralph_tui.agents.scripted import ScriptedAgent

            scripted = ScriptedAgent(spec.script, config, source="script (sent by the driver)")
            scripted.attempts[spec.job.story.key] = spec.attempts
            return scripted
        return create_agent(config, repo)

    @staticmethod
    async def _done(task: asyncio.Task[Any]) -> Done:
        if task.cancelled():
            return Done("stopped", "cancelled")
        exc = task.exception()
        if isinstance(exc, RalphError):
            return Done("error", str(exc), error=str(exc))
        if exc is not None:
            log.error("the story failed on this node", exc_info=exc)
            return Done("error", f"{type(exc).__name__}: {exc}", error=f"on the node: {exc!r}")
        result = task.result()
        patch: bytes | None = None
        name = ""
        if result.patch_path is not None:
            path = Path(result.patch_path)
            patch = await asyncio.to_thread(path.read_bytes)
            name = path.name
        ended = result.run_ended
        return Done(
            result.outcome,
            result.message,
            patch,
            name,
            (ended.exit_code, ended.reason) if ended is not None else None,
        )

    def reply(self, call_id: int, reply: Reply) -> None:
        if self._link is not None:
            self._link.answer(call_id, reply)

    async def cancel(self) -> tuple[float, list[int]]:
        """Stop the story now: its own cleanup briefly, then kill every process left.

        Returns the seconds it took and the pids that had to be killed.
        """
        start = time.monotonic()
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError, Exception):
                await asyncio.wait_for(asyncio.shield(task), CANCEL_GRACE_S)
        killed = await asyncio.to_thread(kill_descendants)
        if task is not None and not task.done():
            with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError, Exception):
                await asyncio.wait_for(asyncio.shield(task), CANCEL_GRACE_S)
        self._cleanup()
        return time.monotonic() - start, killed

    def _cleanup(self) -> None:
        kill_descendants()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    # ------------------------------------------------------------------ the merge's checkout

    def register(self, checkout: Checkout) -> int:
        self._next_checkout += 1
        self._checkouts[self._next_checkout] = checkout
        return self._next_checkout

    def unregister(self, checkout_id: int) -> None:
        self._checkouts.pop(checkout_id, None)

    def _checkout(self, checkout_id: int) -> Checkout:
        try:
            return self._checkouts[checkout_id]
        except KeyError:
            raise GitError("that checkout is no longer being merged") from None

    async def snapshot_of(self, checkout: Checkout, resend: bool = False) -> NodeSnapshot:
        """Snapshot the checkout; with the change's bundle unless the driver has it already."""
        change = await checkout.snapshot()
        base, commit = change.base_commit, change.commit
        if commit == base or (commit in self._sent and not resend):
            return NodeSnapshot(base, commit)
        assert self._repo is not None
        data = await asyncio.to_thread(make_bundle, self._repo, commit, base)
        self._sent.add(commit)
        return NodeSnapshot(base, commit, data)

    async def checkout_snapshot(self, checkout_id: int, resend: bool = False) -> NodeSnapshot:
        return await self.snapshot_of(self._checkout(checkout_id), resend)

    async def _adopt(self, checkout: Checkout, adopt: Adopt | None) -> None:
        if adopt is None:
            return
        if not isinstance(checkout, WorktreeCheckout):
            raise GitError("this checkout cannot take a rebase made by the driver")
        assert self._repo is not None
        if adopt.bundle:
            await asyncio.to_thread(fetch_bundle, self._repo, adopt.bundle)
        await checkout.adopt(adopt.onto, adopt.commit)
        self._sent.add(adopt.commit)  # the driver made it: it has it

    async def checkout_rebase(
        self,
        checkout_id: int,
        onto: str,
        bundle: bytes,
        keep_conflicts: bool = True,
        adopt: Adopt | None = None,
    ) -> tuple[list[str], str, NodeSnapshot | None]:
        """Rebase onto ``onto`` (its missing commits in ``bundle``), after taking the driver's
        ``adopt`` if any: the conflicts, the base now, and (when it applied) the snapshot of
        the rebased change, all in one answer."""
        checkout = self._checkout(checkout_id)
        await self._adopt(checkout, adopt)
        if bundle:
            assert self._repo is not None
            await asyncio.to_thread(fetch_bundle, self._repo, bundle)
        conflicts = await checkout.rebase(onto, keep_conflicts=keep_conflicts)
        if conflicts:  # with keep_conflicts the markers stay uncommitted, for the agent
            return conflicts, checkout.base_commit, None
        return conflicts, checkout.base_commit, await self.snapshot_of(checkout)

    async def checkout_adopt(self, checkout_id: int, adopt: Adopt) -> None:
        """Take the driver's rebase of the change now (it goes back to the agent)."""
        await self._adopt(self._checkout(checkout_id), adopt)

    async def checkout_gates(
        self, checkout_id: int, adopt: Adopt | None = None
    ) -> list[GateResult]:
        """The gates on the checkout, after taking the driver's rebase ``adopt`` if any."""
        checkout = self._checkout(checkout_id)
        await self._adopt(checkout, adopt)
        return await checkout.run_gates()
