"""Work on the PRD's branch (the snarktank loop's ``branchName``), so the agent's commits never
land on the branch the human works on.

At start-up, before anything is recorded: the branch comes from ``--branch`` / ``branch = "..."``
in ``ralph.toml``, else the PRD's ``branchName``; ``branch = false`` keeps whatever is checked
out. Already on it: go on. It exists: check it out. Otherwise: create it from the current HEAD
and check it out. Uncommitted changes (``--allow-dirty``) travel with the checkout; when git
cannot carry them the run refuses with git's reason.
"""

from __future__ import annotations

import re

from ralph_tui.errors import GitError, UsageError
from ralph_tui.git_repo import GitRepo

_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


def branch_name_problem(name: str) -> str | None:
    """Why git would refuse ``name`` as a branch (``git check-ref-format --branch``), or None.

    Pure, so ``validate`` can point at a PRD's ``branchName`` without a repository; the run
    still asks git itself before it switches.
    """
    if not name:
        return "must not be empty"
    if name.startswith("-"):
        return "must not start with '-'"
    if name in ("@", "HEAD"):
        return f"{name!r} is reserved by git"
    if match := _FORBIDDEN.search(name):
        return f"must not contain {match.group()!r}"
    for part, why in (("..", "'..'"), ("@{", "'@{'"), ("//", "'//'")):
        if part in name:
            return f"must not contain {why}"
    if name.startswith("/") or name.endswith(("/", ".")):
        return "must not start with '/' or end with '/' or '.'"
    if any(c.startswith(".") or c.endswith(".lock") for c in name.split("/")):
        return "no part may start with '.' or end with '.lock'"
    return None


def branch_for(name: str) -> str | None:
    """``ralph/<slug>`` for a project name (``init``, ``import``): lower-case ASCII letters,
    digits and dashes, so any folder or project name gives a branch git accepts."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return f"ralph/{slug}" if slug else None


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
