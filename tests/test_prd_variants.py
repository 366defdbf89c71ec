"""Every PRD shape seen in real files: read, picked, run headless, written back exactly.

The fixtures in tests/fixtures/prd/ are written by hand (odd spacing, ``1e3``, ``1.0``,
``31.1``, ``\\u00e9`` escapes, keys in unusual orders) so any reformatting shows up.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from ralph_tui.config import load_config
from ralph_tui.events import GateFinished, GateStarted
from ralph_tui.headless import run_headless
from ralph_tui.prd.store import PrdError, PrdStore, raw_stories
from tests.support.engine import complete, create, make_engine, write_script
from tests.support.repo import git, make_repo

FIXTURES = Path(__file__).parent / "fixtures" / "prd"

# fixture, the story picked first (id, title), the whole pick order
CASES = [
    ("priority_zero.json", "US-2", "Urgent first", ["US-2", "US-3", "US-1"]),
    ("priority_float.json", "31.1", "Inserted between 31 and 32", ["31.1", "32", "33"]),
    ("criteria_objects.json", "US-001", "Write the feature file", ["US-001", "US-002"]),
    ("stories_key.json", "S2", "Next by priority", ["S2", "S3"]),
    ("feature_array.json", "2", "Messages stream into the transcript", ["2", "3"]),
    ("dependencies.json", "C", "The foundation", ["C"]),
]


def install(root: Path, fixture: str) -> Path:
    """The fixture as the repo's PRD, committed, so the run starts on a clean tree."""
    path = root / "tasks" / "backend_prd.json"
    shutil.copyfile(FIXTURES / fixture, path)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "seed PRD")
    return path


@pytest.mark.parametrize(("fixture", "key", "title", "order"), CASES)
def test_each_variant_loads_and_picks(
    tmp_path: Path, fixture: str, key: str, title: str, order: list[str]
) -> None:
    prd = PrdStore(FIXTURES / fixture).load()
    story = prd.next_story()
    assert story is not None and (story.key, story.title) == (key, title)
    assert [s.key for s in prd.pick_order()] == order


@pytest.mark.parametrize(("fixture", "key", "title", "order"), CASES)
async def test_headless_run_commits_the_right_story_flipping_only_its_flag(
    tmp_path: Path, fixture: str, key: str, title: str, order: list[str]
) -> None:
    root = make_repo(tmp_path / "ws")
    path = install(root, fixture)
    before = path.read_text(encoding="utf-8")
    script = write_script(root, {"default": [create("feature.txt", "hello\n"), complete()]})
    config = load_config(root, {"script": str(script), "approve": "auto", "max_iterations": 1})
    out = io.StringIO()

    await run_headless(root, config, out=out)

    assert git(root, "log", "-1", "--format=%s").strip() == f"[backend] Task #{key}: {title}"
    after = git(root, "show", "HEAD:tasks/backend_prd.json")
    assert after == path.read_text(encoding="utf-8")
    # byte for byte: one line changed, and only its flag (plus a status beside it)
    old_lines, new_lines = before.splitlines(True), after.splitlines(True)
    assert len(old_lines) == len(new_lines)
    changed = [(a, b) for a, b in zip(old_lines, new_lines, strict=True) if a != b]
    assert len(changed) == 1, changed
    old, new = changed[0]
    expected = old.replace('"passes": false', '"passes": true')
    if fixture == "stories_key.json":
        # the file's own word for a passing story ("completed", from S1), not a made-up one
        expected = expected.replace('"status": "pending"', '"status": "completed"')
    assert new == expected
    # and it is that story's line: the documents differ exactly in its flag
    want: Any = json.loads(before)
    index = [s.key for s in PrdStore(FIXTURES / fixture).load().userStories].index(key)
    entry = raw_stories(want)[index]
    entry["passes"] = True
    if "status" in entry:
        entry["status"] = "completed"
    assert json.loads(after) == want


def test_dependencies_open_up_as_stories_pass(tmp_path: Path) -> None:
    path = tmp_path / "prd.json"
    shutil.copyfile(FIXTURES / "dependencies.json", path)
    store = PrdStore(path)
    prd = store.load()
    a = prd.story("A")
    assert a is not None and prd.waiting_on(a) == ["C"]
    prd = store.update_story("C", {"passes": True})
    assert [s.key for s in prd.pick_order()] == ["A", "B"]


@pytest.mark.parametrize(
    ("deps", "message"),
    [
        ({"A": ["Z"]}, "userStories[0].dependsOn: unknown story id 'Z'"),
        (
            {"A": ["B"], "B": ["C"], "C": ["A"]},
            "userStories[0].dependsOn: dependency cycle: A -> B -> C -> A",
        ),
    ],
)
def test_unknown_dependency_and_cycle_are_errors(
    tmp_path: Path, deps: dict[str, list[str]], message: str
) -> None:
    stories: list[dict[str, Any]] = []
    for k in ("A", "B", "C"):
        stories.append({"id": k, "title": k, "priority": 1, "passes": False})
        if k in deps:
            stories[-1]["dependsOn"] = deps[k]
    path = tmp_path / "prd.json"
    path.write_text(json.dumps({"userStories": stories}, indent=2), encoding="utf-8")
    with pytest.raises(PrdError) as err:
        PrdStore(path).load()
    assert str(err.value) == f"{path}:8:20: {message}"


def test_reorder_swaps_float_zero_and_missing_priorities(tmp_path: Path) -> None:
    path = tmp_path / "prd.json"
    path.write_text(
        '{"userStories": [\n'
        ' {"id": "a", "title": "a", "priority": 0, "passes": false},\n'
        ' {"id": "b", "title": "b", "priority": 31.1, "passes": false},\n'
        ' {"id": "c", "title": "c", "passes": false}\n'
        "]}\n",
        encoding="utf-8",
    )
    store = PrdStore(path)
    prd = store.move_story("b", "up")
    assert [s.key for s in prd.pick_order()] == ["b", "a", "c"]
    assert '"id": "b", "title": "b", "priority": 0,' in path.read_text(encoding="utf-8")
    assert '"id": "a", "title": "a", "priority": 31.1,' in path.read_text(encoding="utf-8")
    prd = store.move_story("c", "up")  # the unnumbered story takes a's number, a loses it
    assert [s.key for s in prd.pick_order()] == ["b", "c", "a"]
    text = path.read_text(encoding="utf-8")
    assert '{"id": "a", "title": "a", "passes": false}' in text
    assert '{"id": "c", "title": "c", "passes": false, "priority": 31.1}' in text


def test_text_edits_keep_criteria_objects_and_steps(tmp_path: Path) -> None:
    path = tmp_path / "prd.json"
    shutil.copyfile(FIXTURES / "criteria_objects.json", path)
    store = PrdStore(path)
    story = store.load().story("US-001")
    assert story is not None
    texts = story.criteria
    store.update_story("US-001", {"acceptanceCriteria": [texts[0], "feature.txt greets", texts[2]]})
    entry = json.loads(path.read_text(encoding="utf-8"))["userStories"][0]
    assert entry["acceptanceCriteria"][0]["testCommand"] == "test -f feature.txt"
    assert entry["acceptanceCriteria"][1] == {
        "id": "AC-001-2",
        "text": "feature.txt greets",
        "testCommand": "grep -q hello feature.txt",
    }
    array = tmp_path / "array.json"
    shutil.copyfile(FIXTURES / "feature_array.json", array)
    PrdStore(array).update_story("3", {"acceptanceCriteria": ["Toggle", "Check contrast"]})
    item = json.loads(array.read_text(encoding="utf-8"))[2]
    assert item["steps"] == ["Toggle", "Check contrast"] and "acceptanceCriteria" not in item
    # a story with both lists, edited as one list of lines (criteria first, then steps)
    both = tmp_path / "both.json"
    both.write_text(
        json.dumps(
            {
                "userStories": [
                    {
                        "id": "US-1",
                        "title": "Both",
                        "passes": False,
                        "acceptanceCriteria": ["Saves", {"text": "Loads", "testCommand": "true"}],
                        "steps": ["Open the app", "Press save"],
                    }
                ]
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    shown = PrdStore(both).load().userStories[0].criteria
    assert shown == ["Saves", "Loads", "Open the app", "Press save"]
    PrdStore(both).update_story(
        "US-1", {"acceptanceCriteria": ["Saves", "Loads", "Reloads", "Open the app", "Press save"]}
    )
    entry = json.loads(both.read_text(encoding="utf-8"))["userStories"][0]
    assert entry["steps"] == ["Open the app", "Press save"]
    assert entry["acceptanceCriteria"] == [
        "Saves",
        {"text": "Loads", "testCommand": "true"},
        "Reloads",
    ]
    PrdStore(both).update_story("US-1", {"acceptanceCriteria": ["Saves", "Press save"]})
    entry = json.loads(both.read_text(encoding="utf-8"))["userStories"][0]
    assert entry["steps"] == ["Press save"] and entry["acceptanceCriteria"] == ["Saves"]
    added = PrdStore(array).add_story({"title": "Export", "acceptanceCriteria": ["Click export"]})
    assert added.key == "4"
    assert json.loads(array.read_text(encoding="utf-8"))[3]["steps"] == ["Click export"]


# ----------------------------------------------------------------- story commands as gates


STORY_COMMAND_REPO = {
    "userStories": [
        {
            "id": "US-001",
            "title": "Greet",
            "acceptanceCriteria": [
                {"id": "AC-1", "text": "greeting says hello", "testCommand": "grep -q hello g.txt"}
            ],
            "priority": 1,
            "passes": False,
        }
    ]
}


def story_command_repo(root: Path, extra_config: str = "") -> Path:
    make_repo(root, extra_config=extra_config)
    (root / "tasks" / "backend_prd.json").write_text(json.dumps(STORY_COMMAND_REPO, indent=2))
    git(root, "commit", "-qam", "seed")
    return root


async def test_failing_story_command_goes_back_to_the_agent(tmp_path: Path) -> None:
    root = story_command_repo(tmp_path / "ws")
    script = {
        "default": [create("g.txt", "bye\n"), complete(), create("g.txt", "hello\n"), complete()]
    }
    engine, agent, sink, sup = make_engine(root, script)

    assert await engine.run() == 0

    started = [e for e in sink.of(GateStarted) if e.name.startswith("story")]
    assert [(e.name, e.criterion) for e in started] == [
        ("story: AC-1", "greeting says hello"),
        ("story: AC-1", "greeting says hello"),
    ]
    story_gates = [g for g in sink.of(GateFinished) if g.name == "story: AC-1"]
    assert [g.state for g in story_gates] == ["failed", "passed"]
    outcomes = [o for name, o in agent.received if name == "complete_task"]
    assert outcomes[0].is_error and "checks: greeting says hello" in outcomes[0].content
    assert [g.criterion for g in sup.approval_requests[0].gates] == ["", "greeting says hello"]
    assert git(root, "log", "-1", "--format=%s").strip() == "[backend] Task #US-001: Greet"


async def test_story_commands_can_be_turned_off(tmp_path: Path) -> None:
    root = story_command_repo(tmp_path / "ws")
    (root / "ralph.toml").write_text(
        (root / "ralph.toml").read_text() + "[gate_options]\nstory_commands = false\n"
    )
    git(root, "commit", "-qam", "config")
    engine, _, sink, _ = make_engine(root, {"default": [create("g.txt", "bye\n"), complete()]})
    assert await engine.run() == 0
    assert [g.name for g in sink.of(GateFinished)] == ["ok"]


async def test_headless_story_command_failure_blocks_the_commit(tmp_path: Path) -> None:
    root = story_command_repo(tmp_path / "ws")
    script = write_script(root, {"default": [create("g.txt", "bye\n"), complete()]})
    config = load_config(
        root,
        {"script": str(script), "approve": "auto", "max_iterations": 1, "max_fix_attempts": 1},
    )
    out = io.StringIO()

    code = await run_headless(root, config, out=out)

    assert code == 3
    assert git(root, "log", "-1", "--format=%s").strip() == "seed"
    assert "gate story: AC-1 [checks: greeting says hello]: failed" in out.getvalue()
    assert (
        json.loads((root / "tasks/backend_prd.json").read_text())["userStories"][0]["passes"]
        is False
    )


def test_deep_nesting_and_huge_numbers_round_trip_or_fail_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "prd.json"
    deep = "[" * 900 + "]" * 900
    huge = "9" * 4000
    text = (
        '{"userStories": [{"id": "A", "title": "a", "priority": 1, "passes": false,\n'
        f'  "metadata": {deep}, "big": {huge}, "far": 1e400, "exp": 1E+3}}]}}\n'
    )
    path.write_text(text, encoding="utf-8")
    PrdStore(path).update_story("A", {"passes": True})
    assert path.read_text(encoding="utf-8") == text.replace('"passes": false', '"passes": true')

    path.write_text(text.replace('"priority": 1', '"priority": 1e400'), encoding="utf-8")
    with pytest.raises(PrdError) as err:
        PrdStore(path).load()
    assert str(err.value) == (
        f"{path}:1:56: userStories[0].priority: must be a finite number (got Infinity)"
    )


VALIDATE_CASES = [
    (
        '{"stories": [\n  {"id": "A", "title": "a", "priority": [1], "passes": false}\n]}\n',
        "2:41: stories[0].priority: Input should be an integer or a number (got [1])",
    ),
    (
        '{"userStories": [\n  {"id": "A", "title": "a"}\n]}\n',
        "2:3: userStories[0].passes: Field required",
    ),
    (
        '{"userStories": [\n  {"id": "A", "title": "a", "passes": false, "deps": ["A"]}\n]}\n',
        "2:54: userStories[0].deps: dependency cycle: A -> A",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("content", "message"), VALIDATE_CASES)
def test_validate_names_the_spot_in_each_shape(tmp_path: Path, content: str, message: str) -> None:
    from tests.test_cli import cli

    root = make_repo(tmp_path / "ws")
    path = root / "tasks" / "backend_prd.json"
    path.write_text(content, encoding="utf-8")
    done = cli("validate", "--workspace", str(root))
    assert done.returncode == 2
    assert done.stderr == f"ralph-tui: {path}:{message}\n"
    assert path.read_text(encoding="utf-8") == content


def test_schema_accepts_every_fixture_and_rejects_real_errors() -> None:
    import jsonschema

    from ralph_tui.prd.store import prd_json_schema

    validator = jsonschema.Draft202012Validator(prd_json_schema())
    for fixture in sorted(FIXTURES.glob("*.json")):
        errors = list(validator.iter_errors(json.loads(fixture.read_text(encoding="utf-8"))))
        assert errors == [], fixture.name
    # a list where a priority should be, a missing passes (cycles are beyond
    # JSON Schema: `validate` reports those)
    for content, _ in VALIDATE_CASES[:2]:
        assert list(validator.iter_errors(json.loads(content))), content


@pytest.mark.parametrize(
    ("words", "flip", "expected"),
    [
        (["pending", "pending"], True, "completed"),  # no passing story yet: the usual partner
        (["OPEN", "OPEN"], True, "CLOSED"),  # in the file's letter case
        (["todo", "done"], True, "done"),  # the word a passing story already uses
    ],
)
def test_status_follows_passes_in_the_files_words(
    tmp_path: Path, words: list[str], flip: bool, expected: str
) -> None:
    stories = [
        {"id": str(i), "title": "t", "passes": w.lower() in ("done",), "status": w}
        for i, w in enumerate(words)
    ]
    path = tmp_path / "prd.json"
    path.write_text(json.dumps({"stories": stories}, indent=2), encoding="utf-8")
    store = PrdStore(path)
    store.update_story("0", {"passes": flip})
    assert json.loads(path.read_text())["stories"][0]["status"] == expected
    store.update_story("0", {"passes": not flip})  # and back (crash recovery, a human's edit)
    assert json.loads(path.read_text())["stories"][0]["status"] == words[0]


async def test_story_commands_are_fixed_when_the_story_is_picked(tmp_path: Path) -> None:
    root = story_command_repo(tmp_path / "ws")
    weaken = (
        "python3 - <<'PY'\n"
        "import pathlib\n"
        "p = pathlib.Path('tasks/backend_prd.json')\n"
        "p.write_text(p.read_text().replace('grep -q hello g.txt', 'true'))\n"
        "PY"
    )
    script = {
        "default": [
            create("g.txt", "bye\n"),
            {"tool": "bash", "input": {"command": weaken}},
            complete(),
            create("g.txt", "hello\n"),
            complete(),
        ]
    }
    engine, _, sink, _ = make_engine(root, script)
    assert await engine.run() == 0
    runs = [(g.command, g.state) for g in sink.of(GateFinished) if g.name == "story: AC-1"]
    assert runs == [("grep -q hello g.txt", "failed"), ("grep -q hello g.txt", "passed")]
