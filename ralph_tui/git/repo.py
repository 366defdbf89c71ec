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
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from ralph_tui.errors import GitError, UsageError
from ralph_tui.safety.tempdirs import process_dir

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
SAFE_CONFIG = ("-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null", *_NO_SUBMODULES)
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


def git_words(proc: subprocess.CompletedProcess[bytes]) -> str:
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


def run_git(
    cwd: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
    config: tuple[str, ...] = SAFE_CONFIG,
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
    config: tuple[str, ...] = SAFE_CONFIG,
    pin_work_tree: bool = True,
) -> bytes:
    """``run_git``'s stdout; a failure is a ``GitError`` naming the verb, the folder and git's
    own words (the one shape every git error of ralph-tui takes)."""
    proc = run_git(cwd, *args, env=env, stdin=stdin, config=config, pin_work_tree=pin_work_tree)
    if proc.returncode != 0:
        verb = next((a for a in args if not a.startswith("-")), "git")
        raise GitError(f"git {verb} failed in {cwd}: {git_words(proc)}")
    return proc.stdout


def code_tree(root: Path, tree_of: str, drop: Sequence[str] = (), patch: bytes = b"") -> str | None:
    """The tree of ``tree_of`` with ``patch`` applied and the ``drop`` paths left out: what the
    gates saw of a change (the PRD and progress log dropped), so equal ids mean the same code.
    One computation for a worktree, the driver's scratch and a Ray node, so the ids compare.
    ``None`` when the patch does not apply cleanly. Objects only: the index is a temp file and
    nothing but tree objects is written (no work tree needed: it works in a bare scratch)."""
    with tempfile.TemporaryDirectory(dir=process_dir(), prefix="ralph-tree-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}

        def git(*args: str, stdin: bytes | None = None) -> bytes:
            return git_output(root, *args, env=env, stdin=stdin, pin_work_tree=False)

        git("read-tree", tree_of)
        if patch:
            applied = run_git(
                root, "apply", "--cached", "--binary", env=env, stdin=patch, pin_work_tree=False
            )
            if applied.returncode != 0:
                return None
        if drop:  # mode 0 removes the entry (--force-remove would want a work tree)
            gone = b"".join(b"0 " + b"0" * 40 + b"\t" + p.encode() + b"\0" for p in drop)
            git("update-index", "-z", "--index-info", stdin=gone)
        return git("write-tree").decode().strip()


def new_gitlinks(cwd: Path, env: Mapping[str, str] | None = None, base: str = "HEAD") -> list[str]:
    """Gitlinks (nested repositories, mode 160000) in the index that ``base`` does not have."""
    out = git_output(cwd, "ls-files", "-z", "-s", env=env)
    staged = []
    for record in split_z(out):
        meta, _, path = record.partition("\t")
        if meta.startswith(GITLINK_MODE + " "):
            staged.append(path)
    if not staged:
        return []
    old = git_output(cwd, "ls-tree", "-r", "-z", "--full-tree", base)
    known = {rec.partition("\t")[2] for rec in split_z(old) if rec.startswith(GITLINK_MODE + " ")}
    return [path for path in staged if path not in known]


def untracked_repositories(
    cwd: Path, env: Mapping[str, str] | None = None, config: tuple[str, ...] = SAFE_CONFIG
) -> list[str]:
    """Untracked, not ignored folders holding a ``.git`` (git lists them as ``sub/`` and never
    descends into them)."""
    out = git_output(
        cwd, "ls-files", "-z", "--others", "--exclude-standard", env=env, config=config
    )
    return [p for p in split_z(out) if p.endswith("/") and not _is_ralph(p)]


def add_all(
    cwd: Path, env: Mapping[str, str] | None = None, config: tuple[str, ...] = SAFE_CONFIG
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


def split_z(data: bytes) -> list[str]:
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
        top = run_git(resolved, "rev-parse", "--show-toplevel", pin_work_tree=False)
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
        head = run_git(
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
        config: tuple[str, ...] = SAFE_CONFIG,
    ) -> bytes:
        return git_output(self.root, *args, env=env, stdin=stdin, config=config)

    def _no_filters(self) -> tuple[str, ...]:
        """``-c`` options that switch off every ``filter.<driver>`` the config defines.

        For the reads that may run while the agent works: it can define a filter in
        ``.git/config`` and name it in ``.gitattributes``, and ``git add`` would run it.
        """
        proc = run_git(self.root, "config", "-z", "--get-regexp", r"^filter\.")
        names: set[str] = set()
        for record in proc.stdout.decode("utf-8", "surrogateescape").split("\0"):
            key = record.split("\n", 1)[0]
            if key.startswith("filter.") and key.count(".") >= 2:
                names.add(key[len("filter.") : key.rindex(".")])
        out = list(SAFE_CONFIG)
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
        self, env: Mapping[str, str] | None, config: tuple[str, ...] = SAFE_CONFIG
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
        for entry in split_z(out):
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
        proc = run_git(self.root, "symbolic-ref", "-q", "HEAD")
        return proc.stdout.decode("utf-8", "surrogateescape").strip() or None

    def ref_exists(self, ref: str) -> bool:
        return run_git(self.root, "show-ref", "--verify", "--quiet", ref).returncode == 0

    def is_valid_branch_name(self, name: str) -> bool:
        if not name or name.startswith("-") or "\0" in name:
            return False
        return run_git(self.root, "check-ref-format", "--branch", name).returncode == 0

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
        proc = run_git(
            self.root, "merge-base", "--is-ancestor", "--end-of-options", ancestor, descendant
        )
        return proc.returncode == 0

    def show_file(self, rev: str, path: Path) -> bytes | None:
        """A file's bytes at ``rev`` (no textconv, no filters), ``None`` if it is not there."""
        rel = path.relative_to(self.root).as_posix() if path.is_absolute() else path.as_posix()
        proc = run_git(self.root, "cat-file", "blob", f"{rev}:{rel}")
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
        found = run_git(
            self.root, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{sha}^{{commit}}"
        )
        if found.returncode != 0:
            raise GitError(f"{sha}: no such commit in {self.root}")
        hexsha = found.stdout.decode("ascii").strip()
        out = self._git(
            "diff-tree", "--root", "--no-commit-id", "-r", "-z", "--name-only", "--no-renames",
            hexsha,
        )  # fmt: skip
        return sorted(set(split_z(out)))

    # -- diffs -----------------------------------------------------------------------------

    def diff(self, rev: str = "HEAD") -> list[FileDiff]:
        """The working tree against ``rev``, file by file, new untracked files as ``added``."""
        with self._snapshot_index() as env:
            return describe_change(self.root, ("--cached", rev), env)

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
            return diffstat_of(describe_change(self.root, ("--cached", "HEAD"), env))

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
                staged = run_git(self.root, "diff", "--cached", "--quiet", "HEAD")
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

    def commit_paths(self, paths: Collection[str], message: str) -> str:
        """Commit only ``paths`` as the working tree has them (``git commit --only``): what
        else is staged or changed stays as it was. Hooks and signing apply, as for a story.
        A path git does not track yet (a PRD a tracker sync created) is added first."""
        spec = [self._normalise(p) for p in paths]
        self._git("--literal-pathspecs", "add", "--intent-to-add", "--", *spec)
        self._git(
            "--literal-pathspecs", "commit", "-q", "--cleanup=whitespace", "-F", "-", "--only",
            "--", *spec, stdin=message.encode(), config=_COMMIT_CONFIG,
        )  # fmt: skip
        return self.head_sha()

    def push(self, remote: str, branch: str) -> None:
        """Push ``branch`` to the same name on ``remote`` (the pull request's head); the user's
        pre-push hook applies, as their hooks do for a story's commit."""
        ref = f"refs/heads/{branch}"
        self._git("push", "--quiet", "--", remote, f"{ref}:{ref}", config=_COMMIT_CONFIG)

    def reverse_apply(self, patch: bytes) -> None:
        """Take ``patch`` out of the working tree (``git apply -R``; the index is not touched).
        A reviewer's dropped hunk (``pr_review.drop_parts``)."""
        self._git("apply", "-R", "--whitespace=nowarn", "-", stdin=patch)

    def restore_paths(self, paths: Collection[str], rev: str = "HEAD") -> None:
        """Put ``paths`` back as ``rev`` has them: a file it has is checked out (index and
        tree), one it has not is removed (a reviewer's dropped file, ``pr_review``)."""
        for rel in paths:
            rel = self._normalise(rel)
            if _is_ralph(rel):
                continue
            in_head = (
                run_git(self.root, "cat-file", "-e", f"{rev}:{rel}", config=SAFE_CONFIG).returncode
                == 0
            )
            if in_head:
                self._git("--literal-pathspecs", "checkout", "-q", rev, "--", rel)
                continue
            self._git("--literal-pathspecs", "rm", "-q", "--cached", "--ignore-unmatch", "--", rel)
            target = self.root / rel
            if target.is_symlink() or target.is_file():
                target.unlink()
                _prune_upwards(target.parent, self.root)

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
        for rel in split_z(out):
            if rel.endswith("/") or _is_ralph(rel) or rel in kept:
                continue  # "sub/" is a nested repository
            target = self.root / rel
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
            touched_dirs.add(target.parent)
        out = self._git("ls-files", "-z", "--others", "--exclude-standard", "--directory")
        for rel in split_z(out):
            if rel.endswith("/") and not _is_ralph(rel):
                _remove_empty_tree(self.root / rel)
                touched_dirs.add((self.root / rel).parent)
        for folder in touched_dirs:
            _prune_upwards(folder, self.root)

        out = self._git("diff", "-z", "--name-only", "--no-renames", "HEAD")
        changed = [p for p in split_z(out) if p not in kept and not _is_ralph(p)]
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


_ZERO_SHA = "0" * 40
_SNIFF_BYTES = 8000  # what git itself looks at to call a blob binary
_SYMLINK_MODE = "120000"
# Magic numbers for naming a binary file's kind (what it is, not just "binary").
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG", "PNG image"), (b"\xff\xd8\xff", "JPEG image"), (b"GIF8", "GIF image"),
    (b"%PDF", "PDF document"), (b"PK\x03\x04", "zip archive"), (b"\x1f\x8b", "gzip data"),
    (b"\x7fELF", "ELF executable"), (b"SQLite format 3", "SQLite database"),
    (b"\xca\xfe\xba\xbe", "Mach-O or Java class"), (b"MZ", "Windows executable"),
    (b"\x00asm", "WebAssembly module"), (b"BZh", "bzip2 data"), (b"\xfd7zXZ", "xz data"),
)  # fmt: skip


@dataclass(frozen=True)
class _RawEntry:
    status: FileStatus
    path: str
    old_path: str | None
    old_mode: str
    new_mode: str
    old_sha: str
    new_sha: str


def _raw_entries(out: bytes) -> list[_RawEntry]:
    fields = split_z(out)
    entries: list[_RawEntry] = []
    i = 0
    while i < len(fields):
        old_mode, new_mode, old_sha, new_sha, code = fields[i].lstrip(":").split()[:5]
        if code[0] in "RC":
            old, new = fields[i + 1], fields[i + 2]
            status = _STATUS[code[0]]
            entries.append(
                _RawEntry(status, new, old if code[0] == "R" else None, old_mode, new_mode,
                          old_sha, new_sha)
            )  # fmt: skip
            i += 3
        else:
            status = _STATUS.get(code[0], "modified")
            entries.append(
                _RawEntry(status, fields[i + 1], None, old_mode, new_mode, old_sha, new_sha)
            )
            i += 2
    return entries


def _blob_head(cwd: Path, sha: str, env: Mapping[str, str] | None) -> tuple[bytes, int]:
    """The first bytes of a blob (enough to sniff it) and its size, never reading it whole."""
    size = int(git_output(cwd, "cat-file", "-s", sha, env=env).strip() or 0)
    proc = subprocess.Popen(
        ["git", *SAFE_CONFIG, "cat-file", "blob", sha],
        cwd=cwd, env=git_env(env), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    with proc.stdout:
        head = proc.stdout.read(_SNIFF_BYTES)
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    return head, size


def binary_kind(head: bytes) -> str | None:
    """``None`` for text (git's own rule: no NUL in the first 8000 bytes), else what it is."""
    if b"\0" not in head[:_SNIFF_BYTES]:
        return None
    return next((kind for magic, kind in _MAGIC if head.startswith(magic)), "binary data")


def _size(n: int) -> str:
    return (
        f"{n} bytes" if n < 10_240 else f"{n / 1024:.0f} KiB" if n < 10 << 20 else f"{n >> 20} MiB"
    )


def _notes(entry: _RawEntry, link_targets: Mapping[str, str], root: Path) -> list[str]:
    """What a reviewer must see that a text diff would leave implicit."""
    notes: list[str] = []
    if entry.old_mode != entry.new_mode and "000000" not in (entry.old_mode, entry.new_mode):
        notes.append(f"mode {entry.old_mode} -> {entry.new_mode}" + _mode_words(entry.new_mode))
    elif entry.status == "added" and entry.new_mode == "100755":
        notes.append("new executable file (mode 100755)")
    if entry.new_mode == _SYMLINK_MODE and entry.path in link_targets:
        target = link_targets[entry.path]
        where = (root / PurePosixPath(entry.path).parent / target).resolve()
        outside = Path(target).is_absolute() or not where.is_relative_to(root.resolve())
        notes.append(
            f"symlink -> {target}" + (" (points OUTSIDE the repository)" if outside else "")
        )
    if GITLINK_MODE in (entry.old_mode, entry.new_mode):
        notes.append("submodule / nested repository (a gitlink: only a commit id lands)")
    return notes


def _mode_words(mode: str) -> str:
    return {
        "100755": " (made executable)", "100644": " (no longer executable)",
        _SYMLINK_MODE: " (became a symlink)", GITLINK_MODE: " (became a submodule)",
    }.get(mode, "")  # fmt: skip


def numstat_paths(output: bytes) -> list[str]:
    """The paths ``git apply --numstat -z`` (or ``diff --numstat -z``) lists: a renamed file by
    its new name. Bytes that are not UTF-8 come back as surrogate escapes, like every path here.
    """
    fields = output.decode("utf-8", "surrogateescape").split("\0")
    paths: list[str] = []
    i = 0
    while i < len(fields):
        record = fields[i]
        i += 1
        parts = record.split("\t", 2)
        if len(parts) != 3:  # not a numstat record: nothing to name
            continue
        path = parts[2]
        if not path:  # a rename as ``added\tdeleted\t\0old\0new``
            path = fields[i + 1] if i + 1 < len(fields) else ""
            i += 2
        if path:
            paths.append(path)
    return paths


def describe_change(
    cwd: Path, sides: tuple[str, ...], env: Mapping[str, str] | None = None
) -> list[FileDiff]:
    """The change between ``sides`` (``("--cached", rev)`` or two commits) as the reviewer must
    see it, whatever the repository says about its files.

    Text is diffed as text (``--text``: a ``-diff`` or ``binary`` attribute, a textconv or an
    external diff in the agent's ``.gitattributes`` or config cannot turn code into a blob);
    a file is binary only by its bytes (a NUL in the first 8000, git's own rule), and is then
    named with its kind and sizes. Mode changes, symlink targets and gitlinks get a note line
    (``! ...``) above the file's patch.
    """
    base = ("diff", *_DIFF_FLAGS, *sides)
    entries = _raw_entries(git_output(cwd, *base, "-z", "--raw", "--no-abbrev", env=env))
    binary: dict[str, str] = {}
    sizes: dict[str, tuple[int, int]] = {}
    link_targets: dict[str, str] = {}
    for entry in entries:
        if GITLINK_MODE in (entry.old_mode, entry.new_mode):
            continue
        heads = {}
        for side, sha in (("old", entry.old_sha), ("new", entry.new_sha)):
            if sha != _ZERO_SHA:
                heads[side] = _blob_head(cwd, sha, env)
        if entry.new_mode == _SYMLINK_MODE and "new" in heads:
            link_targets[entry.path] = heads["new"][0].decode("utf-8", "backslashreplace")
        kinds = [binary_kind(head) for head, _ in heads.values()]
        kind = next((k for k in kinds if k is not None), None)
        if kind is not None:
            binary[entry.path] = kind
            sizes[entry.path] = (heads.get("old", (b"", 0))[1], heads.get("new", (b"", 0))[1])
    text_paths = [e for e in entries if e.path not in binary]
    stats: dict[str, tuple[int, int]] = {}
    chunks: dict[str, str] = {}
    if text_paths:
        spec = [f":(top,literal){p}" for e in text_paths for p in {e.path, e.old_path} if p]
        patch = git_output(cwd, *base, "--text", "--", *spec, env=env)
        pieces = _split_patch(patch.decode("utf-8", errors="replace"))
        if len(pieces) == len(text_paths):  # one diff queue: the same order
            chunks = {e.path: piece for e, piece in zip(text_paths, pieces, strict=True)}
        # counted from the patch: --numstat keeps calling a "-diff" file binary, --text or not
        stats = {path: _count_lines(piece) for path, piece in chunks.items()}
    result: list[FileDiff] = []
    for entry in entries:
        notes = "".join(f"! {note}\n" for note in _notes(entry, link_targets, cwd))
        if entry.path in binary:
            old_size, new_size = sizes[entry.path]
            sized = (
                f"{_size(new_size)}" if entry.status == "added"
                else f"{_size(old_size)}, deleted" if entry.status == "deleted"
                else f"{_size(old_size)} -> {_size(new_size)}"
            )  # fmt: skip
            text = f"{notes}Binary file {display_path(entry.path)}: {binary[entry.path]}, {sized}\n"
            result.append(FileDiff(entry.path, entry.old_path, entry.status, 0, 0, True, text))
            continue
        added_n, deleted_n = stats.get(entry.path, (0, 0))
        chunk = notes + chunks.get(entry.path, "")
        result.append(
            FileDiff(entry.path, entry.old_path, entry.status, added_n, deleted_n, False, chunk)
        )
    return result


def _count_lines(patch: str) -> tuple[int, int]:
    added = deleted = 0
    in_hunk = False
    for line in patch.splitlines():
        if line.startswith("@@"):
            in_hunk = True
        elif in_hunk and line.startswith("+"):
            added += 1
        elif in_hunk and line.startswith("-"):
            deleted += 1
        elif line.startswith("diff --git "):
            in_hunk = False
    return added, deleted


def diffstat_of(files: list[FileDiff]) -> str:
    """A ``git diff --stat``-like summary of ``describe_change``: text counted as text,
    binaries named with kind and size, notes (modes, symlinks) on their own line."""
    if not files:
        return ""
    width = min(max(len(display_path(f.path)) for f in files), 60)
    lines = []
    for f in files:
        name = display_path(f.path)
        label = f"{name:<{width}}" if len(name) <= width else "..." + name[-(width - 3) :]
        if f.binary:
            first = next(ln for ln in f.patch.splitlines() if ln.startswith("Binary file"))
            lines.append(f" {label} | {first.split(': ', 1)[1]}")
        else:
            total = f.additions + f.deletions
            bar = "+" * min(f.additions, 40) + "-" * min(f.deletions, max(0, 40 - f.additions))
            lines.append(f" {label} | {total} {bar}".rstrip())
        lines += [f"   {ln}" for ln in f.patch.splitlines() if ln.startswith("! ")]
    added = sum(f.additions for f in files)
    deleted = sum(f.deletions for f in files)
    changed = len(files)
    lines.append(
        f" {changed} file{'s' if changed != 1 else ''} changed, "
        f"{added} insertion{'s' if added != 1 else ''}(+), "
        f"{deleted} deletion{'s' if deleted != 1 else ''}(-)"
    )
    return "\n".join(lines)


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
