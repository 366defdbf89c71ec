"""Agent backends behind one protocol (``iteration.Agent``), registered in ``registry``.

Backends are imported lazily: the optional ``claude-agent-sdk`` must not be needed to run the
others, and the CLI should start fast. Nothing here imports the configuration at run time
(``config`` reads the backends' names from ``registry``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ralph_tui.agents.registry import agent_spec

if TYPE_CHECKING:
    from ralph_tui.config import RalphConfig
    from ralph_tui.iteration import Agent


def warm_up(config: RalphConfig) -> None:
    """Start loading the chosen backend's SDK in the background, as soon as the run knows which
    one: about a second for ``anthropic``, taken while git, the PRD and the sandbox are set up
    instead of before the first iteration (see ``anthropic_agent.preload_sdk``)."""
    agent_spec(config.agent).start_warm_up()


def create_agent(config: RalphConfig, workspace: Path) -> Agent:
    return agent_spec(config.agent).create(config, workspace)
