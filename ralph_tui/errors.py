"""Errors that reach the user as one line and an exit code (SPEC section 7)."""

from __future__ import annotations

from ralph_tui.exit_codes import ExitCode


class RalphError(Exception):
    """A failure the user should read as one line; ``exit_code`` is what the CLI returns."""

    exit_code: int = ExitCode.RUNTIME


class UsageError(RalphError):
    """Bad input: a malformed PRD or config, a folder that is not a repository, a dirty tree."""

    exit_code: int = ExitCode.USAGE


class GitError(RalphError):
    """A git command failed; the message carries git's own words."""


class AgentError(RalphError):
    """The agent backend failed for good (API error after retries, CLI crashed)."""


class StopRequested(Exception):
    """Raised at a safe point when the human (or a signal) asked the loop to stop."""
