"""Story ids as real PRDs have them: a repeated id (issue 19) and hostile ids (issue 20).

Everything goes through the installed command line in a subprocess (``validate``, ``status``,
``run --headless``) against a real git repository, with the scripted agent.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.security.unsandboxed import OFF_TOML
from tests.support.engine import complete
from tests.support.repo import git, make_repo, story

PRD = "tasks/backend_prd.json"


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ralph_tui", *args, "--workspace", str(root)],
        capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip


def run(root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return cli(root, "run", "--headless", "--approve", "auto", *extra)


def add_a_file() -> dict[str, Any]:
    """A change of its own in whatever folder the story runs in (workers never conflict)."""
    return {"tool": "bash", "input": {"command": 'echo done > "$(mktemp -p . change-XXXXXX)"'}}


def scripted_repo(root: Path, stories: list[dict[str, Any]]) -> Path:
    script = root.parent / f"{root.name}-script.json"
    script.write_text(json.dumps({"default": [add_a_file(), complete()]}), encoding="utf-8")
    return make_repo(root, stories, extra_config=f"script = {json.dumps(str(script))}\n{OFF_TOML}")


def subjects(root: Path) -> list[str]:
    return git(root, "log", "--format=%s", "ralph/test").splitlines()


# -- a repeated id ---------------------------------------------------------------------------


def public_prd_stories() -> list[dict[str, Any]]:
    """104 stories like the public PRD: US-001..US-103, with US-081 written twice; every story
    passes except the second US-081."""
    ids = [f"US-{n:03d}" for n in range(1, 82)] + [f"US-{n:03d}" for n in range(81, 104)]
    stories = [story(i, f"Story {n}", priority=n, passes=True) for n, i in enumerate(ids, 1)]
    stories[81] = story("US-081", "Export the report as CSV", priority=82)
    return stories


def test_a_repeated_id_loads_and_the_run_lands_the_open_copy(tmp_path: Path) -> None:
    root = scripted_repo(tmp_path / "ws", public_prd_stories())
    prd_path = root / PRD
    before = json.loads(prd_path.read_text(encoding="utf-8"))
    assert before["userStories"][80]["id"] == before["userStories"][81]["id"] == "US-081"

    checked = cli(root, "validate")
    assert checked.returncode == 0, checked.stderr
    assert "ok (104 stories, 103 passing, 1 warning)" in checked.stdout
    # both places, each as path:line:col, and the key each one goes by
    first = prd_path.read_text().splitlines().index('      "id": "US-081",') + 1
    second = prd_path.read_text().splitlines().index('      "id": "US-081",', first) + 1
    assert checked.stderr == (
        f"{prd_path}:{first}:13: warning: story id 'US-081' is used 2 times: "
        f"{prd_path}:{first}:13 (userStories[80].id); {prd_path}:{second}:13 "
        "(userStories[81].id); each is addressed by its position: US-081@81, US-081@82\n"
    )

    status = cli(root, "status")
    assert status.returncode == 0, status.stderr
    rows = [line.split() for line in status.stdout.splitlines() if line.startswith("US-081")]
    assert rows == [
        ["US-081@81", "81", "passed", "Story", "81"],
        ["US-081@82", "82", "open", "1", "Export", "the", "report", "as", "CSV"],
    ]

    done = run(root)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == checked.stderr  # the headless run says it too
    after = json.loads(prd_path.read_text(encoding="utf-8"))
    assert after["userStories"][81]["passes"] is True  # the second copy, the one worked on
    assert after == {**before, "userStories": after["userStories"]}
    assert [s for i, s in enumerate(after["userStories"]) if i != 81] == [
        s for i, s in enumerate(before["userStories"]) if i != 81
    ]
    assert subjects(root)[0] == "[backend] Task #US-081@82: Export the report as CSV"
    progress = (root / "tasks/backend_progress.txt").read_text(encoding="utf-8")
    assert "## Task #US-081@82: Export the report as CSV" in progress


def test_an_edit_that_repeats_an_id_is_still_refused(tmp_path: Path) -> None:
    from ralph_tui.prd.store import PrdError, PrdStore

    root = make_repo(tmp_path / "ws", public_prd_stories())
    store = PrdStore(root / PRD)
    before = store.path.read_bytes()
    with pytest.raises(PrdError, match=r"userStories\[1\]\.id: duplicate id 'US-001'"):
        store.update_story("US-002", {"id": "US-001"})
    assert store.path.read_bytes() == before
    store.update_story("US-081@82", {"notes": "the known repeat stays allowed"})
    assert store.load().userStories[81].notes == "the known repeat stays allowed"


# -- hostile ids -----------------------------------------------------------------------------

HOSTILE_IDS = [
    "../../x",
    "-rf",
    "a b",
    "x/../../y",
    "ünïcödé-故事",
    "L" * 300,
    "story.lock",
    "@{-1}",
    "--upload-pack=touch pwned",
    "line\nbreak",
    ".hidden",
    "a_b",  # what "a b" would have become before: two stories must never share a worktree
]


@pytest.fixture
def outside_tmp() -> Iterator[Path]:
    """A workspace outside /tmp, as the attack tests use (a sandbox hides /tmp)."""
    root = Path("/var/tmp") / f"ralph-ids-{secrets.token_hex(4)}"
    root.mkdir()
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("workers", [1, 2])
def test_hostile_ids_get_safe_names_and_every_story_lands(outside_tmp: Path, workers: int) -> None:
    stories = [story(i, f"Story {n}", priority=n) for n, i in enumerate(HOSTILE_IDS, 1)]
    root = scripted_repo(outside_tmp / "ws", stories)
    assert cli(root, "validate").returncode == 0

    done = run(root, "--workers", str(workers), "--max-iterations", "30")

    assert done.returncode == 0, done.stdout + done.stderr
    prd = json.loads((root / PRD).read_text(encoding="utf-8"))
    assert [s["passes"] for s in prd["userStories"]] == [True] * len(HOSTILE_IDS)
    assert [s["id"] for s in prd["userStories"]] == HOSTILE_IDS
    assert len(subjects(root)) == len(HOSTILE_IDS) + 1
    assert "[backend] Task #line\\x0abreak: Story 10" in subjects(root)
    # nothing of the workers left, nothing written outside .ralph/ by a name
    assert not list((root / ".ralph" / "worktrees").glob("*")) if workers > 1 else True
    assert git(root, "branch", "--format=%(refname:short)").split() == ["main", "ralph/test"]
    assert len(git(root, "worktree", "list").splitlines()) == 1
    assert not (outside_tmp / "x").exists() and not (outside_tmp / "y").exists()
    assert not list(outside_tmp.rglob("pwned"))


def test_safe_names_are_plain_distinct_and_valid_branches(tmp_path: Path) -> None:
    from ralph_tui.safety.names import safe_name

    root = make_repo(tmp_path / "ws")
    names = [safe_name(i) for i in [*HOSTILE_IDS, "US-001", "1.2", "a__b"]]
    assert len(set(names)) == len(names)
    assert names[-3:] == ["US-001", "1.2", "a__b"]  # plain ids are kept as they are
    for name in names:
        assert safe_name(name) == name and len(name) <= 60
        assert not name.startswith(("-", ".")) and "/" not in name
        check = subprocess.run(
            ["git", "check-ref-format", "--branch", f"ralph/{name}"], cwd=root, check=False
        )
        assert check.returncode == 0, name


@pytest.mark.parametrize("branch", ["../../x", "-rf", "a b", "x.lock", "@{-1}", "a\nb"])
def test_a_hostile_branch_name_is_one_line_exit_2_and_nothing_left(
    tmp_path: Path, branch: str
) -> None:
    root = scripted_repo(tmp_path / "ws", [story("US-001", "First")])
    prd_path = root / PRD
    doc = json.loads(prd_path.read_text(encoding="utf-8"))
    prd_path.write_text(json.dumps({**doc, "branchName": branch}, indent=2), encoding="utf-8")
    git(root, "commit", "-qam", "hostile branch name")
    head = git(root, "rev-parse", "HEAD")

    for command in (["validate"], ["run", "--headless"]):
        done = cli(root, *command)
        assert done.returncode == 2, done.stdout + done.stderr
        assert done.stderr.count("\n") == 1 and "branchName" in done.stderr, done.stderr
        assert str(prd_path) in done.stderr
    assert git(root, "rev-parse", "HEAD") == head
    assert git(root, "branch", "--format=%(refname:short)").split() == ["main"]
    assert git(root, "status", "--porcelain", "--untracked-files=no") == ""
    assert not (root / ".ralph" / "worktrees").exists()


def test_a_worktree_git_refuses_leaves_no_record(tmp_path: Path) -> None:
    from ralph_tui.errors import GitError
    from ralph_tui.git.worktrees import WorktreeManager

    root = make_repo(tmp_path / "ws")
    manager = WorktreeManager(root)
    with pytest.raises(GitError):
        manager.create("US-001", "0" * 40)  # no such commit
    assert list(manager.folder.iterdir()) == []
    assert git(root, "branch", "--format=%(refname:short)").split() == ["main"]


def test_init_in_a_folder_with_spaces_writes_a_branch_git_accepts(tmp_path: Path) -> None:
    root = tmp_path / "My Project (v2)"
    root.mkdir()
    git(root, "init", "-q")
    assert cli(root, "init").returncode == 0
    doc = json.loads((root / PRD).read_text(encoding="utf-8"))
    assert doc["branchName"] == "ralph/my-project-v2"
    checked = cli(root, "validate")
    assert checked.returncode == 0, checked.stderr
