"""The exit statuses of ``ralph-tui`` (SPEC section 7), one enum for the engine and the CLI."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    DONE = 0  # every story passes, or the run stopped cleanly where it was asked to
    RUNTIME = 1  # an error during the run (git, the agent, a crash)
    USAGE = 2  # refused before anything changed: bad flags, config, PRD, a missing tool
    LIMIT = 3  # max_iterations or the budget ran out with stories left
    WAITING_FOR_HUMAN = 4  # a change or a question needs a human and none can be asked
    INTERRUPTED = 130  # Ctrl-C / SIGTERM


__all__ = ["ExitCode"]
