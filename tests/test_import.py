"""`ralph-tui import`: a Markdown PRD (the `prd` skill's shape) and a beads issues.jsonl file,
end to end through the command line; bad input is one line naming the file, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ralph_tui.prd.store import PrdStore
from tests.support.repo import make_repo
from tests.test_cli import cli

MARKDOWN = """\
# PRD: Task Priority System

## Introduction

Add priorities to tasks so users can focus on what matters most.

## Goals

- Allow assigning priority (high/medium/low) to any task

## User Stories

### US-001: Add priority field to database
**Description:** As a developer, I need to store task priority so it persists across sessions.

**Acceptance Criteria:**
- [ ] Add priority column to tasks table: 'high' | 'medium' | 'low' (default 'medium')
- [ ] Generate and run migration successfully
- [ ] Typecheck passes

### US-002: Display priority indicator on task cards
**Description:** As a user, I want to see task priority at a glance
so I know what needs attention first.

**Priority:** 0
**Depends on:** US-001

**Acceptance Criteria:**
- [ ] Each task card shows colored priority badge (red=high, yellow=medium, gray=low)
- [x] Typecheck passes

### US-003: Filter tasks by priority]52;c;cHduZWQ=
**Priority:** Lowest
**Description:** As a user, I want to filter the task list by priority.

**Acceptance Criteria:**
- [ ] Filter dropdown with options: All | High | Medium | Low

## Non-Goals

- No priority-based notifications
"""

BEADS = [
    {
        "id": "bd-1",
        "title": "Schema for orders",
        "description": "Create the orders table.\n\n- [ ] migration runs\n- [ ] model has total",
        "status": "closed",
        "priority": 1,
        "issue_type": "task",
        "labels": ["db"],
    },
    {
        "id": "bd-2",
        "title": "Orders API",
        "description": "REST endpoints.\n- [ ] GET /orders lists orders",
        "status": "open",
        "priority": 0,
        "issue_type": "feature",
        "dependencies": [
            {"issue_id": "bd-2", "depends_on_id": "bd-1", "type": "blocks"},
            {"issue_id": "bd-2", "depends_on_id": "bd-9", "type": "blocks"},
        ],
    },
    {
        "id": "bd-3",
        "title": "Orders UI",
        "description": "A page.",
        "status": "in_progress",
        "priority": 2,
        "dependencies": [{"issue_id": "bd-3", "depends_on_id": "bd-2", "type": "blocks"}],
    },
    {"id": "bd-4", "title": "Orders epic", "status": "open", "priority": 1, "issue_type": "epic"},
]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = make_repo(tmp_path / "ws")
    (root / "tasks" / "backend_prd.json").unlink()
    return root


def test_markdown_prd_imports_end_to_end(workspace: Path, tmp_path: Path) -> None:
    source = tmp_path / "prd-task-priority.md"
    source.write_text(MARKDOWN, encoding="utf-8")

    done = cli("import", str(source), "--workspace", str(workspace))

    assert done.returncode == 0, done.stderr
    assert "Markdown PRD" in done.stdout
    assert "\x1b" not in done.stdout and "\x07" not in done.stdout  # a title's escapes are shown
    mapped = (
        "US-002: Display priority indicator on task cards (2 criteria, priority 0, after US-001)"
    )
    assert mapped in done.stdout
    doc = json.loads((workspace / "tasks/backend_prd.json").read_text(encoding="utf-8"))
    assert doc["project"] == "Task Priority System"
    assert doc["branchName"] == "ralph/task-priority-system"
    assert doc["description"].startswith("Add priorities to tasks")
    first, second, third = doc["userStories"]
    assert first["acceptanceCriteria"] == [
        "Add priority column to tasks table: 'high' | 'medium' | 'low' (default 'medium')",
        "Generate and run migration successfully",
        "Typecheck passes",
    ]
    assert first["description"].startswith("As a developer, I need to store")
    assert second["description"] == (
        "As a user, I want to see task priority at a glance so I know what needs attention first."
    )
    assert (first["priority"], second["priority"], third["priority"]) == (1, 0, 4)  # "Lowest" = 4
    assert second["dependsOn"] == ["US-001"] and second["passes"] is False
    # the result is a PRD ralph-tui runs: US-002 waits for US-001 despite priority 0
    prd = PrdStore(workspace / "tasks/backend_prd.json").load()
    assert [s.key for s in prd.pick_order()] == ["US-001", "US-003"]
    status = cli("status", "--workspace", str(workspace))
    assert "waiting on US-001" in status.stdout


def test_beads_file_imports_end_to_end(workspace: Path) -> None:
    beads = workspace / ".beads" / "issues.jsonl"
    beads.parent.mkdir()
    beads.write_text("".join(json.dumps(i) + "\n" for i in BEADS), encoding="utf-8")

    done = cli("import", str(beads), "--workspace", str(workspace), "--role", "api")

    assert done.returncode == 0, done.stderr
    assert "beads issues" in done.stdout
    assert "note: skipped bd-4 (epic)" in done.stdout
    assert "note: dropped bd-2's dependency on bd-9" in done.stdout
    doc = json.loads((workspace / "tasks/api_prd.json").read_text(encoding="utf-8"))
    one, two, three = doc["userStories"]
    assert one["acceptanceCriteria"] == ["migration runs", "model has total"]
    assert one["description"] == "Create the orders table."
    assert one["passes"] is True and one["status"] == "closed" and one["labels"] == ["db"]
    assert two["priority"] == 0 and two["passes"] is False
    assert [d["depends_on_id"] for d in two["dependencies"]] == ["bd-1"]
    assert three["passes"] is False and three["status"] == "in_progress"
    prd = PrdStore(workspace / "tasks/api_prd.json").load()
    assert [s.key for s in prd.pick_order()] == ["bd-2"]  # bd-3 waits for bd-2
    # flipping keeps beads' own word for done
    PrdStore(workspace / "tasks/api_prd.json").update_story("bd-2", {"passes": True})
    doc = json.loads((workspace / "tasks/api_prd.json").read_text(encoding="utf-8"))
    assert doc["userStories"][1]["status"] == "closed"


def test_existing_prd_is_not_overwritten_without_force(workspace: Path, tmp_path: Path) -> None:
    source = tmp_path / "p.md"
    source.write_text(MARKDOWN, encoding="utf-8")
    target = workspace / "tasks/backend_prd.json"
    target.write_text("{}", encoding="utf-8")
    done = cli("import", str(source), "--workspace", str(workspace))
    assert done.returncode == 2
    assert (
        done.stderr == f"ralph-tui: {target}: a PRD is already there (use --force to replace it)\n"
    )
    assert target.read_text() == "{}"
    forced = cli("import", str(source), "--workspace", str(workspace), "--force")
    assert forced.returncode == 0, forced.stderr
    assert len(json.loads(target.read_text())["userStories"]) == 3


BAD_INPUTS = [
    ("empty.md", "# Nothing\n", "no user stories found (expected headings like '### US-001: Title')"),  # noqa: E501
    ("bad.md", "### US-001: A\n**Priority:** soon\n", "2: priority 'soon' is not a number (e.g. 1, P1 or high)"),  # noqa: E501
    ("bad.jsonl", '{"id": "a", "title": "A"}\n{"id": "b",\n', "2:12: not valid JSON (Expecting property name enclosed in double quotes)"),  # noqa: E501
    ("notitle.jsonl", '{"id": "a"}\n', "1: issue without a title"),
    ("deep.jsonl", "[" * 100_000 + "]" * 100_000 + "\n", "1: JSON too deep or a number too long"),
    ("array.jsonl", "[1]\n", "1: each line must be a JSON object (an issue)"),
    ("cycle.md", "### US-001: A\n**Depends on:** US-002\n### US-002: B\n**Depends on:** US-001\n",
     "userStories[0].dependsOn: dependency cycle: US-001 -> US-002 -> US-001 (after import)"),
    ("bin.md", "\x00\x01", "binary file (NUL bytes)"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "content", "message"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_is_one_line_naming_the_file_and_nothing_is_written(
    workspace: Path, tmp_path: Path, name: str, content: str, message: str
) -> None:
    source = tmp_path / name
    source.write_text(content, encoding="utf-8")
    done = cli("import", str(source), "--workspace", str(workspace))
    assert done.returncode == 2
    sep = ":" if message[0].isdigit() else ": "
    assert done.stderr == f"ralph-tui: {source}{sep}{message}\n"
    assert not (workspace / "tasks/backend_prd.json").exists()
    assert [p.name for p in (workspace / "tasks").iterdir()] == ["backend_progress.txt"]


def test_missing_source_is_one_line(workspace: Path, tmp_path: Path) -> None:
    done = cli("import", str(tmp_path / "nope.md"), "--workspace", str(workspace))
    assert done.returncode == 2
    assert done.stderr == f"ralph-tui: {tmp_path / 'nope.md'}: file not found\n"


def test_a_story_heading_without_an_id_gets_the_next_one_and_keeps_its_text(
    workspace: Path, tmp_path: Path
) -> None:
    source = tmp_path / "prd.md"
    source.write_text(
        "# PRD: Shop\n\n## User Stories\n\n"
        "### US-001: Cart\n**Description:** As a buyer, I add items.\n\n"
        "**Acceptance Criteria:**\n- [ ] Items add up\n\n"
        "### Story two without id\n**Description:** As a buyer, I pay.\n\n"
        "**Acceptance Criteria:**\n- [ ] Payment succeeds\n",
        encoding="utf-8",
    )
    done = cli("import", str(source), "--workspace", str(workspace), "--force")
    assert done.returncode == 0, done.stderr
    out = done.stdout + done.stderr
    assert f"{source}:11: the story 'Story two without id' has no id; imported as US-002" in out
    doc = json.loads((workspace / "tasks/backend_prd.json").read_text(encoding="utf-8"))
    first, second = doc["userStories"]
    assert first["acceptanceCriteria"] == ["Items add up"]  # not merged into the story above
    assert (second["id"], second["title"]) == ("US-002", "Story two without id")
    assert second["description"] == "As a buyer, I pay."
    assert second["acceptanceCriteria"] == ["Payment succeeds"]
