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


class AgentRateLimited(AgentError):
    """The agent hit a rate limit or usage cap and its own retries are spent.

    Without ``fallback`` agents this stops the run like any ``AgentError``; with them the
    iteration moves on to the next agent (``agents/fallback.py``). ``reset_at`` (epoch seconds)
    or ``retry_after_s`` say when this agent may be tried again, when the provider said so.
    """

    def __init__(
        self, message: str, *, reset_at: float | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.reset_at = reset_at
        self.retry_after_s = retry_after_s
