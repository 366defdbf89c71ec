"""The test cluster's "lose a machine" must reach every process the node runs at that moment.

Pids are reused (pid_max is often 32768 and a whole suite forks far more than that), so a node
process that exited long ago can share its pid with one the node runs now. A CI run of the whole
suite once left a story's ``sleep`` running after its node was "lost" this way.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.ray_cluster import RayNode, alive, process_tree


def test_a_reused_pid_in_the_node_tree_is_still_the_node_s_process(tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", "import subprocess; subprocess.run(['sleep', '300'])"],
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while len(process_tree(parent.pid)) < 2:
            assert time.monotonic() < deadline, "the child did not start"
            time.sleep(0.01)
        child = process_tree(parent.pid)[1]
        node = RayNode("node_a", parent, tmp_path)
        # what an earlier look remembered for a process that has since exited, pid now reused
        node.pids[child] = "1"
        node.remember_tree()
        assert sorted(node.live_pids()) == sorted([parent.pid, child])
    finally:
        for pid in reversed(process_tree(parent.pid)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        parent.wait(timeout=15)
    assert not alive(parent.pid)
