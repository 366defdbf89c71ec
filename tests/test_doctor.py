"""``ralph-tui doctor`` on real temp workspaces: each check's ok and missing path."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from ralph_tui.cli import main
from ralph_tui.doctor import run_doctor
from ralph_tui.gates import gate_program
from tests.support.optional import needs_claude_sdk
from tests.support.repo import git, make_repo, story

SECRET = "sk-ant-doctor-test-secret-0123456789"


def doctor(root: Path, **overrides: Any) -> tuple[int, dict[str, str], str]:
    """Exit code, {check name: its line}, and the whole output."""
    out = io.StringIO()
    code = run_doctor(root, overrides or None, out)
    text = out.getvalue()
    lines: dict[str, str] = {}
    for line in text.splitlines()[:-1]:
        status, rest = line.split(maxsplit=1)
        lines[rest.split(":", 1)[0]] = f"{status} {rest}"
    return code, lines, text


@pytest.fixture
def scripted(tmp_path: Path) -> Path:
    script = tmp_path / "script.json"
    script.write_text('{"default": []}', encoding="utf-8")
    return make_repo(tmp_path / "ws", extra_config=f'script = "{script}"')


def test_a_ready_workspace(scripted: Path) -> None:
    code, lines, text = doctor(scripted)
    assert code == 0, text
    assert text.endswith("Ready to run.\n")
    assert lines["git"].startswith("ok git: git version")
    assert lines["repository"] == f"ok repository: {scripted.resolve()}"
    assert lines["config"] == "ok config: ralph.toml, agent scripted, role backend"
    assert lines["prd"] == "ok prd: tasks/backend_prd.json: 1 story, 1 open"
    assert lines["gate ok"] == "ok gate ok: true (shell)"
    assert lines["script"].startswith("ok script: ")


def test_not_a_repository(tmp_path: Path) -> None:
    code, lines, _ = doctor(tmp_path)
    assert code == 1
    assert lines["repository"].startswith("missing repository: ")
    assert "not a git repository -> run `git init`" in lines["repository"]


def test_a_repository_without_commits(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    code, lines, _ = doctor(tmp_path)
    assert code == 1
    assert "no commits yet -> make a first commit" in lines["repository"]


def test_git_missing(scripted: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    code, lines, _ = doctor(scripted)
    assert code == 1
    assert lines["git"] == "missing git: not found on PATH -> install git"
    assert lines["repository"].startswith("skip repository")


def test_a_bad_config_is_reported_and_dependent_checks_skipped(scripted: Path) -> None:
    toml = scripted / "ralph.toml"
    toml.write_text(toml.read_text() + "bogus = 1\n", encoding="utf-8")
    # [gates] is the last table, so bogus lands in it: a gate that is not a string
    code, lines, _ = doctor(scripted)
    assert code == 1
    assert lines["config"].startswith(f"missing config: {toml}: gates.bogus: ")
    assert lines["prd"] == "skip prd: needs a valid configuration"
    assert lines["agent"] == "skip agent: needs a valid configuration"


def test_prd_missing_or_malformed(scripted: Path) -> None:
    prd = scripted / "tasks" / "backend_prd.json"
    prd.write_text('{"userStories": [\n  {"id": 1,}\n]}\n', encoding="utf-8")
    code, lines, _ = doctor(scripted)
    assert code == 1
    assert lines["prd"].startswith(f"missing prd: {prd}:2:")
    assert lines["prd"].endswith("-> fix the file (`ralph-tui validate` shows where)")

    code, lines, _ = doctor(scripted, role="frontend")
    assert code == 1
    assert "frontend_prd.json: file not found (create it with `ralph-tui init`" in lines["prd"]


def test_prd_counts_open_stories(tmp_path: Path) -> None:
    stories = [story("A", "One", passes=True), story("B", "Two"), story("C", "Three")]
    root = make_repo(tmp_path / "ws", stories)
    _, lines, _ = doctor(root)
    assert lines["prd"] == "ok prd: tasks/backend_prd.json: 3 stories, 2 open"


def test_gate_executables(tmp_path: Path) -> None:
    check = tmp_path / "ws" / "scripts" / "check.sh"
    gates = {
        "tests": f"{sys.executable} -m pytest -q",
        "lint": "no-such-linter-xyz check .",
        "env": "CI=1 true",
        "local": "./scripts/check.sh --fast",
    }
    root = make_repo(tmp_path / "ws", gates=gates)
    check.parent.mkdir()
    check.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    check.chmod(0o755)
    code, lines, _ = doctor(root, agent="command")
    assert code == 1
    assert lines["gate tests"].startswith("ok gate tests: ")
    assert lines["gate lint"] == (
        "missing gate lint: 'no-such-linter-xyz' not found on PATH (command: no-such-linter-xyz "
        "check .) -> install no-such-linter-xyz, or change [gates] lint in ralph.toml"
    )
    assert lines["gate env"] == "ok gate env: CI=1 true (shell)"
    assert lines["gate local"] == f"ok gate local: ./scripts/check.sh --fast ({root / check})"
    check.chmod(0o644)
    _, lines, _ = doctor(root, agent="command")
    assert lines["gate local"].startswith("missing gate local: './scripts/check.sh' not found")


def test_gate_program_parsing() -> None:
    assert gate_program("pytest -q") == "pytest"
    assert gate_program("FOO=1 BAR=x mypy .") == "mypy"
    assert gate_program("cd src && pytest") is None
    assert gate_program("true") is None
    assert gate_program("echo 'unbalanced") is None


def test_anthropic_needs_an_api_key(scripted: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    code, lines, _ = doctor(scripted, agent="anthropic")
    assert code == 1
    assert lines["credentials"] == (
        "missing credentials: ANTHROPIC_API_KEY is not set "
        "-> export ANTHROPIC_API_KEY=... (or choose another agent)"
    )
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    code, lines, text = doctor(scripted, agent="anthropic")
    assert code == 0
    assert lines["credentials"] == "ok credentials: ANTHROPIC_API_KEY is set"
    assert SECRET not in text and SECRET[:12] not in text


@needs_claude_sdk
def test_claude_code_runs_the_bundled_cli(scripted: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("CLAUDE_CODE_OAUTH_TOKEN", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    code, lines, _ = doctor(scripted, agent="claude-code")
    assert code == 0  # no API key is a warning: Claude Code may use its own login
    assert lines["claude-code"].startswith("ok claude-code: ")
    assert lines["claude-code"].endswith("(Claude Code)")
    assert lines["credentials"].startswith("warn credentials: no ANTHROPIC_API_KEY")


def test_claude_code_without_the_sdk(scripted: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "claude_agent_sdk", None)
    code, lines, _ = doctor(scripted, agent="claude-code")
    assert code == 1
    assert lines["claude-code"] == (
        "missing claude-code: claude-agent-sdk is not installed -> agent claude-code needs "
        "`pip install ralph-supervisor[claude]` (the claude-agent-sdk package)"
    )


def test_command_agent_program(tmp_path: Path) -> None:
    ok = f'command = ["{sys.executable}", "{{prompt_file}}"]'
    root = make_repo(tmp_path / "ok", extra_config=ok)
    code, lines, _ = doctor(root, agent="command")
    assert code == 0
    py = sys.executable
    assert lines["command"] == f"ok command: {py} {{prompt_file}} ({py}; prompt in {{prompt_file}})"

    bad = 'command = ["no-such-coding-cli-xyz", "exec", "-"]'
    root = make_repo(tmp_path / "bad", extra_config=bad)
    code, lines, _ = doctor(root, agent="command")
    assert code == 1
    assert lines["command"] == (
        "missing command: 'no-such-coding-cli-xyz' not found on PATH "
        "-> install no-such-coding-cli-xyz, or change command in ralph.toml"
    )

    root = make_repo(tmp_path / "none")
    code, lines, _ = doctor(root, agent="command")
    assert code == 1
    assert lines["command"].startswith('missing command: agent = "command" without a command')


def test_scripted_agent_script(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws", extra_config='script = "missing.json"')
    code, lines, _ = doctor(root)
    assert code == 1
    assert lines["script"] == (
        f"missing script: {root / 'missing.json'}: file not found -> fix script in ralph.toml"
    )


def test_persona_file(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws", extra_config='persona = "agents/be.md"')
    code, lines, _ = doctor(root, agent="command", command=["true"])
    assert code == 1
    assert lines["persona"].startswith("missing persona: ")
    assert "persona file not found" in lines["persona"]
    (root / "agents").mkdir()
    (root / "agents" / "be.md").write_text("---\nname: backend\n---\nBe careful.\n")
    _, lines, _ = doctor(root, agent="command", command=["true"])
    assert lines["persona"] == "ok persona: agents/be.md (backend)"


def test_through_the_command_line(
    scripted: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["doctor", "--workspace", str(scripted)]) == 0
    assert capsys.readouterr().out.endswith("Ready to run.\n")
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    assert main(["doctor", "--workspace", str(scripted), "--agent", "anthropic"]) == 1
    out = capsys.readouterr().out
    assert "missing  credentials: ANTHROPIC_API_KEY is not set" in out
    assert out.endswith("1 problem to fix before `ralph-tui run`.\n")


def test_a_fallback_agent_is_checked_like_the_primary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its missing key would otherwise show only when the primary is rate-limited, mid-run."""
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    script = tmp_path / "script.json"
    script.write_text('{"default": []}', encoding="utf-8")
    root = make_repo(
        tmp_path / "ws",
        extra_config=f'script = "{script}"\nfallback = ["anthropic:claude-haiku-4-5"]',
    )
    code, lines, text = doctor(root)
    assert code == 1, text
    assert lines["fallback anthropic credentials"] == (
        "missing fallback anthropic credentials: ANTHROPIC_API_KEY is not set "
        "-> export ANTHROPIC_API_KEY=... (or choose another agent)"
    )
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    code, lines, text = doctor(root)
    assert code == 0, text
    assert lines["fallback anthropic credentials"].startswith("ok fallback anthropic credentials")


def test_a_tracker_workspace_without_its_prd_yet(
    scripted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (scripted / "tasks/backend_prd.json").unlink()
    with (scripted / "ralph.toml").open("a") as fh:
        fh.write('[tracker]\nkind = "github"\nrepository = "acme/widgets"\nlabel = "ralph"\n')
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    monkeypatch.delenv("GH_TOKEN", raising=False)
    monkeypatch.setattr("ralph_tui.trackers.shutil", SimpleNamespace(which=lambda name: None))
    code, lines, _ = doctor(scripted)  # no token, and no gh to ask
    assert lines["prd"] == "ok prd: tasks/backend_prd.json: written by the run's first tracker sync"
    assert lines["tracker"].startswith(
        "missing tracker: github acme/widgets (ralph): [tracker]: no GitHub token: set "
        "GITHUB_TOKEN or GH_TOKEN"
    )
    assert code != 0 and lines["git"].startswith("ok")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_doctor" + "x" * 30)
    _, lines, text = doctor(scripted)
    assert lines["tracker"] == "ok tracker: github acme/widgets (ralph): credential found"
    assert "ghp_doctor" not in text
