"""The Ray executor end to end on a real local Ray cluster (head + node_a + node_b).

The cluster is one per session (it takes ~10-20 s to start) and is started and stopped by the
process ids of its ``ray start`` processes (tests/support/ray_cluster.py). Every story runs in a
``StoryRunner`` actor on node_a or node_b (one CPU each, the head takes none), through the real
``ParallelEngine``, the scripted agent, real git and real gates. Select with ``-m ray``.

Waiting is always for a condition (an event, a process in /proc), never a sleep for ordering.
The node-kill test brings the killed node back (a fresh ``ray start``) when it is done, and runs
last: Ray takes the killed node for alive until its health checks fail (tens of seconds), so a
test after it could have a warm actor or a slot placed there meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")

from ralph_tui.config import load_config  # noqa: E402
from ralph_tui.errors import GitError  # noqa: E402
from ralph_tui.events import (  # noqa: E402
    ApprovalNeeded,
    Event,
    GateFinished,
    IterationFinished,
    IterationStarted,
    Notice,
    TextDelta,
    ToolResult,
)
from ralph_tui.executors.ray.executor import RayExecutor  # noqa: E402
from ralph_tui.git.bundles import make_bundle, verify_change  # noqa: E402
from ralph_tui.git.repo import FileDiff  # noqa: E402
from ralph_tui.parallel import ParallelEngine  # noqa: E402
from ralph_tui.runs import build_engine  # noqa: E402
from ralph_tui.supervisor import (  # noqa: E402
    ApprovalDecision,
    ApprovalRequest,
    DroppedPart,
    ReviewComment,
)
from tests.support.engine import (  # noqa: E402
    HoldFirstApproval,
    RecordingSink,
    ScriptedSupervisor,
    complete,
    create,
    write_script,
)
from tests.support.ray_cluster import LocalRayCluster, alive  # noqa: E402
from tests.support.repo import git, make_repo, story  # noqa: E402
from tests.support.tools import requires_bwrap  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.timeout(240)]


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[LocalRayCluster]:
    cluster = LocalRayCluster(cpus_per_node=1)
    try:
        cluster.start()
        yield cluster
    finally:
        left = cluster.stop()
        assert left == [], f"ray processes left running: {left}"


def ray_engine(
    root: Path,
    script: dict[str, Any],
    cluster: LocalRayCluster,
    supervisor: ScriptedSupervisor | None = None,
    *,
    workers: int = 2,
    sink: Callable[[Event], None] | None = None,
    credentials: dict[str, str] | None = None,
    **overrides: Any,
) -> tuple[ParallelEngine, RecordingSink, ScriptedSupervisor]:
    path = write_script(root, script)
    config = load_config(
        root,
        {
            "script": str(path),
            "workers": workers,
            "executor": "ray",
            "ray": {"address": cluster.address},
            **overrides,
        },
    )
    recording = RecordingSink()

    def both(event: Event) -> None:
        recording(event)
        if sink is not None:
            sink(event)

    sup = supervisor or ScriptedSupervisor()
    engine = build_engine(root, config, None, sup, both, executor_credentials=credentials)
    return engine, recording, sup


def executor_of(engine: ParallelEngine) -> RayExecutor:
    executor = engine.loop.executor
    assert isinstance(executor, RayExecutor)
    return executor


def passes(root: Path) -> dict[str, bool]:
    data = json.loads((root / "tasks/backend_prd.json").read_text())
    return {str(s["id"]): s["passes"] for s in data["userStories"]}


def journal(engine: ParallelEngine) -> list[dict[str, Any]]:
    lines = (engine.run_dir / "events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def node_of(cluster: LocalRayCluster, label: str) -> str:
    """The fixture's name (node_a / node_b) of an ``IterationStarted.node`` label."""
    for name, node in cluster.nodes.items():
        if node.node_id and label.endswith(node.node_id[:8]):
            return name
    raise AssertionError(f"{label} is not a worker node")


def marker_pids(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline:
                found.append(int(entry.name))
    return found


async def wait_for(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def bash(command: str) -> dict[str, Any]:
    return {"tool": "bash", "input": {"command": command}}


# ------------------------------------------------------------------------- bundles (no cluster)


def test_bundle_round_trip_is_verified(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "main")
    base = git(root, "rev-parse", "HEAD").strip()
    node = tmp_path / "node"
    git(tmp_path, "clone", "-q", str(root), str(node))
    (node / "new.txt").write_text("new\n")
    git(node, "add", "-A")
    git(node, "commit", "-qm", "change")
    commit = git(node, "rev-parse", "HEAD").strip()
    data = make_bundle(node, commit, base)
    change = verify_change(root, data, base, commit)
    assert b"+new" in change.patch and "new.txt" in change.diffstat
    # nothing was added to the main repository: no ref, no object
    missing = subprocess.run(["git", "cat-file", "-e", commit], cwd=root, check=False)
    assert missing.returncode != 0
    with pytest.raises(GitError, match="holds"):
        verify_change(root, data, base, base[:-1] + ("0" if base[-1] != "0" else "1"))
    (node / "more.txt").write_text("more\n")
    git(node, "add", "-A")
    git(node, "commit", "-qm", "second")
    two = git(node, "rev-parse", "HEAD").strip()
    with pytest.raises(GitError, match="not one commit"):
        verify_change(root, make_bundle(node, two, base), base, two)


def test_scratch_keeps_verified_changes_for_the_merge_train(tmp_path: Path) -> None:
    """Two nodes' changes on unrelated bases, one after the other; the first one's commit can
    then be sent to another node (it exists nowhere on the driver but in the scratch)."""
    from ralph_tui.git.bundles import Scratch, fetch_bundle

    root = make_repo(tmp_path / "main")
    base = git(root, "rev-parse", "HEAD").strip()
    commits = []
    for name in ("a", "b"):
        node = tmp_path / name
        git(tmp_path, "clone", "-q", str(root), str(node))
        (node / f"{name}.txt").write_text(f"{name}\n")
        git(node, "add", "-A")
        git(node, "commit", "-qm", name)
        commits.append((node, git(node, "rev-parse", "HEAD").strip()))
    scratch = Scratch(root)
    try:
        for node, commit in commits:
            change = scratch.verify_change(make_bundle(node, commit, base), base, commit)
            assert change.commit == commit
        other = tmp_path / "other"
        git(tmp_path, "clone", "-q", str(root), str(other))
        first = commits[0][1]
        assert fetch_bundle(other, scratch.make_bundle(first, base)) == first
        assert scratch.make_bundle(base, first) == b""  # already in the node's history
    finally:
        scratch.close()


def test_scratch_bundles_made_at_once_each_hold_their_own_tip(tmp_path: Path) -> None:
    """Merges run their rebases at once, each in a thread, over one scratch repository."""
    from concurrent.futures import ThreadPoolExecutor

    from ralph_tui.git.bundles import Scratch

    root = make_repo(tmp_path / "main")
    tips = []
    for i in range(4):
        (root / f"f{i}.txt").write_text(f"{i}\n")
        git(root, "add", "-A")
        git(root, "commit", "-qm", f"c{i}")
        tips.append(git(root, "rev-parse", "HEAD").strip())
    scratch = Scratch(root)
    try:
        with ThreadPoolExecutor(4) as pool:
            bundles = list(pool.map(lambda tip: scratch.make_bundle(tip), tips * 3))
    finally:
        scratch.close()
    for tip, data in zip(tips * 3, bundles, strict=True):
        assert tip.encode() in data.split(b"\n\n", 1)[0]  # the bundle's header names its tip


def test_driver_code_trees_match_the_nodes(tmp_path: Path) -> None:
    """The merge compares code trees the driver computes (Scratch.code_tree) with the ones the
    gates ran on; they must be the very ids Worktree.code_tree/code_tree_on give on a node."""
    from ralph_tui.git.bundles import Scratch
    from ralph_tui.git.worktrees import WorktreeManager

    root = make_repo(tmp_path / "main")
    base = git(root, "rev-parse", "HEAD").strip()
    books = ("tasks/backend_prd.json", "tasks/backend_progress.txt")
    tree = WorktreeManager(root, books).create("US-001", base)
    (tree.root / "new.txt").write_text("new\n")
    (tree.root / "README.md").write_text("# changed\n")
    commit, patch, _ = tree.snapshot([])
    (root / "other.txt").write_text("main moved\n")  # main moves on, without a conflict
    git(root, "add", "-A")
    git(root, "commit", "-qm", "other")
    onto = git(root, "rev-parse", "HEAD").strip()
    (root / "README.md").write_text("# a conflicting change\n")
    git(root, "commit", "-qam", "conflict")
    clash = git(root, "rev-parse", "HEAD").strip()
    scratch = Scratch(root)
    try:
        assert scratch.code_tree(commit, books) == tree.code_tree()
        assert scratch.code_tree(onto, books, patch) == tree.code_tree_on(onto)
        assert scratch.code_tree(clash, books, patch) is None is tree.code_tree_on(clash)
        # the PRD and progress log are left out: a tree with them differs
        assert scratch.code_tree(commit, ()) != tree.code_tree()
    finally:
        scratch.close()


def test_driver_rebase_is_the_nodes_and_the_node_takes_it(tmp_path: Path) -> None:
    """``Scratch.rebase_change`` moves a verified change onto a new base as the node's own
    ``Worktree.rebase`` would (the same tree, the same conflicts); the node's worktree then
    takes that commit (``Worktree.adopt``) and refuses one that is not one commit on it."""
    from ralph_tui.git.bundles import Scratch, fetch_bundle
    from ralph_tui.git.worktrees import WIP_MESSAGE, WorktreeManager

    root = make_repo(tmp_path / "main")
    (root / "shared.txt").write_text("one\ntwo\nthree\nfour\nfive\nsix\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "shared")
    base = git(root, "rev-parse", "HEAD").strip()
    node = tmp_path / "node"
    git(tmp_path, "clone", "-q", "--no-checkout", str(root), str(node))
    books = ("tasks/backend_prd.json", "tasks/backend_progress.txt")
    trees = WorktreeManager(node, books)
    tree = trees.create("US-001", base)
    (tree.root / "shared.txt").write_text("ONE\ntwo\nthree\nfour\nfive\nsix\n")
    (tree.root / "new.txt").write_text("new\n")
    commit, patch, _ = tree.snapshot([])
    # main moves twice: once beside the change (lines far apart), once into it
    (root / "shared.txt").write_text("one\ntwo\nthree\nfour\nfive\nSIX\n")
    git(root, "commit", "-qam", "beside")
    beside = git(root, "rev-parse", "HEAD").strip()
    (root / "shared.txt").write_text("uno\ntwo\nthree\nfour\nfive\nSIX\n")
    git(root, "commit", "-qam", "into")
    into = git(root, "rev-parse", "HEAD").strip()
    message = WIP_MESSAGE.format(story="US-001").encode()
    scratch = Scratch(root)
    try:
        scratch.verify_change(make_bundle(node, commit, base), base, commit)
        moved = scratch.rebase_change(patch, beside, message)
        assert not isinstance(moved, list)
        shared = git(scratch.root, "show", f"{moved.commit}:shared.txt")
        assert shared == "ONE\ntwo\nthree\nfour\nfive\nSIX\n"  # both sides kept
        assert git(scratch.root, "rev-parse", f"{moved.commit}^").strip() == beside
        assert b"+ONE" in moved.patch and "new.txt" in moved.diffstat
        assert scratch.rebase_change(patch, into, message) == ["shared.txt"]
        assert scratch.rebase_change(b"", into, message).commit == into  # no change: onto
        # the node's own rebase gives the very same tree
        twin = WorktreeManager(node, books).create("US-002", base)
        (twin.root / "shared.txt").write_text("ONE\ntwo\nthree\nfour\nfive\nsix\n")
        (twin.root / "new.txt").write_text("new\n")
        twin.snapshot([])
        fetch_bundle(node, scratch.make_bundle(into, base))
        assert twin.rebase(into, keep_conflicts=False) == ["shared.txt"]
        assert twin.rebase(beside) == []
        tree_of = "{}^{{tree}}"
        assert git(node, "rev-parse", tree_of.format(twin.commit)) == git(
            scratch.root, "rev-parse", tree_of.format(moved.commit)
        )
        # the node takes the driver's commit, with what it lacks of it as a bundle
        fetch_bundle(node, scratch.make_bundle(moved.commit, base))
        tree.adopt(beside, moved.commit)
        assert (tree.base, tree.commit) == (beside, moved.commit)
        assert (tree.root / "shared.txt").read_text() == "ONE\ntwo\nthree\nfour\nfive\nSIX\n"
        assert tree.snapshot([])[0] == moved.commit  # nothing to commit again
        with pytest.raises(GitError, match="not one commit on"):
            tree.adopt(base, moved.commit)
    finally:
        scratch.close()


def test_a_hostile_change_rebased_on_the_driver_writes_nothing_outside_the_scratch(
    tmp_path: Path,
) -> None:
    """Attack: the agent's change is a symlink out of the repository (to a folder of the
    driver's machine) and a file, and main then adds a file under the symlink's name. The
    driver's rebase works on objects in a scratch index only: nothing is written through the
    link, the user's repository gets no object or ref, and the clashing rebase is a conflict,
    not a write beyond the link."""
    from ralph_tui.git.bundles import Scratch
    from ralph_tui.git.worktrees import WIP_MESSAGE, WorktreeManager

    victim = tmp_path / "victim"
    victim.mkdir()
    root = make_repo(tmp_path / "main")
    base = git(root, "rev-parse", "HEAD").strip()
    node = tmp_path / "node"
    git(tmp_path, "clone", "-q", "--no-checkout", str(root), str(node))
    tree = WorktreeManager(node, ()).create("US-001", base)
    (tree.root / "escape").symlink_to(victim)
    (tree.root / "data.txt").write_text("data\n")
    commit, patch, _ = tree.snapshot([])
    (root / "other.txt").write_text("main moved\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "beside")
    beside = git(root, "rev-parse", "HEAD").strip()
    (root / "escape").mkdir()
    (root / "escape" / "planted.txt").write_text("through the link?\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "clash")
    clash = git(root, "rev-parse", "HEAD").strip()
    refs_before = git(root, "for-each-ref")
    message = WIP_MESSAGE.format(story="US-001").encode()
    scratch = Scratch(root)
    try:
        scratch.verify_change(make_bundle(node, commit, base), base, commit)
        moved = scratch.rebase_change(patch, beside, message)
        assert not isinstance(moved, list)
        entry = git(scratch.root, "ls-tree", moved.commit, "escape").split()
        assert entry[0] == "120000"  # still a link entry, never followed
        clashed = scratch.rebase_change(patch, clash, message)  # a link where main has a folder
        assert isinstance(clashed, list) and "does not apply" in clashed[0]
    finally:
        scratch.close()
    assert list(victim.iterdir()) == []  # nothing written through the link
    missing = subprocess.run(["git", "cat-file", "-e", moved.commit], cwd=root, check=False)
    assert missing.returncode != 0  # the user's repository got no object
    assert git(root, "for-each-ref") == refs_before  # and no ref
    assert not scratch.root.exists()  # and the scratch is gone with the run


class _Method:
    def __init__(self, calls: list[str], name: str, answer: Callable[..., Any]) -> None:
        self._calls, self._name, self._answer = calls, name, answer
        self.args: list[tuple[Any, ...]] = []

    async def _run(self, *args: Any) -> Any:
        self._calls.append(self._name)
        self.args.append(args)
        return self._answer(*args)

    def remote(self, *args: Any) -> Any:
        return self._run(*args)


def test_story_slots_per_node() -> None:
    """Where the pool keeps warm actors: nodes with room for a story's slot, as many as slots."""
    from ralph_tui.config import RayOptions
    from ralph_tui.executors.ray.pool import slot_bundle, slots_on

    bundle = slot_bundle(RayOptions(num_cpus=1, resources={"gpu_box": 1}))
    assert bundle == {"CPU": 1.0, "gpu_box": 1.0}
    assert slots_on({"CPU": 4.0, "gpu_box": 1.0}, bundle, 8) == 1
    assert slots_on({"CPU": 4.0}, bundle, 8) == 0  # no gpu_box there
    assert slots_on({"CPU": 0.0}, {"CPU": 1.0}, 8) == 0  # a head with no slots
    assert slots_on({"CPU": 16.0}, {"CPU": 1.0}, 4) == 4  # never more than the run's workers
    assert slots_on({}, slot_bundle(RayOptions(num_cpus=0)), 3) == 3


class _StandInActor:
    """An actor handle for the pool's bookkeeping: ``where`` answers once ``up`` is set."""

    def __init__(self, node_id: str) -> None:
        from ralph_tui.executors.ray.node import NodeInfo

        self.node_id = node_id
        self.up = asyncio.Event()
        self.lost = False  # its node is gone: ``where`` fails once it is "up"
        info = NodeInfo(node_id, "host", 0, "3", "2")

        async def where() -> NodeInfo:
            await self.up.wait()
            if self.lost:
                raise ray.exceptions.ActorDiedError()
            return info

        self.where = type("Method", (), {"remote": staticmethod(where)})()


class _StandInRunner:
    """``ray.remote(StoryRunner)`` for the pool's bookkeeping: ``remote`` makes a stand-in
    actor on the node its scheduling strategy named (node-a without one); ``up``: it answers at
    once; the first ``lost`` of them are on a lost node."""

    def __init__(self, *, up: bool = False, lost: int = 0) -> None:
        self.started: list[_StandInActor] = []
        self._up, self._lost = up, lost
        self._node = "node-a"

    def options(self, **options: Any) -> _StandInRunner:
        self._node = str(options.get("scheduling_strategy") or "node-a")
        return self

    def remote(self, preload: tuple[str, ...]) -> _StandInActor:
        actor = _StandInActor(self._node)
        actor.lost = len(self.started) < self._lost
        if self._up:
            actor.up.set()
        self.started.append(actor)
        return actor


async def test_pool_refills_one_actor_per_node_at_a_time_and_only_for_stories_to_come(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pool's policy, with stand-in actors (the real ones are in the cluster tests below):
    the first warm actors start at once; a replacement starts one per node at a time (the next
    once it is up), so the stories running there keep their CPU; no more are kept than stories
    may still ask for one, and those beyond are killed."""
    from ralph_tui.config import RayOptions
    from ralph_tui.executors.ray import pool as ray_pool
    from ralph_tui.executors.ray.pool import ActorPool

    killed: list[_StandInActor] = []
    runner = _StandInRunner()
    started = runner.started
    # a warm actor's node: the stand-in runner reads it from its scheduling strategy
    monkeypatch.setattr(ray_pool, "NodeAffinitySchedulingStrategy", lambda node, soft: node)
    monkeypatch.setattr(ActorPool, "_kill", staticmethod(killed.append))
    pool = ActorPool(runner, RayOptions(num_cpus=0), 4)
    pool._slots = {"node-a": 2, "node-b": 2}
    pool._refreshed = time.monotonic()
    pool.expect(8)
    pool._fill()  # what ``start`` does once it knows the nodes
    assert sorted(a.node_id for a in started) == ["node-a", "node-a", "node-b", "node-b"]
    for actor in started:
        actor.up.set()
    leases = [await pool.acquire() for _ in range(4)]
    assert {lease.actor for lease in leases} == set(started) and pool.idle == []
    pool.refill()
    pool.refill()  # asked again while those start: still one per node
    assert sorted(a.node_id for a in started[4:]) == ["node-a", "node-b"]
    started[4].up.set()
    await wait_for(lambda: len(started) == 7, "the next replacement on node-a")
    assert started[6].node_id == started[4].node_id
    assert len(pool.idle) == 3  # four stories may come: the fourth one is started later
    pool.expect(1)  # only one story left to come: the other warm actors go, those up last
    assert pool.idle == [("node-a", started[4])] and killed == started[5:7]
    pool.expect(0)
    pool.refill()
    assert pool.idle == [] and len(killed) == 3 and len(started) == 7
    await pool.aclose()


async def test_a_slot_on_a_lost_node_is_placed_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """The story's actor cannot start where its slot is (the node died under it, e.g. a slot
    kept from a story on that node): the pool learns the nodes again and places the story
    anew, instead of failing the run."""
    from ralph_tui.config import RayOptions
    from ralph_tui.executors.ray.pool import ActorPool

    runner = _StandInRunner(up=True, lost=1)  # the first actor lands on the lost node
    started = runner.started
    refreshed: list[float] = []

    async def refresh() -> None:
        refreshed.append(time.monotonic())
        pool._refreshed = time.monotonic()

    monkeypatch.setattr(ActorPool, "_kill", staticmethod(lambda actor: None))
    pool = ActorPool(runner, RayOptions(num_cpus=0), 1)
    monkeypatch.setattr(pool, "_refresh", refresh)
    pool._slots = {"node-a": 1}
    pool._refreshed = time.monotonic()
    pool.expect(0)  # no warm actor: the story starts a cold one
    lease = await pool.acquire()
    assert lease.actor is started[1] and len(started) == 2
    assert len(refreshed) == 1  # the nodes were read again before the second try
    await pool.aclose()


async def test_remote_checkout_asks_the_node_only_for_the_rebase_and_the_gates(
    tmp_path: Path,
) -> None:
    """The snapshot comes with the node's call, so the driver's snapshots and code trees cost
    no round trip; after the gates (which may change files) the next snapshot asks again.
    A stand-in for the actor records what is asked of the node."""
    from ralph_tui.executors.ray.executor import RemoteCheckout, _Changes
    from ralph_tui.executors.ray.node import NodeSnapshot
    from ralph_tui.git.bundles import Scratch

    root = make_repo(tmp_path / "main")
    base = git(root, "rev-parse", "HEAD").strip()
    node = tmp_path / "node"
    git(tmp_path, "clone", "-q", str(root), str(node))
    (node / "new.txt").write_text("new\n")
    git(node, "add", "-A")
    git(node, "commit", "-qm", "change")
    commit = git(node, "rev-parse", "HEAD").strip()
    snap = NodeSnapshot(base, commit, make_bundle(node, commit, base))
    calls: list[str] = []
    actor = type("Actor", (), {})()
    actor.checkout_snapshot = _Method(calls, "snapshot", lambda *a: NodeSnapshot(base, commit))
    actor.checkout_gates = _Method(calls, "gates", lambda *a: [])
    books = ("tasks/backend_prd.json",)
    scratch = Scratch(root)
    try:
        changes = _Changes(scratch, "US-001")
        checkout = RemoteCheckout(actor, 1, snap, changes, books)
        change = await checkout.snapshot()
        assert change.commit == commit and b"+new" in change.patch
        assert await checkout.code_tree() == scratch.code_tree(commit, books)
        assert await checkout.code_tree_on(base) == await checkout.code_tree()
        assert calls == []  # nothing asked of the node so far
        await checkout.run_gates()
        assert (await checkout.snapshot()).commit == commit  # known here: no bundle again
        assert calls == ["gates", "snapshot"]
        # the same commit handed over again, without its bundle: nothing to verify again
        again = RemoteCheckout(actor, 2, NodeSnapshot(base, commit), changes, books)
        assert (await again.snapshot()).patch == change.patch
        # a bundle that does not hold the commit the node named is refused
        liar = NodeSnapshot(base, base[:-1] + ("0" if base[-1] != "0" else "1"), snap.bundle)
        with pytest.raises(GitError, match="holds"):
            await RemoteCheckout(actor, 3, liar, _Changes(scratch, "US-001"), books).snapshot()
    finally:
        scratch.close()


async def test_remote_checkout_rebases_here_and_the_node_takes_it_with_the_gates(
    tmp_path: Path,
) -> None:
    """The merge train places a change without waiting for its node: a rebase that applies is
    made on the driver (no call), and the node gets it (``Adopt``, with the commits it lacks)
    with the gates; a speculative rebase that conflicts moves nothing; one whose conflicts go
    back to the agent is the node's, after it took the rebase it had not yet."""
    from ralph_tui.executors.ray.executor import RemoteCheckout, _Changes
    from ralph_tui.executors.ray.node import Adopt, NodeSnapshot
    from ralph_tui.git.bundles import Scratch, fetch_bundle

    root = make_repo(tmp_path / "main")
    (root / "shared.txt").write_text("base\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "shared")
    base = git(root, "rev-parse", "HEAD").strip()
    node = tmp_path / "node"
    git(tmp_path, "clone", "-q", str(root), str(node))
    (node / "shared.txt").write_text("mine\n")
    git(node, "commit", "-qam", "change")
    commit = git(node, "rev-parse", "HEAD").strip()
    (root / "other.txt").write_text("other\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "beside")
    beside = git(root, "rev-parse", "HEAD").strip()
    (root / "shared.txt").write_text("theirs\n")
    git(root, "commit", "-qam", "into")
    into = git(root, "rev-parse", "HEAD").strip()
    calls: list[str] = []
    actor = type("Actor", (), {})()
    actor.checkout_gates = gates = _Method(calls, "gates", lambda *a: [])
    actor.checkout_snapshot = _Method(calls, "snapshot", lambda *a: NodeSnapshot(beside, "x"))
    actor.checkout_rebase = rebase = _Method(
        calls, "rebase", lambda *a: (["shared.txt"], a[1], None)
    )
    scratch = Scratch(root)
    try:
        snap = NodeSnapshot(base, commit, make_bundle(node, commit, base))
        checkout = RemoteCheckout(actor, 1, snap, _Changes(scratch, "US-001"), ())
        assert await checkout.rebase(beside, keep_conflicts=False) == []
        moved = await checkout.snapshot()
        assert (checkout.base_commit, moved.base_commit) == (beside, beside)
        assert moved.commit != commit and b"+mine" in moved.patch
        assert await checkout.code_tree() == scratch.code_tree(moved.commit, ())
        assert calls == []  # placed in the train without the node
        await checkout.run_gates()
        assert calls == ["gates"]
        adopt = gates.args[0][1]
        assert isinstance(adopt, Adopt) and (adopt.onto, adopt.commit) == (beside, moved.commit)
        assert fetch_bundle(node, adopt.bundle) == moved.commit  # what the node lacked
        await checkout.run_gates()
        assert gates.args[1][1] is None  # taken already: nothing to send again
        # a rebase made here, not yet taken, then a conflict for the agent: the node gets both
        other = RemoteCheckout(actor, 2, snap, _Changes(scratch, "US-001"), ())
        assert await other.rebase(beside) == []
        assert await other.rebase(into, keep_conflicts=False) == ["shared.txt"]
        assert other.base_commit == beside and "rebase" not in calls  # nothing moved
        assert await other.rebase(into) == ["shared.txt"]
        assert calls[-1] == "rebase"
        _, onto, data, keep, pending = rebase.args[-1]
        assert (onto, keep) == (into, True) and fetch_bundle(node, data) == into
        assert isinstance(pending, Adopt) and pending.onto == beside
        assert other.base_commit == into
    finally:
        scratch.close()


async def test_a_change_sent_back_by_the_merge_is_rebased_on_its_node_first(
    tmp_path: Path,
) -> None:
    """The merge rebased the change here (cleanly) and then sent it back to the agent
    (``MergeRetry``: the gates fail on main as it is now): before the node hears so, it takes
    that rebase, so the agent fixes its change on top of main, not on its old base."""
    from types import SimpleNamespace

    from ralph_tui.executors.base import MergeRetry
    from ralph_tui.executors.ray.executor import _Session
    from ralph_tui.executors.ray.node import Adopt, Call, NodeSnapshot
    from ralph_tui.git.bundles import Scratch

    root = make_repo(tmp_path / "main")
    base = git(root, "rev-parse", "HEAD").strip()
    node = tmp_path / "node"
    git(tmp_path, "clone", "-q", str(root), str(node))
    (node / "mine.txt").write_text("mine\n")
    git(node, "add", "-A")
    git(node, "commit", "-qm", "change")
    commit = git(node, "rev-parse", "HEAD").strip()
    (root / "theirs.txt").write_text("theirs\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "main moved")
    head = git(root, "rev-parse", "HEAD").strip()

    class Host:
        async def merge(self, story: Any, checkout: Any, learnings: Any) -> str:
            assert await checkout.rebase(head) == []
            raise MergeRetry("the gates fail on the rebased change")

    calls: list[str] = []
    actor = SimpleNamespace(
        checkout_adopt=_Method(calls, "adopt", lambda *a: None),
        reply=_Method(calls, "reply", lambda *a: None),
    )
    scratch = Scratch(root)
    try:
        executor = SimpleNamespace(scratch=lambda: scratch, bookkeeping=())
        job = SimpleNamespace(story=SimpleNamespace(key="US-001"))
        session = _Session(executor, actor, "node", job, Host())
        snap = NodeSnapshot(base, commit, make_bundle(node, commit, base))
        await session._answer(Call(7, "merge", (1, snap, [])))
    finally:
        scratch.close()
    assert calls == ["adopt", "reply"]  # the rebase first, then the answer
    adopt = actor.checkout_adopt.args[0][1]
    assert isinstance(adopt, Adopt) and adopt.onto == head
    call_id, reply = actor.reply.args[0]
    assert call_id == 7 and reply.error == "merge_retry"


# ------------------------------------------------------------------------- on the cluster


async def test_a_later_base_goes_to_the_nodes_as_the_commits_it_adds(
    ray_cluster: LocalRayCluster, tmp_path: Path
) -> None:
    """The run's first base is bundled whole once (into the object store); a later one (main
    moved: a story landed) goes as a small bundle of the commits it adds, which a node's clone
    of the first one takes. Before, the whole history was bundled again for every new base."""
    import os

    from ralph_tui.git.bundles import clone_bundle, fetch_bundle

    root = make_repo(tmp_path / "ws")
    (root / "history.bin").write_bytes(os.urandom(300_000))
    git(root, "add", "-A")
    git(root, "commit", "-qm", "history")
    first = git(root, "rev-parse", "HEAD").strip()
    engine, _, _ = ray_engine(root, {"stories": {}}, ray_cluster)
    executor = executor_of(engine)
    try:
        whole, delta = await executor._bundle(first)
        assert delta == b""
        (root / "new.txt").write_text("a story landed\n")
        git(root, "add", "-A")
        git(root, "commit", "-qm", "landed")
        later = git(root, "rev-parse", "HEAD").strip()
        again, thin = await executor._bundle(later)
        assert again is whole  # not bundled or put again
        data: bytes = await whole
        assert 0 < len(thin) < 10_000 < 300_000 < len(data)
        node = tmp_path / "node"
        assert clone_bundle(data, node) == first
        assert fetch_bundle(node, thin) == later
        assert git(node, "show", f"{later}:new.txt") == "a story landed\n"
    finally:
        await executor.aclose()


async def test_two_stories_on_two_nodes_streamed_verified_and_merged(
    ray_cluster: LocalRayCluster, tmp_path: Path
) -> None:
    root = make_repo(
        tmp_path / "ws",
        [story("US-001", "One"), story("US-002", "Two")],
        gates={"has-file": "ls *.txt"},
    )
    script = {
        "stream_delay_s": 0.01,
        "stories": {
            "US-001": [{"text": "working on one"}, create("one.txt", "1\n"), complete()],
            "US-002": [{"text": "working on two"}, create("two.txt", "2\n"), complete()],
        },
    }
    seen_at_approval: dict[str, set[str]] = {}
    asked: set[str] = set()
    both_asked = asyncio.Event()
    sink = RecordingSink()

    def tee(event: Event) -> None:
        sink(event)
        if isinstance(event, ApprovalNeeded):
            asked.add(event.story_id)
            if len(asked) == 2:
                both_asked.set()

    async def hold(request: ApprovalRequest) -> None:
        # the node's actor is still mid-iteration (it waits for this answer): whatever arrived
        # by now was streamed before the story finished
        seen_at_approval[request.story_id] = {
            type(e).__name__ for e in sink.events if e.worker == request.worker
        }
        await both_asked.wait()  # both stories in flight at once, one per node

    engine, _, _ = ray_engine(
        root, script, ray_cluster, ScriptedSupervisor(on_approve=hold), sink=tee
    )
    assert await engine.run() == 0
    assert passes(root) == {"US-001": True, "US-002": True}
    assert (root / "one.txt").read_text() == "1\n" and (root / "two.txt").read_text() == "2\n"
    assert len([s for s in git(root, "log", "--format=%s").splitlines() if "Task #" in s]) == 2

    started = {e.story_id: e for e in sink.of(IterationStarted)}
    assert {e.executor for e in started.values()} == {"ray"}
    nodes = {node_of(ray_cluster, e.node) for e in started.values()}
    outcomes = [e.outcome for e in sink.of(IterationFinished)]
    assert outcomes == ["committed", "committed"], "\n".join(story_log(sink))
    assert nodes == {"node_a", "node_b"}
    for kinds in seen_at_approval.values():
        assert {"TextDelta", "ToolCall", "ToolResult", "GateStarted", "GateFinished"} <= kinds
    assert len(sink.of(GateFinished)) >= 2 and len(sink.of(TextDelta)) > 2

    # the journal records the executor and the node of each iteration
    records = [r for r in journal(engine) if r["kind"] == "iteration_started"]
    assert {(r["story_id"], r["executor"], r["node"]) for r in records} == {
        (e.story_id, "ray", e.node) for e in started.values()
    }
    # nothing of the nodes' checkouts reached the main repository
    assert git(root, "status", "--porcelain") == ""
    assert git(root, "branch", "--list", "ralph/US-*").strip() == ""
    assert git(root, "for-each-ref", "refs/ralph").strip() == ""


async def test_reject_with_feedback_reaches_the_remote_agent(
    ray_cluster: LocalRayCluster, tmp_path: Path
) -> None:
    root = make_repo(tmp_path / "ws", [story("US-001", "Greeting")])
    script = {
        "stories": {
            "US-001": [
                create("greeting.txt", "hello\n"),
                complete(),
                # after the rejection, in the same conversation on the same node
                create("greeting.txt", "hello, world\n"),
                complete(),
            ]
        }
    }
    sup = ScriptedSupervisor(
        decisions=[ApprovalDecision.reject("say hello to the world"), ApprovalDecision.approve()]
    )
    engine, sink, _ = ray_engine(root, script, ray_cluster, sup, workers=1)
    assert await engine.run() == 0
    assert (root / "greeting.txt").read_text() == "hello, world\n"
    results = [r.content for r in sink.of(ToolResult) if r.name == "complete_task"]
    assert "say hello to the world" in results[0] and "rejected" in results[0]
    assert len(sink.of(IterationStarted)) == 1  # one iteration: the conversation went on
    assert next(d.diffstat for d in sup.approval_requests).count("greeting.txt") == 1
    assert len(sup.approval_requests) == 2


async def test_a_line_comment_and_drops_reach_the_story_on_its_node(
    ray_cluster: LocalRayCluster, tmp_path: Path
) -> None:
    """Reviewing like a pull request under Ray: the worktree is on the node, so the comment's
    quote, the dropped hunk and the dropped file are taken there; what lands is the rest."""
    root = make_repo(tmp_path / "ws", [story("US-001", "Numbers")])
    numbers = "".join(f"line {n}\n" for n in range(1, 31))
    (root / "numbers.txt").write_text(numbers)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "numbers")
    changed = numbers.replace("line 2\n", "two\n").replace("line 29\n", "twenty-nine\n")
    script = {
        "stories": {
            "US-001": [
                create("numbers.txt", changed),
                create("extra.txt", "not wanted\n"),
                complete(),
                {"text": "heard: {feedback}"},
                create("numbers.txt", changed.replace("two\n", "2\n")),
                complete(),
            ]
        }
    }
    comment = ReviewComment("numbers.txt", 2, "write it as a digit")
    sup = ScriptedSupervisor(
        decisions=[
            ApprovalDecision.reject("", [comment]),
            ApprovalDecision.approve([DroppedPart("numbers.txt", 1), DroppedPart("extra.txt")]),
            ApprovalDecision.approve(),
        ]
    )
    engine, sink, _ = ray_engine(root, script, ray_cluster, sup, workers=1)
    assert await engine.run() == 0
    heard = "".join(e.text for e in sink.of(TextDelta))
    assert "numbers.txt:2" in heard and "> +two" in heard and "write it as a digit" in heard
    landed = git(root, "show", "HEAD:numbers.txt")
    assert "2\n" in landed.splitlines(keepends=True)  # the fix after the comment
    assert "twenty-nine" not in landed and "line 29\n" in landed  # the dropped hunk
    assert "extra.txt" not in git(root, "ls-tree", "--name-only", "HEAD")  # the dropped file
    assert len(sup.approval_requests) == 3  # asked again after the drops, gates run again


async def test_a_running_storys_diff_is_read_on_its_node(
    ray_cluster: LocalRayCluster, tmp_path: Path
) -> None:
    """The supervisor's Diff pane asks the run for a worker's change (``RunHandle.story_diff``):
    under Ray the worktree is on the node, so the executor asks the story's actor for it."""
    root = make_repo(tmp_path / "ws", [story("US-001", "Greeting")])
    script = {"stories": {"US-001": [create("greeting.txt", "hello\n"), complete()]}}
    seen: list[list[FileDiff]] = []

    async def look(request: ApprovalRequest) -> None:
        seen.append(await engine.story_diff(request.story_id))

    sup = ScriptedSupervisor(on_approve=look)
    engine, _, _ = ray_engine(root, script, ray_cluster, sup, workers=1)
    assert await engine.run() == 0
    [files] = seen
    assert [f.path for f in files] == ["greeting.txt"]
    assert "+hello" in files[0].patch
    assert await engine.story_diff("US-001") == []  # the story is over: nothing running


async def test_the_merge_train_reaches_remote_workers(
    ray_cluster: LocalRayCluster, tmp_path: Path
) -> None:
    """Two changes in flight on two nodes: the one gated second is gated on top of the other
    one's change (a commit that exists only on the other node and in the driver's scratch,
    sent as a bundle), and wherever the gates last ran, what lands was gated."""
    root = make_repo(
        tmp_path / "ws",
        [story("US-001", "One"), story("US-002", "Two")],
        gates={"files": "ls *.txt"},
    )
    script = {
        "stories": {
            "US-001": [create("one.txt", "1\n"), complete()],
            "US-002": [create("two.txt", "2\n"), complete()],
        }
    }
    hold = HoldFirstApproval()  # both changes in flight before either lands
    engine, sink, _ = ray_engine(root, script, ray_cluster, hold, sink=hold.sink)
    assert await engine.run() == 0, "\n".join(story_log(sink))
    assert (root / "one.txt").exists() and (root / "two.txt").exists()
    nodes = {e.worker: node_of(ray_cluster, e.node) for e in sink.of(IterationStarted)}
    assert set(nodes.values()) == {"node_a", "node_b"}
    # what landed last (both files) was gated somewhere: on a node, on top of the other node's
    # change (the train) or of main after it landed; no gate ran on the driver
    both = [g for g in sink.of(GateFinished) if "one.txt" in g.output and "two.txt" in g.output]
    assert both, "\n".join(story_log(sink))
    assert {g.worker for g in sink.of(GateFinished)} <= set(nodes)


async def test_a_conflict_goes_back_to_the_remote_agent_which_resolves_it(
    ray_cluster: LocalRayCluster, tmp_path: Path
) -> None:
    """Two stories on two nodes change the same line. The second to merge cannot be rebased
    cleanly: the rebase that conflicts is made on its node, so the conflict markers are in the
    agent's checkout there; its agent is told, resolves them in the same conversation, and
    both changes land."""
    root = make_repo(tmp_path / "ws", [story("US-001", "One"), story("US-002", "Two")])
    (root / "shared.txt").write_text("base\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "shared file")

    def steps(mine: str) -> list[dict[str, Any]]:
        return [
            create("shared.txt", f"{mine}\n"),
            complete(),
            # only the second to merge gets here: it sees the markers, then keeps both sides
            bash("grep -c '^<<<<<<<' shared.txt"),
            create("shared.txt", "from US-001\nfrom US-002\n"),
            complete(),
        ]

    script = {"stories": {"US-001": steps("from US-001"), "US-002": steps("from US-002")}}
    hold = HoldFirstApproval()  # both changes in flight before either lands
    engine, sink, _ = ray_engine(root, script, ray_cluster, hold, sink=hold.sink)
    assert await engine.run() == 0, "\n".join(story_log(sink))
    assert passes(root) == {"US-001": True, "US-002": True}
    assert (root / "shared.txt").read_text() == "from US-001\nfrom US-002\n"
    nodes = {node_of(ray_cluster, e.node) for e in sink.of(IterationStarted)}
    assert nodes == {"node_a", "node_b"}
    told = [
        r.content
        for r in sink.of(ToolResult)
        if r.name == "complete_task" and "conflict" in r.content
    ]
    assert len(told) == 1 and "shared.txt" in told[0]
    markers = [r.content for r in sink.of(ToolResult) if r.name == "bash"]
    assert len(markers) == 1 and markers[0].strip().startswith("1"), markers


def story_log(sink: RecordingSink) -> list[str]:
    """What went on, for an assertion message: iterations, notices."""
    lines = []
    for e in sink.events:
        if isinstance(e, IterationStarted):
            lines.append(f"start {e.story_id} on {e.node}")
        elif isinstance(e, IterationFinished):
            lines.append(f"end {e.story_id}: {e.outcome} {e.message}")
        elif isinstance(e, Notice):
            lines.append(f"notice: {e.message}")
        elif isinstance(e, ToolResult) and e.is_error:
            lines.append(f"tool {e.name} failed: {e.content[:300]}")
    return lines


async def test_no_credential_in_the_journal_or_the_events(
    ray_cluster: LocalRayCluster, tmp_path: Path
) -> None:
    secret = f"sk-test-{random.randrange(10**12):012d}-do-not-log"
    root = make_repo(tmp_path / "ws", [story("US-001", "Secretive")])
    script = {
        "stories": {
            "US-001": [
                bash("env; echo token=${RALPH_SECRET_TOKEN:-absent}"),
                create("a.txt", "a\n"),
                complete(),
            ]
        }
    }
    names: list[str] = []

    async def look(request: ApprovalRequest) -> None:
        actor = executor_of(engine).actors[request.story_id]
        names.extend(await actor.credential_names.remote())

    engine, sink, _ = ray_engine(
        root,
        script,
        ray_cluster,
        ScriptedSupervisor(on_approve=look),
        workers=1,
        credentials={"RALPH_SECRET_TOKEN": secret},
    )
    assert await engine.run() == 0
    assert names == ["RALPH_SECRET_TOKEN"]  # it reached the node...
    shell = next(r.content for r in sink.of(ToolResult) if r.name == "bash")
    assert "token=absent" in shell  # ...but not the agent's shell
    assert all(secret not in repr(e) for e in sink.events)
    assert secret not in (engine.run_dir / "events.jsonl").read_text()
    for node in ray_cluster.nodes.values():  # nor Ray's own logs on any node
        for path in node.temp_dir.rglob("*"):
            if path.is_file() and not path.is_symlink():
                try:
                    assert secret.encode() not in path.read_bytes(), path
                except OSError:
                    continue


async def test_credentials_come_from_the_driver_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ralph_tui.executors.ray.executor import agent_credentials

    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant")
    monkeypatch.setenv("UNRELATED_TOKEN", "nope")
    root = make_repo(tmp_path / "ws")
    command = load_config(root, {"agent": "command", "command_env": ["OPENAI_API_KEY"]})
    assert agent_credentials(command) == {"OPENAI_API_KEY": "sk-openai"}
    anthropic = load_config(root, {"agent": "anthropic"})
    assert agent_credentials(anthropic) == {"ANTHROPIC_API_KEY": "sk-ant"}
    # a fallback agent's credentials go to the node too: it may take the story over there
    fallback = load_config(
        root, {"agent": "command", "command_env": ["OPENAI_API_KEY"], "fallback": ["anthropic"]}
    )
    assert agent_credentials(fallback) == {
        "ANTHROPIC_API_KEY": "sk-ant",
        "OPENAI_API_KEY": "sk-openai",
    }


def test_executor_ray_in_ralph_toml_builds_the_ray_engine(tmp_path: Path) -> None:
    root = make_repo(
        tmp_path / "ws",
        extra_config='executor = "ray"\nscript = "s.json"',
    )
    (root / "s.json").write_text(json.dumps({"default": []}))
    toml = (root / "ralph.toml").read_text() + '[ray]\naddress = "ray://head:10001"\nnum_cpus = 2\n'
    (root / "ralph.toml").write_text(toml)
    config = load_config(root)
    assert config.executor == "ray" and config.ray.num_cpus == 2
    engine = build_engine(root, config, None, ScriptedSupervisor(), RecordingSink())
    assert isinstance(engine, ParallelEngine)
    executor = executor_of(engine)
    assert executor.options.address == "ray://head:10001"
    assert executor._script == {"default": []}
    (root / "ralph.toml").write_text(toml.replace("num_cpus = 2", "num_cpu = 2"))
    with pytest.raises(Exception, match=r"ralph.toml: ray.num_cpu: unknown key"):
        load_config(root)


async def test_stories_start_in_warm_actors_one_each_and_nothing_is_left(
    ray_cluster: LocalRayCluster, tmp_path: Path
) -> None:
    """One worker, two stories: the second runs in an actor the pool had started (and that
    was up) while the first one ran, on the slot the first one left; a replacement is started
    once the first story is under way, none once no story is left to come; no actor serves two
    stories; after the run every actor the pool started is gone and its slot given back."""
    from ray.util import placement_group_table

    root = make_repo(tmp_path / "ws", [story("US-001", "One", 1), story("US-002", "Two", 2)])
    script = {
        "stories": {
            "US-001": [create("one.txt", "1\n"), complete()],
            "US-002": [create("two.txt", "2\n"), complete()],
        }
    }
    groups_before = set(placement_group_table())
    story_pid: dict[str, int] = {}
    idle_at: dict[str, set[int]] = {}

    async def look(request: ApprovalRequest) -> None:
        executor = executor_of(engine)
        story_pid[request.story_id] = (await executor.actors[request.story_id].where.remote()).pid
        idle_at[request.story_id] = await warm_pids(executor, ray_cluster)

    engine, sink, _ = ray_engine(
        root, script, ray_cluster, ScriptedSupervisor(on_approve=look), workers=1
    )
    assert await engine.run() == 0, "\n".join(story_log(sink))
    assert passes(root) == {"US-001": True, "US-002": True}
    one, two = story_pid["US-001"], story_pid["US-002"]
    assert one != two  # a fresh actor per story
    assert two in idle_at["US-001"]  # warm: started and up while US-001 still ran
    assert idle_at["US-002"] == set()  # the last story: no replacement for a story to come
    started = {one, two} | idle_at["US-001"] | idle_at["US-002"]
    await wait_for(lambda: not any(alive(pid) for pid in started), "every pool actor to end", 30)
    # one slot for both stories (kept for the next one), given back at the end
    ours = {g: t for g, t in placement_group_table().items() if g not in groups_before}
    assert len(ours) == 1, ours
    assert [t["state"] for t in ours.values()] == ["REMOVED"]


async def test_cancel_kills_the_remote_sandbox(
    ray_cluster: LocalRayCluster, tmp_path: Path
) -> None:
    tag = f"{random.randrange(10**6):06d}"
    # a foreground sleep, a background one, and one escaped into its own session
    command = f"setsid -f sleep 3001.{tag}; sleep 3002.{tag} & sleep 3003.{tag}; echo ralph-{tag}"
    # a second story to come: the pool keeps a warm actor for it, which the cancel ends too
    root = make_repo(tmp_path / "ws", [story("US-001", "Sleepy", 1), story("US-002", "Next", 2)])
    script = {"stories": {"US-001": [bash(command), complete()], "US-002": [complete()]}}
    engine, sink, _ = ray_engine(root, script, ray_cluster, workers=1, bash_timeout_s=600)
    run = asyncio.create_task(engine.run())
    await wait_for(lambda: len(marker_pids(f".{tag}")) >= 3, "the remote sleeps to start")
    actor = executor_of(engine).actors["US-001"]
    actor_pid = (await actor.where.remote()).pid
    warm = await warm_pids(executor_of(engine), ray_cluster)
    assert warm  # a warm actor for US-002, started once US-001 was under way
    assert checkouts(ray_cluster)  # the story's clone on its node
    start = time.monotonic()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    await wait_for(lambda: not marker_pids(f".{tag}"), "the remote sleeps to be gone", 30)
    elapsed = time.monotonic() - start
    print(f"\ncancel -> no remote process left: {elapsed:.3f} s")
    assert elapsed < 10  # measured well under 1 s; a loaded machine gets slack
    finished = sink.of(IterationFinished)
    assert finished == [] or finished[-1].outcome in ("stopped", "error")
    # the actor's process is gone too, and its clone with it
    await wait_for(lambda: not alive(actor_pid), "the actor's process to end", 30)
    assert checkouts(ray_cluster) == []
    # the run's end closed the executor: the pool's warm actors are gone as well
    await wait_for(lambda: not any(alive(p) for p in warm), "the warm actors to end", 30)


async def warm_pids(executor: RayExecutor, cluster: LocalRayCluster) -> set[int]:
    """The pids of the pool's idle warm actors on the cluster's live nodes (waiting for them
    to be up; a node killed by an earlier test may not be known dead to Ray yet)."""
    pool = executor.pool
    assert pool is not None
    live = {node.node_id for node in cluster.nodes.values() if not node.killed}
    return {int((await a.where.remote()).pid) for node, a in pool.idle if node in live}


def checkouts(cluster: LocalRayCluster) -> list[Path]:
    return [
        p for node in cluster.nodes.values() for p in node.temp_dir.glob("tmp/ralph-*/ralph-ray-*")
    ]


async def test_stop_reaches_the_node_at_its_next_safe_point_and_keeps_the_patch(
    ray_cluster: LocalRayCluster, tmp_path: Path
) -> None:
    root = make_repo(tmp_path / "ws", [story("US-001", "Half done")])
    script = {"stories": {"US-001": [create("half.txt", "half\n"), {"text": "more"}, complete()]}}
    engines: list[ParallelEngine] = []

    def tee(event: Event) -> None:
        if isinstance(event, ToolResult) and event.name == "str_replace_based_edit_tool":
            engines[0].request_stop()  # the node learns it at its next safe point

    engine, sink, _ = ray_engine(root, script, ray_cluster, workers=1, sink=tee)
    engines.append(engine)
    assert await engine.run() == 130
    finished = sink.of(IterationFinished)[-1]
    assert finished.outcome == "stopped"
    assert finished.patch_path is not None  # the node's change, saved on the driver
    patch = Path(finished.patch_path)
    assert patch.parent == engine.run_dir / "patches" and b"+half" in patch.read_bytes()
    assert not (root / "half.txt").exists() and passes(root) == {"US-001": False}
    assert not sink.of(TextDelta)  # it stopped before the next step


def test_doctor_checks_the_cluster_and_the_agent_cli_on_each_node(
    ray_cluster: LocalRayCluster, tmp_path: Path
) -> None:
    from ralph_tui.doctor import diagnose

    root = make_repo(tmp_path / "ws")
    base = {"executor": "ray", "ray": {"address": ray_cluster.address}, "agent": "command"}
    checks = list(diagnose(root, {**base, "command": ["git", "{prompt_file}"]}))
    ray_lines = [c for c in checks if c.name.startswith("ray")]
    assert ray_lines[0].status == "ok" and "nodes alive" in ray_lines[0].detail
    versions = [c for c in ray_lines if c.name.startswith("ray node") and "python" in c.detail]
    assert len(versions) >= 2 and all(c.status == "ok" for c in versions)
    agents = [c for c in ray_lines if c.name.endswith(" agent")]
    assert len(agents) == len(versions) and all(c.status == "ok" for c in agents)
    missing = list(diagnose(root, {**base, "command": ["no-such-agent-cli"]}))
    lines = [c for c in missing if c.name.endswith(" agent")]
    assert lines and all(c.status == "missing" for c in lines)
    assert "'no-such-agent-cli' not found" in lines[0].detail


async def test_a_lost_node_fails_its_story_and_the_run_goes_on(
    ray_cluster: LocalRayCluster, tmp_path: Path
) -> None:
    """The story's node is killed by pid (raylet, workers, the story's actor and its tools)."""
    tag = f"{random.randrange(10**6):06d}"
    root = make_repo(tmp_path / "ws", [story("US-001", "Doomed", 1), story("US-002", "Fine", 2)])
    script = {
        "stories": {
            # attempt 1 hangs on its node; attempt 2 (after the node is gone) just works
            "US-001": [
                [bash(f"sleep 3004.{tag}"), complete()],
                [create("a.txt", "a\n"), complete()],
            ],
            "US-002": [create("b.txt", "b\n"), complete()],
        }
    }
    started: dict[str, list[str]] = {}

    def tee(event: Event) -> None:
        if isinstance(event, IterationStarted):
            started.setdefault(event.story_id, []).append(event.node)

    engine, sink, _ = ray_engine(root, script, ray_cluster, sink=tee)
    run = asyncio.create_task(engine.run())
    await wait_for(lambda: bool(marker_pids(f"3004.{tag}")), "the doomed story's sleep")
    doomed = node_of(ray_cluster, started["US-001"][0])
    killed = ray_cluster.kill_node(doomed)
    assert killed
    try:
        assert await asyncio.wait_for(run, 180) == 0, "\n".join(story_log(sink))
    finally:
        ray_cluster.restart_node(doomed)  # the session's cluster stays whole for later tests
    assert passes(root) == {"US-001": True, "US-002": True}
    lost = next(e for e in sink.of(IterationFinished) if e.story_id == "US-001")
    assert lost.outcome == "failed"
    assert "was lost" in lost.message and "gone" in lost.message
    assert engine.failures.get("US-001", 0) == 0  # reset by the later commit
    assert len(started["US-001"]) == 2
    assert node_of(ray_cluster, started["US-001"][1]) != doomed
    assert not marker_pids(f"3004.{tag}")
    assert all(not alive(pid) for pid in killed)  # every process of the lost node is gone


@requires_bwrap
async def test_a_ray_nodes_agent_reaches_nothing_of_the_supervisor(
    ray_cluster: LocalRayCluster,
) -> None:
    """Issue 20, item 1, on a Ray node: the agent's bash and editor, sandboxed on the node, try
    to read, list and write the main checkout's ``.ralph/`` (the journal, a run token) by its
    absolute path; the node's checkout is a clone elsewhere and the sandbox shows neither."""
    base = Path("/var/tmp") / f"ralph-raynode-{os.getpid()}"
    base.mkdir()
    try:
        root = make_repo(base / "ws", [story("US-001", "Attack")])
        ralph = root / ".ralph"
        ralph.mkdir()
        planted = "planted-journal-" + os.urandom(6).hex()
        (ralph / "planted.txt").write_text(planted)
        (ralph / "serve.json").write_text(json.dumps({"url": "http://x", "token": planted}))
        log = "attack.log"
        steps = [
            bash(
                f"{{ cat {ralph}/planted.txt {ralph}/serve.json; ls -A {ralph};"
                f" echo forged > {ralph}/forged.txt; echo wrote=$?; echo end; }} > {log} 2>&1;"
                " true"
            ),
            {
                "tool": "str_replace_based_edit_tool",
                "input": {"command": "view", "path": str(ralph / "planted.txt")},
            },
            {
                "tool": "str_replace_based_edit_tool",
                "input": {"command": "create", "path": str(ralph / "edited.txt"), "file_text": "x"},
            },
            complete("attacked"),
        ]
        engine, sink, _ = ray_engine(
            root,
            {"default": steps},
            ray_cluster,
            workers=1,
            sandbox={"mode": "bwrap"},
        )
        assert await engine.run() == 0
        text = (root / log).read_text()
        assert "end" in text and planted not in text and "wrote=0" not in text, text
        assert sorted(p.name for p in ralph.iterdir() if p.suffix == ".txt") == ["planted.txt"]
        results = [r.content for r in sink.of(ToolResult) if r.name != "complete_task"]
        assert all(planted not in r for r in results), results
    finally:
        shutil.rmtree(base, ignore_errors=True)


@requires_bwrap
@pytest.mark.parametrize("allowed", [False, True])
async def test_a_ray_nodes_agent_cannot_reach_the_cluster_unless_network_is_allowed(
    ray_cluster: LocalRayCluster, allowed: bool
) -> None:
    """Issue 28, item 2, on Ray: from a node, the agent's commands could submit a job to the
    cluster (its Jobs API runs code outside any sandbox). Their sandbox has no network unless
    ``[ray] sandbox_network`` says so; the cluster's own port is the probe."""
    host, port = ray_cluster.address.rsplit(":", 1)
    probe = (
        "import socket\n"
        "try:\n"
        f"    socket.create_connection(({host!r}, {int(port)}), 3).close()\n"
        "    print('reached')\n"
        "except OSError as exc:\n"
        "    print('refused', exc.errno)\n"
    )
    base = Path("/var/tmp") / f"ralph-raynet-{os.getpid()}-{int(allowed)}"
    base.mkdir()
    try:
        root = make_repo(base / "ws", [story("US-001", "Probe")])
        steps = [bash(f"python3 -c {shlex.quote(probe)} > net.log 2>&1; true"), complete("probed")]
        engine, _, _ = ray_engine(
            root,
            {"default": steps},
            ray_cluster,
            workers=1,
            sandbox={"mode": "bwrap"},
            ray={"address": ray_cluster.address, "sandbox_network": allowed},
        )
        assert await engine.run() == 0
        said = (root / "net.log").read_text()
        assert ("reached" in said) is allowed and ("refused" in said) is not allowed, said
    finally:
        shutil.rmtree(base, ignore_errors=True)
