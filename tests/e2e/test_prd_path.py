"""Bringing your PRD (issue 29): where snarktank's loop keeps it, ``--prd``, ``prd = ...``.

Each test lays out a repository the way a snarktank user has it (no ``tasks/`` folder, a
``prd.json`` at the root or in ``scripts/ralph/``) and drives the installed ``ralph-tui``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.support import Site, _tool_results, assert_clean, stories
from tests.support.fake_anthropic import reply, tool_use
from tests.support.repo import git

SNARKTANK_PRD: dict[str, Any] = {
    "project": "MyApp",
    "branchName": "ralph/task-priority",
    "description": "Task Priority System - Add priority levels to tasks",
    "userStories": [
        {
            "id": "US-001",
            "title": "Add priority field to database",
            "description": "As a developer, I need to store task priority.",
            "acceptanceCriteria": ["Add a priority column", "Typecheck passes"],
            "priority": 1,
            "passes": False,
            "notes": "",
        }
    ],
}


def _snarktank_repo(site: Site, place: str, config: str = "") -> Path:
    root = site.root
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    prd = root / place
    prd.parent.mkdir(parents=True, exist_ok=True)
    prd.write_text(json.dumps(SNARKTANK_PRD, indent=2) + "\n", encoding="utf-8")
    (prd.parent / "progress.txt").write_text("## Codebase Patterns\n- none yet\n\n")
    (root / "ralph.toml").write_text(
        config + 'agent = "anthropic"\n[gates]\nok = "true"\n', encoding="utf-8"
    )
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    return root


@pytest.mark.parametrize("place", ["prd.json", "scripts/ralph/prd.json"])
def test_a_snarktank_prd_is_found_where_its_loop_keeps_it_and_the_run_lands_on_it(
    site: Site, place: str
) -> None:
    root = _snarktank_repo(site, place)
    validate = site.ralph("validate")
    assert validate.returncode == 0, validate.stderr
    assert f"PRD: {place} (tasks/backend_prd.json does not exist" in validate.stderr
    assert f"{root / place}: ok (1 story, 0 passing)" in validate.stdout

    done = site.ralph("run", "--headless", "--approve", "auto")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"PRD: {place} (tasks/backend_prd.json does not exist" in done.stdout
    prd = json.loads((root / place).read_text(encoding="utf-8"))
    assert prd["userStories"][0]["passes"] is True
    progress = (root / place).parent / "progress.txt"
    text = progress.read_text(encoding="utf-8")
    assert text.startswith("## Codebase Patterns\n")  # snarktank's own log, appended to
    assert text.count("## Task #US-001: Add priority field to database") == 1
    assert git(root, "branch", "--show-current").strip() == "ralph/task-priority"
    assert not (root / "tasks").exists()
    assert_clean(site)


def test_prd_flag_and_config_key_name_the_prd_and_a_missing_one_is_one_line(site: Site) -> None:
    root = _snarktank_repo(site, "backlog/sprint.json", config='prd = "backlog/sprint.json"\n')
    status = site.ralph("status")
    assert status.returncode == 0, status.stderr
    assert "MyApp: 0/1 passing" in status.stdout and "PRD:" not in status.stderr

    missing = site.ralph("validate", "--prd", "nope/prd.json")
    assert missing.returncode == 2
    lines = missing.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"ralph-tui: {root}/nope/prd.json: file not")

    done = site.ralph("run", "--headless", "--approve", "auto", "--prd", "backlog/sprint.json")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    prd = json.loads((root / "backlog/sprint.json").read_text(encoding="utf-8"))
    assert prd["userStories"][0]["passes"] is True
    assert "## Task #US-001" in (root / "backlog/progress.txt").read_text(encoding="utf-8")
    assert_clean(site)


@pytest.mark.parametrize("command", [("validate",), ("status",), ("run", "--headless")])
def test_a_missing_prd_in_ralph_toml_is_one_line_naming_ralph_toml(
    site: Site, command: tuple[str, ...]
) -> None:
    root = _snarktank_repo(site, "prd.json", config='prd = "backlog/sprint.json"\n')
    done = site.ralph(*command)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f'ralph-tui: {root}/ralph.toml: prd = "backlog/sprint.json": {root}/backlog/sprint.json: '
        "file not found (create it with `ralph-tui init` or `import`, or fix prd there)"
    ]
    assert git(root, "status", "--porcelain") == ""


def test_a_missing_prd_with_a_newline_in_its_name_is_still_one_line(site: Site) -> None:
    _snarktank_repo(site, "prd.json", config='prd = "a\\nb.json"\n')
    done = site.ralph("validate")
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1 and "a\\x0ab.json: file not found" in done.stderr


def test_init_creates_the_prd_ralph_toml_names(site: Site) -> None:
    root = _snarktank_repo(site, "prd.json", config='prd = "plan/prd.json"\n')
    done = site.ralph("init")
    assert done.returncode == 0, done.stderr
    assert "created plan/prd.json" in done.stdout
    assert site.ralph("validate").returncode == 0
    assert (root / "plan/progress.txt").is_file()


def test_a_dotdot_prd_is_said_to_be_outside_the_repository(site: Site) -> None:
    root = _snarktank_repo(site, "prd.json", config='prd = "../elsewhere.json"\n')
    (site.base / "elsewhere.json").write_text(json.dumps(SNARKTANK_PRD), encoding="utf-8")
    done = site.ralph("run", "--headless", "--approve", "auto")
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1].startswith(
        f"ralph-tui: {site.base / 'elsewhere.json'}: outside the repository {root};"
    )
    assert git(root, "status", "--porcelain") == ""


def _doctor_prd_line(site: Site, *args: str) -> str:
    done = site.ralph("doctor", *args)
    assert "Traceback" not in done.stderr and done.stderr == "", done.stderr
    return next(line for line in done.stdout.splitlines() if " prd: " in line)


def test_doctor_checks_the_prd_the_run_would_read(site: Site) -> None:
    root = _snarktank_repo(site, "prd.json")
    assert _doctor_prd_line(site) == (
        "ok       prd: prd.json (found: no tasks/backend_prd.json): 1 story, 1 open"
    )
    (root / "plan").mkdir()
    (root / "plan/p.json").write_text(json.dumps(SNARKTANK_PRD), encoding="utf-8")
    assert (
        _doctor_prd_line(site, "--prd", "plan/p.json")
        == "ok       prd: plan/p.json: 1 story, 1 open"
    )
    assert _doctor_prd_line(site, "--prd", "nope.json").startswith(
        f"missing  prd: {root}/nope.json: file not found"
    )
    (root / "tasks").mkdir()
    (root / "tasks/backend_prd.json").write_text(json.dumps(SNARKTANK_PRD), encoding="utf-8")
    assert _doctor_prd_line(site).startswith(
        f"missing  prd: {root}: more than one PRD (tasks/backend_prd.json, prd.json)"
    )


def test_a_prd_outside_the_repository_is_refused_before_anything_changes(site: Site) -> None:
    root = _snarktank_repo(site, "prd.json")
    outside = site.base / "elsewhere.json"
    outside.write_text(json.dumps(SNARKTANK_PRD), encoding="utf-8")
    done = site.ralph("run", "--headless", "--approve", "auto", "--prd", str(outside))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "outside the repository" in done.stderr
    assert git(root, "branch", "--show-current").strip() == "main"
    assert site.api.requests == []


def test_an_agent_that_adds_a_tasks_prd_neither_switches_this_run_nor_silently_the_next(
    site: Site,
) -> None:
    """The PRD is chosen once at start; a tasks/backend_prd.json the agent adds (every story
    passing) is flagged, so it never lands unseen, and a later run refuses to pick between two
    PRDs instead of reading the agent's."""
    root = _snarktank_repo(site, "prd.json")
    fake = {"userStories": [{**stories(1)[0], "passes": True}]}

    def hostile(body: dict[str, Any]) -> dict[str, Any]:
        if _tool_results(body) == 0:
            text = json.dumps(fake)
            edit = {"command": "create", "path": "tasks/backend_prd.json", "file_text": text}
            return reply(tool_use("str_replace_based_edit_tool", edit))
        if _tool_results(body) == 1:
            return reply(tool_use("complete_task", {"summary": "done", "learnings": []}))
        return reply("Done.")

    site.api.respond_with(hostile)
    done = site.ralph("run", "--headless", "--approve", "auto", "--max-iterations", "1")
    assert "Task #US-001: Add priority field to database" in done.stdout
    assert "a PRD where ralph-tui looks for one" in done.stdout
    assert git(root, "log", "--format=%s").splitlines() == ["initial"]  # not auto-committed
    prd = json.loads((root / "prd.json").read_text(encoding="utf-8"))
    assert prd["userStories"][0]["passes"] is False

    # had a human let it in: the next run names both files and reads neither
    (root / "tasks").mkdir(exist_ok=True)
    (root / "tasks/backend_prd.json").write_text(json.dumps(fake), encoding="utf-8")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "the agent's PRD")
    before = git(root, "rev-parse", "HEAD"), git(root, "branch", "--show-current")
    again = site.ralph("run", "--headless", "--approve", "auto")
    assert again.returncode == 2
    assert "more than one PRD (tasks/backend_prd.json, prd.json)" in again.stderr
    assert (git(root, "rev-parse", "HEAD"), git(root, "branch", "--show-current")) == before


def test_import_of_a_snarktank_prd_writes_the_tasks_prd_and_init_keeps_a_found_one(
    site: Site,
) -> None:
    root = _snarktank_repo(site, "prd.json")
    imported = site.ralph("import", "prd.json")
    assert imported.returncode == 0, imported.stderr
    assert "imported prd.json (JSON PRD) -> tasks/backend_prd.json" in imported.stdout
    assert "next: " in imported.stdout and "more than one PRD" in imported.stdout
    copy = json.loads((root / "tasks/backend_prd.json").read_text(encoding="utf-8"))
    assert [s["id"] for s in copy["userStories"]] == ["US-001"]

    other = site.base / "other"
    other.mkdir()
    git(other, "init", "-q")
    (other / "prd.json").write_text(json.dumps(SNARKTANK_PRD), encoding="utf-8")
    init = site.ralph("init", "--workspace", str(other))
    assert init.returncode == 0, init.stderr
    assert "PRD: prd.json" in init.stderr
    assert not (other / "tasks").exists() and (other / "progress.txt").is_file()
    assert "1. your stories are in prd.json, as snarktank's loop keeps them" in init.stdout
    # named in ralph.toml: a tasks/ PRD added later (an agent's, an import) changes nothing
    assert 'prd = "prd.json"' in (other / "ralph.toml").read_text(encoding="utf-8")
    (other / "tasks").mkdir()
    (other / "tasks/backend_prd.json").write_text(json.dumps(SNARKTANK_PRD), encoding="utf-8")
    validated = site.ralph("validate", "--workspace", str(other))
    assert validated.returncode == 0, validated.stderr
    assert validated.stdout.startswith(f"{other}/prd.json: ok")

    bare = site.base / "not-a-repo"
    bare.mkdir()
    refused = site.ralph("init", "--workspace", str(bare))
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        f"ralph-tui: {bare}: not a git repository (ralph-tui commits each story): run `git "
        "init` there first, or pass --workspace"
    )
    assert list(bare.iterdir()) == []


def test_a_markdown_prd_given_to_prd_says_to_import_it(site: Site) -> None:
    root = _snarktank_repo(site, "prd.json")
    (root / "tasks.md").write_text("# PRD: X\n\n## Introduction\n\nWhy.\n", encoding="utf-8")
    done = site.ralph("validate", "--prd", "tasks.md")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"ralph-tui: {root}/tasks.md:1:1: Expecting value (a PRD is a JSON file: bring a "
        "Markdown PRD or another backlog in once with `ralph-tui import FILE`, see "
        "`ralph-tui import --list-formats`)"
    ]
    (root / "broken.json").write_text("{", encoding="utf-8")
    broken = site.ralph("validate", "--prd", "broken.json")
    assert "ralph-tui import" not in broken.stderr  # a .json file is meant to be a PRD


def test_import_never_writes_over_the_file_it_reads(site: Site) -> None:
    root = _snarktank_repo(site, "prd.json")
    markdown = "# PRD: X\n\n## User Stories\n\n### US-001: One\n**Description:** d\n"
    (root / "plan.md").write_text(markdown, encoding="utf-8")
    done = site.ralph("import", "plan.md", "--prd", "plan.md", "--force")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "ralph-tui: import: plan.md is the file the PRD would be written to (--prd or prd = ... "
        "names it): write the PRD elsewhere, e.g. --prd tasks/backend_prd.json"
    ]
    assert (root / "plan.md").read_text(encoding="utf-8") == markdown
