"""A whole story through ``ralph-tui run --headless --approve auto --agent anthropic``.

ralph-tui runs as a real subprocess; the real ``anthropic`` SDK inside it talks to the fake
Messages API server (a real socket owned by this test) through ``ANTHROPIC_BASE_URL``. The
script: write a buggy module, claim done, get the failing gate back, fix it, claim done again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.fake_anthropic import FakeAnthropic, http_error, reply, tool_use
from tests.support.repo import git, make_repo, story

API_KEY = "sk-ant-e2e-DO-NOT-LEAK-4242424242"

CHECK = """\
import sys
sys.path.insert(0, "src")
from greet import greet
got = greet("Ada")
if got != "Hello, Ada!":
    print(f"check_greet: expected 'Hello, Ada!', got {got!r}")
    sys.exit(1)
print("check_greet: ok")
"""


def editor(**tool_input: Any) -> dict[str, Any]:
    return tool_use("str_replace_based_edit_tool", tool_input)


def complete(learnings: list[str]) -> dict[str, Any]:
    return tool_use("complete_task", {"summary": "Added greet()", "learnings": learnings})


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = make_repo(
        tmp_path / "ws",
        [story("US-001", "Greeting")],
        gates={"check": f"{sys.executable} check_greet.py"},
    )
    (root / "check_greet.py").write_text(CHECK)
    git(root, "add", "check_greet.py")
    git(root, "commit", "-q", "-m", "add the greeting check")
    return root


def run_ralph(workspace: Path, api: FakeAnthropic) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ANTHROPIC_API_KEY": API_KEY,
        "ANTHROPIC_BASE_URL": api.base_url,
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "ralph_tui",
            "run",
            "--headless",
            "--approve",
            "auto",
            "--agent",
            "anthropic",
            "--workspace",
            str(workspace),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_story_end_to_end_with_a_gate_failing_once(workspace: Path) -> None:
    replies = [
        reply(
            "I'll add the module.",
            editor(
                command="create",
                path="src/greet.py",
                file_text='def greet(name: str) -> str:\n    return f"Hi, {name}!"\n',
            ),
        ),
        reply(
            tool_use("bash", {"command": "echo key=[$ANTHROPIC_API_KEY]; env | grep -c ANTHROPIC_"})
        ),
        reply(complete(["greet lives in src/greet.py"])),
        reply(
            "The check wants Hello; fixing.",
            editor(command="str_replace", path="src/greet.py", old_str="Hi, ", new_str="Hello, "),
        ),
        reply(
            complete(
                ["greet lives in src/greet.py", f"the check gate runs check_greet.py {API_KEY}"]
            )
        ),
    ]
    with FakeAnthropic(replies) as api:
        done = run_ralph(workspace, api)
        requests = api.requests
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(requests) == 5, [r.body["messages"][-1] for r in requests]

    # the file the tool created, fixed
    assert (workspace / "src/greet.py").read_text() == (
        'def greet(name: str) -> str:\n    return f"Hello, {name}!"\n'
    )
    # the agent's shell had no key
    bash_result = last_tool_results(requests[2].body)[0]
    assert bash_result["content"].startswith("key=[]\n0\n")
    # the failing gate reached the agent as an error result, with the gate's output
    (gate_failure,) = last_tool_results(requests[3].body)
    assert gate_failure["is_error"] is True
    assert "check_greet: expected 'Hello, Ada!', got 'Hi, Ada!'" in gate_failure["content"]
    # the commit holds the change and the bookkeeping
    log = git(workspace, "log", "--format=%s", "-n", "1")
    assert log == "[backend] Task #US-001: Greeting\n", log
    files = git(workspace, "show", "--name-only", "--format=", "HEAD").split()
    assert "src/greet.py" in files
    assert git(workspace, "status", "--porcelain", "--untracked-files=all").strip() == ""
    prd = json.loads((workspace / "tasks/backend_prd.json").read_text())
    assert prd["userStories"][0]["passes"] is True
    # the progress entry carries the agent's learnings (the secret redacted)
    progress = (workspace / "tasks/backend_progress.txt").read_text()
    assert "greet lives in src/greet.py" in progress
    assert "the check gate runs check_greet.py" in progress

    # the API key never reaches anything ralph-tui wrote
    assert_no_secret(workspace, API_KEY)


def last_tool_results(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [b for b in body["messages"][-1]["content"] if b["type"] == "tool_result"]


def assert_no_secret(workspace: Path, secret: str) -> None:
    written = [p for p in workspace.rglob("*") if p.is_file() and ".git" not in p.parts]
    assert any(".ralph" in p.parts for p in written), "the run left no journal to check"
    for path in written:
        assert secret.encode() not in path.read_bytes(), f"{path} holds the API key"
    history = git(workspace, "log", "-p", "--all", "--format=%H%n%B")
    assert secret not in history
    assert secret not in git(workspace, "stash", "list")


def test_secret_in_streamed_text_is_redacted(workspace: Path) -> None:
    replies = [
        reply(
            f"Note to self: the key is {API_KEY}. Now the module.",
            editor(
                command="create",
                path="src/greet.py",
                file_text='def greet(name: str) -> str:\n    return f"Hello, {name}!"\n',
            ),
        ),
        reply(complete(["greet lives in src/greet.py"])),
    ]
    with FakeAnthropic(replies) as api:
        done = run_ralph(workspace, api)
    assert done.returncode == 0, done.stdout + done.stderr
    assert_no_secret(workspace, API_KEY)
    assert API_KEY not in done.stdout and "[REDACTED]" in done.stdout  # the console too


def test_api_failure_ends_the_run_cleanly_with_exit_1(workspace: Path) -> None:
    head = git(workspace, "rev-parse", "HEAD")
    replies = [
        reply(
            editor(command="create", path="src/greet.py", file_text="def greet(): ...\n"),
        ),
        *[http_error(529, message="Overloaded")] * 5,  # the SDK's first try and 4 retries
    ]
    with FakeAnthropic(replies) as api:
        done = run_ralph(workspace, api)
        sent = len(api.requests)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Anthropic API: 529 overloaded_error: Overloaded" in done.stdout + done.stderr
    assert sent == 6
    # no commit, tree restored, the work kept as a patch
    assert git(workspace, "rev-parse", "HEAD") == head
    assert not (workspace / "src/greet.py").exists()
    patches = list((workspace / ".ralph/runs").glob("*/patches/*.patch"))
    assert len(patches) == 1 and "src/greet.py" in patches[0].read_text()


def test_wrong_key_is_reported_at_once(workspace: Path) -> None:
    with FakeAnthropic([http_error(401, message="invalid x-api-key")]) as api:
        done = run_ralph(workspace, api)
        sent = len(api.requests)
    assert done.returncode == 1
    assert "401 authentication_error: invalid x-api-key; check ANTHROPIC_API_KEY" in (
        done.stdout + done.stderr
    )
    assert sent == 1


def test_missing_key_is_a_usage_error(workspace: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ralph_tui",
            "run",
            "--headless",
            "--agent",
            "anthropic",
            "--workspace",
            str(workspace),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().endswith(
        "ANTHROPIC_API_KEY is not set: export it, or choose "
        "another agent (--agent, or agent = ... in ralph.toml)"
    )
