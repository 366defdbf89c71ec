"""Markers for tests that need an optional extra: they skip, saying why, when it is missing."""

from __future__ import annotations

import importlib

import pytest


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


CLAUDE_SDK_MISSING = (
    "the optional claude-agent-sdk is not installed (pip install 'ralph-supervisor[claude]')"
)

needs_claude_sdk = pytest.mark.skipif(
    not _importable("claude_agent_sdk"), reason=CLAUDE_SDK_MISSING
)


def require_claude_sdk() -> None:
    """For fixtures (marks do not apply to them): skip the test that uses one, saying why."""
    if not _importable("claude_agent_sdk"):
        pytest.skip(CLAUDE_SDK_MISSING)
