"""The engine owns git (issue 8 section 3): a hostile scripted agent through the real engine.

No sandbox here: these rules must hold with the agent's bash able to write ``.git/``.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ralph_tui.events import ApprovalNeeded, Notice
from ralph_tui.git.repo import GitRepo
from ralph_tui.supervisor import ApprovalDecision
from tests.security.unsandboxed import OFF
from tests.support.engine import ScriptedSupervisor, complete, create, make_engine
from tests.support.repo import git, make_repo, story

SECRET = "sk-ant-fake-0123456789-secret"


def bash(command: str) -> dict[str, Any]:
    return {"tool": "bash", "input": {"command": command}}


def spy(path: Path, leak: Path) -> Path:
    """An executable that records that it ran, with its environment, into ``leak``."""
    path.write_text(f'#!/bin/sh\nenv >> "{leak}/ran-$$.env"\nexit 0\n', encoding="utf-8")
    path.chmod(0o755)
    return path


def notices(sink: Any) -> str:
    return "\n".join(n.message for n in sink.of(Notice))


def secret_anywhere(*folders: Path) -> list[Path]:
    found = []
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file() and not path.is_symlink() and SECRET.encode() in path.read_bytes():
                found.append(path)
    return found


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    monkeypatch.setenv("GITHUB_TOKEN", SECRET)


async def test_planted_hooks_and_fsmonitor_never_run_and_are_restored(
    tmp_path: Path, secret_env: None
) -> None:
    root = make_repo(tmp_path / "ws")
    leak = tmp_path / "leak"
    leak.mkdir()
    script = spy(tmp_path / "spy.sh", leak)
    config_before = (root / ".git/config").read_bytes()
    hooks_before = sorted(p.name for p in (root / ".git/hooks").iterdir())
    steps = [
        bash(f"cp {script} .git/hooks/commit-msg && cp {script} .git/hooks/pre-commit"),
        bash(f'git config core.fsmonitor "{script}"'),
        create("src/feature.py", "x = 1\n"),
        complete(),
    ]
    engine, _, sink, _ = make_engine(root, {"stories": {"US-001": steps}}, **OFF)

    assert await engine.run() == 0

    assert list(leak.iterdir()) == []  # neither the hooks nor the fsmonitor ever ran
    assert (root / ".git/config").read_bytes() == config_before
    assert sorted(p.name for p in (root / ".git/hooks").iterdir()) == hooks_before
    text = notices(sink)
    assert ".git/config was changed" in text and ".git/hooks was changed" in text
    assert "Task #US-001:" in git(root, "log", "-1", "--format=%s")
    assert secret_anywhere(root, tmp_path / "leak") == []


def test_reads_while_the_agent_works_start_no_program(tmp_path: Path, secret_env: None) -> None:
    """The TUI diffs mid-iteration: fsmonitor, filters, textconv, ext diff must not fire."""
    root = make_repo(tmp_path / "ws")
    leak = tmp_path / "leak"
    leak.mkdir()
    script = spy(tmp_path / "spy.sh", leak)
    git(root, "config", "core.fsmonitor", str(script))
    git(root, "config", "filter.evil.clean", str(script))
    git(root, "config", "filter.evil.smudge", str(script))
    git(root, "config", "diff.evil.textconv", str(script))
    git(root, "config", "diff.external", str(script))
    spy(root / ".git/hooks/post-checkout", leak)
    (root / ".gitattributes").write_text("* filter=evil diff=evil\n", encoding="utf-8")
    (root / "tasks/new.txt").write_text("hello\n", encoding="utf-8")
    repo = GitRepo.open(root)

    files = repo.diff()
    assert {f.path for f in files} == {".gitattributes", "tasks/new.txt"}
    assert "tasks/new.txt" in repo.diffstat()
    assert repo.dirty_paths()
    assert repo.save_patch(tmp_path / "p.patch") is not None
    assert "initial" in repo.recent_log() and repo.head_message()

    assert list(leak.iterdir()) == []
    # (restore_to_head and the story commit run after the engine restored .git/config, so the
    # filters they apply are the user's own: git_guard is tested through the engine above)


def test_git_environment_is_an_allow_list(monkeypatch: pytest.MonkeyPatch) -> None:
    from ralph_tui.git.repo import git_env

    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    monkeypatch.setenv("DATABASE_URL", "postgres://u:pw@h/db")
    monkeypatch.setenv("aws_secret_access_key", SECRET)
    monkeypatch.setenv("GIT_DIR", "/elsewhere")
    env = git_env()
    assert SECRET not in env.values()
    assert "DATABASE_URL" not in env and "GIT_DIR" not in env
    assert env["PATH"] == os.environ["PATH"]


async def _agent_commits(tmp_path: Path, decision: ApprovalDecision) -> tuple[Path, Any, Any]:
    root = make_repo(tmp_path / "ws")
    steps = [
        create("backdoor.py", "import os  # sneaky\n"),
        bash("git add -A && git commit -q -m wip"),
        create("src/feature.py", "x = 1\n"),
        complete(),
    ]
    sup = ScriptedSupervisor(decisions=[decision])
    engine, _, sink, _ = make_engine(
        root, {"stories": {"US-001": steps}}, sup, max_iterations=1, **OFF
    )
    await engine.run()
    return root, sink, sup


async def test_agent_commit_is_folded_back_and_discard_removes_it(tmp_path: Path) -> None:
    root, sink, sup = await _agent_commits(tmp_path, ApprovalDecision.discard())

    assert "backdoor.py" in sup.approval_requests[0].diffstat
    assert "backdoor.py" in sink.of(ApprovalNeeded)[0].diffstat
    assert git(root, "rev-list", "--count", "HEAD").strip() == "1"  # only the initial commit
    assert "wip" not in git(root, "log", "--all", "--format=%s")
    assert not (root / "backdoor.py").exists()
    assert git(root, "status", "--porcelain") == ""
    assert "folded back" in notices(sink)


async def test_agent_commit_is_folded_into_the_one_story_commit(tmp_path: Path) -> None:
    root, _, sup = await _agent_commits(tmp_path, ApprovalDecision.approve())

    assert "backdoor.py" in sup.approval_requests[0].diffstat
    subjects = git(root, "log", "--format=%s").splitlines()
    assert len(subjects) == 2 and "Task #US-001:" in subjects[0]
    assert "backdoor.py" in git(root, "show", "--name-only", "--format=", "HEAD").split()


async def test_reset_of_an_approved_commit_is_undone(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws", [story("US-001", "First"), story("US-002", "Second", 2)])
    script = {
        "stories": {
            "US-001": [create("src/one.py", "one = 1\n"), complete()],
            "US-002": [
                bash("git reset -q --hard HEAD~1"),
                create("src/two.py", "two = 2\n"),
                complete(),
            ],
        }
    }
    sup = ScriptedSupervisor(decisions=[ApprovalDecision.approve(), ApprovalDecision.discard()])
    engine, _, sink, _ = make_engine(root, script, sup, max_iterations=2, **OFF)

    await engine.run()

    first = git(root, "log", "--format=%H %s").splitlines()
    approved = [line.split()[0] for line in first if "Task #US-001:" in line]
    assert len(approved) == 1
    assert git(root, "rev-parse", "HEAD").strip() == approved[0]
    # the human saw what the reset did to the approved work before deciding
    assert "src/one.py" in sup.approval_requests[1].diffstat
    assert (root / "src/one.py").read_text() == "one = 1\n"
    prd = json.loads((root / "tasks/backend_prd.json").read_text())
    assert [s["passes"] for s in prd["userStories"]] == [True, False]
    log = (root / "tasks/backend_progress.txt").read_text()
    assert log.count("## Task #US-001:") == 1
    assert "moved HEAD" in notices(sink)
    assert git(root, "status", "--porcelain") == ""


async def test_non_utf8_file_name_is_committed(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    steps = [bash("printf 'x\\n' > $'bad\\xff.txt'"), complete()]
    engine, _, _, _ = make_engine(root, {"stories": {"US-001": steps}}, **OFF)

    assert await engine.run() == 0

    names = subprocess.run(
        ["git", "ls-tree", "-z", "--name-only", "HEAD"], cwd=root, capture_output=True, check=True
    ).stdout.split(b"\0")
    assert b"bad\xff.txt" in names
    prd = json.loads((root / "tasks/backend_prd.json").read_text())
    assert prd["userStories"][0]["passes"] is True
    assert "- bad\\xff.txt" in (root / "tasks/backend_progress.txt").read_text()
    assert git(root, "status", "--porcelain") == ""


async def test_branch_switch_and_amend_are_undone(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    base = git(root, "rev-parse", "HEAD").strip()
    steps = [
        create("src/feature.py", "x = 1\n"),
        bash("git checkout -q -b elsewhere && git add -A && git commit -q --amend -m evil"),
        complete(),
    ]
    engine, _, sink, sup = make_engine(root, {"stories": {"US-001": steps}}, **OFF)

    assert await engine.run() == 0

    assert git(root, "symbolic-ref", "HEAD").strip() == "refs/heads/ralph/test"  # the PRD's
    assert git(root, "rev-parse", "HEAD~1").strip() == base  # the initial commit survived
    assert "src/feature.py" in sup.approval_requests[0].diffstat
    assert "src/feature.py" in git(root, "show", "--name-only", "--format=", "HEAD").split()
    assert "moved HEAD" in notices(sink)


def test_core_worktree_pointing_outside_is_ignored(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep\n")
    git(root, "config", "core.worktree", str(outside))
    (root / "new.txt").write_text("agent\n")
    repo = GitRepo(root)

    assert [f.path for f in repo.diff()] == ["new.txt"]
    repo.restore_to_head()

    assert (outside / "precious.txt").read_text() == "keep\n"
    assert not (root / "new.txt").exists()


async def test_story_commit_runs_the_users_own_hook_without_secrets(
    tmp_path: Path, secret_env: None
) -> None:
    root = make_repo(tmp_path / "ws")
    leak = tmp_path / "leak"
    leak.mkdir()
    spy(root / ".git/hooks/pre-commit", leak)  # the user's hook, there before the run
    steps = [create("src/feature.py", "x = 1\n"), complete()]
    engine, _, _, _ = make_engine(root, {"stories": {"US-001": steps}}, **OFF)

    assert await engine.run() == 0

    runs = list(leak.iterdir())
    assert len(runs) == 1  # the hook ran once, for the story commit
    assert SECRET not in runs[0].read_text()
