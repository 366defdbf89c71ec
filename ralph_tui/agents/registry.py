"""Every agent backend, registered once: adding a backend is its module and one ``AgentSpec``.

The configuration's choices, the CLI's ``--agent``, ``doctor``, the Ray executor's credentials
and warm-actor imports, and whether the parallel engine may share one agent between workers
are all read from here. A backend module provides ``create(config, workspace) -> Agent`` and
``doctor_checks(root, config)``; it is imported only when a run or ``doctor`` uses it (the
optional SDKs must not be needed to run the others, and the CLI starts fast).

This module imports nothing of ralph-tui at run time: ``config`` reads the names from it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

if TYPE_CHECKING:
    from ralph_tui.checks import Check
    from ralph_tui.config import RalphConfig
    from ralph_tui.iteration import Agent


class BackendModule(Protocol):
    """What a backend's module offers the registry."""

    def create(self, config: RalphConfig, workspace: Path) -> Agent: ...

    def doctor_checks(self, root: Path, config: RalphConfig) -> Iterator[Check]: ...


def _no_program(config: RalphConfig) -> str | None:
    return None


@dataclass(frozen=True)
class AgentSpec:
    """One backend: where it lives and what the rest of ralph-tui needs to know about it.

    ``credentials``: the environment variables it reads (sent to a Ray node with the story).
    ``preload``: modules a warm Ray actor imports before a story needs them (an SDK the module
    itself imports only at the first request). ``shared``: one instance may serve every
    worker (it keeps no conversation). ``program``: the CLI it starts, which each Ray node must
    have (``doctor``). ``warm_up``: a function of the module to call as soon as a run knows
    its agent (the SDK's import, off the path to the first iteration).
    """

    name: str
    module: str
    credentials: tuple[str, ...] = ()
    preload: tuple[str, ...] = ()
    shared: bool = False
    program: Callable[[RalphConfig], str | None] = field(default=_no_program)
    warm_up: str = ""

    def load(self) -> BackendModule:
        return cast(BackendModule, importlib.import_module(self.module))

    @property
    def modules(self) -> tuple[str, ...]:
        """What a Ray node imports ahead for this backend."""
        return (self.module, *self.preload)

    def create(self, config: RalphConfig, workspace: Path) -> Agent:
        return self.load().create(config, workspace)

    def doctor_checks(self, root: Path, config: RalphConfig) -> Iterator[Check]:
        return self.load().doctor_checks(root, config)

    def start_warm_up(self) -> None:
        if self.warm_up:
            getattr(importlib.import_module(self.module), self.warm_up)()


def _command_program(config: RalphConfig) -> str | None:
    return config.command[0] if config.command else None


_ANTHROPIC_ENV = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL")

AGENTS: dict[str, AgentSpec] = {
    spec.name: spec
    for spec in (
        AgentSpec(
            "anthropic",
            "ralph_tui.agents.anthropic_agent",
            credentials=_ANTHROPIC_ENV,
            preload=("anthropic",),
            warm_up="preload_sdk",
        ),
        AgentSpec(
            "claude-code",
            "ralph_tui.agents.claude_code",
            credentials=(*_ANTHROPIC_ENV, "CLAUDE_CODE_OAUTH_TOKEN"),
            program=lambda config: "claude",
        ),
        AgentSpec("command", "ralph_tui.agents.command", program=_command_program),
        AgentSpec("scripted", "ralph_tui.agents.scripted", shared=True),
    )
}


def agent_names() -> tuple[str, ...]:
    """The registered backends' names, read when asked (a registration made later counts)."""
    return tuple(AGENTS)


def agent_spec(name: str) -> AgentSpec:
    """The backend called ``name`` (the configuration has checked it is one)."""
    return AGENTS[name]


__all__ = ["AGENTS", "AgentSpec", "agent_names", "agent_spec"]
