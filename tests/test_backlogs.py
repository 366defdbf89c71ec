"""Every backlog format Ralph-style tools keep becomes a PRD (issue 27).

The fixtures in tests/fixtures/backlogs/ are written in each tool's own format, as rich as the
real files (phases, status words, missing and repeated ids, unicode, CRLF line endings). Each
goes through the command line as a user runs it: ``import`` (twice: the same PRD both times),
``validate``, ``status`` and one headless iteration with the scripted agent.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.security.unsandboxed import OFF_TOML
from tests.support.engine import complete, create
from tests.support.repo import git, make_repo

FIXTURES = Path(__file__).parent / "fixtures" / "backlogs"
PRD = "tasks/backend_prd.json"


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ralph_tui", *args, "--workspace", str(root)],
        capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip


def scripted_repo(root: Path) -> Path:
    script = root.parent / "script.json"
    # inside feature_list.json's story 2 allowed_paths (tests/test_path_rules.py enforces them)
    change = create("src/orders/feature.txt", "hi\n")
    script.write_text(json.dumps({"default": [change, complete()]}))
    return make_repo(root, extra_config=f"script = {json.dumps(str(script))}\n{OFF_TOML}")


def run_one(root: Path) -> subprocess.CompletedProcess[str]:
    return cli(root, "run", "--headless", "--approve", "auto", "--max-iterations", "1")


def next_row(status: str) -> list[str]:
    """The status table's row picked next (NEXT column is 1)."""
    for line in status.splitlines()[1:]:
        cells = line.split()
        if len(cells) > 3 and "1" in cells[2:4]:
            return cells
    raise AssertionError(status)


# source, kind, the story picked first (id, title), what the import says it mapped or dropped
IMPORTS = [
    (
        "prd.yml", "YAML PRD", "US-002", "Members table",
        ["note: id US-003 is used more than once: 'Reminder before the due date' is now US-003-2",
         "note: 4: position -> id 4",
         "dropped: phase 'Loans''s branchName ralph/library-loans"],
    ),
    (
        "prd_snake.yaml", "YAML PRD", "W-2", "Show the temperature in °C",
        ["note: stories from user_stories -> userStories",
         "note: W-3: depends_on -> dependsOn, status -> passes",
         "dropped: top-level 'version' (a value)"],
    ),
    (
        "fix_plan.md", "checkbox plan", "FP-002", "Parse the config file",
        ["FP-006: Fix the crash on an empty file (0 criteria, priority 1)",
         "FP-007: Speed up start-up (0 criteria, priority 3)",
         "FP-008: Load plug-ins from a folder (1 criterion, priority 1)",
         "FP-009: List plug-ins in --help (0 criteria, priority 3)",
         "FP-010: Project initialisation (0 criteria, passes)",
         "dropped: 1 checkbox item(s) under 'Notes' (notes, not work)",
         "dropped: 1 line(s) of text under 'Notes'"],
    ),
    (
        "code-tasks", "code tasks", "task-02-reload", "Reload the config on change — ça marche",
        ["task-02-reload: Reload the config on change — ça marche (3 criteria, after "
         "task-01-add-parser)",
         "dropped: task-02-reload's dependency 'Task 9 (`task-09-missing.code-task.md`)'"],
    ),
    (
        "tasks.jsonl", "beads issues", "task-1737372100-c3d4", "Add the users endpoint",
        ["task-1737372200-e5f6: Add the login endpoint (0 criteria, priority 2, after "
         "task-1737372100-c3d4)", "dropped: nothing"],
    ),
    (
        "feature_list.json", "feature list", "2", "Order a crème brûlée latte",
        ["note: stories from features -> userStories",
         "note: 3: acceptance -> acceptanceCriteria, depends_on -> dependsOn, status -> passes, "
         "description's first line -> title, position -> id 3"],
    ),
    (
        "../prd/feature_array.json", "feature list", "2", "Messages stream into the transcript",
        ["note: stories from the top-level array -> userStories"],
    ),
    (
        "items.json", "feature list", "ITEM-2", "List tickets",
        ["note: ITEM-1: acceptance_criteria", "status -> passes, priority 'high' -> 1"],
    ),
    (
        "cards.json", "feature list", "2", "Log-in form",
        ["note: 1: done -> passes, description's first line -> title, position"],
    ),
    ("tasks.json", "feature list", "11", "Validate the config", ["note: 10: status -> passes"]),
]  # fmt: skip


@pytest.mark.parametrize(("source", "kind", "key", "title", "said"), IMPORTS)
def test_import_round_trips_and_the_result_validates_and_runs(
    tmp_path: Path, source: str, kind: str, key: str, title: str, said: list[str]
) -> None:
    root = scripted_repo(tmp_path / "ws")
    path = FIXTURES / source

    first = cli(root, "import", str(path), "--force")
    assert first.returncode == 0, first.stderr
    assert f"({kind})" in first.stdout
    for line in said:
        assert line in first.stdout, first.stdout
    assert "dropped:" in first.stdout  # said even when nothing was
    written = (root / PRD).read_bytes()
    again = cli(root, "import", str(path), "--force")
    assert again.returncode == 0 and again.stdout == first.stdout
    assert (root / PRD).read_bytes() == written  # the same source gives the same PRD

    checked = cli(root, "validate")
    assert checked.returncode == 0 and checked.stderr == "", checked.stderr
    status = cli(root, "status")
    assert status.returncode == 0, status.stderr
    assert next_row(status.stdout)[0] == key
    git(root, "add", "-A")
    git(root, "commit", "-qm", "imported PRD")

    done = run_one(root)
    assert done.returncode in (0, 3), done.stdout + done.stderr
    assert git(root, "log", "-1", "--format=%s", "HEAD").strip() == (
        f"[backend] Task #{key}: {title}"
    )
    prd = json.loads((root / PRD).read_text(encoding="utf-8"))
    landed = [s for s in prd["userStories"] if str(s["id"]) == key]
    assert len(landed) == 1 and landed[0]["passes"] is True


def test_list_formats_names_every_reader(tmp_path: Path) -> None:
    done = cli(tmp_path, "import", "--list-formats")
    assert done.returncode == 0, done.stderr
    for name in ("JSON PRD", "feature list", "Markdown PRD", "checkbox plan", "code tasks",
                 "YAML PRD", "beads"):  # fmt: skip
        assert name in done.stdout
    missing = cli(tmp_path, "import")
    assert missing.returncode == 2 and "--list-formats" in missing.stderr


# -- a feature list used directly as the PRD --------------------------------------------------

# fixture, the story picked (key, title), the line that changes, and how it reads after
DIRECT = [
    ("feature_list.json", "2", "Order a crème brûlée latte",
     '"status": "in_progress",', '"status": "done",'),
    ("items.json", "ITEM-2", "List tickets", '"status": "pending",', '"status": "completed",'),
    ("cards.json", "2", "Log-in form", '"done": false,', '"done": true,'),
    ("tasks.json", "11", "Validate the config", '"status": "failing",', '"status": "passing",'),
]  # fmt: skip


@pytest.mark.parametrize(("fixture", "key", "title", "old", "new"), DIRECT)
def test_a_feature_list_is_the_prd_and_is_written_in_its_own_shape(
    tmp_path: Path, fixture: str, key: str, title: str, old: str, new: str
) -> None:
    root = scripted_repo(tmp_path / "ws")
    path = root / PRD
    shutil.copyfile(FIXTURES / fixture, path)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "the team's feature list")
    before = path.read_bytes()

    checked = cli(root, "validate")
    assert checked.returncode == 0 and "ok (" in checked.stdout, checked.stderr
    assert next_row(cli(root, "status").stdout)[0] == key
    done = run_one(root)
    assert done.returncode in (0, 3), done.stdout + done.stderr

    assert git(root, "log", "-1", "--format=%s", "HEAD").strip() == (
        f"[backend] Task #{key}: {title}"
    )
    after = path.read_bytes()
    assert b'"passes"' not in after  # no field the file never had
    assert after.count(b"\r\n") == before.count(b"\r\n")  # CRLF stays CRLF
    changed = [
        (a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b
    ]
    assert len(changed) == 1, changed
    assert old in changed[0][0].decode()
    assert changed[0][1].decode() == changed[0][0].decode().replace(old, new)


# -- imperfect input ----------------------------------------------------------------------------


def test_a_key_repeated_outside_the_stories_keeps_the_last_with_a_warning(tmp_path: Path) -> None:
    from ralph_tui.prd.store import PrdStore

    root = make_repo(tmp_path / "ws")
    path = root / PRD
    doc = json.loads(path.read_text(encoding="utf-8"))
    text = json.dumps(doc, indent=2)
    text = text.replace('"project": "Test project",', '"project": "Old name",\n  "x": 1,', 1)
    old = '"description": "A project for tests.",'
    text = text.replace(old, old + '\n  "project": "New name",', 1)
    path.write_text(text, encoding="utf-8")

    checked = cli(root, "validate")
    assert checked.returncode == 0, checked.stderr
    assert checked.stderr == (
        f"{path}:6:3: warning: key 'project' repeats the one at {path}:2:3; the last one counts\n"
    )
    store = PrdStore(path)
    assert store.load().project == "New name"
    store.update_story("US-001", {"passes": True})
    rewritten = path.read_text(encoding="utf-8")
    assert rewritten == text.replace('"passes": false', '"passes": true')
    assert store.load().userStories[0].passes is True


def test_a_key_repeated_in_a_story_is_written_where_it_is_read(tmp_path: Path) -> None:
    from ralph_tui.prd.store import PrdStore

    path = tmp_path / "prd.json"
    path.write_text(
        '{"userStories": [\n {"id": "A", "title": "a", "passes": true, "passes": false}\n]}\n'
    )
    store = PrdStore(path)
    prd, warnings = store.check()
    assert prd.userStories[0].passes is False
    assert warnings == [
        f"{path}:2:44: warning: key 'userStories[0].passes' repeats the one at {path}:2:28; "
        "the last one counts"
    ]
    store.update_story("A", {"passes": True})
    assert path.read_text().splitlines()[1] == (
        ' {"id": "A", "title": "a", "passes": true, "passes": true}'
    )


def test_ids_repeated_across_imported_items_become_distinct(tmp_path: Path) -> None:
    source = tmp_path / "features.json"
    items: list[dict[str, Any]] = [
        {"id": 7, "name": "First", "status": "todo"},
        {"id": 7, "name": "Second", "status": "todo", "depends_on": [7]},
    ]
    source.write_text(json.dumps({"features": items}), encoding="utf-8")
    root = make_repo(tmp_path / "ws")
    done = cli(root, "import", str(source), "--force")
    assert done.returncode == 0, done.stderr
    assert "note: id 7 is used more than once: 'Second' is now 7-2" in done.stdout
    stories = json.loads((root / PRD).read_text(encoding="utf-8"))["userStories"]
    assert [(s["id"], s["title"], s.get("dependsOn")) for s in stories] == [
        (7, "First", None),
        ("7-2", "Second", [7]),
    ]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bomb.yml", "a: &a [x, x]\nb: [*a, *a]\n", "bomb.yml:2:5: YAML aliases are not allowed"),
        ("bad.yml", "userStories: [\n", "bad.yml:2:1: not valid YAML"),
        ("set.yml", "userStories: !!set {a: null}\n", "set.yml: unsupported YAML value set"),
        (
            "code.yml",
            "userStories:\n  - x: !!python/object:os.system {}\n",
            "code.yml:2:8: not valid YAML (could not determine a constructor",
        ),
        ("plan.md", "# Plan\n\nNothing to do here.\n", "plan.md: no user stories found"),
        ("empty.code-task.md", "---\nstatus: pending\n---\nno heading\n", "no '# Task: title'"),
    ],
)
def test_a_bad_backlog_is_one_line_and_nothing_is_written(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    root = make_repo(tmp_path / "ws")
    before = (root / PRD).read_bytes()
    source = tmp_path / name
    source.write_text(content, encoding="utf-8")
    done = cli(root, "import", str(source), "--force")
    assert done.returncode == 2, done.stdout
    assert done.stderr.count("\n") == 1, done.stderr
    assert message in done.stderr
    assert (root / PRD).read_bytes() == before


def test_a_feature_items_paths_are_shown_to_the_agent() -> None:
    from ralph_tui.context import StoryContext, build_user_prompt
    from ralph_tui.prd.store import PrdStore

    prd = PrdStore(FIXTURES / "feature_list.json").load()
    story = prd.story("2")
    assert story is not None
    prompt = build_user_prompt(story, StoryContext())
    assert (
        "## Paths for this story\n"
        "- Change only files under: src/orders/, tests/orders/\n"
        "- Do not change: src/payments/\n"
    ) in prompt
    other = prd.story("1")
    assert other is not None and "## Paths" not in build_user_prompt(other, StoryContext())


def test_the_schema_accepts_every_json_backlog_fixture() -> None:
    import jsonschema

    from ralph_tui.prd.store import prd_json_schema

    validator = jsonschema.Draft202012Validator(prd_json_schema())
    for name in ("feature_list.json", "items.json", "cards.json", "tasks.json"):
        document = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
        assert list(validator.iter_errors(document)) == [], name


def test_dependency_objects_survive_an_import(tmp_path: Path) -> None:
    source = tmp_path / "features.json"
    items: list[dict[str, Any]] = [
        {"description": "Base\nmore text", "passes": True},
        {"description": "On top", "passes": False, "dependencies": [{"depends_on_id": 1}]},
        {"description": "Loose", "passes": False, "depends_on": [{"depends_on_id": 9}]},
    ]
    source.write_text(json.dumps(items), encoding="utf-8")
    root = make_repo(tmp_path / "ws")
    done = cli(root, "import", str(source), "--force")
    assert done.returncode == 0, done.stderr
    assert "note: 1: description's first line -> title, position -> id 1" in done.stdout
    assert "dropped: 3's dependency on 9 (not among the imported)" in done.stdout
    stories = json.loads((root / PRD).read_text(encoding="utf-8"))["userStories"]
    assert [(s["id"], s["title"], s.get("dependsOn")) for s in stories] == [
        (1, "Base", None),
        (2, "On top", [{"depends_on_id": 1}]),
        (3, "Loose", None),
    ]


def test_an_edit_to_a_feature_item_lands_in_its_own_fields(tmp_path: Path) -> None:
    from ralph_tui.prd.store import PrdStore

    path = tmp_path / "feature_list.json"
    shutil.copyfile(FIXTURES / "feature_list.json", path)
    store = PrdStore(path)
    store.update_story("2", {"title": "Order any drink", "acceptanceCriteria": ["Press Order"]})
    store.update_story("3", {"acceptanceCriteria": ["Total is right"], "dependsOn": []})
    store.update_story("4", {"passes": True})
    raw = json.loads(path.read_text(encoding="utf-8"))["features"]
    assert (raw[1]["name"], raw[1]["stepsToVerify"]) == ("Order any drink", ["Press Order"])
    assert raw[2]["acceptance"] == "Total is right" and raw[2]["depends_on"] == []
    assert raw[3]["status"] == "done"  # the word the file uses for a passing item
    assert not any(k in item for item in raw for k in ("title", "acceptanceCriteria", "passes"))
    assert b"\r\n" in path.read_bytes() and b"\n" not in path.read_bytes().replace(b"\r\n", b"")


def test_the_harness_status_words_flip_to_their_partner(tmp_path: Path) -> None:
    from ralph_tui.prd.store import PrdStore

    path = tmp_path / "tasks.json"
    path.write_text(json.dumps({"tasks": [{"title": "a", "status": "failing"}]}, indent=2))
    store = PrdStore(path)
    store.update_story("1", {"passes": True})
    assert json.loads(path.read_text())["tasks"][0] == {"title": "a", "status": "passing"}
    store.update_story("1", {"passes": False})
    assert json.loads(path.read_text())["tasks"][0] == {"title": "a", "status": "failing"}
