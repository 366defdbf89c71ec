"""Where a parallel run's stories run, registered once: ``executor`` in ``ralph.toml`` names one.

Owns: ``base`` (the executor contract and the local worktree executor) and ``ray/``. May import
the engine's core (``control``, ``gates``, ``review``), ``git``, ``prd``, ``safety``; never the
parallel engine that drives it, ``runs`` or a face.

An executor module provides a factory ``(ExecutorSite) -> executor.Executor``; the parallel
engine builds the configured one when its loop starts, through ``build_executor``. Adding an
executor is its module and one ``ExecutorSpec`` here (the configuration's choices are read
from ``executor_names()``). This module imports nothing of ralph-tui at run time.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from ralph_tui.config import RalphConfig
    from ralph_tui.executors.base import Executor
    from ralph_tui.iteration import Agent


@dataclass(frozen=True)
class ExecutorSite:
    """What an executor is built from: the run's side of it."""

    root: Path
    config: RalphConfig
    agent: Agent | None  # the run's, when given (the scripted agent's script goes to Ray nodes)
    agent_for: Callable[[int], Agent]  # worker number -> its agent, for in-process executors
    bookkeeping: tuple[str, ...]  # the PRD and the progress log, relative to the root
    patch_dir: Path  # where a change that is not landed is kept as a patch
    # what a remote executor's nodes get as the agent's credentials (None: read from the
    # environment and the withheld secrets, as a run does; a test cluster gives its own)
    credentials: Mapping[str, str] | None = None


@dataclass(frozen=True)
class ExecutorSpec:
    name: str
    module: str
    factory: str  # a function of ``module``: (ExecutorSite) -> Executor
    requires: str = ""  # the extra to install when the module cannot be imported

    def build(self, site: ExecutorSite) -> Executor:
        make = getattr(importlib.import_module(self.module), self.factory)
        return cast("Executor", make(site))


EXECUTORS: dict[str, ExecutorSpec] = {
    spec.name: spec
    for spec in (
        ExecutorSpec("local", "ralph_tui.executors.base", "local_executor"),
        ExecutorSpec("ray", "ralph_tui.executors.ray.executor", "ray_executor", requires="ray"),
    )
}


def executor_names() -> tuple[str, ...]:
    """The registered executors' names, read when asked (a registration made later counts)."""
    return tuple(EXECUTORS)


def build_executor(site: ExecutorSite) -> Executor:
    return EXECUTORS[site.config.executor].build(site)


__all__ = ["EXECUTORS", "ExecutorSite", "ExecutorSpec", "build_executor", "executor_names"]
