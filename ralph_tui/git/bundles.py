"""Git bundles: how a base commit travels to a remote node and a story's change comes back.

The driver never adds a ref or an object to the user's repository for this: bundles are made
and read in a throwaway bare repository that borrows the main repository's objects through
``objects/info/alternates``. What comes back from a node is checked before anything of it is
used: the bundle must verify against the base, hold exactly the commit the node named, and that
commit must be one commit on the base (or the base itself: no change). Only the patch computed
here, from the verified commit, goes on to the merge.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ralph_tui.errors import GitError
from ralph_tui.git.repo import (
    SAFE_CONFIG,
    code_tree,
    describe_change,
    diffstat_of,
    git_output,
    git_words,
    run_git,
)
from ralph_tui.safety.tempdirs import process_dir

_SHA = re.compile(r"^[0-9a-f]{40}$")
_DIFF = ("--no-color", "--no-ext-diff", "--no-textconv", "--src-prefix=a/", "--dst-prefix=b/")
BUNDLE_REF = "refs/heads/ralph-bundle"
INCOMING_REF = "refs/ralph/incoming"  # forced: each bundle's tip is unrelated to the last one
# who the driver's rebased work-in-progress commits are by: they never land (main gets the
# patch, committed by the engine), and the user's git identity may not be set at all
_SCRATCH_IDENTITY = {
    "GIT_AUTHOR_NAME": "ralph-tui",
    "GIT_AUTHOR_EMAIL": "driver@ralph-tui.invalid",
    "GIT_COMMITTER_NAME": "ralph-tui",
    "GIT_COMMITTER_EMAIL": "driver@ralph-tui.invalid",
}


def _run(
    cwd: Path, *args: str, env: dict[str, str] | None = None, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    # no work tree pinned: these commands read and write objects and refs only (and some run
    # in a bare repository, where a work tree is an error)
    return run_git(cwd, *args, env=env, stdin=stdin, pin_work_tree=False)


def _git(
    cwd: Path,
    *args: str,
    env: dict[str, str] | None = None,
    stdin: bytes | None = None,
    config: tuple[str, ...] = (),
) -> bytes:
    return git_output(
        cwd, *args, env=env, stdin=stdin, config=(*SAFE_CONFIG, *config), pin_work_tree=False
    )


def objects_dir(repo: Path) -> Path:
    out = _git(repo, "rev-parse", "--path-format=absolute", "--git-path", "objects")
    return Path(out.decode().strip())


@contextlib.contextmanager
def scratch_repo(objects: Path) -> Iterator[Path]:
    """A bare repository that sees ``objects`` (read-only) and keeps its own in a temp dir."""
    with tempfile.TemporaryDirectory(dir=process_dir(), prefix="ralph-bundle-") as tmp:
        root = Path(tmp) / "scratch.git"
        _git(Path(tmp), "init", "-q", "--bare", str(root))
        (root / "objects" / "info" / "alternates").write_text(f"{objects}\n", encoding="utf-8")
        yield root


def _check_sha(value: str, what: str) -> str:
    if not _SHA.match(value):
        raise GitError(f"{what}: not a commit id: {value!r}")
    return value


def _create_bundle(repo: Path, tip: str, exclude: str | None) -> bytes:
    """``tip`` as ``BUNDLE_REF`` in a bundle, made in ``repo`` (a bare scratch repository).

    No delta search for objects that are not packed yet (``pack.window=0``; packed history
    keeps its deltas): for 30 MB of new loose objects it took 2.3 s instead of 0.6 s, and a
    bundle crosses the cluster's network once per node."""
    _check_sha(tip, "bundle tip")
    _git(repo, "update-ref", BUNDLE_REF, tip)
    out = repo / "out.bundle"
    args = ["bundle", "create", "-q", str(out), BUNDLE_REF]
    if exclude is not None and exclude != tip:
        args.append(f"^{_check_sha(exclude, 'bundle base')}")
    try:
        _git(repo, *args, config=("-c", "pack.window=0"))
        return out.read_bytes()
    finally:
        out.unlink(missing_ok=True)


def make_bundle(repo: Path, tip: str, exclude: str | None = None) -> bytes:
    """A bundle of ``tip`` (its whole history, or only what ``exclude`` lacks) from ``repo``."""
    with scratch_repo(objects_dir(repo)) as scratch:
        return _create_bundle(scratch, tip, exclude)


def fetch_bundle(repo: Path, data: bytes) -> str:
    """Fetch a bundle's objects into ``repo`` (a node's clone); the commit it holds."""
    with tempfile.TemporaryDirectory(dir=process_dir(), prefix="ralph-bundle-in-") as tmp:
        path = Path(tmp) / "in.bundle"
        path.write_bytes(data)
        _git(repo, "bundle", "verify", "-q", str(path))
        _git(repo, "fetch", "-q", "--no-tags", str(path), f"+{BUNDLE_REF}:{INCOMING_REF}")
        tip = _git(repo, "rev-parse", INCOMING_REF).decode().strip()
        _git(repo, "update-ref", "-d", INCOMING_REF)
        return tip


def clone_bundle(data: bytes, dest: Path) -> str:
    """A clone of a base bundle in ``dest``; the base commit.

    Nothing is checked out here: the story's worktree (added from this clone) is the only
    checkout, so a large repository is written once per story, not twice.
    """
    dest.mkdir(parents=True, exist_ok=True)
    path = dest.parent / f"{dest.name}.bundle"
    path.write_bytes(data)
    try:
        _git(dest.parent, "clone", "-q", "--no-checkout", str(path), str(dest))
        base = _git(dest, "rev-parse", f"refs/remotes/origin/{BUNDLE_REF.rsplit('/', 1)[1]}")
        _git(dest, "remote", "remove", "origin")
        return base.decode().strip()
    finally:
        path.unlink(missing_ok=True)


@dataclass(frozen=True)
class VerifiedChange:
    commit: str
    patch: bytes
    diffstat: str


class Scratch:
    """The driver's scratch repository for one run: it borrows the main repository's objects
    and keeps the verified changes that came back from nodes, so a later rebase can send a node
    a commit that exists only as another node's change (the merge train)."""

    def __init__(self, repo: Path) -> None:
        self._tmp = tempfile.TemporaryDirectory(dir=process_dir(), prefix="ralph-bundles-")
        self.root = Path(self._tmp.name) / "scratch.git"
        # one bundle at a time: they share a ref and a file (merges of several stories run
        # their rebases and snapshots at once, each in its own thread)
        self._lock = threading.Lock()
        _git(Path(self._tmp.name), "init", "-q", "--bare", str(self.root))
        alternates = self.root / "objects" / "info" / "alternates"
        alternates.write_text(f"{objects_dir(repo)}\n", encoding="utf-8")

    def close(self) -> None:
        self._tmp.cleanup()

    def make_bundle(self, tip: str, exclude: str | None = None) -> bytes:
        """A bundle of ``tip`` (whole history, or only what ``exclude`` lacks); empty when
        ``tip`` is already in ``exclude``'s history."""
        with self._lock:
            return self._make_bundle(tip, exclude)

    def _make_bundle(self, tip: str, exclude: str | None) -> bytes:
        _check_sha(tip, "bundle tip")
        if exclude is not None and exclude != tip:
            has_it = _run(
                self.root, "merge-base", "--is-ancestor", tip, _check_sha(exclude, "base")
            )
            if has_it.returncode == 0:
                return b""  # the node has ``tip`` already (it is in its history): nothing to send
        return _create_bundle(self.root, tip, exclude)

    def code_tree(self, tree_of: str, drop: Sequence[str], patch: bytes = b"") -> str | None:
        """The tree of ``tree_of`` with ``patch`` applied and the ``drop`` paths left out, as
        ``Worktree.code_tree``/``code_tree_on`` compute it on the node (the same git steps, so
        the ids compare); ``None`` when the patch does not apply cleanly. Objects only: the
        index is a temp file and nothing but tree objects is written, in the scratch."""
        _check_sha(tree_of, "tree of")
        return code_tree(self.root, tree_of, drop, patch)

    def rebase_change(self, patch: bytes, onto: str, message: bytes) -> VerifiedChange | list[str]:
        """A verified change's ``patch`` as one commit on ``onto``, made here (the node then
        takes that commit as it is): as ``Worktree.rebase`` applies it (``apply --3way``), in
        a scratch index. The conflicting paths when it does not apply cleanly."""
        _check_sha(onto, "rebase onto")
        if not patch:
            return VerifiedChange(onto, b"", "")
        with tempfile.TemporaryDirectory(dir=process_dir(), prefix="ralph-bundle-rebase-") as tmp:
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            _git(self.root, "read-tree", onto, env=env)
            applied = _run(
                self.root, "apply", "--3way", "--cached", "--binary", env=env, stdin=patch
            )
            if applied.returncode != 0:
                unmerged = _git(self.root, "ls-files", "-u", "-z", env=env).decode(
                    "utf-8", "surrogateescape"
                )
                paths = dict.fromkeys(
                    e.split("\t", 1)[1] for e in unmerged.split("\0") if "\t" in e
                )
                return list(paths) or [f"(the change does not apply: {git_words(applied)})"]
            tree = _git(self.root, "write-tree", env=env).decode().strip()
        commit = _git(
            self.root, "commit-tree", tree, "-p", onto, env=_SCRATCH_IDENTITY, stdin=message
        )
        sha = commit.decode().strip()
        _git(self.root, "update-ref", f"refs/changes/{sha}", sha)  # keep it, like a verified one
        patch = _git(self.root, "diff", "--binary", "--full-index", *_DIFF, onto, sha)
        stat = diffstat_of(describe_change(self.root, (onto, sha)))
        return VerifiedChange(sha, patch, stat)

    def verify_change(self, data: bytes, base: str, commit: str) -> VerifiedChange:
        """Check a node's bundle against the base and the commit it named; keep the commit;
        the change as a patch (only this patch, from the verified commit, is ever merged)."""
        with self._lock:
            return self._verify_change(data, base, commit)

    def _verify_change(self, data: bytes, base: str, commit: str) -> VerifiedChange:
        _check_sha(base, "change base")
        _check_sha(commit, "change commit")
        if commit == base:
            return VerifiedChange(commit, b"", "")
        path = self.root / "change.bundle"
        path.write_bytes(data)
        try:
            heads = _git(self.root, "bundle", "list-heads", str(path)).decode().split()
            if heads[:2] != [commit, BUNDLE_REF]:
                raise GitError(f"the change bundle holds {heads[:2]}, not {commit}")
            fetched = _run(  # verifies the bundle and its prerequisites
                self.root, "fetch", "-q", "--no-tags", str(path), f"+{BUNDLE_REF}:{INCOMING_REF}"
            )
            if fetched.returncode != 0:
                raise GitError(f"the change bundle does not verify: {git_words(fetched)}")
        finally:
            path.unlink(missing_ok=True)
        parents = _git(self.root, "rev-list", "--parents", "-n", "1", commit).decode().split()
        if parents[1:] != [base]:
            raise GitError(f"the change {commit[:10]} is not one commit on {base[:10]}")
        _git(self.root, "update-ref", f"refs/changes/{commit}", commit)  # keep it
        patch = _git(self.root, "diff", "--binary", "--full-index", *_DIFF, base, commit)
        stat = diffstat_of(describe_change(self.root, (base, commit)))
        return VerifiedChange(commit, patch, stat)


def verify_change(repo: Path, data: bytes, base: str, commit: str) -> VerifiedChange:
    """``Scratch.verify_change`` in a scratch repository of its own (removed afterwards)."""
    scratch = Scratch(repo)
    try:
        return scratch.verify_change(data, base, commit)
    finally:
        scratch.close()
