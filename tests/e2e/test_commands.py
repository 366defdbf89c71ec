"""The other commands a user types, each through the installed executable: ``init``,
``validate``, ``status``, ``doctor``, ``import``, ``prd`` and the webhook notification."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.e2e.support import (
    API_KEY,
    PRD,
    RALPH_TUI,
    Site,
    assert_clean,
    assert_stories_landed,
)
from tests.support.fake_anthropic import reply
from tests.support.repo import git
from tests.test_import import MARKDOWN


def test_init_then_validate_status_and_doctor_on_a_new_repository(site: Site) -> None:
    root = site.new_repo()

    init = site.ralph("init")
    assert init.returncode == 0, init.stderr
    for made in ("tasks/backend_prd.json", "tasks/backend_progress.txt", "ralph.toml"):
        assert f"created {made}" in init.stdout and (root / made).is_file()
    assert ".ralph/" in (root / ".git/info/exclude").read_text(encoding="utf-8")

    valid = site.ralph("validate")
    assert valid.returncode == 0 and "ok (" in valid.stdout, valid.stdout + valid.stderr
    status = site.ralph("status")
    assert status.returncode == 0, status.stderr
    assert "US-001" in status.stdout and "0/1 passing" in status.stdout

    env_path = f"{RALPH_TUI.parent}{os.pathsep}{os.environ.get('PATH', '')}"  # the gate tools
    doctor = site.ralph("doctor", env_path=env_path)
    assert "ok       git:" in doctor.stdout
    assert "credentials: ANTHROPIC_API_KEY is set" in doctor.stdout
    assert API_KEY not in doctor.stdout + doctor.stderr
    assert doctor.returncode == 0, doctor.stdout
    schema = site.ralph("schema")
    assert schema.returncode == 0, schema.stderr
    shapes = json.loads(schema.stdout)["anyOf"]
    assert any("userStories" in shape.get("properties", {}) for shape in shapes)
    assert git(root, "log", "--format=%s").splitlines() == ["initial"]  # nothing committed


def test_import_a_markdown_prd_then_run_its_first_story(site: Site) -> None:
    root = site.repo(1)
    source = site.base / "prd-task-priority.md"
    source.write_text(MARKDOWN, encoding="utf-8")
    imported = site.ralph("import", str(source), "--force")
    assert imported.returncode == 0, imported.stderr
    prd = json.loads((root / PRD).read_text(encoding="utf-8"))
    assert [s["id"] for s in prd["userStories"]][:2] == ["US-001", "US-002"]
    assert site.ralph("validate").returncode == 0
    git(root, "add", "-A")
    git(root, "commit", "-qm", "import the PRD")

    done = site.ralph(
        "run", "--headless", "--approve", "auto", "--agent", "anthropic", "--max-iterations", "1"
    )
    assert done.returncode == 3, done.stdout[-3000:] + done.stderr  # stories left: max reached
    first = prd["userStories"][0]
    assert git(root, "log", "-1", "--format=%s") == f"[backend] Task #US-001: {first['title']}\n"
    assert json.loads((root / PRD).read_text(encoding="utf-8"))["userStories"][0]["passes"]
    assert_clean(site)


DRAFT = {
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
        }
    ],
}


def test_prd_drafts_a_prd_that_validates_and_claims_nothing_done(site: Site) -> None:
    root = site.repo(1)
    site.api.add(reply("Here is the PRD:\n```json\n" + json.dumps(DRAFT) + "\n```"))
    drafted = site.ralph("prd", "a REST API for an inventory", "--force")
    assert drafted.returncode == 0, drafted.stdout + drafted.stderr
    prd = json.loads((root / PRD).read_text(encoding="utf-8"))
    assert [s["title"] for s in prd["userStories"]] == ["Item model"]
    assert prd["userStories"][0]["passes"] is False
    assert site.ralph("validate").returncode == 0
    assert len(site.api.requests) == 1


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A webhook receiver on 127.0.0.1 owned by the test: every JSON body, in arrival order."""
    bodies: list[dict[str, Any]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            bodies.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", bodies
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("approve", ["ask", "auto"])
def test_the_webhook_hears_what_a_human_must_know(
    site: Site, receiver: tuple[str, list[dict[str, Any]]], approve: str
) -> None:
    url, bodies = receiver
    notify = f'notify = {{ webhook = "{url}", desktop = false, bell = false, osc = false }}'
    root = site.repo(1, config=notify)
    done = site.ralph(
        "run", "--headless", "--approve", approve, "--agent", "anthropic", input="a\n"
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    assert_stories_landed(root, ["US-001"], ["Story 1"])
    kinds = [body["event"] for body in bodies]
    # a human is asked only where one must approve; the end is always told
    assert kinds == (["approval_needed"] if approve == "ask" else []) + ["run_finished"], kinds
    assert API_KEY not in json.dumps(bodies)
    assert_clean(site)


def test_validate_lists_every_problem_of_the_prd_one_line_each(site: Site) -> None:
    root = site.repo(1)
    (root / "tasks/backend_prd.json").write_text(
        '{"project": "x", "userStories": [\n'
        ' {"id": "US-001", "title": "", "passes": "no", "priority": "high"},\n'
        ' {"id": "US-002", "passes": false}\n'
        "]}\n",
        encoding="utf-8",
    )
    done = site.ralph("validate")
    assert done.returncode == 2
    prd = root / "tasks/backend_prd.json"
    assert done.stderr.splitlines() == [
        f'ralph-tui: {prd}:2:28: userStories[0].title: must not be empty (got "") (+3 more)',
        f'ralph-tui: {prd}:2:42: userStories[0].passes: Input should be a valid boolean (got "no")',
        f"ralph-tui: {prd}:2:60: userStories[0].priority: Input should be an integer or a "
        'number (got "high")',
        f"ralph-tui: {prd}:3:2: userStories[1].title: Field required",
    ]
    status = site.ralph("status")  # the other commands: the first, and how many more
    assert status.returncode == 2 and len(status.stderr.splitlines()) == 1


def test_a_prd_without_stories_is_refused_not_reported_done(site: Site) -> None:
    """An empty list (a wrong key, an empty export) would make "every story passes" true."""
    root = site.repo(1)
    prd = root / PRD
    prd.write_text('{"project": "x", "userStories": []}\n', encoding="utf-8")
    git(root, "commit", "-qam", "no stories yet")
    before = git(root, "log", "--format=%H %s")
    refusal = f"ralph-tui: {prd}: no stories, nothing for a run to do"

    valid = site.ralph("validate")
    assert valid.returncode == 2 and valid.stderr.startswith(refusal), valid.stderr
    run = site.ralph("run", "--headless", "--approve", "auto")
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.strip().startswith(refusal) and "\n" not in run.stderr.strip(), run.stderr
    assert "every story passes" not in run.stdout + run.stderr
    assert git(root, "log", "--format=%H %s") == before
    assert site.api.requests == []
    assert_clean(site)

    empty = site.base / "features.json"
    empty.write_text('{"features": []}\n', encoding="utf-8")
    kept = prd.read_bytes()
    imported = site.ralph("import", str(empty), "--force")
    assert imported.returncode == 2, imported.stdout + imported.stderr
    assert (
        imported.stderr.strip()
        == f"ralph-tui: {empty}: no stories found in it; nothing written to {prd}"
    )
    assert prd.read_bytes() == kept
