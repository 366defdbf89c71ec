"""The workspace's git repository, as the loop needs it.

Reads of commit objects go through gitpython. Everything that touches the index or the working
tree runs the ``git`` binary, so the user's hooks, signing and config apply to commits exactly as
they would on the command line. Diffs are taken through a throwaway copy of the index
(``GIT_INDEX_FILE``): the TUI can show new files next to edited ones without the user's staging
area ever changing under them.

All methods are synchronous; the engine calls them with ``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

import git

from ralph_tui.errors import GitError, UsageError

RALPH_DIR = ".ralph"
# Pathspec that keeps ralph-tui's own run folder out of diffs and commits even before
# ``ensure_excluded`` has run (or if the user removed the exclude line).
# Variables that would point git at some other repository or index than the workspace's.
_FOREIGN_GIT_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY")
_DIFF_FLAGS = ("--no-color", "--no-ext-diff", "-M", "--src-prefix=a/", "--dst-prefix=b/")

FileStatus = Literal["added", "modified", "deleted", "renamed"]
_STATUS: dict[str, FileStatus] = {"A": "added", "D": "deleted", "R": "renamed", "C": "added"}


@dataclass(frozen=True)
class FileDiff:
    path: str
    old_path: str | None
    status: FileStatus
    additions: int
    deletions: int
    binary: bool
    patch: str  # this file's unified diff with its header, for display (binary: git's one-liner)


def _git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _FOREIGN_GIT_ENV}
    if extra:
        env.update(extra)
    return env


def _git_words(proc: subprocess.CompletedProcess[bytes]) -> str:
    """Git's own explanation in one line: its first line plus any fatal/error lines."""
    text = proc.stderr.decode("utf-8", errors="replace").strip()
    if not text:
        text = proc.stdout.decode("utf-8", errors="replace").strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return f"exit code {proc.returncode}"
    chosen = [lines[0]]
    chosen += [ln for ln in lines[1:] if ln.startswith(("fatal:", "error:")) and ln not in chosen]
    return "; ".join(chosen[:3])


def _run_git(
    cwd: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=_git_env(env),
            input=stdin if stdin is not None else b"",
            capture_output=True,
            check=False,
        )
    except FileNotFoundError:
        raise GitError("git: command not found (install git or put it on PATH)") from None


def _split_z(data: bytes) -> list[str]:
    return [p for p in data.decode("utf-8", errors="surrogateescape").split("\0") if p]


def _text(value: str | bytes) -> str:
    """gitpython gives bytes for messages it could not decode with the commit's encoding."""
    return value if isinstance(value, str) else value.decode("utf-8", errors="replace")


def _is_ralph(path: str) -> bool:
    return path == RALPH_DIR or path.startswith(RALPH_DIR + "/")


class GitRepo:
    def __init__(self, root: Path) -> None:
        """Use ``GitRepo.open``; this assumes ``root`` is already a checked work tree top level."""
        self.root = root
        self._repo = git.Repo(root)
        # gitpython keeps one persistent ``git cat-file`` per repo; calls from two worker
        # threads at once would interleave on its pipe.
        self._lock = threading.Lock()
        self._git_paths: dict[str, Path] = {}

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path) -> GitRepo:
        """The repository whose top level is ``path``; a subfolder of a repo is refused.

        Refusing subfolders keeps "the workspace" and "what gets committed" the same set of
        files: ralph-tui commits with ``add -A``, which would sweep in siblings of the folder.
        """
        path = Path(path)
        if not path.is_dir():
            raise UsageError(f"{path}: no such folder")
        resolved = path.resolve()
        top = _run_git(resolved, "rev-parse", "--show-toplevel")
        if top.returncode != 0:
            raise UsageError(
                f"{path}: not a git repository (run `git init` there and make a first commit)"
            )
        toplevel = Path(top.stdout.decode("utf-8", errors="surrogateescape").strip()).resolve()
        if toplevel != resolved:
            raise UsageError(
                f"{path}: is a subfolder of the git repository {toplevel}; "
                "use the repository's top level as the workspace"
            )
        head = _run_git(resolved, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
        if head.returncode != 0:
            raise UsageError(
                f"{path}: the repository has no commits yet; make a first commit "
                "(git add -A && git commit -m 'initial')"
            )
        return cls(resolved)

    def close(self) -> None:
        """Stop gitpython's helper processes (they also go when the object is collected)."""
        with self._lock:
            self._repo.close()

    # -- plumbing --------------------------------------------------------------------------

    def _git(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
    ) -> bytes:
        proc = _run_git(self.root, *args, env=env, stdin=stdin)
        if proc.returncode != 0:
            verb = next((a for a in args if not a.startswith("-")), "git")
            raise GitError(f"git {verb} failed in {self.root}: {_git_words(proc)}")
        return proc.stdout

    def _git_path(self, name: str) -> Path:
        """Where git keeps ``name`` (``index``, ``info/exclude``), worktrees included."""
        if name not in self._git_paths:
            out = self._git("rev-parse", "--git-path", name).decode("utf-8", "surrogateescape")
            self._git_paths[name] = self.root / out.strip()
        return self._git_paths[name]

    @contextlib.contextmanager
    def _snapshot_index(self) -> Iterator[dict[str, str]]:
        """An env whose ``GIT_INDEX_FILE`` holds the whole working tree (untracked included).

        Starting from a copy of the real index keeps git's stat cache, so only changed files
        are hashed; the real index is only read.
        """
        real = self._git_path("index")
        with tempfile.TemporaryDirectory(prefix="ralph-index-") as tmp:
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            if real.exists():
                shutil.copyfile(real, env["GIT_INDEX_FILE"])
            else:
                self._git("read-tree", "HEAD", env=env)
            self._stage_all(env)
            yield env

    def _stage_all(self, env: Mapping[str, str] | None) -> None:
        # `git add -A -- . :(exclude).ralph` fails once .ralph/ is itself ignored (git refuses
        # pathspecs that name ignored paths), so stage everything, then unstage .ralph/ if the
        # exclude line is missing and it slipped in.
        self._git("add", "-A", env=env)
        self._git("rm", "-r", "-q", "--cached", "--ignore-unmatch", "--", RALPH_DIR, env=env)

    def _normalise(self, path: str) -> str:
        candidate = Path(path)
        if candidate.is_absolute():
            try:
                candidate = candidate.resolve().relative_to(self.root)
            except ValueError:
                raise UsageError(f"{path}: outside the repository {self.root}") from None
        return PurePosixPath(candidate.as_posix()).as_posix().removeprefix("./")

    # -- state -----------------------------------------------------------------------------

    def dirty_paths(self, ignore: Collection[str] = ()) -> list[str]:
        """Paths that differ from HEAD (staged, unstaged or untracked and not ignored).

        ``ignore`` entries are relative paths; one ending in ``/`` covers a whole folder.
        """
        skip = {self._normalise(p) for p in ignore}
        folders = tuple(p if p.endswith("/") else p + "/" for p in ignore if p.endswith("/"))
        out = self._git("status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames")
        paths: set[str] = set()
        for entry in _split_z(out):
            path = entry[3:]
            if _is_ralph(path) or path in skip or path.startswith(folders):
                continue
            paths.add(path)
        return sorted(paths)

    def ensure_excluded(self, pattern: str = ".ralph/") -> None:
        """Add ``pattern`` to ``.git/info/exclude`` unless a line already says it."""
        pattern = pattern.strip()
        if not pattern or "\n" in pattern:
            raise UsageError(f"{pattern!r}: not a single exclude pattern")
        path = self._git_path("info/exclude")
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        if pattern in (line.strip() for line in text.splitlines()):
            return
        if text and not text.endswith("\n"):
            text += "\n"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + pattern + "\n", encoding="utf-8")

    def head_sha(self) -> str:
        with self._lock:
            return str(self._repo.head.commit.hexsha)

    def head_message(self) -> str:
        """The HEAD commit's full message, without git's trailing newline."""
        with self._lock:
            message = self._repo.head.commit.message
        return _text(message).rstrip("\n")

    def recent_log(self, n: int = 10) -> str:
        """``<short sha> <subject>`` per line, newest first: the agent's view of history."""
        if n <= 0:
            return ""
        with self._lock:
            commits = list(self._repo.iter_commits(max_count=n))
            lines = [f"{c.hexsha[:7]} {_text(c.summary)}" for c in commits]
        return "\n".join(lines)

    def files_in_commit(self, sha: str) -> list[str]:
        """Every path the commit touched (a rename lists both names), sorted."""
        found = _run_git(
            self.root, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{sha}^{{commit}}"
        )
        if found.returncode != 0:
            raise GitError(f"{sha}: no such commit in {self.root}")
        hexsha = found.stdout.decode("ascii").strip()
        out = self._git(
            "diff-tree", "--root", "--no-commit-id", "-r", "-z", "--name-only", "--no-renames",
            hexsha,
        )  # fmt: skip
        return sorted(set(_split_z(out)))

    # -- diffs -----------------------------------------------------------------------------

    def diff(self) -> list[FileDiff]:
        """The working tree against HEAD, file by file, new untracked files as ``added``."""
        with self._snapshot_index() as env:
            base = ("diff", "--cached", *_DIFF_FLAGS)
            names = self._git(*base, "-z", "--name-status", "HEAD", env=env)
            counts = self._git(*base, "-z", "--numstat", "HEAD", env=env)
            patch = self._git(*base, "HEAD", env=env)
        return _assemble(names, counts, patch)

    def _patch_bytes(self) -> bytes:
        with self._snapshot_index() as env:
            return self._git("diff", "--cached", "--binary", *_DIFF_FLAGS, "HEAD", env=env)

    def diff_patch(self) -> str:
        """The whole change as one patch ``git apply`` accepts, binary files included.

        Bytes that are not UTF-8 come back as surrogate escapes, so
        ``text.encode("utf-8", "surrogateescape")`` is the exact patch (``save_patch`` does that).
        """
        return self._patch_bytes().decode("utf-8", errors="surrogateescape")

    def diffstat(self) -> str:
        with self._snapshot_index() as env:
            out = self._git("diff", "--cached", "--stat", *_DIFF_FLAGS, "HEAD", env=env)
        return out.decode("utf-8", errors="replace").rstrip("\n")

    def save_patch(self, dest: Path) -> Path | None:
        """Keep a change the loop is about to throw away; ``None`` when there is none."""
        data = self._patch_bytes()
        if not data:
            return None
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        return dest

    # -- changing the tree -----------------------------------------------------------------

    def commit_all(self, message: str) -> str:
        """Stage everything (``.gitignore`` honoured, ``.ralph/`` never) and commit it.

        The commit runs through the git binary so hooks and signing apply. If it fails the
        index is put back exactly as it was before, so a rejected commit leaves nothing staged
        that the user did not stage; files a failing hook itself rewrote stay rewritten.
        """
        if not message.strip():
            raise UsageError("commit message is empty")
        index = self._git_path("index")
        with tempfile.TemporaryDirectory(prefix="ralph-index-") as tmp:
            backup = Path(tmp) / "index"
            had_index = index.exists()
            if had_index:
                shutil.copy2(index, backup)
            try:
                self._stage_all(None)
                staged = _run_git(self.root, "diff", "--cached", "--quiet", "HEAD")
                if staged.returncode == 0:
                    raise GitError(f"nothing to commit in {self.root}: the tree matches HEAD")
                self._git("commit", "-q", "--cleanup=whitespace", "-F", "-", stdin=message.encode())
            except GitError:
                if had_index:
                    swap = index.with_name(index.name + ".ralph-restore")
                    shutil.copy2(backup, swap)
                    swap.replace(index)
                else:
                    self._git("read-tree", "HEAD")
                raise
        return self.head_sha()

    def restore_to_head(self, keep: Collection[str] = ()) -> None:
        """Throw away the working-tree change, except the files in ``keep``.

        Tracked files (staged or not) go back to HEAD; untracked, not-ignored files are removed
        and folders left empty go with them. ``keep`` (the PRD and progress log, which the human
        may have edited meanwhile) and ``.ralph/`` are not touched. Nested repositories and
        ignored files are left alone, as ``git clean`` without ``-x``/``-ff`` would.
        """
        kept = {self._normalise(p) for p in keep}
        self._git("reset", "-q")

        # Untracked files first: an untracked file may sit where HEAD has a folder.
        out = self._git("ls-files", "-z", "--others", "--exclude-standard")
        touched_dirs: set[Path] = set()
        for rel in _split_z(out):
            if rel.endswith("/") or _is_ralph(rel) or rel in kept:
                continue  # "sub/" is a nested repository
            target = self.root / rel
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
            touched_dirs.add(target.parent)
        out = self._git("ls-files", "-z", "--others", "--exclude-standard", "--directory")
        for rel in _split_z(out):
            if rel.endswith("/") and not _is_ralph(rel):
                _remove_empty_tree(self.root / rel)
                touched_dirs.add((self.root / rel).parent)
        for folder in touched_dirs:
            _prune_upwards(folder, self.root)

        out = self._git("diff", "-z", "--name-only", "--no-renames", "HEAD")
        changed = [p for p in _split_z(out) if p not in kept and not _is_ralph(p)]
        if changed:
            spec = "\0".join(changed).encode("utf-8", "surrogateescape")
            self._git(
                "--literal-pathspecs", "checkout", "-q", "HEAD",
                "--pathspec-from-file=-", "--pathspec-file-nul",
                stdin=spec,
            )  # fmt: skip


def _remove_empty_tree(folder: Path) -> None:
    """Remove ``folder`` and its subfolders bottom-up as far as they hold no files."""
    if not folder.is_dir() or folder.is_symlink():
        return
    for dirpath, _dirs, _files in os.walk(folder, topdown=False):
        with contextlib.suppress(OSError):
            Path(dirpath).rmdir()


def _prune_upwards(folder: Path, root: Path) -> None:
    while folder != root and root in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return  # not empty (or already gone with a parent we could not remove)
        folder = folder.parent


def _assemble(names: bytes, counts: bytes, patch: bytes) -> list[FileDiff]:
    """Join ``--name-status``, ``--numstat`` and the patch text of one diff, file by file."""
    entries: list[tuple[FileStatus, str, str | None]] = []
    fields = _split_z(names)
    i = 0
    while i < len(fields):
        code = fields[i]
        if code[0] in "RC":
            old, new = fields[i + 1], fields[i + 2]
            entries.append((_STATUS[code[0]], new, old if code[0] == "R" else None))
            i += 3
        else:
            entries.append((_STATUS.get(code[0], "modified"), fields[i + 1], None))
            i += 2

    stats: dict[str, tuple[int, int, bool]] = {}
    raw = counts.decode("utf-8", errors="surrogateescape").split("\0")
    j = 0
    while j < len(raw):
        record = raw[j]
        if not record:
            j += 1
            continue
        added, deleted, path = record.split("\t", 2)
        if not path:  # a rename: the two names follow as their own fields
            path = raw[j + 2]
            j += 3
        else:
            j += 1
        binary = added == "-"
        stats[path] = (0 if binary else int(added), 0 if binary else int(deleted), binary)

    chunks = _split_patch(patch.decode("utf-8", errors="replace"))
    if len(chunks) != len(entries):  # both come from one diff queue; guard anyway
        chunks = [""] * len(entries)
    result: list[FileDiff] = []
    for (status, new_path, old_path), chunk in zip(entries, chunks, strict=True):
        added_n, deleted_n, binary = stats.get(new_path, (0, 0, False))
        result.append(FileDiff(new_path, old_path, status, added_n, deleted_n, binary, chunk))
    return result


def _split_patch(text: str) -> list[str]:
    chunks: list[str] = []
    current: list[str] = []
    for line in text.splitlines(keepends=True):
        if line.startswith("diff --git ") and current:
            chunks.append("".join(current))
            current = []
        current.append(line)
    if current:
        chunks.append("".join(current))
    return chunks
