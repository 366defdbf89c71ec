"""What in a change needs a human's eyes: the review flags.

The gates decide whether the code works; they cannot tell whether the change also weakened
them. An agent that cannot make a test pass can make it not run: a ``conftest.py`` that skips
everything, an ``addopts`` that deselects, a ``# type: ignore``, a ``-diff`` attribute that
hides its code from the reviewer, a ``ralph.toml`` that turns the sandbox off for the next
run. Each is an ordinary hunk in an ordinary diff. ``review_flags`` names them, with the path
and what it is, so the approval shows them above the diff; and a flagged change is never
committed without a human (``engine.SerialLoop.ask_approval``, the supervisors' auto policy).

The flags are computed from ``describe_change`` (text as text, notes for modes and symlinks),
so every mode (one worker, worktrees, Ray) judges the same thing the human sees.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ralph_tui.config import PRD_PLACES, ReviewOptions
from ralph_tui.errors import GitError
from ralph_tui.git.repo import FileDiff, describe_change, display_path, git_output


# Files that decide what the gates check, or how the run is confined.
@dataclass(frozen=True)
class ReviewFlag:
    kind: str  # "checks", "tests removed", "marker", "start-up hook", "hidden", "outside"
    path: str
    detail: str

    def line(self) -> str:
        return f"[{self.kind}] {display_path(self.path)}: {self.detail}"


def _matches(path: str, patterns: Sequence[str]) -> bool:
    posix = PurePosixPath(path)
    for pattern in patterns:
        if posix.match(pattern) or fnmatch.fnmatchcase(path, pattern):
            return True
        if pattern.startswith("**/") and fnmatch.fnmatchcase(posix.name, pattern[3:]):
            return True
    return False


def _added_lines(patch: str) -> list[tuple[int, str]]:
    """(new line number, text) of each added line."""
    found: list[tuple[int, str]] = []
    number = 0
    for line in patch.splitlines():
        if line.startswith("@@"):
            match = re.match(r"@@ -\d+(?:,\d+)? \+(\d+)", line)
            number = int(match.group(1)) if match else 0
        elif line.startswith("+++") or line.startswith("---"):
            continue
        elif line.startswith("+"):
            found.append((number, line[1:]))
            number += 1
        elif line.startswith(" "):
            number += 1
    return found


def _changed_tables(patch: str, old_text: str | None) -> set[str]:
    """The TOML tables the hunks of ``patch`` change, for ``pyproject.toml``: the last
    ``[table]`` header above each changed line (in the hunk, else in the old file)."""
    old_lines = old_text.splitlines() if old_text else []
    tables: set[str] = set()
    current: str | None = None
    old_number = 0
    for line in patch.splitlines():
        if line.startswith("@@"):
            match = re.match(r"@@ -(\d+)", line)
            old_number = int(match.group(1)) if match else 0
            current = _table_above(old_lines, old_number - 1)
            continue
        if line.startswith(("+++", "---")) or line[:1] not in "+- ":
            continue
        body = line[1:].strip()
        header = re.match(r"^\[\[?\s*([^\]]+?)\s*\]\]?", body)
        if header:
            current = header.group(1).replace('"', "")
        if line[:1] in "+-":
            tables.add(current or "")
        if line[:1] in "- ":
            old_number += 1
    return tables


def _table_above(lines: Sequence[str], index: int) -> str | None:
    for line in reversed(lines[: max(index, 0)]):
        header = re.match(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?", line)
        if header:
            return header.group(1).replace('"', "")
    return None


def review_flags(
    files: Sequence[FileDiff],
    options: ReviewOptions,
    old_text: Callable[[str], str | None] = lambda path: None,
) -> list[ReviewFlag]:
    """Every flag the change earns. ``old_text(path)``: the file as it was before the change
    (for ``pyproject.toml``, to tell which table a hunk is in)."""
    flags: list[ReviewFlag] = []
    check_files = [*options.check_files, *options.extra_check_files]
    markers = [re.compile(m) for m in [*options.markers, *options.extra_markers]]
    for diff in files:
        path = diff.path
        names = [path] + ([diff.old_path] if diff.old_path else [])
        if any(_matches(name, check_files) for name in names):
            what = {"ralph.toml": "ralph-tui's own configuration"}.get(
                PurePosixPath(path).name, "configures what checks the code"
            )
            if any(_matches(name, PRD_PLACES) for name in names):
                what = "a PRD where ralph-tui looks for one: it would choose the next run's stories"
            flags.append(ReviewFlag("checks", path, f"{diff.status}: {what}"))
        elif PurePosixPath(path).name == "pyproject.toml":
            tables = _changed_tables(diff.patch, old_text(path))
            hit = sorted(
                t
                for t in tables
                if any(t == c or t.startswith(c + ".") for c in options.check_tables)
            )
            if hit:
                flags.append(ReviewFlag("checks", path, f"changes [{'], ['.join(hit)}]"))
        if diff.status in ("deleted", "renamed") and any(
            _matches(name, options.test_files) for name in names
        ):
            old = diff.old_path or path
            verb = "deleted" if diff.status == "deleted" else f"renamed to {display_path(path)}"
            flags.append(ReviewFlag("tests removed", old, f"a test file was {verb}"))
        if any(_matches(name, options.startup_hooks) for name in names):
            flags.append(
                ReviewFlag(
                    "start-up hook", path, f"{diff.status}: runs at the next start of a tool"
                )
            )
        for note in (ln[2:] for ln in diff.patch.splitlines() if ln.startswith("! ")):
            if "OUTSIDE" in note or "submodule" in note or "made executable" in note:
                flags.append(ReviewFlag("outside" if "OUTSIDE" in note else "mode", path, note))
        if diff.binary and diff.status != "deleted" and _looks_like_source(path):
            flags.append(ReviewFlag("hidden", path, "a source file that is binary"))
        for number, text in _added_lines(diff.patch):
            hit_marker = next((m for m in markers if m.search(text)), None)
            if hit_marker is not None:
                shown = text.strip()
                shown = shown if len(shown) <= 80 else shown[:77] + "..."
                flags.append(ReviewFlag("marker", path, f"line {number}: {shown}"))
    return flags


_SOURCE_SUFFIXES = {
    ".py", ".pyi", ".js", ".ts", ".tsx", ".jsx", ".go", ".rs", ".rb", ".java", ".kt", ".c",
    ".h", ".cc", ".cpp", ".sh", ".toml", ".cfg", ".ini", ".yml", ".yaml", ".json", ".md",
}  # fmt: skip


def _looks_like_source(path: str) -> bool:
    return PurePosixPath(path).suffix.lower() in _SOURCE_SUFFIXES


def review_commit(root: Path, base: str, commit: str, options: ReviewOptions) -> list[str]:
    """The flags of one commit on ``base`` (a worker's snapshot), one line each."""
    if commit == base:
        return []
    files = describe_change(root, (base, commit))

    def before(path: str) -> str | None:
        try:
            data = git_output(root, "cat-file", "blob", f"{base}:{path}")
        except GitError:  # not in the base: an added file
            return None
        return data.decode("utf-8", "replace")

    return [flag.line() for flag in review_flags(files, options, before)]


def flags_for_agent(flags: Sequence[str]) -> str:
    """Why a flagged change went back to the agent (headless, no human to approve it)."""
    listed = "\n".join(f"- {flag}" for flag in flags)
    return (
        "The change was not committed: it changes what checks the code (or hides part of "
        "itself), and no human is here to approve that:\n"
        f"{listed}\n"
        "Make the story's change without weakening any check (no skipped tests, no changed "
        "test or linter configuration, no ignores), then call complete_task again. If the "
        "story truly needs such a change, say so in your summary: a human must approve it."
    )


__all__ = [
    "ReviewFlag",
    "ReviewOptions",
    "flags_for_agent",
    "review_commit",
    "review_flags",
]
