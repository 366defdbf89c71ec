"""Git worktrees for parallel workers: ``.ralph/worktrees/<story>`` on branch ``ralph/<story>``.

Each worktree has a metadata file next to it (``<name>.json``: story, branch, base commit),
written *before* the worktree is added, so a restart after kill -9 always knows what to save
and remove (``WorktreeManager.recover``). Git runs with hooks and fsmonitor switched off, as
everywhere else ralph-tui runs git on a tree the agent could have touched.

A change is always "the worktree's files (untracked included, ``.ralph/`` never) against the
base commit", whatever the agent did with git inside the worktree; the PRD and the progress log
are kept as they were at the base (agents see them read-only).
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ralph_tui.errors import GitError
from ralph_tui.git.repo import (
    RALPH_DIR,
    FileDiff,
    GitRepo,
    add_all,
    code_tree,
    describe_change,
    diffstat_of,
    drop_new_gitlinks,
    git_output,
    git_words,
    run_git,
)
from ralph_tui.safety.names import safe_name
from ralph_tui.safety.tempdirs import process_dir

_SHA = re.compile(r"^[0-9a-f]{40}$")
_DIFF = ("--no-color", "--no-ext-diff", "--no-textconv", "--src-prefix=a/", "--dst-prefix=b/")
WIP_MESSAGE = "ralph: work in progress on Task #{story}"


def _git(
    cwd: Path, *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None
) -> bytes:
    return git_output(cwd, *args, stdin=stdin, env=env)


# a speculative rebase's answer when the change has nothing of its own on top of ``onto``
HOLLOW = "(the change is already there whole: nothing of its own on top)"


def branch_name(story_id: str) -> str:
    return f"ralph/{safe_name(story_id)}"


@dataclass
class Worktree:
    story_id: str
    root: Path
    branch: str
    base: str  # the commit the change applies to
    bookkeeping: Sequence[str] = field(default=())
    commit: str | None = None  # the change as one commit on ``base`` (None: not snapshotted)
    # the last snapshot's answer, for (base, commit): asked again with nothing changed, it holds
    _last: tuple[tuple[str, str | None], tuple[str, bytes, str]] | None = None

    @contextlib.contextmanager
    def _whole_tree_index(self) -> Iterator[dict[str, str]]:
        """A temporary index holding the worktree's files, ``.ralph/`` out, bookkeeping at base."""
        with tempfile.TemporaryDirectory(dir=process_dir(), prefix="ralph-wt-index-") as tmp:
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            _git(self.root, "read-tree", "HEAD", env=env)
            add_all(self.root, env)
            _git(
                self.root, "rm", "-r", "-q", "--cached", "--ignore-unmatch", "--", RALPH_DIR,
                env=env,
            )  # fmt: skip
            drop_new_gitlinks(self.root, env, self.base)
            yield env

    def _bookkeeping_to_base(self, env: dict[str, str], notes: list[str]) -> None:
        for rel in self.bookkeeping:
            changed = run_git(
                self.root, "diff", "--cached", "--quiet", self.base, "--", rel, env=env
            )
            if changed.returncode == 0:
                continue
            notes.append(
                f"{self.root / rel}: the agent changed it; the PRD and progress log are "
                "read-only in a worker, the change was dropped"
            )
            if run_git(self.root, "cat-file", "-e", f"{self.base}:{rel}").returncode == 0:
                _git(self.root, "reset", "-q", self.base, "--", rel, env=env)
            else:
                _git(self.root, "rm", "-q", "--cached", "--ignore-unmatch", "--", rel, env=env)

    def snapshot(self, notes: list[str]) -> tuple[str, bytes, str]:
        """Commit the change on the branch (one commit on ``base``); (commit, patch, diffstat)."""
        if self._last is not None and self._last[0] == (self.base, self.commit):
            clean = _git(
                self.root, "status", "--porcelain", "-z", "--untracked-files=all",
                "--ignore-submodules=all",
            )  # fmt: skip
            head = _git(self.root, "rev-parse", "HEAD").decode().strip()
            if not clean and head == self.commit:  # nothing changed since: the same answer
                return self._last[1]
        with self._whole_tree_index() as env:
            self._bookkeeping_to_base(env, notes)
            tree = _git(self.root, "write-tree", env=env).decode().strip()
        base_tree = _git(self.root, "rev-parse", f"{self.base}^{{tree}}").decode().strip()
        if tree == base_tree:
            commit = self.base
        else:
            message = WIP_MESSAGE.format(story=self.story_id).encode()
            out = _git(self.root, "commit-tree", tree, "-p", self.base, stdin=message)
            commit = out.decode().strip()
        self._move_to(commit)
        return self._remember(commit)

    def _remember(self, commit: str) -> tuple[str, bytes, str]:
        patch = _git(self.root, "diff", "--binary", "--full-index", *_DIFF, self.base, commit)
        stat = diffstat_of(describe_change(self.root, (self.base, commit)))
        answer = (commit, patch, stat)
        self._last = ((self.base, commit), answer)
        return answer

    def _patch(self) -> bytes:
        """The snapshotted change as a patch on ``base``: the one ``snapshot`` kept, if current."""
        if self._last is not None and self._last[0] == (self.base, self.commit):
            return self._last[1][1]
        assert self.commit is not None
        return _git(self.root, "diff", "--binary", "--full-index", *_DIFF, self.base, self.commit)

    def _move_to(self, commit: str) -> None:
        _git(self.root, "update-ref", f"refs/heads/{self.branch}", commit)
        _git(self.root, "reset", "-q", "--hard", commit)
        self.commit = commit

    def code_tree_on(self, onto: str) -> str | None:
        """``code_tree`` of the snapshotted change applied onto ``onto``, in a scratch index
        (the worktree is not touched); ``None`` when the patch does not apply cleanly."""
        if self.commit is None:
            raise GitError(f"{self.root}: the change was not snapshotted")
        return code_tree(self.root, onto, self.bookkeeping, self._patch())

    def code_tree(self) -> str:
        """The snapshotted commit's tree without the PRD and progress log: what the gates see
        of a change, so "the gates passed on this tree" can be checked after a rebase."""
        if self.commit is None:
            raise GitError(f"{self.root}: the change was not snapshotted")
        tree = code_tree(self.root, self.commit, self.bookkeeping)
        assert tree is not None  # no patch to apply: it cannot fail to apply
        return tree

    def rebase(self, onto: str, *, keep_conflicts: bool = True) -> list[str]:
        """Move the snapshotted change onto ``onto``; conflicting paths, or ``[]``.

        On a conflict the worktree is left at ``onto`` with the change applied and conflict
        markers in the files (nothing staged), and ``base`` becomes ``onto``; with
        ``keep_conflicts=False`` it is put back as it was instead (a speculative rebase), and
        so is a change that ``onto`` already holds whole (``HOLLOW``): stacked there it would
        have nothing of its own left if ``onto``'s change were dropped.
        """
        if self.commit is None:
            raise GitError(f"{self.root}: the change was not snapshotted before the rebase")
        if onto == self.base:
            return []
        patch = self._patch()
        old_commit, old_base = self.commit, self.base
        self._move_to(onto)
        self.base = onto
        if not patch:
            return []
        applied = run_git(self.root, "apply", "--3way", "--index", "--binary", stdin=patch)
        if applied.returncode == 0:
            tree = _git(self.root, "write-tree").decode().strip()
            if (
                not keep_conflicts
                and tree == _git(self.root, "rev-parse", f"{onto}^{{tree}}").decode().strip()
            ):
                self.base = old_base
                self._move_to(old_commit)
                return [HOLLOW]
            message = WIP_MESSAGE.format(story=self.story_id).encode()
            commit = _git(self.root, "commit-tree", tree, "-p", onto, stdin=message)
            self._move_to(commit.decode().strip())
            self._remember(self.commit or "")
            return []
        unmerged = _git(self.root, "diff", "--name-only", "--diff-filter=U", "-z")
        conflicts = [p for p in unmerged.decode("utf-8", "surrogateescape").split("\0") if p]
        if not conflicts or not keep_conflicts:  # put the change back as it was
            self.base = old_base
            self._move_to(old_commit)
            return conflicts or [f"(the change does not apply: {git_words(applied)})"]
        _git(self.root, "reset", "-q")  # keep the markers in the files, nothing staged
        self.commit = None
        return conflicts

    def adopt(self, onto: str, commit: str) -> None:
        """Take ``commit`` (already fetched here) as the change, on ``onto``: the rebase the
        driver made of this very change (``Scratch.rebase_change``). It must be one commit on
        ``onto``, or ``onto`` itself (no change)."""
        if commit != onto:
            parents = _git(self.root, "rev-list", "--parents", "-n", "1", commit).decode().split()
            if parents[1:] != [onto]:
                raise GitError(f"{self.root}: {commit[:10]} is not one commit on {onto[:10]}")
        self.base = onto
        self._move_to(commit)
        self._remember(commit)

    def change_patch(self) -> bytes:
        """Everything in the worktree that is not at ``base`` (uncommitted included)."""
        with self._whole_tree_index() as env:
            return _git(
                self.root, "diff", "--cached", "--binary", "--full-index", *_DIFF, self.base,
                env=env,
            )  # fmt: skip


class WorktreeManager:
    """Creates, removes and recovers the worktrees of one main checkout."""

    def __init__(self, main_root: Path, bookkeeping: Sequence[str] = ()) -> None:
        self.main_root = main_root
        self.folder = main_root / RALPH_DIR / "worktrees"
        self.bookkeeping = tuple(bookkeeping)
        # `git worktree add` and `git worktree prune` of two workers must not interleave: prune
        # removes the admin folder of a worktree that is still being added
        self._admin = threading.Lock()

    def create(self, story_id: str, base: str) -> Worktree:
        with self._admin:
            return self._create(story_id, base)

    def _create(self, story_id: str, base: str) -> Worktree:
        name = safe_name(story_id)
        root = self.folder / name
        branch = branch_name(story_id)
        meta = self.folder / f"{name}.json"
        if root.exists() or meta.exists():
            self._remove_paths(root, branch, meta)
        self.folder.mkdir(parents=True, exist_ok=True)
        meta.write_text(
            json.dumps({"story": story_id, "branch": branch, "base": base}), encoding="utf-8"
        )
        try:
            _git(self.main_root, "worktree", "add", "-q", "-f", "-B", branch, str(root), base)
        except GitError:
            self._remove_paths(root, branch, meta)  # no record of a worktree that never was
            raise
        # only a worktree that was checked out whole has a change worth saving after a crash
        meta.write_text(
            json.dumps({"story": story_id, "branch": branch, "base": base, "ready": True}),
            encoding="utf-8",
        )
        return Worktree(story_id, root.resolve(), branch, base, self.bookkeeping)

    def save_patch(self, tree: Worktree, dest: Path) -> Path | None:
        data = tree.change_patch()
        if not data:
            return None
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        return dest

    def remove(self, tree: Worktree) -> None:
        with self._admin:
            self._remove_paths(
                tree.root, tree.branch, self.folder / f"{safe_name(tree.story_id)}.json"
            )

    def _drop_stale_ref_lock(self, branch: str, report: Callable[[str], None]) -> None:
        """A git killed while it updated the branch leaves ``<ref>.lock``; no git of ours runs
        now (the run lock is held), so the lock is stale and would block the branch forever."""
        lock = self._common_dir() / "refs" / "heads" / f"{branch}.lock"
        if lock.is_file() and not lock.is_symlink():
            lock.unlink()
            report(f"{lock}: removed a lock left by a killed git")

    def _common_dir(self) -> Path:
        common = _git(self.main_root, "rev-parse", "--git-common-dir").decode().strip()
        return (self.main_root / common).resolve()

    def _drop_admin(self, root: Path) -> None:
        """The admin folder git keeps for the worktree at ``root`` (``.git/worktrees/<name>``),
        also when a ``git worktree add`` killed half way left it without the files that
        ``git worktree prune`` needs to recognise it."""
        admin = self._common_dir() / "worktrees"
        if not admin.is_dir():
            return
        for entry in admin.iterdir():
            if not entry.is_dir() or entry.is_symlink():
                continue
            gitdir = entry / "gitdir"
            try:
                points_at = Path(gitdir.read_text(encoding="utf-8").strip()).parent
            except (OSError, UnicodeDecodeError):
                points_at = None
            if points_at == root or (
                entry.name.startswith(root.name) and not (entry / "commondir").is_file()
            ):
                shutil.rmtree(entry, ignore_errors=True)

    def _remove_paths(self, root: Path, branch: str, meta: Path) -> None:
        if root.exists():
            gone = run_git(self.main_root, "worktree", "remove", "--force", "--force", str(root))
            if gone.returncode != 0 and root.exists():
                shutil.rmtree(root, ignore_errors=True)
        run_git(self.main_root, "worktree", "prune")
        self._drop_admin(root)
        run_git(self.main_root, "branch", "-D", "-q", branch)
        meta.unlink(missing_ok=True)

    def recover(self, patch_dir: Path, report: Callable[[str], None]) -> None:
        """Save and remove every worktree a killed run left behind (see the module docstring)."""
        if not self.folder.is_dir():
            return
        for meta in sorted(self.folder.glob("*.json")):
            name = meta.stem
            root = self.folder / name
            try:
                data = json.loads(meta.read_text(encoding="utf-8"))
                story, base = str(data["story"]), str(data["base"])
                if not _SHA.match(base) or safe_name(story) != name:
                    raise ValueError("base or story does not match")
            except (OSError, ValueError, KeyError, TypeError) as exc:
                report(f"{meta}: ignored ({exc}); its worktree is removed")
                self._remove_paths(root, branch_name(name), meta)
                continue
            tree = Worktree(story, root, branch_name(story), base, self.bookkeeping)
            self._drop_stale_ref_lock(tree.branch, report)
            saved: Path | None = None
            if data.get("ready") is True and (root / ".git").exists():
                try:
                    saved = self.save_patch(tree, patch_dir / f"interrupted-worker-{name}.patch")
                except GitError as exc:
                    report(f"{root}: its change could not be saved ({exc})")
            self._remove_paths(root, tree.branch, meta)
            where = f", its change saved as {saved}" if saved else ""
            report(f"removed the worktree of an interrupted worker on Task #{story}{where}")
        for stray in sorted(p for p in self.folder.iterdir() if p.is_dir()):
            report(f"{stray}: removed (a worktree folder without its record)")
            self._remove_paths(stray, branch_name(stray.name), self.folder / f"{stray.name}.json")


def worker_diff(main_root: Path, story_id: str) -> list[FileDiff]:
    """A running worker's change (its worktree against the commit it started from), for the
    Diff pane; empty when the worktree is gone."""
    root = main_root / RALPH_DIR / "worktrees" / safe_name(story_id)
    if not (root / ".git").exists():
        return []
    repo = GitRepo(root.resolve())
    subject = run_git(root, "log", "-1", "--format=%s", "HEAD").stdout.decode("utf-8", "replace")
    base = "HEAD^" if subject.startswith(WIP_MESSAGE.split("{", 1)[0]) else "HEAD"
    try:
        return repo.diff(base)
    except GitError:
        return []
