"""Warm ``StoryRunner`` actors for the Ray executor: a story starts in a process already up.

A fresh actor costs a worker process and ralph-tui's imports on its node (0.4-1.7 s measured
on a loaded 2-core machine), and the Ray executor paid it on every story's critical path. The
pool starts actors ahead instead, right when the executor connects, and replaces each one taken
once its story is under way, so the next story finds one ready:

- a warm actor holds **no slot** (``num_cpus=0``, pinned to its node): idle, it only waits. The
  pool keeps up to ``size`` (the run's ``workers``) of them, spread over the nodes a story fits
  on, at most a node's slots on each, and never more than stories may still come
  (``expect``). Its constructor imports the agent's backend, so the story's ``create_agent``
  finds it loaded. A node starts one replacement at a time, the next once it is up: a process
  start takes about 0.5 CPU-s, taken from the stories running there;
- a story's **slot** is a placement group of one bundle (``num_cpus`` and ``[ray] resources``):
  Ray picks the node and reserves the slot there in milliseconds (asked to prefer a node with
  an idle warm actor, never forced to), so placement stays Ray's, as before. The story then
  takes a warm actor on that node, or starts a cold one inside the placement group when there
  is none;
- each actor serves **one** story: it is killed when the story ends (``release``), its
  placement group removed; nothing of a story (checkout, processes, credentials) can reach the
  next one. ``aclose`` kills the warm actors left. A slot whose node turns out to be gone (the
  story's actor cannot start there) is placed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import ActorUnavailableError, RayActorError, RayError
from ray.util.placement_group import PlacementGroup, placement_group, remove_placement_group
from ray.util.scheduling_strategies import (
    NodeAffinitySchedulingStrategy,
    PlacementGroupSchedulingStrategy,
)

from ralph_tui.config import RayOptions
from ralph_tui.executors.ray.node import NodeInfo

log = logging.getLogger(__name__)

SLOT_KEEP_S = 2.0  # a finished story's slot waits this long for the next story
NODES_REFRESH_S = 1.0  # how stale the pool's view of the cluster's nodes may get
PLACE_ATTEMPTS = 3  # a story's slot placed again when its node turns out to be lost

ACTOR_OPTIONS: dict[str, Any] = {"max_restarts": 0, "max_task_retries": 0, "max_concurrency": 1000}


@dataclass(eq=False)
class _Warm:
    actor: Any
    node_id: str
    ready: asyncio.Future[NodeInfo]  # the actor's ``where()``: done once it is up

    @property
    def up(self) -> bool:
        ready = self.ready
        return ready.done() and not ready.cancelled() and ready.exception() is None


@dataclass(eq=False)
class _Kept:
    group: PlacementGroup
    node_id: str
    timer: asyncio.TimerHandle  # gives it back to Ray


@dataclass(eq=False)
class Lease:
    """A story's actor and its slot, until ``ActorPool.release``."""

    actor: Any
    info: NodeInfo
    group: PlacementGroup | None
    warm: bool  # taken from the pool (False: started cold for this story)

    @property
    def node_id(self) -> str:
        return self.info.node_id


def slot_bundle(options: RayOptions) -> dict[str, float]:
    bundle = {"CPU": float(options.num_cpus)} if options.num_cpus else {}
    bundle.update({name: float(amount) for name, amount in options.resources.items()})
    return bundle


def slots_on(total: Mapping[str, float], bundle: Mapping[str, float], cap: int) -> int:
    """How many story slots a node with ``total`` resources has (at most ``cap``)."""
    fits = [math.floor(total.get(name, 0.0) / need + 1e-9) for name, need in bundle.items()]
    return min([cap, *fits])


class ActorPool:
    def __init__(
        self, runner: Any, options: RayOptions, size: int, preload: tuple[str, ...] = ()
    ) -> None:
        self._runner = runner
        self._options = options
        self._size = max(1, size)
        self._preload = preload
        self._bundle = slot_bundle(options)
        self._idle: list[_Warm] = []
        self._slots: dict[str, int] = {}  # node id -> story slots there
        self._refreshed = -math.inf
        self._refreshing: asyncio.Future[None] | None = None
        self._kept: list[_Kept] = []  # slots of finished stories, for the next ones
        self._demand = self._size  # stories that may still ask for an actor (``expect``)
        self._closed = False
        self.started = 0  # warm actors started, for tests and the benchmark

    # ------------------------------------------------------------------ warm actors

    async def start(self) -> None:
        await self._refresh()

    async def _refresh(self) -> None:
        """Re-read the alive nodes (one refresh at a time); drop warm actors on lost nodes."""
        if self._refreshing is not None:
            await asyncio.shield(self._refreshing)
            return
        self._refreshing = asyncio.get_running_loop().create_future()
        try:
            nodes = await asyncio.to_thread(ray.nodes)
            self._slots = {}
            for node in nodes:
                if node.get("Alive"):
                    slots = slots_on(node.get("Resources", {}), self._bundle, self._size)
                    if slots > 0:
                        self._slots[str(node["NodeID"])] = slots
            self._refreshed = time.monotonic()
            for warm in [w for w in self._idle if w.node_id not in self._slots]:
                self._idle.remove(warm)
                self._kill(warm.actor)
            self._fill()
        finally:
            self._refreshing.set_result(None)
            self._refreshing = None

    def expect(self, stories: int) -> None:
        """``stories`` may still ask for an actor (each ``acquire`` counts one down): the pool
        holds no more warm actors than that. One started for a story that never comes costs
        a process start, on a node busy with the stories still running."""
        self._demand = max(0, stories)
        surplus = len(self._idle) - self._demand
        if surplus <= 0:
            return
        # the ones still starting go first: an actor that is up serves the next story at once
        by_use = sorted(self._idle, key=lambda w: w.up)
        for warm in by_use[:surplus]:
            self._idle.remove(warm)
            warm.ready.cancel()
            self._kill(warm.actor)

    def refill(self) -> None:
        """Start the replacements of the warm actors taken (the executor calls this once the
        story that took one is under way: on a small node, a process starting at the same time
        as a story's clone and first turn would slow both). A node starts one replacement at a
        time, the next once it is up, so the stories running there keep their CPU."""
        self._fill(one_at_a_time=True)

    def _fill(self, one_at_a_time: bool = False) -> None:
        """Start warm actors up to each node's share: ``size`` in all (fewer when fewer
        stories are expected), round robin over the nodes, at most a node's slots on each."""
        if self._closed:
            return
        want: Counter[str] = Counter()
        nodes = sorted(self._slots)
        budget = min(self._size, self._demand)
        while sum(want.values()) < budget:
            grew = False
            for node_id in nodes:
                if sum(want.values()) < budget and want[node_id] < self._slots[node_id]:
                    want[node_id] += 1
                    grew = True
            if not grew:
                break
        have = Counter(w.node_id for w in self._idle)
        starting = {w.node_id for w in self._idle if not w.ready.done()}
        for node_id, count in want.items():
            missing = count - have[node_id]
            if one_at_a_time:
                missing = min(missing, 0 if node_id in starting else 1)
            for _ in range(missing):
                warm = self._start_warm(node_id)
                self._idle.append(warm)
                if one_at_a_time:
                    warm.ready.add_done_callback(lambda _f: self._fill(one_at_a_time=True))

    def _start_warm(self, node_id: str) -> _Warm:
        strategy = NodeAffinitySchedulingStrategy(node_id, soft=False)
        actor = self._runner.options(
            num_cpus=0, scheduling_strategy=strategy, **ACTOR_OPTIONS
        ).remote(self._preload)
        self.started += 1
        ready = asyncio.ensure_future(_where(actor))
        ready.add_done_callback(retrieved)
        return _Warm(actor, node_id, ready)

    def _take(self, node_id: str | None) -> _Warm | None:
        """An idle warm actor on ``node_id`` (any node: None), the ones already up first."""
        here = [w for w in self._idle if node_id is None or w.node_id == node_id]
        if not here:
            return None
        warm = min(here, key=lambda w: not w.up)
        self._idle.remove(warm)
        return warm

    def _target(self) -> str | None:
        """The node to suggest to Ray: one with a warm actor, one already up first (without a
        hint, the first stories' slots land anywhere and their warm actors sit idle)."""
        up = [w for w in self._idle if w.up]
        pick = up or self._idle
        return pick[0].node_id if pick else None

    # ------------------------------------------------------------------ leases

    async def acquire(self) -> Lease:
        """A slot (Ray's choice of node) and an actor there: warm when the pool has one. A slot
        whose node turns out to be gone (its actor cannot start there) is placed again."""
        self._demand = max(0, self._demand - 1)
        for attempt in range(1, PLACE_ATTEMPTS + 1):
            try:
                return await self._acquire_once()
            except (RayActorError, ActorUnavailableError) as exc:
                if attempt == PLACE_ATTEMPTS:
                    raise
                log.info("a story's slot is on a lost node (%s); placing it again", exc)
                self._refreshed = -math.inf  # learn which nodes are gone before the next try
        raise AssertionError("unreachable")  # the loop returns or raises

    async def _acquire_once(self) -> Lease:
        if time.monotonic() - self._refreshed > NODES_REFRESH_S:
            await self._refresh()
        group: PlacementGroup | None = None
        node_id: str | None = None
        if self._bundle:
            group = self._kept_slot() or placement_group(
                # one bundle: STRICT_PACK is plain placement (and the only strategy with a hint)
                [self._bundle],
                strategy="STRICT_PACK",
                _soft_target_node_id=self._target(),
            )
            try:
                await group.ready()  # at once for a kept slot (unless its node was lost)
                node_id = await asyncio.to_thread(_node_of, group)
            except BaseException:
                remove_placement_group(group)
                raise
        warm = self._take(node_id)
        if warm is None:
            self._fill()  # the pool ran dry: start refilling it now
        try:
            if warm is not None:
                try:
                    return Lease(warm.actor, await warm.ready, group, True)
                except RayError as exc:  # it died while waiting (its node was lost?)
                    log.info("a warm actor on node %s is gone: %s", warm.node_id[:8], exc)
                    self._kill(warm.actor)
            actor = self._cold(group)
            try:
                return Lease(actor, await _where(actor), group, False)
            except BaseException:
                self._kill(actor)
                raise
        except BaseException:
            if warm is not None:
                self._kill(warm.actor)
            if group is not None:
                remove_placement_group(group)
            raise

    def _cold(self, group: PlacementGroup | None) -> Any:
        options: dict[str, Any] = {"num_cpus": self._options.num_cpus, **ACTOR_OPTIONS}
        if self._options.resources:
            options["resources"] = dict(self._options.resources)
        if group is not None:
            options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(group, 0)
        return self._runner.options(**options).remote(self._preload)

    def release(self, lease: Lease) -> None:
        """The story is over: its actor (and every process it started) killed. Its slot is
        kept ``SLOT_KEEP_S`` for the next story (the scheduler picks one right away), then
        given back: handing it over through Ray took up to 0.8 s on a loaded machine."""
        self._kill(lease.actor)
        if lease.group is not None and self._closed:
            self._give_back(lease.group)
        elif lease.group is not None:
            timer = asyncio.get_running_loop().call_later(SLOT_KEEP_S, self._give_back, lease.group)
            self._kept.append(_Kept(lease.group, lease.node_id, timer))

    def _kept_slot(self) -> PlacementGroup | None:
        """A kept slot, one on a node with an idle warm actor first."""
        if not self._kept:
            return None
        warm_nodes = {w.node_id for w in self._idle}
        kept = next((k for k in self._kept if k.node_id in warm_nodes), self._kept[0])
        self._kept.remove(kept)
        kept.timer.cancel()
        return kept.group

    def _give_back(self, group: PlacementGroup) -> None:
        self._kept = [k for k in self._kept if k.group is not group]
        with contextlib.suppress(RayError):
            remove_placement_group(group)

    async def aclose(self) -> None:
        self._closed = True
        for kept in list(self._kept):
            kept.timer.cancel()
            self._give_back(kept.group)
        idle, self._idle = self._idle, []
        for warm in idle:
            warm.ready.cancel()
            self._kill(warm.actor)
        self._slots = {}
        self._refreshed = -math.inf

    @property
    def idle(self) -> list[tuple[str, Any]]:
        """The warm actors waiting for a story, (node id, handle), for tests."""
        return [(w.node_id, w.actor) for w in self._idle]

    @staticmethod
    def _kill(actor: Any) -> None:
        with contextlib.suppress(RayError):
            ray.kill(actor, no_restart=True)


async def _where(actor: Any) -> NodeInfo:
    info: NodeInfo = await actor.where.remote()
    return info


def _node_of(group: PlacementGroup) -> str:
    table: dict[str, Any] = ray.util.placement_group_table(group)
    return str(table["bundles_to_node_id"][0])


def retrieved(future: asyncio.Future[Any]) -> None:
    """A done-callback: the future's exception is raised again to whoever awaits it later,
    and asyncio does not log it as never retrieved meanwhile."""
    if not future.cancelled():
        future.exception()


__all__ = ["ActorPool", "Lease", "retrieved", "slot_bundle", "slots_on"]
