"""Agent backends behind one protocol (``base.Agent``); ``create_agent`` picks one by name.

Backends are imported lazily: the optional ``claude-agent-sdk`` must not be needed to run the
others, and the CLI should start fast.
"""

from __future__ import annotations

from pathlib import Path

from ralph_tui.config import RalphConfig
from ralph_tui.errors import UsageError
from ralph_tui.iteration import Agent


def warm_up(config: RalphConfig) -> None:
    """Start loading the chosen backend's SDK in the background, as soon as the run knows which
    one: about a second for ``anthropic``, taken while git, the PRD and the sandbox are set up
    instead of before the first iteration (see ``anthropic_agent.preload_sdk``)."""
    if config.agent == "anthropic" or any(e.startswith("anthropic") for e in config.fallback):
        from ralph_tui.agents.anthropic_agent import preload_sdk

        preload_sdk()


def create_agent(config: RalphConfig, workspace: Path) -> Agent:
    if config.fallback:  # the agent and its fallbacks behind one wrapper (agents/fallback.py)
        from ralph_tui.agents.fallback import FallbackAgent

        return FallbackAgent.from_config(config, workspace, _create_one)
    return _create_one(config, workspace)


def _create_one(config: RalphConfig, workspace: Path) -> Agent:
    if config.agent == "scripted":
        from ralph_tui.agents.scripted import ScriptedAgent

        if not config.script:
            raise UsageError(
                "ralph.toml: agent 'scripted' needs script = \"<path to a JSON script>\" (its "
                "format: 'Rehearse without a model: the scripted agent' in the README)"
            )
        path = Path(config.script).expanduser()
        return ScriptedAgent.from_file(path if path.is_absolute() else workspace / path, config)
    if config.agent == "anthropic":
        from ralph_tui.agents.anthropic_agent import AnthropicAgent

        return AnthropicAgent(config)
    if config.agent == "claude-code":
        from ralph_tui.agents.claude_code import ClaudeCodeAgent

        return ClaudeCodeAgent(config)
    from ralph_tui.agents.command import CommandAgent

    return CommandAgent(config)
