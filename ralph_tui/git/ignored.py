"""Ignored files are part of what the agent changed.

git does not see ignored files, so neither did the approval nor a discard: the agent could
delete the user's ignored ``data/`` and ``.env`` (the approval said "no changes", a discard
brought nothing back), plant a ``.pth`` in the ignored ``.venv`` (it runs at the next Python
start), or add a ``.gitignore`` line that hides its own ``conftest.py`` from the reviewer and
from the discard.

``IgnoredSnapshot.take`` records, at the start of an iteration, every ignored file (path, size,
mtime, mode) and the untracked ``.gitignore`` files, and copies the small ignored files that
are not caches into a backup folder inside ``.ralph/`` (which no sandbox sees), within a budget.
``changes`` says what the agent did to them, for the approval; ``restore`` puts back what a
discard must: deleted and changed files from the backup, the ignore rules as they were (so the
untracked files the agent hid are removed by the ordinary restore), and planted start-up hooks
removed.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ralph_tui.git.repo import git_output, split_z

log = logging.getLogger(__name__)

BACKUP_BUDGET_BYTES = 64 << 20  # all backed-up files together
BACKUP_FILE_MAX_BYTES = 4 << 20  # one file
MAX_TRACKED_FILES = 50_000  # beyond this, ignored files are not followed (said in the approval)
LISTED_IN_APPROVAL = 20  # lines; the rest is counted

# Caches and build output: rebuilt by the tools, changed by every gate run; never reported.
_CACHE_PARTS = {
    "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis", ".tox",
    ".nox", "node_modules", ".cache", "build", "dist", ".eggs", "target", ".gradle", ".next",
    "coverage", "htmlcov", ".coverage",
}  # fmt: skip
_CACHE_SUFFIXES = (".pyc", ".pyo", ".egg-info", ".log")
# Environments: followed by their stats (a change is reported), never copied.
_NO_BACKUP_PARTS = {".venv", "venv", "site-packages", "dist-packages", ".direnv", ".nox"}
# Files that run by themselves at the next start of an interpreter or a shell.
_STARTUP_NAMES = {"sitecustomize.py", "usercustomize.py", ".envrc", ".bashrc", ".profile"}


def is_cache(rel: str) -> bool:
    parts = PurePosixPath(rel).parts
    return any(p in _CACHE_PARTS or p.endswith(_CACHE_SUFFIXES) for p in parts)


def is_startup_hook(rel: str) -> bool:
    name = PurePosixPath(rel).name
    return name.endswith(".pth") or name in _STARTUP_NAMES


@dataclass(frozen=True)
class _Entry:
    size: int
    mtime_ns: int
    mode: int


@dataclass
class IgnoredChanges:
    created: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unfollowed: bool = False  # too many ignored files to follow

    def __bool__(self) -> bool:
        return bool(self.created or self.changed or self.deleted)

    def lines(self) -> list[str]:
        """For the approval: what happened to ignored files (never committed), collapsed."""
        out: list[str] = []
        for verb, paths in (("deleted", self.deleted), ("changed", self.changed),
                            ("created", self.created)):  # fmt: skip
            for rel in paths[:LISTED_IN_APPROVAL]:
                out.append(f"ignored file {verb}: {rel}")
            if len(paths) > LISTED_IN_APPROVAL:
                out.append(f"ignored files {verb}: {len(paths) - LISTED_IN_APPROVAL} more")
        return out

    def flags(self) -> list[str]:
        """The review flags among them: the user's ignored files deleted or changed, and
        start-up hooks created anywhere (a ``.pth`` in the ignored ``.venv``)."""
        flags = [f"[ignored] {rel}: deleted (not in git; a discard restores it)"
                 for rel in self.deleted[:LISTED_IN_APPROVAL]]  # fmt: skip
        flags += [f"[ignored] {rel}: changed (not in git; a discard restores it)"
                  for rel in self.changed[:LISTED_IN_APPROVAL]]  # fmt: skip
        flags += [
            f"[start-up hook] {rel}: created in an ignored folder; runs at the next start"
            for rel in (*self.created, *self.changed)
            if is_startup_hook(rel)
        ]
        return flags


def _list_ignored(root: Path) -> list[str]:
    out = git_output(
        root, "ls-files", "-z", "--others", "--ignored", "--exclude-standard", "--directory"
    )
    found: list[str] = []
    for rel in split_z(out):
        if rel.startswith(".ralph/") or rel == ".ralph":
            continue
        if rel.endswith("/"):  # a whole ignored folder: walk it ourselves
            found += _walk(root, rel.rstrip("/"))
        else:
            found.append(rel)
        if len(found) > MAX_TRACKED_FILES:
            break
    return found


def _walk(root: Path, rel: str) -> list[str]:
    files: list[str] = []
    base = root / rel
    if base.is_symlink() or (base / ".git").exists():
        return [rel] if base.is_symlink() else []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = [d for d in dirnames if not (Path(dirpath) / d / ".git").exists()]
        here = Path(dirpath).relative_to(root).as_posix()
        files += [f"{here}/{name}" for name in filenames]
        files += [f"{here}/{d}" for d in dirnames if (Path(dirpath) / d).is_symlink()]
        if len(files) > MAX_TRACKED_FILES:
            break
    return files


def _untracked_gitignores(root: Path) -> set[str]:
    """Untracked ``.gitignore`` files, ignored ones included (``*`` in one hides itself)."""
    out = git_output(
        root, "ls-files", "-z", "--others", "--", ":(glob).gitignore", ":(glob)**/.gitignore"
    )
    return {rel for rel in split_z(out) if not rel.startswith(".ralph/")}


def _stat(path: Path) -> _Entry | None:
    try:
        info = path.lstat()
    except OSError:
        return None
    return _Entry(info.st_size, info.st_mtime_ns, info.st_mode)


@dataclass
class IgnoredSnapshot:
    root: Path
    backup: Path
    files: dict[str, _Entry]
    saved: set[str]
    gitignores: set[str]  # untracked .gitignore files at the start (the user's own)
    unfollowed: bool = False

    @classmethod
    def take(cls, root: Path, backup: Path) -> IgnoredSnapshot:
        listed = _list_ignored(root)
        unfollowed = len(listed) > MAX_TRACKED_FILES
        files: dict[str, _Entry] = {}
        saved: set[str] = set()
        shutil.rmtree(backup, ignore_errors=True)
        spent = 0
        for rel in [] if unfollowed else listed:
            entry = _stat(root / rel)
            if entry is None:
                continue
            files[rel] = entry
            if is_cache(rel) or not stat.S_ISREG(entry.mode):
                continue
            if _NO_BACKUP_PARTS.intersection(PurePosixPath(rel).parts[:-1]):
                continue
            if entry.size > BACKUP_FILE_MAX_BYTES or spent + entry.size > BACKUP_BUDGET_BYTES:
                continue
            target = backup / rel
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(root / rel, target, follow_symlinks=False)
            except OSError as exc:  # unreadable: followed by its stat only
                log.debug("ignored file %s not backed up: %s", rel, exc)
                continue
            spent += entry.size
            saved.add(rel)
        return cls(root, backup, files, saved, _untracked_gitignores(root), unfollowed)

    def changes(self) -> IgnoredChanges:
        if self.unfollowed:
            return IgnoredChanges(unfollowed=True)
        now = {rel for rel in _list_ignored(self.root)}
        result = IgnoredChanges()
        for rel, before in sorted(self.files.items()):
            if is_cache(rel):
                continue
            after = _stat(self.root / rel)
            if after is None:
                result.deleted.append(rel)
            elif (after.size, after.mtime_ns, after.mode) != (
                before.size,
                before.mtime_ns,
                before.mode,
            ):
                result.changed.append(rel)
        result.created = sorted(
            rel for rel in now - set(self.files) if not is_cache(rel) or is_startup_hook(rel)
        )
        return result

    def restore_rules(self) -> list[str]:
        """Before a discard lists the untracked files: the agent's new ``.gitignore`` files go,
        so what they hid is untracked again and removed with the rest. The paths removed."""
        removed = []
        for rel in sorted(_untracked_gitignores(self.root) - self.gitignores):
            (self.root / rel).unlink(missing_ok=True)
            removed.append(rel)
        return removed

    def restore(self) -> list[str]:
        """After a discard: the ignored files the agent deleted or changed come back from the
        backup; start-up hooks it created in ignored folders are removed. What was done, one
        line each; what could not be restored (not backed up) is said too."""
        notes: list[str] = []
        changes = self.changes()
        for rel in (*changes.deleted, *changes.changed):
            source = self.backup / rel
            if rel not in self.saved or (not source.exists() and not source.is_symlink()):
                notes.append(f"{rel}: an ignored file the agent changed; not backed up (too big)")
                continue
            target = self.root / rel
            try:
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                else:
                    target.unlink(missing_ok=True)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target, follow_symlinks=False)
            except OSError as exc:
                notes.append(f"{rel}: could not be restored: {exc.strerror or exc}")
        for rel in changes.created:
            if is_startup_hook(rel):
                (self.root / rel).unlink(missing_ok=True)
                notes.append(f"{rel}: a start-up hook the agent planted, removed")
        return notes

    def discard(self) -> None:
        shutil.rmtree(self.backup, ignore_errors=True)


def summarize(lines: Iterable[str]) -> str:
    return "\n".join(f" ! {line}" for line in lines)


__all__ = ["IgnoredChanges", "IgnoredSnapshot", "is_cache", "is_startup_hook"]
