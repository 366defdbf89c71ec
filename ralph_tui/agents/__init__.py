"""Agent backends behind one protocol (``iteration.Agent``), registered in ``registry``.

Backends are imported lazily: the optional ``claude-agent-sdk`` must not be needed to run the
others, and the CLI should start fast. Nothing here imports the configuration at run time
(``config`` reads the backends' names from ``registry``). With ``fallback`` set, the agent and
its fallbacks are one ``agents.fallback.FallbackAgent``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ralph_tui.agents.registry import agent_spec

if TYPE_CHECKING:
    from ralph_tui.config import RalphConfig
    from ralph_tui.iteration import Agent


def warm_up(config: RalphConfig) -> None:
    """Start loading the chosen backends' SDKs in the background, as soon as the run knows
    which: about a second for ``anthropic``, taken while git, the PRD and the sandbox are set up
    instead of before the first iteration (see ``anthropic_agent.preload_sdk``)."""
    for name in config.agents_used:  # the primary first, then each fallback backend
        agent_spec(name).start_warm_up()


def create_agent(config: RalphConfig, workspace: Path) -> Agent:
    if config.fallback:  # the agent and its fallbacks behind one wrapper
        from ralph_tui.agents.fallback import FallbackAgent

        return FallbackAgent.from_config(config, workspace, _create_one)
    return _create_one(config, workspace)


def _create_one(config: RalphConfig, workspace: Path) -> Agent:
    return agent_spec(config.agent).create(config, workspace)
