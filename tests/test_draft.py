"""`ralph-tui prd "idea"` against the fake Messages API: validated, re-asked, written for review."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ralph_tui.draft import extract_json
from tests.support.fake_anthropic import FakeAnthropic, http_error, reply
from tests.support.repo import make_repo

API_KEY = "sk-ant-draft-test-1234"

GOOD = {
    "project": "Inventory API",
    "branchName": "ralph/inventory-api",
    "description": "A REST API for an inventory.",
    "userStories": [
        {
            "id": "US-001",
            "title": "Item model",
            "description": "As a developer I want an Item model.",
            "acceptanceCriteria": ["Item has sku, name, quantity", "Typecheck passes"],
            "priority": 1,
            "passes": True,  # the model claims it is done: a draft never is
            "notes": "",
        },
        {
            "id": "US-002",
            "title": "List items",
            "description": "As a client I want GET /items.",
            "acceptanceCriteria": ["GET /items returns JSON"],
            "priority": 2,
            "passes": False,
            "notes": "",
            "dependsOn": ["US-001"],
        },
    ],
}


def run_prd(workspace: Path, api: FakeAnthropic, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANTHROPIC_API_KEY": API_KEY, "ANTHROPIC_BASE_URL": api.base_url}
    return subprocess.run(
        [sys.executable, "-m", "ralph_tui", "prd", "a REST API for an inventory",
         "--workspace", str(workspace), *extra],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = make_repo(tmp_path / "ws")
    (root / "tasks" / "backend_prd.json").unlink()
    return root


def test_invalid_first_answer_is_sent_back_then_the_prd_is_written(workspace: Path) -> None:
    missing_passes: dict[str, Any] = json.loads(json.dumps(GOOD))
    for s in missing_passes["userStories"]:
        s["priority"] = [1]  # a list where a priority should be
    replies = [
        reply("Sure! Here is a plan: build the API."),  # no JSON at all
        reply(json.dumps(missing_passes)),
        reply("```json\n" + json.dumps(GOOD, indent=2) + "\n```"),
    ]
    with FakeAnthropic(replies) as api:
        done = run_prd(workspace, api)
        requests = api.requests

    assert done.returncode == 0, done.stderr
    assert "wrote tasks/backend_prd.json: 2 stories after 3 tries, cost $" in done.stdout
    assert len(requests) == 3
    first = requests[0].body
    assert first["model"] == "claude-sonnet-4-5" and "tools" not in first
    assert "a REST API for an inventory" in json.dumps(first["messages"])
    assert API_KEY in json.dumps(requests[0].headers)
    second = json.dumps(requests[1].body["messages"])
    assert "not a valid PRD: the answer holds no JSON object" in second
    third = json.dumps(requests[2].body["messages"])
    assert "userStories[0].priority: Input should be an integer or a number" in third
    doc = json.loads((workspace / "tasks/backend_prd.json").read_text(encoding="utf-8"))
    assert [s["id"] for s in doc["userStories"]] == ["US-001", "US-002"]
    assert all(s["passes"] is False for s in doc["userStories"])
    # for review: status shows it, nothing ran (no commit, no run folder)
    status = subprocess.run(
        [sys.executable, "-m", "ralph_tui", "status", "--workspace", str(workspace)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "US-002" in status.stdout and "waiting on US-001" in status.stdout
    assert not (workspace / ".ralph").exists()


def test_three_invalid_answers_write_nothing(workspace: Path) -> None:
    with FakeAnthropic([reply("no"), reply("{}"), reply('{"userStories": []}')]) as api:
        done = run_prd(workspace, api)
        assert len(api.requests) == 3
    assert done.returncode == 2
    target = workspace / "tasks/backend_prd.json"
    line = done.stderr.strip()
    assert "\n" not in line
    assert line.startswith(
        f"ralph-tui: {target}: not written: the model's answer was not a valid PRD after 3 tries"
    )
    assert not target.exists()


def test_existing_prd_and_api_errors_are_one_line(workspace: Path) -> None:
    target = workspace / "tasks/backend_prd.json"
    target.write_text("{}")
    with FakeAnthropic([reply(json.dumps(GOOD))]) as api:
        done = run_prd(workspace, api)
        assert api.requests == []
    assert done.returncode == 2
    assert (
        done.stderr == f"ralph-tui: {target}: a PRD is already there (use --force to replace it)\n"
    )
    with FakeAnthropic([http_error(401, message="invalid x-api-key")]) as api:
        done = run_prd(workspace, api, "--force")
    assert done.returncode != 0 and "invalid x-api-key" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert target.read_text() == "{}"


def test_extract_json_finds_the_document() -> None:
    assert extract_json('{"a": 1}') == {"a": 1}
    assert extract_json('Here:\n```json\n{"a": 2}\n```\nDone.') == {"a": 2}
    assert extract_json('I think {"a": 3} works') == {"a": 3}
    with pytest.raises(ValueError, match="no JSON object"):
        extract_json("nothing")
    with pytest.raises(ValueError, match="too deeply nested"):
        extract_json('{"a":' + "[" * 100_000 + "]" * 100_000 + "}")
