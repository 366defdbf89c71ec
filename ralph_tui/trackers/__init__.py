"""Issue trackers (GitHub Issues, Linear) as the PRD's source and sink (``[tracker]``).

``base``: what a tracker is and how an issue becomes a story; ``github`` and ``linear``: the
two APIs; ``sync``: issues into the JSON PRD; ``link``: what a run does with its tracker (sync
at start, a comment and a close when a story lands, a comment for an escalation, the pull
request at the end). Credentials are read by name from ralph-tui's vault (``credentials``):
the agent never sees them.
"""

from __future__ import annotations

import logging
import shutil
import subprocess

from ralph_tui.config import TrackerOptions
from ralph_tui.errors import UsageError
from ralph_tui.safety import credentials
from ralph_tui.trackers.base import (
    Clock,
    IssueGone,
    PullRequests,
    Sleep,
    Tracker,
    TrackerError,
    TrackerIssue,
)

__all__ = [
    "IssueGone",
    "PullRequests",
    "Tracker",
    "TrackerError",
    "TrackerIssue",
    "build_pull_requests",
    "build_tracker",
    "options_from_source",
    "withhold_credentials",
]

log = logging.getLogger(__name__)

GH_TIMEOUT_S = 10.0
GH_AUTH_TOKEN = "GH_AUTH_TOKEN"  # where a token from `gh auth token` is kept in the vault


def withhold_credentials(options: TrackerOptions | None) -> None:
    """The secrets leave ``os.environ`` (``credentials.withhold``), with ``[tracker]
    token_env`` among them whatever its name, and the GitHub token is resolved: called before a
    run builds its ``Redactor``, so a token ``gh auth token`` gave is scrubbed too."""
    also = [options.token_env] if options is not None and options.token_env else []
    credentials.withhold(also=also)
    if options is not None and (options.kind == "github" or options.pull_request):
        github_token(options.token_env if options.kind == "github" else None)


def github_token(token_env: str | None) -> str:
    """The GitHub credential: the named variable (default ``GITHUB_TOKEN``, then ``GH_TOKEN``),
    else ``gh auth token`` where the GitHub CLI is installed and logged in. A token from ``gh``
    joins the vault, so the run's redactor scrubs it like any other secret."""
    names = [token_env] if token_env else ["GITHUB_TOKEN", "GH_TOKEN"]
    for name in names:
        value = credentials.get(name)
        if value:
            return value
    kept = credentials.withheld().get(GH_AUTH_TOKEN)
    if kept and not token_env:
        return kept
    gh = shutil.which("gh")
    if gh is not None and not token_env:
        try:
            proc = subprocess.run(
                [gh, "auth", "token"], capture_output=True, text=True, timeout=GH_TIMEOUT_S
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("gh auth token failed: %s", exc)
        else:
            token = proc.stdout.strip()
            if proc.returncode == 0 and token:
                credentials.keep(GH_AUTH_TOKEN, token)
                return token
    raise UsageError(
        f"[tracker]: no GitHub token: set {' or '.join(names)}"
        + ("" if token_env else " or log in with `gh auth login`")
    )


def linear_key(token_env: str | None) -> str:
    name = token_env or "LINEAR_API_KEY"
    value = credentials.get(name)
    if not value:
        raise UsageError(f"[tracker]: no Linear API key: set {name}")
    return value


def build_tracker(
    options: TrackerOptions, *, clock: Clock | None = None, sleep: Sleep | None = None
) -> Tracker:
    """The tracker ``[tracker]`` describes; a missing credential is a ``UsageError``.
    The clients (and aiohttp) are imported here: a run without a tracker never loads them."""
    from ralph_tui.trackers.github import GitHubTracker
    from ralph_tui.trackers.linear import LinearTracker

    if options.kind == "github":
        assert options.repository is not None  # TrackerOptions checks it
        return GitHubTracker(
            options.repository,
            github_token(options.token_env),
            api_url=options.api_url,
            label=options.label,
            milestone=options.milestone,
            max_wait=options.rate_limit_wait_s,
            clock=clock,
            sleep=sleep,
        )
    assert options.team is not None
    return LinearTracker(
        options.team,
        linear_key(options.token_env),
        api_url=options.api_url,
        project=options.project,
        view=options.view,
        label=options.label,
        done_state=options.done_state,
        max_wait=options.rate_limit_wait_s,
        clock=clock,
        sleep=sleep,
    )


def build_pull_requests(
    options: TrackerOptions, tracker: Tracker, *, clock: Clock | None = None
) -> PullRequests:
    """Where the run's pull request is opened: the GitHub tracker itself, or for Linear the
    GitHub ``repository`` named in ``[tracker]``."""
    from ralph_tui.trackers.github import GitHubTracker

    if isinstance(tracker, GitHubTracker):
        return tracker
    if not options.repository:
        raise UsageError(
            '[tracker]: pull_request = true with kind = "linear" needs repository = '
            '"OWNER/REPO" (the GitHub repository the pull request is opened on)'
        )
    return GitHubTracker(
        options.repository,
        github_token(None),
        api_url=options.github_api_url,
        max_wait=options.rate_limit_wait_s,
        clock=clock,
    )


def options_from_source(source: str, label: str | None, api_url: str | None) -> TrackerOptions:
    """``github:OWNER/REPO`` or ``linear:TEAM[/PROJECT]`` (``import``) as tracker options."""
    kind, _, where = source.partition(":")
    try:
        if kind == "github":
            return TrackerOptions(kind="github", repository=where, label=label, api_url=api_url)
        if kind == "linear":
            team, _, project = where.partition("/")
            return TrackerOptions(
                kind="linear", team=team or None, project=project or None, label=label,
                api_url=api_url,
            )  # fmt: skip
    except ValueError as exc:
        first = str(exc).splitlines()
        raise UsageError(f"import {source}: not a tracker source ({first[-1].strip()})") from None
    raise UsageError(f"import {source}: expected github:OWNER/REPO or linear:TEAM/PROJECT")
