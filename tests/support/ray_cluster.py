"""A real local Ray cluster for tests and benchmarks: a head and worker nodes, each its own
``ray start --block`` process, started and stopped by process id (never ``ray stop``, which
would end every Ray on the machine).

Every node uses 127.0.0.2: Ray rewrites 127.0.0.1 to the machine's routable address, any other
loopback address keeps all cluster traffic on ``lo``. Each node gets its own short temp dir
(Unix socket paths are limited to 107 bytes). The head runs no story (``num_cpus=0``); worker
node ``name`` carries the custom resource ``{name: 1}``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

NODE_IP = "127.0.0.2"
OBJECT_STORE_BYTES = 80 * 1024 * 1024
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 15.0


def _ray_cli() -> str:
    return str(Path(sys.executable).parent / "ray")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((NODE_IP, 0))
        return int(sock.getsockname()[1])


def _children() -> dict[int, list[int]]:
    table: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if fields and fields[0] not in ("Z", "X"):
            table.setdefault(int(fields[1]), []).append(int(entry.name))
    return table


def process_tree(pid: int) -> list[int]:
    """``pid`` and its live descendants."""
    table = _children()
    found, todo = [pid], [pid]
    while todo:
        for child in table.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].split()[0] not in ("Z", "X")


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    return stat[stat.rfind(")") + 2 :].split()[19]


@dataclass
class RayNode:
    name: str
    proc: subprocess.Popen[bytes]
    temp_dir: Path
    node_id: str = ""
    killed: bool = False
    pids: dict[int, str | None] = field(default_factory=dict)  # pid -> start time, last seen

    def remember_tree(self) -> None:
        # A pid in the tree now is this node's process now: its start time replaces any older
        # one. The pid of a node process that exited is reused (pid_max is often 32768 and a
        # whole suite forks far more), and a stale start time would make ``live_pids`` skip
        # the new process, which then outlives a "lost" node.
        for pid in process_tree(self.proc.pid):
            self.pids[pid] = _start_time(pid)

    def live_pids(self) -> list[int]:
        """The pids of this node still running (same pid AND same start time: not reused)."""
        return [p for p, started in self.pids.items() if alive(p) and _start_time(p) == started]


@dataclass
class LocalRayCluster:
    cpus_per_node: float = 1
    worker_names: tuple[str, ...] = ("node_a", "node_b")
    port: int = 0
    nodes: dict[str, RayNode] = field(default_factory=dict)
    log_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="rtlog-")))
    # False: this process never joins the cluster (``ray.init``); the end-to-end tests leave
    # that to the ralph-tui they start, as a user's cluster would
    driver: bool = True

    @property
    def address(self) -> str:
        return f"{NODE_IP}:{self.port}"

    def _env(self, temp_dir: Path | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env["RAY_USAGE_STATS_ENABLED"] = "0"
        if temp_dir is not None:  # the node's story checkouts live (and die) with the node
            (temp_dir / "tmp").mkdir(exist_ok=True)
            env["TMPDIR"] = str(temp_dir / "tmp")
        return env

    def _start(self, name: str, head: bool) -> RayNode:
        temp_dir = Path(tempfile.mkdtemp(prefix=f"r{name[-1]}-", dir="/tmp"))
        args = [
            _ray_cli(),
            "start",
            "--block",
            f"--node-ip-address={NODE_IP}",
            f"--temp-dir={temp_dir}",
            f"--object-store-memory={OBJECT_STORE_BYTES}",
            "--disable-usage-stats",
            "--include-log-monitor=false",
        ]
        if head:
            args += [
                "--head",
                f"--port={self.port}",
                "--num-cpus=0",
                "--include-dashboard=false",
            ]
        else:
            args += [
                f"--address={self.address}",
                f"--num-cpus={self.cpus_per_node:g}",
                f"--resources={json.dumps({name: 1})}",
            ]
        log = (self.log_dir / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self._env(temp_dir),
            start_new_session=True,
        )
        log.close()
        node = RayNode(name, proc, temp_dir)
        self.nodes[name] = node
        return node

    def start(self) -> LocalRayCluster:
        """Start the head, then the workers; connect this process as the driver."""
        self.port = _free_port()
        self._start("head", head=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            check = subprocess.run(
                [_ray_cli(), "health-check", "--address", self.address],
                capture_output=True,
                env=self._env(),
                check=False,
            )
            if check.returncode == 0:
                break
            self._check_running(deadline)
            time.sleep(0.3)
        for name in self.worker_names:
            self._start(name, head=False)
        if self.driver:
            self._connect_driver()
        self._wait_for_workers(deadline)
        return self

    def _connect_driver(self) -> None:
        import ray

        ray.init(
            address=self.address,
            namespace="ralph-tui",
            log_to_driver=False,
            logging_level="warning",
        )

    def _alive_nodes(self) -> list[dict[str, object]]:
        """``ray.nodes()`` of the live nodes: here, or from a short-lived driver process."""
        if self.driver:
            import ray

            return [n for n in ray.nodes() if n["Alive"]]
        program = (
            "import json, ray\n"
            f"ray.init(address={self.address!r}, log_to_driver=False, logging_level='error')\n"
            "print(json.dumps([n for n in ray.nodes() if n['Alive']], default=str))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", program],
            capture_output=True,
            env=self._env(),
            check=False,
            timeout=START_TIMEOUT_S,
        )
        lines = out.stdout.decode(errors="replace").strip().splitlines()
        return list(json.loads(lines[-1])) if out.returncode == 0 and lines else []

    def _wait_for_workers(self, deadline: float) -> None:
        while True:
            by_resource = {
                name: str(n["NodeID"])
                for n in self._alive_nodes()
                for name in self.worker_names
                if name in n["Resources"]  # type: ignore[operator]
            }
            if len(by_resource) == len(self.worker_names):
                break
            self._check_running(deadline)
            time.sleep(0.3)
        for name, node_id in by_resource.items():
            self.nodes[name].node_id = node_id
        for node in self.nodes.values():
            node.remember_tree()

    def restart_node(self, name: str) -> None:
        """Bring a killed worker node back (a new machine with the same resource name)."""
        old = self.nodes.pop(name)
        shutil.rmtree(old.temp_dir, ignore_errors=True)
        self._start(name, head=False)
        self._wait_for_workers(time.monotonic() + START_TIMEOUT_S)

    def _check_running(self, deadline: float) -> None:
        for node in self.nodes.values():
            if node.proc.poll() is not None:
                log = (self.log_dir / f"{node.name}.log").read_text(errors="replace")
                raise RuntimeError(f"ray node {node.name} exited:\n{log[-3000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the ray cluster did not start in {START_TIMEOUT_S:.0f} s")

    def kill_node(self, name: str) -> list[int]:
        """SIGKILL every process of one worker node (a machine lost); the pids killed."""
        node = self.nodes[name]
        # A machine loses every process at once. Signals go one pid at a time, so first freeze
        # the tree until a look finds nothing new (a stopped process cannot fork), then kill:
        # otherwise a sandbox's outer bwrap can die before its inner one has armed
        # --die-with-parent, and the inner one outlives the "lost" node.
        frozen: set[int] = set()
        while True:
            node.remember_tree()
            fresh = [pid for pid in node.live_pids() if pid not in frozen]
            if not fresh:
                break
            for pid in fresh:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGSTOP)
                frozen.add(pid)
        pids = node.live_pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        node.proc.wait(timeout=STOP_TIMEOUT_S)
        node.killed = True
        return pids

    def stop(self) -> list[int]:
        """End every node by pid: SIGTERM to each ``ray start``, then SIGKILL what is left.

        Returns the pids still alive afterwards (none, unless the kernel refused).
        """
        import ray

        if ray.is_initialized():
            ray.shutdown()
        workers_first = [n for n in self.nodes.values() if n.name != "head"]
        workers_first += [n for n in self.nodes.values() if n.name == "head"]
        for node in workers_first:
            node.remember_tree()
        for node in workers_first:
            if node.proc.poll() is None:
                node.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for node in workers_first:
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        while time.monotonic() < deadline and any(n.live_pids() for n in workers_first):
            time.sleep(0.1)
        for node in workers_first:
            for pid in node.live_pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if node.proc.poll() is None:
                node.proc.kill()
                node.proc.wait()
        time.sleep(0.2)
        left = [pid for node in workers_first for pid in node.live_pids()]
        for node in workers_first:
            shutil.rmtree(node.temp_dir, ignore_errors=True)
        shutil.rmtree(self.log_dir, ignore_errors=True)
        return left
