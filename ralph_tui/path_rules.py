"""A story's own path rules (feature lists' ``allowed_paths`` and ``forbidden``), enforced.

The agent is told the rules with its task (``context.build_user_prompt``); telling is not
enough for an untrusted agent, so the engine checks them beside the gates, in every executor:
a change that touches a path outside ``allowed_paths`` or inside ``forbidden`` fails the check
named ``story: allowed paths``. A failed check keeps the change from approval like any failed
gate, and its summary names the paths, so the agent knows what to undo. The check reads the
change with the engine's own git (``GitRepo.dirty_paths``: tracked, staged and untracked files,
never the engine's ``.ralph/`` state nor the PRD and progress log the engine writes itself).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from ralph_tui.git.repo import GitRepo, git_output


def rule_covers(rule: str, path: str) -> bool:
    """Whether ``rule`` (a file, a folder with or without ``/``, or a glob) covers ``path``."""
    rule = PurePosixPath(rule.strip().removeprefix("./")).as_posix()
    if rule in ("", "."):
        return True
    if path == rule or path.startswith(rule.rstrip("/") + "/"):
        return True
    if any(ch in rule for ch in "*?["):
        # "src/**" and "src/*" both mean "under src/": fnmatch's * already crosses "/"
        return fnmatch.fnmatchcase(path, rule) or fnmatch.fnmatchcase(path, rule.rstrip("/*"))
    return False


def breaches(paths: Sequence[str], allowed: Sequence[str], forbidden: Sequence[str]) -> list[str]:
    """One line per changed path the rules do not permit, in ``paths`` order."""
    out: list[str] = []
    for path in paths:
        banned = next((rule for rule in forbidden if rule_covers(rule, path)), None)
        if banned is not None:
            out.append(f"{path} (forbidden: {banned})")
        elif allowed and not any(rule_covers(rule, path) for rule in allowed):
            out.append(f"{path} (outside {', '.join(allowed)})")
    return out


def changed_breaches(
    cwd: Path,
    allowed: Sequence[str],
    forbidden: Sequence[str],
    engine_files: Sequence[Path] = (),
    base: str | None = None,
) -> list[str]:
    """``breaches`` for the change in the work tree ``cwd`` (blocking: git runs).

    The change is what differs from HEAD (staged, unstaged, untracked) plus, where ``base`` is
    given, what was committed since it: a worker's worktree snapshots the change as a commit on
    its base before the gates run.
    """
    root = cwd.resolve()
    skip = []
    for file in engine_files:
        try:
            skip.append(file.resolve().relative_to(root).as_posix())
        except ValueError:
            continue  # the engine's file is not in this tree
    paths = set(GitRepo(root).dirty_paths(ignore=skip))
    if base is not None:
        out = git_output(root, "diff", "--name-only", "-z", "--no-renames", base, "HEAD")
        names = out.decode("utf-8", errors="surrogateescape").split("\0")
        paths.update(n for n in names if n and n not in skip and not n.startswith(".ralph/"))
    return breaches(sorted(paths), allowed, forbidden)


def explain(found: Sequence[str], listed: int = 10) -> tuple[str, str]:
    """(summary line, full output) for a failed check."""
    shown = "; ".join(found[:listed])
    if len(found) > listed:
        shown += f"; and {len(found) - listed} more"
    output = (
        "This story may change only the paths its allowed_paths permit and none its forbidden "
        "names. Undo the changes to:\n" + "\n".join(f"- {line}" for line in found) + "\n"
    )
    return f"{len(found)} path(s) not allowed: {shown}", output
