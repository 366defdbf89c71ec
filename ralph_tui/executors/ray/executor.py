"""The Ray executor: each running story in its own async actor on a Ray cluster node.

``executor = "ray"`` (``--executor ray``) puts this in place of the local worktree executor; the
scheduler, the approval queue and the verified merge (``ralph_tui.parallel``) do not change.
Per story the driver:

1. puts the run's first base commit in the object store as a git bundle, once; a later base
   goes with its story as a small bundle of the commits it adds;
2. reserves the story's slot, ``num_cpus`` (and any custom ``resources``), as a placement group:
   Ray picks the node; the story's ``StoryRunner`` actor (``.node``) there is a
   warm one from the pool (``ralph_tui.executors.ray.pool``: started ahead, so no story waits for a
   process to start) or, when there is none on that node, a fresh one; the node is recorded;
3. sends the job, and the credentials the agent needs (in memory: never in an event, the
   journal or a log), then reads the actor's stream: events are emitted as they arrive,
   questions (safe points, approval, escalation, merge) are answered by the real ``WorkerHost``
   and the answer sent back to the same actor, so a rejected change goes back to the same
   conversation;
4. on approve, the merge works on the node's checkout through ``RemoteCheckout``: the change
   comes with the node's ``gate``/``merge`` call as a bundle, verified here at once (before the
   change's turn in the merge train) and only its verified patch is merged; the code trees the
   merge compares are computed here from it; a clean rebase is made here too (the node takes
   it with its next call), only a rebase that conflicts goes to the node (its markers are for
   the agent); the gates run on the node.

A hard stop (the worker's task cancelled) asks the actor to kill its process tree, then kills
the actor. Every actor serves one story and is killed when it ends; ``aclose`` kills the warm
ones left. A node lost mid-story fails that iteration: the change on that node is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import (
    ActorUnavailableError,
    GetTimeoutError,
    ObjectLostError,
    OwnerDiedError,
    RayActorError,
    RayError,
)

from ralph_tui.agents import create_agent
from ralph_tui.agents.registry import agent_spec
from ralph_tui.agents.scripted import ScriptedAgent
from ralph_tui.config import RalphConfig, RayOptions
from ralph_tui.control import RunEnded
from ralph_tui.errors import AgentError, GitError, UsageError
from ralph_tui.events import Event
from ralph_tui.executors import ExecutorSite
from ralph_tui.executors.base import MergeRetry, StoryChange, StoryJob, WorkerHost, WorkerResult
from ralph_tui.executors.ray.node import (
    Adopt,
    Call,
    Done,
    Emit,
    NodeInfo,
    NodeJob,
    NodeSnapshot,
    Reply,
    StoryRunner,
    reply_error,
)
from ralph_tui.executors.ray.pool import ActorPool, Lease, retrieved
from ralph_tui.gates import GateResult
from ralph_tui.git.bundles import Scratch, VerifiedChange
from ralph_tui.git.repo import FileDiff
from ralph_tui.git.worktrees import HOLLOW, WIP_MESSAGE
from ralph_tui.iteration import Agent, Usage
from ralph_tui.safety import credentials

log = logging.getLogger(__name__)

CANCEL_TIMEOUT_S = 5.0
DIFF_TIMEOUT_S = 10.0  # a node busy with its gates still answers within this
# Lost, not failed: the node (or the actor's process) went away under the story.
NODE_LOST = (RayActorError, ActorUnavailableError, ObjectLostError, OwnerDiedError)


def agent_credentials(config: RalphConfig, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables the agent (and ``[sandbox] pass_env``) needs on the node: from the
    driver's environment or the secrets ralph-tui withheld from it at start-up."""
    names = [
        *(name for agent in config.agents_used for name in agent_spec(agent).credentials),
        *config.command_env,
        *config.sandbox.pass_env,
    ]
    found: dict[str, str] = {}
    for name in dict.fromkeys(names):
        value = credentials.get(name) if env is None else env.get(name)
        if value is not None:
            found[name] = value
    return found


PROBE_TIMEOUT_S = 5.0


def connect(options: RayOptions) -> None:
    """Join the cluster once per process (tests and embedders may already have).

    A ``host:port`` that nothing answers on is refused at once: ``ray.init`` would retry
    for minutes before it gave up. The connect runs in a worker thread (the event loop keeps
    drawing), where Ray warns that it sets no SIGTERM handler: ralph-tui has its own.
    """
    if ray.is_initialized():
        return
    _probe(options.address)
    quiet = _DropRecord("SIGTERM handler is not set")
    worker_log = logging.getLogger("ray._private.worker")
    worker_log.addFilter(quiet)
    try:
        ray.init(
            address=options.address,
            namespace=options.namespace,
            log_to_driver=False,
            logging_level=logging.WARNING,
            configure_logging=False,
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise UsageError(f"ray.address {options.address!r}: cannot connect: {exc}") from exc
    finally:
        worker_log.removeFilter(quiet)


def _probe(address: str) -> None:
    """A one-line error when nothing listens at ``host:port`` (``auto`` is Ray's to find)."""
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or not host:
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_TIMEOUT_S):
            return
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UsageError(
            f"ray.address {address!r}: cannot connect: nothing answers at {target} ({reason}); "
            "is the cluster started (ray start --head) and reachable from here?"
        ) from None


class _DropRecord(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


class _Changes:
    """One story's changes as this driver verified them, by (base, commit). A bundle is
    verified as soon as it arrives (with the node's ``gate``/``merge`` call or a rebase's
    answer), while the change still waits for its turn in the merge train."""

    def __init__(self, scratch: Scratch, story_id: str) -> None:
        self.scratch = scratch
        self.story_id = story_id
        self._known: dict[tuple[str, str], asyncio.Future[StoryChange]] = {}

    def receive(self, snap: NodeSnapshot) -> asyncio.Future[StoryChange] | None:
        """The change ``snap`` names, verified (or being verified); ``None`` when it holds no
        bundle and this driver has not verified that commit before."""
        key = (snap.base, snap.commit)
        known = self._known.get(key)
        if known is not None and not (known.done() and known.exception() is not None):
            return known
        if snap.commit == snap.base:
            return self.made(snap.base, VerifiedChange(snap.base, b"", ""))
        if not snap.bundle:
            return None
        task = asyncio.ensure_future(self._verify(snap))
        task.add_done_callback(retrieved)  # awaited by whoever asks for the snapshot
        self._known[key] = task
        return task

    def made(self, base: str, change: VerifiedChange) -> asyncio.Future[StoryChange]:
        """A change made here (a rebase in the scratch): known as verified."""
        done: asyncio.Future[StoryChange] = asyncio.get_running_loop().create_future()
        done.set_result(
            StoryChange(self.story_id, base, change.commit, None, change.patch, change.diffstat)
        )
        self._known[(base, change.commit)] = done
        return done

    async def _verify(self, snap: NodeSnapshot) -> StoryChange:
        change = await asyncio.to_thread(
            self.scratch.verify_change, snap.bundle, snap.base, snap.commit
        )
        return StoryChange(
            self.story_id, snap.base, change.commit, None, change.patch, change.diffstat
        )


class RemoteCheckout:
    """``executor.Checkout`` over a checkout on a node, for the merge on the driver.

    It holds the node's last snapshot (sent with the call that handed this checkout over, or
    with a rebase's answer), so a snapshot costs no round trip; the code trees are computed
    here, in the scratch repository, from the verified change. A rebase that applies cleanly
    is made here too (``Scratch.rebase_change``), so the merge train places a change without
    waiting for its node; the node takes that commit with its next call (``Adopt``, sent with
    the gates). Only the gates, and a rebase whose conflicts go back to the agent, run on the
    node (and a snapshot after the gates ran: a gate may have changed files)."""

    def __init__(
        self,
        actor: Any,
        checkout_id: int,
        snap: NodeSnapshot,
        changes: _Changes,
        drop: Sequence[str],
    ) -> None:
        self._actor = actor
        self._id = checkout_id
        self._changes = changes
        self._drop = tuple(drop)
        self._base = snap.base
        self._node_base = snap.base  # what the node's checkout is on (behind ``_base``
        # while a rebase made here waits in ``_pending`` to be sent with the next call)
        self._pending: tuple[str, str] | None = None  # (onto, commit)
        self._current: asyncio.Future[StoryChange] | None = changes.receive(snap)

    @property
    def base_commit(self) -> str:
        return self._base

    def _take(self, snap: NodeSnapshot) -> None:
        self._base = self._node_base = snap.base
        self._current = self._changes.receive(snap)

    async def snapshot(self) -> StoryChange:
        if self._current is None:  # not known here: ask the node (for the bundle if need be)
            self._take(await self._actor.checkout_snapshot.remote(self._id))
            if self._current is None:
                self._take(await self._actor.checkout_snapshot.remote(self._id, True))
            if self._current is None:
                raise GitError("the node sent no bundle of its change")
        return await self._current

    async def _adoption(self) -> Adopt | None:
        """The rebase made here that the node has yet to take, with what it lacks of it."""
        if self._pending is None:
            return None
        onto, commit = self._pending
        scratch = self._changes.scratch
        data = await asyncio.to_thread(scratch.make_bundle, commit, self._node_base)
        return Adopt(onto, commit, data)

    def _adopted(self, adopt: Adopt | None) -> None:
        if adopt is not None:
            self._node_base = adopt.onto
            self._pending = None

    async def rebase(self, onto: str, *, keep_conflicts: bool = True) -> list[str]:
        if onto == self._base:
            return []
        change = await self.snapshot()
        message = WIP_MESSAGE.format(story=self._changes.story_id).encode()
        scratch = self._changes.scratch
        moved = await asyncio.to_thread(scratch.rebase_change, change.patch, onto, message)
        hollow = isinstance(moved, VerifiedChange) and not moved.patch and change.patch
        if hollow and not keep_conflicts:  # ``Worktree.rebase``: stacked on a change that holds
            return [HOLLOW]  # this one whole, it would have nothing of its own left
        if isinstance(moved, VerifiedChange):
            self._base = onto
            self._current = self._changes.made(onto, moved)
            self._pending = (onto, moved.commit)
            return []
        if not keep_conflicts:  # nothing moved, here or on the node
            return moved
        # the conflict markers are for the agent, in the node's checkout: the node rebases
        adopt = await self._adoption()
        data = await asyncio.to_thread(scratch.make_bundle, onto, self._node_base)
        answer = await self._actor.checkout_rebase.remote(
            self._id, onto, data, keep_conflicts, adopt
        )
        self._adopted(adopt)
        conflicts: list[str] = answer[0]
        self._base = self._node_base = answer[1]
        if answer[2] is not None:
            self._take(answer[2])
        else:  # the node holds the change with conflict markers, uncommitted
            self._current = None
        return conflicts

    async def code_tree_on(self, onto: str) -> str | None:
        change = await self.snapshot()
        scratch = self._changes.scratch
        return await asyncio.to_thread(scratch.code_tree, onto, self._drop, change.patch)

    async def code_tree(self) -> str:
        change = await self.snapshot()
        tree = await asyncio.to_thread(self._changes.scratch.code_tree, change.commit, self._drop)
        assert tree is not None  # no patch: nothing that could fail to apply
        return tree

    async def settle(self) -> None:
        """Send the node a rebase made here that it has not taken yet: the merge sends the
        change back to the agent (``MergeRetry``), who must see it where main is now."""
        adopt = await self._adoption()
        if adopt is not None:
            await self._actor.checkout_adopt.remote(self._id, adopt)
            self._adopted(adopt)

    async def run_gates(self) -> list[GateResult]:
        adopt = await self._adoption()
        results: list[GateResult] = await self._actor.checkout_gates.remote(self._id, adopt)
        self._adopted(adopt)
        self._current = None  # a gate may have changed files: the next snapshot asks the node
        return results


class RayExecutor:
    """``executor.Executor`` on a Ray cluster (see the module docstring)."""

    name = "ray"

    def __init__(
        self,
        main_root: Path,
        config: RalphConfig,
        bookkeeping: Sequence[str],
        patch_dir: Path,
        *,
        script: dict[str, Any] | None = None,
        credentials: Mapping[str, str] | None = None,
    ) -> None:
        self.root = main_root
        self.options = config.ray
        # what the nodes run with: their sandbox has no network unless [ray] sandbox_network
        self._node_config = (
            config
            if config.ray.sandbox_network
            else config.model_copy(
                update={"sandbox": config.sandbox.model_copy(update={"network": False})}
            )
        )
        self.bookkeeping = tuple(bookkeeping)
        self._patch_dir = patch_dir
        self._script = script
        self._credentials = dict(agent_credentials(config) if credentials is None else credentials)
        # the run's first base and its whole history as a bundle in the object store; later
        # bases go to the nodes as the commits they add to it (one base at a time)
        self._root: tuple[str, Any] | None = None
        self._deltas: dict[str, bytes] = {}
        self._scratch: Scratch | None = None
        self._base_lock = asyncio.Lock()
        self._connect_lock = asyncio.Lock()
        self._placed: dict[tuple[str, int], Lease] = {}
        self._workers = config.workers
        self._preload = tuple(
            module for agent in config.agents_used for module in agent_spec(agent).modules
        )
        self.pool: ActorPool | None = None
        self._expected = config.workers  # stories that may still be placed (``expect``)
        self._attempts: dict[str, int] = {}
        self._runner: Any = None
        self.nodes: dict[str, str] = {}  # story id -> node of its latest iteration
        self.actors: dict[str, Any] = {}  # story id -> its running actor

    def scratch(self) -> Scratch:
        if self._scratch is None:
            self._scratch = Scratch(self.root)
        return self._scratch

    async def _connect(self) -> ActorPool:
        """Join the cluster and start the pool of warm actors (once per run).

        Several stories are placed at once; the lock makes the second wait for the first
        one's connect and pool instead of calling ``ray.init`` again (which Ray refuses).
        """
        async with self._connect_lock:
            if self._runner is None:
                await asyncio.to_thread(connect, self.options)
                self._runner = ray.remote(StoryRunner)
            if self.pool is None:
                pool = ActorPool(self._runner, self.options, self._workers, self._preload)
                pool.expect(self._expected)
                await pool.start()
                self.pool = pool
            return self.pool

    async def _bundle(self, base: str) -> tuple[Any, bytes]:
        """What a node clones ``base`` from: the run's first base as a whole bundle (put in
        the object store once, fetched once per node) and, for a later base, the commits it
        adds as a small bundle. Bundling the whole history again after every merge cost 2.3 s
        per new base on this machine for 30 MB of history, on the next story's critical path.
        A later base that does not descend from the first (main was reset) still works: its
        bundle then holds what the two do not share."""
        async with self._base_lock:
            scratch = self.scratch()
            if self._root is None:
                data = await asyncio.to_thread(scratch.make_bundle, base)
                self._root = (base, await asyncio.to_thread(ray.put, data))
                self._deltas = {base: b""}
            root, whole = self._root
            if base not in self._deltas:
                self._deltas = {base: await asyncio.to_thread(scratch.make_bundle, base, root)}
            return whole, self._deltas[base]

    def expect(self, stories: int) -> None:
        self._expected = stories
        if self.pool is not None:
            self.pool.expect(stories)

    async def place(self, job: StoryJob) -> str:
        """Reserve the story's slot (Ray picks the node) and its actor there, warm from the
        pool when it has one; the node's name."""
        pool = await self._connect()
        lease = await pool.acquire()
        self._placed[(job.story.key, job.iteration)] = lease
        self.nodes[job.story.key] = lease.info.label
        return lease.info.label

    async def run(self, job: StoryJob, host: WorkerHost) -> WorkerResult:
        lease = self._placed.pop((job.story.key, job.iteration), None)
        if lease is None:
            await self.place(job)
            lease = self._placed.pop((job.story.key, job.iteration))
        pool = self.pool
        assert pool is not None  # place() started it
        job = dataclasses.replace(job, config=self._node_config)
        attempts = self._attempts.get(job.story.key, 0)
        self._attempts[job.story.key] = attempts + 1
        actor = lease.actor
        self.actors[job.story.key] = actor
        try:
            whole, delta = await self._bundle(job.base_commit)
            spec = NodeJob(job, self.bookkeeping, self._script, attempts)
            session = _Session(self, actor, lease.info.label, job, host)
            return await session.run(whole, delta, spec, on_start=pool.refill)
        except asyncio.CancelledError:
            await asyncio.shield(self._cancel(actor, host, job))
            raise
        finally:
            self.actors.pop(job.story.key, None)
            pool.release(lease)

    async def story_diff(self, story_id: str) -> list[FileDiff]:
        """Asked of the story's actor on its node (its worktree is there, not here)."""
        actor = self.actors.get(story_id)
        if actor is None:
            return []
        try:
            files: list[FileDiff] = await asyncio.wait_for(actor.diff.remote(), DIFF_TIMEOUT_S)
        except (TimeoutError, RayError) as exc:
            log.warning("the diff of Task #%s could not be read on its node: %s", story_id, exc)
            return []
        return files

    async def _cancel(self, actor: Any, host: WorkerHost, job: StoryJob) -> None:
        try:
            seconds, killed = await asyncio.wait_for(
                actor.cancel.remote(), timeout=CANCEL_TIMEOUT_S
            )
        except (TimeoutError, RayError) as exc:
            log.warning("cancelling Task #%s on its node failed: %s", job.story.key, exc)
            return
        log.info(
            "Task #%s cancelled on its node in %.3f s (%d processes killed)",
            job.story.key,
            seconds,
            len(killed),
        )

    async def aclose(self) -> None:
        """Kill the warm actors and any placed but not run; close the scratch repository."""
        if self.pool is not None:
            for lease in self._placed.values():
                self.pool.release(lease)
            await self.pool.aclose()
            self.pool = None
        self._placed.clear()
        self._root = None
        self._deltas = {}
        if self._scratch is not None:
            self._scratch.close()
            self._scratch = None

    def save_patch(self, name: str, data: bytes) -> Path:
        self._patch_dir.mkdir(parents=True, exist_ok=True)
        path = self._patch_dir / (name or "ray.patch")
        path.write_bytes(data)
        return path


class _Session:
    """One story's stream: events out, questions answered, the result at the end."""

    def __init__(
        self, executor: RayExecutor, actor: Any, node: str, job: StoryJob, host: WorkerHost
    ) -> None:
        self._ex = executor
        self._actor = actor
        self._node = node
        self._job = job
        self._host = host
        self._handlers: set[asyncio.Task[None]] = set()
        self._changes = _Changes(executor.scratch(), job.story.key)
        self.merged: str | None = None  # the sha, once this story landed on main

    async def run(
        self,
        bundle: Any,
        delta: bytes,
        spec: NodeJob,
        on_start: Callable[[], None] | None = None,
    ) -> WorkerResult:
        """Read the stream to its end; ``on_start`` is called when the first message arrives."""
        credentials = self._ex._credentials
        stream = self._actor.run.remote(bundle, spec, credentials, delta)
        done: Done | None = None
        try:
            async for ref in stream:
                batch = await ref
                if on_start is not None:  # the story is under way
                    on_start()
                    on_start = None
                for message in batch:
                    if isinstance(message, Emit):
                        self._emit(message.event)
                    elif isinstance(message, Call):
                        self._dispatch(message)
                    elif isinstance(message, Done):
                        done = message
        except NODE_LOST as exc:
            return self._lost(exc)
        finally:
            for task in self._handlers:
                task.cancel()
            if self._handlers:
                await asyncio.gather(*self._handlers, return_exceptions=True)
        if done is None:
            return self._lost(None)
        return self._result(done)

    def _emit(self, event: Event) -> None:
        self._host.emit(event)

    def _lost(self, exc: BaseException | None) -> WorkerResult:
        story = self._job.story.key
        if self.merged is not None:
            return WorkerResult("committed", f"committed {self.merged[:10]} (node lost after)")
        why = f" ({type(exc).__name__})" if exc is not None else ""
        message = (
            f"node {self._node} was lost while running Task #{story}{why}; "
            "the change made there is gone"
        )
        self._host.notice(message, "error")
        return WorkerResult("failed", message)

    def _result(self, done: Done) -> WorkerResult:
        if done.error is not None:
            raise AgentError(f"Task #{self._job.story.key} on node {self._node}: {done.error}")
        patch = self._ex.save_patch(done.patch_name, done.patch) if done.patch else None
        ended = RunEnded(*done.run_ended) if done.run_ended is not None else None
        outcome = done.outcome
        if outcome not in ("committed", "discarded", "failed", "skipped", "stopped", "error"):
            outcome = "error"
        return WorkerResult(outcome, done.message, patch, run_ended=ended)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ questions from the node

    def _dispatch(self, call: Call) -> None:
        if call.call_id == 0:  # one-way
            self._one_way(call)
            return
        task = asyncio.create_task(self._answer(call), name=f"ray-call-{call.name}")
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    def _one_way(self, call: Call) -> None:
        story = self._job.story
        if call.name == "add_usage":
            usage = call.args[0]
            if isinstance(usage, Usage):
                self._host.add_usage(story, usage)
        elif call.name == "add_feedback":
            self._host.add_feedback(story, str(call.args[0]))
        else:
            log.warning("unknown one-way message from the node: %s", call.name)

    async def _answer(self, call: Call) -> None:
        try:
            reply = Reply(value=await self._call(call))
        except (asyncio.CancelledError, *NODE_LOST):
            raise
        except Exception as exc:  # every other failure goes back to the node as the exception
            log.debug("call %s answered with an error", call.name, exc_info=True)
            reply = reply_error(exc)
        with contextlib.suppress(*NODE_LOST):
            await self._actor.reply.remote(call.call_id, reply)

    async def _call(self, call: Call) -> Any:
        host, story, args = self._host, self._job.story, call.args
        if call.name == "safe_point":
            await host.wait_at_safe_point()
            return host.stop_requested
        if call.name == "ask_human":
            return await host.ask_human(story, args[0], args[1], automatic=bool(args[2]))
        if call.name == "ask_approval":
            flags = [str(flag) for flag in args[3]] if len(args) > 3 else []
            return await host.ask_approval(story, args[0], args[1], args[2], flags)
        if call.name == "gate":
            checkout = self._checkout(args[0], args[1])
            return await host.gate(checkout)
        if call.name == "merge":
            checkout = self._checkout(args[0], args[1])
            try:
                sha = await host.merge(story, checkout, args[2])
            except MergeRetry:
                await checkout.settle()
                raise
            self.merged = sha
            return sha
        raise AgentError(f"unknown call from the node: {call.name}")

    def _checkout(self, checkout_id: int, snap: NodeSnapshot) -> RemoteCheckout:
        return RemoteCheckout(self._actor, checkout_id, snap, self._changes, self._ex.bookkeeping)


def ray_executor(site: ExecutorSite) -> RayExecutor:
    """``executor = "ray"`` (``executors.EXECUTORS``): each story in an actor on the cluster."""
    return RayExecutor(
        site.root,
        site.config,
        site.bookkeeping,
        site.patch_dir,
        script=script_of(site.config, site.agent, site.root),
        credentials=site.credentials,
    )


def script_of(config: RalphConfig, agent: Agent | None, root: Path) -> dict[str, Any] | None:
    """The scripted agent's script travels to the nodes as data (its path is the driver's)."""
    if isinstance(agent, ScriptedAgent):
        return agent.script
    if config.agent != "scripted":
        return None
    scripted = create_agent(config, root)
    assert isinstance(scripted, ScriptedAgent)
    return scripted.script


def check_cluster(options: RayOptions, program: str | None = None) -> list[tuple[bool, str, str]]:
    """For ``doctor``: (ok, name, detail) for the address, then for each node its Python and
    Ray against this driver's and, when given, whether ``program`` (the agent's CLI) is there.
    """
    import platform

    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    joined = not ray.is_initialized()
    try:
        connect(options)
    except UsageError as exc:
        return [(False, "ray", str(exc))]
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]  # type: ignore[no-untyped-call]
        checks = [(bool(nodes), "ray", f"{options.address}: {len(nodes)} nodes alive")]
        runner: Any = ray.remote(StoryRunner)
        mine_py, mine_ray = platform.python_version(), ray.__version__
        for node in nodes:
            node_id = str(node["NodeID"])
            name = f"ray node {node.get('NodeManagerHostname', '?')}:{node_id[:8]}"
            strategy = NodeAffinitySchedulingStrategy(node_id, soft=False)
            actor = runner.options(num_cpus=0, scheduling_strategy=strategy).remote()
            try:
                info: NodeInfo = ray.get(actor.where.remote(), timeout=60)
                found = ray.get(actor.which.remote(program), timeout=60) if program else None
            except (GetTimeoutError, RayError) as exc:
                checks.append((False, name, f"cannot start a ralph-tui actor there: {exc}"))
                continue
            finally:
                ray.kill(actor, no_restart=True)
            same_py = info.python.rsplit(".", 1)[0] == mine_py.rsplit(".", 1)[0]
            same = same_py and info.ray == mine_ray
            detail = f"python {info.python}, ray {info.ray} (driver: {mine_py}, {mine_ray})"
            checks.append((same, name, detail))
            if program:
                where = found or f"{program!r} not found on PATH"
                checks.append((found is not None, f"{name} agent", where))
        return checks
    finally:
        if joined:
            ray.shutdown()


__all__ = [
    "RayExecutor",
    "RemoteCheckout",
    "agent_credentials",
    "check_cluster",
    "connect",
]
