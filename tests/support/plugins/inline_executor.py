"""An executor registered by a test: the local worktree executor, counting how often it is built."""

from __future__ import annotations

from ralph_tui.executors import ExecutorSite
from ralph_tui.executors.base import LocalWorktreeExecutor, local_executor

BUILT: list[ExecutorSite] = []


def inline(site: ExecutorSite) -> LocalWorktreeExecutor:
    BUILT.append(site)
    return local_executor(site)
