"""The engine owns git: what an iteration starts from, and putting it back if the agent moved it.

Without a sandbox the agent's shell can commit, reset, amend, switch branches, edit
``.git/config`` (``core.fsmonitor``, filters, ``core.hooksPath``) and plant hooks. The engine
records all of that when an iteration starts (``GitSnapshot.take``) and checks it before the
gates, before asking for approval and before throwing a change away (``GitSnapshot.enforce``):

- HEAD moved forward (the agent committed): the commits are folded back into the working
  change (``reset --soft`` to the recorded HEAD), so the human's diff shows all of it and a
  discard throws all of it away.
- HEAD moved anywhere else (``reset --hard HEAD~1``, ``commit --amend``, another branch): HEAD
  goes back to the recorded commit on the recorded branch, and the files stay as the agent left
  them, i.e. as the iteration's change (the diff then shows what the agent's reset removed, and
  a discard restores it). Approved commits are never dropped.
- ``.git/config`` and every file under ``.git/hooks`` are put back byte for byte (added hooks
  removed) and the human is told.

The agent's commits stay in the reflog until git prunes it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

from ralph_tui.git.repo import GitRepo

_MAX_HOOK_BYTES = 1 << 20


@dataclass
class GitSnapshot:
    head: str
    branch: str | None
    config_path: Path
    config: bytes | None
    hooks_path: Path
    hooks: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    # .git/info/exclude hides files from the diff and the discard; info/attributes changes
    # what a diff shows: both are the agent's to write without a sandbox
    info: dict[Path, bytes | None] = field(default_factory=dict)

    @classmethod
    def take(cls, git: GitRepo) -> GitSnapshot:
        config_path = git.git_path("config")
        hooks_path = git.git_path("config").parent / "hooks"  # not --git-path: core.hooksPath
        return cls(
            head=git.head_sha(),
            branch=git.head_branch(),
            config_path=config_path,
            config=_read(config_path),
            hooks_path=hooks_path,
            hooks=_read_hooks(hooks_path),
            info={
                path: _read(path)
                for path in (git.git_path("info/exclude"), git.git_path("info/attributes"))
            },
        )

    def moved_to(self, sha: str) -> None:
        """The engine itself moved HEAD (its story commit): that is the new base."""
        self.head = sha

    def enforce(self, git: GitRepo) -> tuple[list[str], bool]:
        """Put config, hooks and HEAD back as recorded; one message per thing that was undone,
        and whether HEAD had moved anywhere but forward (a reset rewrote the files)."""
        messages: list[str] = []
        if _read(self.config_path) != self.config:
            _write(self.config_path, self.config)
            messages.append(".git/config was changed during the iteration; restored")
        for path, before in self.info.items():
            if _read(path) != before:
                if before is None:
                    path.unlink(missing_ok=True)
                else:
                    _write(path, before)
                messages.append(f".git/info/{path.name} was changed during the iteration; restored")
        changed = self._restore_hooks()
        if changed:
            listed = ", ".join(changed[:5]) + (" ..." if len(changed) > 5 else "")
            messages.append(f".git/hooks was changed during the iteration ({listed}); restored")
        head, branch = git.head_sha(), git.head_branch()
        if head == self.head and branch == self.branch:
            return messages, False
        forward = git.is_ancestor(self.head, head) and branch == self.branch
        git.move_head(self.head, self.branch)
        if forward:
            count = len(git.commits_between(self.head, head))
            messages.append(
                f"the agent made {count} commit(s) of its own; folded back into the working "
                "change so the approval diff shows all of it"
            )
        else:
            where = f" on {branch}" if branch != self.branch and branch else ""
            messages.append(
                f"the agent moved HEAD to {head[:10]}{where} (a reset, amend or checkout); HEAD "
                f"is back at {self.head[:10]}, and its change stays as the iteration's change"
            )
        return messages, not forward

    def _restore_hooks(self) -> list[str]:
        changed: list[str] = []
        if self.hooks_path.is_symlink() or (
            self.hooks_path.exists() and not self.hooks_path.is_dir()
        ):
            self.hooks_path.unlink()  # never write recorded hooks through a planted link
            changed.append("(the folder itself)")
        self.hooks_path.mkdir(parents=True, exist_ok=True)
        current = _read_hooks(self.hooks_path)
        for name in sorted(set(current) - set(self.hooks)):
            changed.append(name)
            with contextlib.suppress(FileNotFoundError):
                (self.hooks_path / name).unlink()
        for name, (data, mode) in sorted(self.hooks.items()):
            if current.get(name) == (data, mode):
                continue
            changed.append(name)
            target = self.hooks_path / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            _write(target, data, mode)
        if not self.hooks_path.is_symlink() and self.hooks_path.is_dir():
            for dirpath, dirnames, _files in os.walk(self.hooks_path, topdown=False):
                for d in dirnames:
                    with contextlib.suppress(OSError):
                        (Path(dirpath) / d).rmdir()
        return changed


def _read(path: Path) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None  # missing, or a planted symlink: both differ from a recorded file
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return fh.read(_MAX_HOOK_BYTES * 8)


def _write(path: Path, data: bytes | None, mode: int = 0o644) -> None:
    """Replace ``path`` (a planted symlink is replaced, not followed); ``None`` removes it."""
    if path.is_symlink() or (path.exists() and not path.is_file()):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    if data is None:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.ralph-restore")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode & 0o7777)
    try:
        os.write(fd, data)
        os.fchmod(fd, mode & 0o7777)
    finally:
        os.close(fd)
    tmp.replace(path)


def _read_hooks(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every entry under the hooks folder: regular files by content and mode; anything else
    (a symlink, a FIFO) by a marker that never equals a recorded regular file."""
    found: dict[str, tuple[bytes, int]] = {}
    if folder.is_symlink() or not folder.is_dir():
        return found
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            path = Path(dirpath) / name
            rel = path.relative_to(folder).as_posix()
            data = _read(path)
            if data is None:
                found[rel] = (b"", -1)
            else:
                found[rel] = (data, os.lstat(path).st_mode & 0o7777)
    return found
