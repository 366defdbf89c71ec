"""Work on the PRD's branch (the snarktank loop's ``branchName``), so the agent's commits never
land on the branch the human works on.

At start-up, before anything is recorded: the branch comes from ``--branch`` / ``branch = "..."``
in ``ralph.toml``, else the PRD's ``branchName``; ``branch = false`` keeps whatever is checked
out. Already on it: go on. It exists: check it out. Otherwise: create it from the current HEAD
and check it out. Uncommitted changes (``--allow-dirty``) travel with the checkout; when git
cannot carry them the run refuses with git's reason.
"""

from __future__ import annotations

from ralph_tui.errors import GitError, UsageError
from ralph_tui.git.repo import GitRepo


def wanted_branch(setting: bool | str, prd_branch: str | None) -> str | None:
    """The branch the run should be on; ``None``: stay where we are."""
    if setting is False:
        return None
    if isinstance(setting, str):
        return setting
    return prd_branch or None


def switch_to(git: GitRepo, name: str) -> str:
    """Get onto branch ``name``; returns the one line that says what happened."""
    if not git.is_valid_branch_name(name):
        raise UsageError(
            f"{name!r}: not a valid git branch name (from --branch, ralph.toml or the PRD)"
        )
    ref = f"refs/heads/{name}"
    if git.head_branch() == ref:
        return f"on branch {name}"
    existed = git.ref_exists(ref)
    start = git.head_sha()
    try:
        git.checkout_branch(name, create=not existed)
    except GitError as exc:
        raise UsageError(
            f"{git.root}: cannot switch to branch {name} ({exc}); commit or stash the changes, "
            "or set branch = false in ralph.toml"
        ) from None
    if existed:
        return f"switched to the existing branch {name}"
    return f"created branch {name} from {start[:10]} and switched to it"
