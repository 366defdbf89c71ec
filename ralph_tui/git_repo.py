"""The workspace's git repository, as the loop needs it.

Everything runs the ``git`` binary, so the user's hooks, signing and config apply to the story
commit exactly as they would on the command line. Diffs are taken through a throwaway copy of
the index (``GIT_INDEX_FILE``): the TUI can show new files next to edited ones without the
user's staging area ever changing under them.

Every git ralph-tui runs is hardened against a repository the agent may have tampered with
(without a sandbox it can write ``.git/``):
- the environment is built from an allow-list (``git_env``): no API key or token reaches a hook,
  a filter or anything else git may start;
- ``core.fsmonitor`` is off and ``core.hooksPath`` points nowhere, except for the story commit,
  whose hooks are the user's own (the engine restores ``.git/config`` and ``.git/hooks`` before
  it commits, see ``git_guard``);
- diffs use ``--no-textconv --no-ext-diff``, and the reads that may run while the agent works
  (diff, diffstat, patch, status) switch off every ``filter.<driver>`` the config defines;
- paths go through ``-z`` and are decoded with ``surrogateescape``, so a file name that is not
  UTF-8 round-trips to git unchanged (``display_path`` makes it printable).

All methods are synchronous; the engine calls them with ``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from ralph_tui.errors import GitError, UsageError
from ralph_tui.tempdirs import process_dir

RALPH_DIR = ".ralph"
# The only variables git gets from ralph-tui's environment: what it needs to find the user's
# config, identity, signing agent and locale. Nothing that could carry a secret.
_ENV_ALLOW = frozenset(
    {
        "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TERM", "TMPDIR",
        "XDG_CONFIG_HOME", "XDG_RUNTIME_DIR", "GNUPGHOME", "GPG_TTY", "SSH_AUTH_SOCK",
        "DISPLAY", "WAYLAND_DISPLAY", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM",
        "GIT_CONFIG_NOSYSTEM", "GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_AUTHOR_DATE",
        "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "GIT_COMMITTER_DATE",
    }
)  # fmt: skip
# Never step into a nested repository or submodule: its own .git/config (written by the agent)
# could name an fsmonitor, a filter or hooks that git would run there. ``-c`` settings reach
# the git processes git itself starts (GIT_CONFIG_PARAMETERS), so they hold there too.
_NO_SUBMODULES = (
    "-c", "submodule.recurse=false", "-c", "diff.ignoreSubmodules=all",
    "-c", "status.submoduleSummary=false", "-c", "fetch.recurseSubmodules=false",
    "-c", "diff.external=", "-c", "core.untrackedCache=false",
)  # fmt: skip
# Config that makes git start a program, switched off for every git ralph-tui runs.
_SAFE_CONFIG = ("-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null", *_NO_SUBMODULES)
# The story commit keeps the user's hooks (and signing), but never an fsmonitor.
_COMMIT_CONFIG = ("-c", "core.fsmonitor=false", *_NO_SUBMODULES)
GITLINK_MODE = "160000"
_DIFF_FLAGS = (
    "--no-color", "--no-ext-diff", "--no-textconv", "-M", "--src-prefix=a/", "--dst-prefix=b/",
)  # fmt: skip

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


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for every git ralph-tui runs: an allow-list of ``os.environ``, plus
    ``extra``. Hooks, signing programs and filters started by git inherit it, so it holds no
    secret and no variable that would point git at another repository or index."""
    env = {k: v for k, v in os.environ.items() if k in _ENV_ALLOW or k.startswith("LC_")}
    env["GIT_NO_REPLACE_OBJECTS"] = "1"  # refs/replace/ could disguise what HEAD holds
    if extra:
        env.update(extra)
    return env


def display_path(path: str) -> str:
    """A git path as printable text: bytes that are not UTF-8 shown as ``\\xff`` escapes."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


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
    config: tuple[str, ...] = _SAFE_CONFIG,
    pin_work_tree: bool = True,
) -> subprocess.CompletedProcess[bytes]:
    """``pin_work_tree``: the work tree is ``cwd`` whatever ``core.worktree`` says (the agent
    could point it elsewhere, and ``restore_to_head`` deletes untracked files there)."""
    pinned = (f"--work-tree={cwd}",) if pin_work_tree else ()
    try:
        return subprocess.run(
            ["git", *pinned, *config, *args],
            cwd=cwd,
            env=git_env(env),
            input=stdin if stdin is not None else b"",
            capture_output=True,
            check=False,
        )
    except FileNotFoundError:
        raise GitError("git: command not found (install git or put it on PATH)") from None


def git_output(
    cwd: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
    config: tuple[str, ...] = _SAFE_CONFIG,
    pin_work_tree: bool = True,
) -> bytes:
    """``_run_git``'s stdout; a failure is a ``GitError`` naming the verb, the folder and git's
    own words (the one shape every git error of ralph-tui takes)."""
    proc = _run_git(cwd, *args, env=env, stdin=stdin, config=config, pin_work_tree=pin_work_tree)
    if proc.returncode != 0:
        verb = next((a for a in args if not a.startswith("-")), "git")
        raise GitError(f"git {verb} failed in {cwd}: {_git_words(proc)}")
    return proc.stdout


def new_gitlinks(cwd: Path, env: Mapping[str, str] | None = None, base: str = "HEAD") -> list[str]:
    """Gitlinks (nested repositories, mode 160000) in the index that ``base`` does not have."""
    out = git_output(cwd, "ls-files", "-z", "-s", env=env)
    staged = []
    for record in _split_z(out):
        meta, _, path = record.partition("\t")
        if meta.startswith(GITLINK_MODE + " "):
            staged.append(path)
    if not staged:
        return []
    old = git_output(cwd, "ls-tree", "-r", "-z", "--full-tree", base)
    known = {rec.partition("\t")[2] for rec in _split_z(old) if rec.startswith(GITLINK_MODE + " ")}
    return [path for path in staged if path not in known]


def untracked_repositories(
    cwd: Path, env: Mapping[str, str] | None = None, config: tuple[str, ...] = _SAFE_CONFIG
) -> list[str]:
    """Untracked, not ignored folders holding a ``.git`` (git lists them as ``sub/`` and never
    descends into them)."""
    out = git_output(
        cwd, "ls-files", "-z", "--others", "--exclude-standard", env=env, config=config
    )
    return [p for p in _split_z(out) if p.endswith("/") and not _is_ralph(p)]


def add_all(
    cwd: Path, env: Mapping[str, str] | None = None, config: tuple[str, ...] = _SAFE_CONFIG
) -> None:
    """``git add -A``, leaving out every nested repository the agent made: ``git add`` would
    record it as a gitlink, or fail outright on one with no commit checked out."""
    nested = untracked_repositories(cwd, env, config)
    excluded = [f":(top,exclude,literal){path}" for path in nested]
    git_output(
        cwd,
        "add",
        "-A",
        "--",
        *([":(top)."] if excluded else []),
        *excluded,
        env=env,
        config=config,
    )


def drop_new_gitlinks(cwd: Path, env: Mapping[str, str] | None, base: str = "HEAD") -> list[str]:
    """Unstage every new gitlink ``git add -A`` made of a nested repository the agent created:
    a change never carries one (``nested_repositories`` tells the agent why)."""
    found = new_gitlinks(cwd, env, base)
    if found:
        spec = "\0".join(found).encode("utf-8", "surrogateescape")
        git_output(
            cwd, "--literal-pathspecs", "rm", "-q", "--cached", "--ignore-unmatch",
            "--pathspec-from-file=-", "--pathspec-file-nul", env=env, stdin=spec,
        )  # fmt: skip
    return found


def nested_repositories(cwd: Path, base: str = "HEAD") -> list[str]:
    """Nested repositories in the change: untracked, not ignored folders holding a ``.git``
    (git lists them as ``sub/`` and never descends), and gitlinks staged that ``base`` lacks."""
    found = {p for p in untracked_repositories(cwd) if (cwd / p).exists()}
    found |= {p + "/" for p in new_gitlinks(cwd, None, base)}
    return sorted(found)


def _split_z(data: bytes) -> list[str]:
    return [p for p in data.decode("utf-8", errors="surrogateescape").split("\0") if p]


def _is_ralph(path: str) -> bool:
    return path == RALPH_DIR or path.startswith(RALPH_DIR + "/")


class GitRepo:
    def __init__(self, root: Path) -> None:
        """Use ``GitRepo.open``; this assumes ``root`` is already a checked work tree top level."""
        self.root = root
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
        top = _run_git(resolved, "rev-parse", "--show-toplevel", pin_work_tree=False)
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
        head = _run_git(
            resolved, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", pin_work_tree=False
        )
        if head.returncode != 0:
            raise UsageError(
                f"{path}: the repository has no commits yet; make a first commit "
                "(git add -A && git commit -m 'initial')"
            )
        return cls(resolved)

    # -- plumbing --------------------------------------------------------------------------

    def _git(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
        config: tuple[str, ...] = _SAFE_CONFIG,
    ) -> bytes:
        return git_output(self.root, *args, env=env, stdin=stdin, config=config)

    def _no_filters(self) -> tuple[str, ...]:
        """``-c`` options that switch off every ``filter.<driver>`` the config defines.

        For the reads that may run while the agent works: it can define a filter in
        ``.git/config`` and name it in ``.gitattributes``, and ``git add`` would run it.
        """
        proc = _run_git(self.root, "config", "-z", "--get-regexp", r"^filter\.")
        names: set[str] = set()
        for record in proc.stdout.decode("utf-8", "surrogateescape").split("\0"):
            key = record.split("\n", 1)[0]
            if key.startswith("filter.") and key.count(".") >= 2:
                names.add(key[len("filter.") : key.rindex(".")])
        out = list(_SAFE_CONFIG)
        for name in sorted(names):
            for var in ("clean", "smudge", "process"):
                out += ["-c", f"filter.{name}.{var}="]
            out += ["-c", f"filter.{name}.required=false"]
        return tuple(out)

    def git_path(self, name: str) -> Path:
        """Where git keeps ``name`` (``config``, ``hooks``), worktrees included."""
        return self._git_path(name)

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
        config = self._no_filters()
        with tempfile.TemporaryDirectory(dir=process_dir(), prefix="ralph-index-") as tmp:
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            if real.exists():
                shutil.copyfile(real, env["GIT_INDEX_FILE"])
            else:
                self._git("read-tree", "HEAD", env=env)
            self._stage_all(env, config)
            yield env

    def _stage_all(
        self, env: Mapping[str, str] | None, config: tuple[str, ...] = _SAFE_CONFIG
    ) -> None:
        # `git add -A -- . :(exclude).ralph` fails once .ralph/ is itself ignored (git refuses
        # pathspecs that name ignored paths), so stage everything, then unstage .ralph/ if the
        # exclude line is missing and it slipped in.
        add_all(self.root, env, config)
        self._git(
            "rm", "-r", "-q", "--cached", "--ignore-unmatch", "--", RALPH_DIR,
            env=env, config=config,
        )  # fmt: skip
        drop_new_gitlinks(self.root, env)

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
        out = self._git(
            "status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames",
            "--ignore-submodules=all", config=self._no_filters(),
        )  # fmt: skip
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
        text = path.read_text(encoding="utf-8") if path.is_file() and not path.is_symlink() else ""
        if pattern in (line.strip() for line in text.splitlines()):
            return
        if text and not text.endswith("\n"):
            text += "\n"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".ralph-tmp")
        tmp.write_text(text + pattern + "\n", encoding="utf-8")
        tmp.replace(path)  # a planted symlink is replaced, never written through

    def head_sha(self) -> str:
        return self._git("rev-parse", "--verify", "HEAD^{commit}").decode("ascii").strip()

    def head_branch(self) -> str | None:
        """The ref HEAD points at (``refs/heads/main``), ``None`` when detached."""
        proc = _run_git(self.root, "symbolic-ref", "-q", "HEAD")
        return proc.stdout.decode("utf-8", "surrogateescape").strip() or None

    def ref_exists(self, ref: str) -> bool:
        return _run_git(self.root, "show-ref", "--verify", "--quiet", ref).returncode == 0

    def is_valid_branch_name(self, name: str) -> bool:
        if not name or name.startswith("-") or "\0" in name:
            return False
        return _run_git(self.root, "check-ref-format", "--branch", name).returncode == 0

    def checkout_branch(self, name: str, *, create: bool) -> None:
        """Check out branch ``name`` (new from HEAD when ``create``); changes travel along."""
        if create:
            self._git("checkout", "-q", "-b", name)
        else:
            self._git("checkout", "-q", name, "--")

    def head_message(self) -> str:
        """The HEAD commit's full message, without git's trailing newline."""
        out = self._git("log", "-1", "--no-show-signature", "--format=%B", "HEAD")
        return out.decode("utf-8", errors="replace").rstrip("\n")

    def recent_log(self, n: int = 10) -> str:
        """``<short sha> <subject>`` per line, newest first: the agent's view of history."""
        if n <= 0:
            return ""
        out = self._git("log", f"-{n}", "--no-show-signature", "--format=%h %s", "HEAD")
        return out.decode("utf-8", errors="replace").rstrip("\n")

    def subjects_since(self, base: str) -> list[str]:
        """Subjects of the commits on HEAD that ``base`` does not have, newest first."""
        out = self._git("log", "--no-show-signature", "--format=%s", f"{base}..HEAD", "--")
        return out.decode("utf-8", errors="replace").splitlines()

    def commits_between(self, base: str, tip: str) -> list[str]:
        out = self._git("rev-list", f"{base}..{tip}", "--")
        return out.decode("ascii").split()

    def is_ancestor(self, ancestor: str, descendant: str = "HEAD") -> bool:
        """True when ``ancestor`` is a commit reachable from ``descendant`` (or the same one)."""
        proc = _run_git(
            self.root, "merge-base", "--is-ancestor", "--end-of-options", ancestor, descendant
        )
        return proc.returncode == 0

    def show_file(self, rev: str, path: Path) -> bytes | None:
        """A file's bytes at ``rev`` (no textconv, no filters), ``None`` if it is not there."""
        rel = path.relative_to(self.root).as_posix() if path.is_absolute() else path.as_posix()
        proc = _run_git(self.root, "cat-file", "blob", f"{rev}:{rel}")
        return proc.stdout if proc.returncode == 0 else None

    def move_head(self, sha: str, branch: str | None) -> None:
        """Put HEAD back on ``branch`` at ``sha`` without touching the index or the files.

        ``reset --soft``: whatever the agent committed or reset stays in the working tree as
        the iteration's change, so the human sees all of it in the diff.
        """
        if branch is not None and self.head_branch() != branch:
            self._git("symbolic-ref", "HEAD", branch)
        elif branch is None and self.head_branch() is not None:
            self._git("update-ref", "--no-deref", "HEAD", sha)
        self._git("reset", "-q", "--soft", sha)

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

    def diff(self, rev: str = "HEAD") -> list[FileDiff]:
        """The working tree against ``rev``, file by file, new untracked files as ``added``."""
        with self._snapshot_index() as env:
            base = ("diff", "--cached", *_DIFF_FLAGS)
            names = self._git(*base, "-z", "--name-status", rev, env=env)
            counts = self._git(*base, "-z", "--numstat", rev, env=env)
            patch = self._git(*base, rev, env=env)
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

    def commit_all(self, message: str, exclude: Collection[str] = ()) -> str:
        """Stage everything (``.gitignore`` honoured, ``.ralph/`` and ``exclude`` never) and
        commit it.

        The commit runs through the git binary so hooks and signing apply. If it fails the
        index is put back exactly as it was before, so a rejected commit leaves nothing staged
        that the user did not stage; files a failing hook itself rewrote stay rewritten.
        """
        if not message.strip():
            raise UsageError("commit message is empty")
        index = self._git_path("index")
        with tempfile.TemporaryDirectory(dir=process_dir(), prefix="ralph-index-") as tmp:
            backup = Path(tmp) / "index"
            had_index = index.exists()
            if had_index:
                shutil.copy2(index, backup)
            try:
                self._stage_all(None, _COMMIT_CONFIG)
                if exclude:
                    spec = "\0".join(self._normalise(p) for p in exclude)
                    self._git(
                        "--literal-pathspecs", "reset", "-q", "HEAD",
                        "--pathspec-from-file=-", "--pathspec-file-nul",
                        stdin=spec.encode("utf-8", "surrogateescape"), config=_COMMIT_CONFIG,
                    )  # fmt: skip
                staged = _run_git(self.root, "diff", "--cached", "--quiet", "HEAD")
                if staged.returncode == 0:
                    raise GitError(f"nothing to commit in {self.root}: the tree matches HEAD")
                self._git(
                    "commit", "-q", "--cleanup=whitespace", "-F", "-",
                    stdin=message.encode(), config=_COMMIT_CONFIG,
                )  # fmt: skip
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
