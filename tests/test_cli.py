"""The command line as a user runs it: real subprocesses, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ralph_tui.config import load_config
from tests.support.engine import complete, create
from tests.support.repo import git, make_repo, story


def cli(*args: str, cwd: Path | None = None, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ralph_tui", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_validate_ok_and_status_table(repo: Path) -> None:
    done = cli("validate", "--workspace", str(repo))
    assert done.returncode == 0 and "ok (1 story, 0 passing)" in done.stdout
    table = cli("status", "--workspace", str(repo))
    assert table.returncode == 0
    assert table.stdout.splitlines()[0].split() == ["ID", "PRIORITY", "STATUS", "NEXT", "TITLE"]
    assert "US-001" in table.stdout and "First story" in table.stdout


def test_malformed_prd_is_one_line_exit_2_and_untouched(repo: Path) -> None:
    path = repo / "tasks/backend_prd.json"
    path.write_text('{\n  "userStories": [\n    {"id": 1,, }\n  ]\n}\n')
    before = path.read_bytes()
    for command in ("validate", "status", "run"):
        extra = ["--headless"] if command == "run" else []
        done = cli(command, "--workspace", str(repo), *extra)
        assert done.returncode == 2, done.stderr
        line = done.stderr.strip()
        assert "\n" not in line and line.startswith(f"ralph-tui: {path}:3:14:"), line
    assert path.read_bytes() == before


def test_schema_invalid_prd_names_the_field(repo: Path) -> None:
    path = repo / "tasks/backend_prd.json"
    data = json.loads(path.read_text())
    data["userStories"][0]["priority"] = [1]
    path.write_text(json.dumps(data))
    done = cli("validate", "--workspace", str(repo))
    assert done.returncode == 2
    column = path.read_text().index("[1]") + 1
    assert done.stderr.startswith(f"ralph-tui: {path}:1:{column}: userStories[0].priority:")


def test_schema_prints_json_schema() -> None:
    done = cli("schema")
    assert done.returncode == 0
    schema = json.loads(done.stdout)
    assert "userStories" in schema["anyOf"][0]["properties"]


def test_bad_config_names_the_key(repo: Path) -> None:
    (repo / "ralph.toml").write_text("max_iterations = 0\n")
    done = cli("validate", "--workspace", str(repo))
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"ralph-tui: {repo / 'ralph.toml'}: max_iterations: "
        "Input should be greater than or equal to 1"
    )
    (repo / "ralph.toml").write_text("max_iteration = 3\n")
    assert "max_iteration: unknown key" in cli("validate", "--workspace", str(repo)).stderr
    (repo / "ralph.toml").write_text("max_iterations = [\n")
    done = cli("validate", "--workspace", str(repo))
    assert done.returncode == 2 and str(repo / "ralph.toml") in done.stderr


def test_not_a_repository_and_dirty_tree_exit_2(tmp_path: Path, repo: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "ralph.toml").write_text('agent = "scripted"\nscript = "x.json"\n')
    done = cli("run", "--headless", "--workspace", str(plain))
    assert done.returncode == 2 and "not a git repository" in done.stderr

    script = repo.parent / "s.json"
    script.write_text(json.dumps({"default": [complete()]}))
    (repo / "stray.py").write_text("x\n")
    done = cli("run", "--headless", "--workspace", str(repo))
    assert done.returncode == 2 and "uncommitted changes (stray.py)" in done.stderr


def test_headless_auto_run_commits_and_logs_readably(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps(
            {
                "default": [
                    {"text": "Implementing the story now."},
                    create("src/a.py", "A = 1\n"),
                    complete(),
                ]
            }
        )
    )
    root = make_repo(
        tmp_path / "ws",
        [story("US-001", "One"), story("US-002", "Two", priority=2)],
        extra_config=f'script = "{script}"',
    )
    done = cli("run", "--headless", "--approve", "auto", "--workspace", str(root))
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "[iteration 1] Task #US-001: One" in out
    assert "│ Implementing the story now." in out
    assert "→ str_replace_based_edit_tool" in out
    assert "gate ok: passed" in out
    assert "✓ committed" in out and "[backend] Task #US-002: Two" in out
    assert "run finished: every story passes (exit 0" in out
    assert len(git(root, "log", "--format=%s").splitlines()) == 3


def test_an_empty_gates_table_is_said_before_the_first_story(tmp_path: Path) -> None:
    """Nothing but the agent's word and the approval checks a story then: the human is told."""
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"default": [create("src/a.py", "A = 1\n"), complete()]}))
    root = make_repo(tmp_path / "ws", gates={}, extra_config=f'script = "{script}"')
    done = cli("run", "--headless", "--approve", "auto", "--workspace", str(root))
    assert done.returncode == 0, done.stdout + done.stderr
    said = done.stdout.index("warning: no quality gates ([gates] is empty)")
    assert said < done.stdout.index("[iteration 1]")


def test_headless_max_iterations_exit_3_and_escalation_exit_4(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps(
            {
                "stories": {
                    "US-001": [complete()],
                    "US-002": [
                        {
                            "tool": "escalate",
                            "input": {"question": "Which DB?", "tried": "guessing"},
                        }
                    ],
                }
            }
        )
    )
    root = make_repo(
        tmp_path / "ws",
        [story("US-001", "One"), story("US-002", "Two", priority=2)],
        extra_config=f'script = "{script}"',
    )
    done = cli(
        "run", "--headless", "--approve", "auto", "--max-iterations", "1", "--workspace", str(root)
    )
    assert done.returncode == 3, done.stdout
    done = cli("run", "--headless", "--approve", "auto", "--workspace", str(root))
    assert done.returncode == 4, done.stdout
    assert "escalation (agent): Which DB?" in done.stdout


def test_headless_ask_reads_decisions_from_the_terminal(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"default": [create("a.py", "1\n"), complete(), complete()]}))
    root = make_repo(tmp_path / "ws", extra_config=f'script = "{script}"')
    done = cli("run", "--headless", "--workspace", str(root), stdin="r\nuse two\na\n")
    assert done.returncode == 0, done.stdout
    assert "supervisor: reject (use two)" in done.stdout
    assert "supervisor: approve" in done.stdout


def test_init_scaffolds_and_is_idempotent(tmp_path: Path) -> None:
    root = tmp_path / "new"
    root.mkdir()
    git(root, "init", "-q")
    done = cli("init", "--workspace", str(root), "--role", "frontend")
    assert done.returncode == 0
    assert (root / "tasks/frontend_prd.json").exists() and (root / "ralph.toml").exists()
    assert cli("validate", "--workspace", str(root)).returncode == 0
    again = cli("init", "--workspace", str(root), "--role", "frontend")
    assert "nothing to do" in again.stdout
    assert ".ralph/" in (root / ".git/info/exclude").read_text()
    # the template's commented examples are valid as they stand once uncommented
    toml = root / "ralph.toml"
    toml.write_text(toml.read_text().replace("# fallback = ", "fallback = "))
    assert cli("validate", "--workspace", str(root)).returncode == 0
    assert load_config(root).fallback == ["anthropic:claude-haiku-4-5"]


def test_a_refused_run_leaves_the_user_on_their_branch(tmp_path: Path) -> None:
    """No API key: the run says what to do and exits 2 before it creates or checks out the
    PRD's branch (every refusal comes before anything changes)."""
    root = make_repo(tmp_path / "ws", [story("US-001", "One")])
    (root / "ralph.toml").write_text('role = "backend"\nagent = "anthropic"\n')
    git(root, "commit", "-qam", "the real agent")
    before = git(root, "branch", "--format=%(refname:short)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC")}
    done = subprocess.run(
        [sys.executable, "-m", "ralph_tui", "run", "--headless"],
        cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "ANTHROPIC_API_KEY" in done.stderr
    assert git(root, "branch", "--format=%(refname:short)") == before
    assert git(root, "branch", "--show-current").strip() != "ralph/test"


def test_init_says_the_next_steps_and_validate_flags_the_example(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    git(root, "init", "-q")
    done = cli("init", "--workspace", str(root))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "next:" in lines
    assert any("ralph-tui import FILE --force" in line for line in lines)
    assert any("git add tasks/backend_prd.json" in line for line in lines)
    assert lines[-1].strip() == "3. ralph-tui validate, then ralph-tui run"
    checked = cli("validate", "--workspace", str(root))
    assert checked.returncode == 0
    assert "ok (1 story, 0 passing, 1 warning)" in checked.stdout
    assert "still holds the example story from `ralph-tui init`" in checked.stderr


def test_a_port_out_of_range_and_a_demo_folder_that_cannot_be_made_are_one_line(
    repo: Path, tmp_path: Path
) -> None:
    """Each was a traceback (``bind``'s OverflowError, ``mkdir``'s FileNotFoundError)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    cases = {
        ("run", "--headless", "--listen", "127.0.0.1:99999", "--workspace", str(repo)): (
            "--listen 127.0.0.1:99999: the port must be 0-65535"
        ),
        ("web", "--port", "99999", "--workspace", str(repo)): "'99999' is not a port (0-65535)",
        ("demo", str(blocker / "inside")): "cannot create the demo folder",
        ("demo", str(blocker)): "not a folder; give a new folder for the demo",
    }
    for argv, said in cases.items():
        done = cli(*argv)
        assert done.returncode == 2, (argv, done.stderr)
        assert "Traceback" not in done.stderr and said in done.stderr, (argv, done.stderr)
    assert blocker.read_text() == "x"


def test_a_file_named_ralph_is_one_line_naming_it(repo: Path) -> None:
    (repo / ".ralph").write_text("not a folder\n")
    done = cli("run", "--headless", "--allow-dirty", "--workspace", str(repo))
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (  # one line: no warning about a cache inside it first
        f"ralph-tui: {repo}/.ralph: not a folder; ralph-tui keeps its state there "
        "(move the file away)"
    )
    assert (repo / ".ralph").read_text() == "not a folder\n"
