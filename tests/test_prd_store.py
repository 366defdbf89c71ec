"""The PRD store: error messages, format-preserving atomic writes, merges, moves, ids, watching."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ralph_tui.errors import UsageError
from ralph_tui.prd.store import PrdError, PrdStore, parse_prd, prd_json_schema
from tests.support.repo import story, write_prd


def doc(*stories: dict[str, Any]) -> dict[str, Any]:
    return {
        "project": "P",
        "branchName": "ralph/p",
        "description": "d",
        "userStories": list(stories),
    }


def write_doc(
    path: Path, data: dict[str, Any], indent: int | str | None = 2, newline: bool = True
) -> bytes:
    text = json.dumps(data, indent=indent, ensure_ascii=False) + ("\n" if newline else "")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))
    return path.read_bytes()


def read_doc(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def replace_externally(path: Path, data: dict[str, Any], indent: int | str | None = 2) -> None:
    """Save the way many editors do: a new file renamed over the old one."""
    tmp = path.with_name(path.name + ".editor-tmp")
    tmp.write_text(json.dumps(data, indent=indent, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


@pytest.fixture
def prd_path(tmp_path: Path) -> Path:
    return tmp_path / "tasks" / "backend_prd.json"


# --------------------------------------------------------------------------- errors


def test_missing_file(prd_path: Path) -> None:
    with pytest.raises(PrdError) as err:
        PrdStore(prd_path).load()
    assert str(err.value).startswith(f"{prd_path}: file not found (create it with `ralph-tui init`")
    assert isinstance(err.value, UsageError) and err.value.exit_code == 2


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('{\n  "userStories": [\n    {"id": "A",}\n  ]\n}\n', "3:16: Expecting property name"),
        ('{"a": 1\n', "2:1: Expecting ',' delimiter"),
        ('{"userStories": [], "x": tru}', "1:26: Expecting value"),
    ],
)
def test_json_syntax_error_names_line_and_column(prd_path: Path, text: str, where: str) -> None:
    prd_path.parent.mkdir(parents=True)
    prd_path.write_text(text, encoding="utf-8")
    before = prd_path.read_bytes()
    store = PrdStore(prd_path)
    with pytest.raises(PrdError) as err:
        store.load()
    assert str(err.value).startswith(f"{prd_path}:{where}")
    assert "\n" not in str(err.value)
    for attempt in (
        lambda: store.update_story("A", {"passes": True}),
        lambda: store.add_story({"title": "new"}),
        lambda: store.move_story("A", "up"),
    ):
        with pytest.raises(PrdError):
            attempt()
    assert prd_path.read_bytes() == before
    assert [p.name for p in prd_path.parent.iterdir()] == [prd_path.name]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "file is empty (expected a JSON object with userStories)"),
        (b"  \n", "file is empty (expected a JSON object with userStories)"),
        (b"[1, 2]", ":1:2: [0]: Input should be an object (got 1) (+1 more)"),
        (b'"text"', "top level must be a JSON object or an array of stories, not a string"),
        (b"[" * 100_000 + b"]" * 100_000, "JSON nested too deeply to read"),
        (
            b'{"userStories": [], "n": ' + b"9" * 5000 + b"}",
            "unreadable number (Exceeds the limit (4300 digits) for integer string conversion:"
            " value has 5000 digits; use sys.set_int_max_str_digits() to increase the limit)",
        ),
        (b'{"userStories": [], "n": NaN}', "NaN is not a JSON number"),
        (b'{"userStories": [], "n": -Infinity}', "-Infinity is not a JSON number"),
        (
            b'{"userStories": [{"id": "A",\n "title": "caf\xe9"}]}',
            ":2:15: not valid UTF-8 (byte 0xe9)",
        ),
    ],
)
def test_other_unreadable_files(prd_path: Path, content: bytes, message: str) -> None:
    prd_path.parent.mkdir(parents=True)
    prd_path.write_bytes(content)
    with pytest.raises(PrdError) as err:
        PrdStore(prd_path).load()
    sep = "" if message.startswith(":") else ": "
    assert str(err.value) == f"{prd_path}{sep}{message}"
    with pytest.raises(PrdError):
        PrdStore(prd_path).update_story("A", {"passes": True})
    assert prd_path.read_bytes() == content


@pytest.mark.parametrize(
    ("stories", "message"),
    [
        (
            [story("A", "a"), story("B", "b", priority=[1])],  # type: ignore[arg-type]
            "26:19: userStories[1].priority: Input should be an integer or a number (got [1])",
        ),
        (
            [{k: v for k, v in story("A", "a").items() if k != "title"}],
            "6:5: userStories[0].title: Field required",
        ),
        (
            [{**story("A", "a"), "passes": "no"}],
            '15:17: userStories[0].passes: Input should be a valid boolean (got "no")',
        ),
        (
            [{**story("A", "a"), "id": 1.5}],
            "7:13: userStories[0].id: Input should be a string or an integer (got 1.5)",
        ),
        ([story("A", " ")], '8:16: userStories[0].title: must not be blank (got " ")'),
        (
            [{**story("A", "a", priority="1"), "passes": "no"}],  # type: ignore[arg-type]
            '14:19: userStories[0].priority: Input should be an integer or a number (got "1")'
            " (+1 more)",
        ),
    ],
)
def test_schema_error_names_the_field(
    prd_path: Path, stories: list[dict[str, Any]], message: str
) -> None:
    before = write_doc(prd_path, doc(*stories))
    store = PrdStore(prd_path)
    with pytest.raises(PrdError) as err:
        store.load()
    assert str(err.value) == f"{prd_path}:{message}"
    with pytest.raises(PrdError):
        store.update_story("A", {"notes": "x"})
    with pytest.raises(PrdError):
        store.add_story({"title": "new"})
    assert prd_path.read_bytes() == before


def test_missing_user_stories(prd_path: Path) -> None:
    write_doc(prd_path, {"project": "p"})
    with pytest.raises(PrdError, match=r": userStories: Field required$"):
        PrdStore(prd_path).load()


def test_parse_prd_directly() -> None:
    path = Path("tasks/x_prd.json")
    prd = parse_prd(json.dumps(doc(story(1, "one"), story("US-2", "two"))), path)
    assert [s.key for s in prd.userStories] == ["1", "US-2"]
    with pytest.raises(PrdError, match=r"^tasks/x_prd.json:1:2: "):
        parse_prd("{]", path)


def test_schema_is_for_editors() -> None:
    schema = prd_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"]
    assert schema["anyOf"][0]["additionalProperties"] is True
    story_schema = schema["$defs"]["Story"]
    assert story_schema["additionalProperties"] is True
    assert set(story_schema["required"]) == {"id", "title", "passes"}
    assert "more urgent" in story_schema["properties"]["priority"]["description"]
    shapes = schema["anyOf"]
    assert shapes[0]["required"] == ["userStories"] and shapes[1]["required"] == ["stories"]
    assert shapes[2]["type"] == "array"
    # a feature item may say passes with a status word, and go without an id or title
    assert "required" not in schema["$defs"]["FeatureItem"]
    assert [shape["required"] for shape in shapes[3:]] == [
        ["cards"],
        ["features"],
        ["items"],
        ["tasks"],
    ]
    assert "testCommand" in schema["$defs"]["Criterion"]["properties"]
    json.dumps(schema)  # serialisable as printed by `ralph-tui schema`


# ------------------------------------------------------------------ format-preserving writes


@pytest.mark.parametrize("indent", [2, 4, "\t"])
@pytest.mark.parametrize("newline", [True, False])
def test_write_changes_only_the_story_and_keeps_the_format(
    prd_path: Path, indent: int | str, newline: bool
) -> None:
    original = {
        "zeta": "unknown top-level field first",
        "project": "Café ünïcode ☕",
        "userStories": [
            {"priority": 2, "id": "US-001", "title": "Größe", "passes": False, "x-owner": "ana"},
            story("US-002", "Second", 1, estimate={"points": 3, "tags": ["a", "ö"]}),
        ],
        "description": "日本語",
        "custom": [1, 2.5, None, True],
    }
    write_doc(prd_path, original, indent, newline)
    prd = PrdStore(prd_path).update_story("US-001", {"passes": True, "notes": "done ✓"})
    expected = json.loads(json.dumps(original))
    expected["userStories"][0]["passes"] = True
    expected["userStories"][0]["notes"] = "done ✓"
    want = json.dumps(expected, indent=indent, ensure_ascii=False) + ("\n" if newline else "")
    assert prd_path.read_text(encoding="utf-8") == want
    found = prd.story("US-001")
    assert found is not None and found.passes and found.notes == "done ✓"


def test_minified_crlf_and_escaped_files_keep_their_style(tmp_path: Path) -> None:
    one_line = tmp_path / "one.json"
    one_line.write_text(json.dumps(doc(story("A", "a")), separators=(",", ":")), encoding="utf-8")
    PrdStore(one_line).update_story("A", {"passes": True})
    expected = doc(story("A", "a", passes=True))
    assert one_line.read_text(encoding="utf-8") == json.dumps(expected, separators=(",", ":"))

    crlf = tmp_path / "crlf.json"
    crlf.write_bytes(
        (json.dumps(doc(story("A", "a")), indent=2) + "\n").replace("\n", "\r\n").encode()
    )
    PrdStore(crlf).update_story("A", {"passes": True})
    assert (
        crlf.read_bytes() == (json.dumps(expected, indent=2) + "\n").replace("\n", "\r\n").encode()
    )

    escaped = tmp_path / "escaped.json"
    escaped.write_text(json.dumps(doc(story("A", "café")), indent=2) + "\n", encoding="utf-8")
    assert "\\u00e9" in escaped.read_text(encoding="utf-8")
    PrdStore(escaped).update_story("A", {"passes": True})
    assert (
        escaped.read_text(encoding="utf-8")
        == json.dumps(doc(story("A", "café", passes=True)), indent=2) + "\n"
    )


def test_write_keeps_permissions_and_leaves_no_temp_files(prd_path: Path) -> None:
    write_doc(prd_path, doc(story("A", "a")))
    prd_path.chmod(0o640)
    PrdStore(prd_path).update_story("A", {"passes": True})
    assert prd_path.stat().st_mode & 0o777 == 0o640
    assert read_doc(prd_path)["userStories"][0]["passes"] is True
    assert [p.name for p in prd_path.parent.iterdir()] == [prd_path.name]


def test_symlinked_prd_is_refused_and_its_target_untouched(prd_path: Path) -> None:
    """The agent could point the PRD at a file outside the workspace: never read or write it."""
    real = prd_path.parent / "real_prd.json"
    before = write_doc(real, doc(story("A", "a")))
    prd_path.symlink_to(real.name)
    store = PrdStore(prd_path)
    with pytest.raises(PrdError, match="is a symlink"):
        store.load()
    with pytest.raises(PrdError, match="is a symlink"):
        store.update_story("A", {"passes": True})
    assert real.read_bytes() == before


def test_int_ids_match_by_text(prd_path: Path) -> None:
    write_doc(prd_path, doc(story(3, "three"), story("4", "four")))
    store = PrdStore(prd_path)
    store.update_story("3", {"passes": True})
    store.update_story(4, {"notes": "n"})  # type: ignore[arg-type]  # callers may hold ints
    stories = read_doc(prd_path)["userStories"]
    assert stories[0]["id"] == 3 and stories[0]["passes"] is True
    assert stories[1]["notes"] == "n"


def test_invalid_change_is_refused_and_file_untouched(prd_path: Path) -> None:
    before = write_doc(prd_path, doc(story("A", "a"), story("B", "b")))
    store = PrdStore(prd_path)
    with pytest.raises(PrdError) as err:
        store.update_story("A", {"priority": "high"})
    assert str(err.value) == (
        f'{prd_path}: userStories[0].priority: Input should be an integer or a number (got "high")'
        " (change not saved)"
    )
    with pytest.raises(PrdError, match="duplicate id 'B'"):
        store.update_story("A", {"id": "B"})
    with pytest.raises(PrdError, match=r": no story with id 'Z'$"):
        store.update_story("Z", {"passes": True})
    assert prd_path.read_bytes() == before


def test_unchanged_values_do_not_rewrite_the_file(prd_path: Path) -> None:
    write_doc(prd_path, doc(story("A", "a")))
    inode = prd_path.stat().st_ino
    PrdStore(prd_path).update_story("A", {"passes": False, "title": "a"})
    assert prd_path.stat().st_ino == inode  # a write would have renamed a new file in


class MidWriteEditor(PrdStore):
    """A store whose file is edited by "someone else" between its read and its replace."""

    def __init__(self, path: Path, edits: list[Callable[[], None]]) -> None:
        super().__init__(path)
        self.edits = edits
        self.replace_attempts = 0

    def _before_replace(self) -> None:
        self.replace_attempts += 1
        if self.edits:
            self.edits.pop(0)()


def test_external_edit_between_read_and_replace_is_kept(prd_path: Path) -> None:
    write_doc(prd_path, doc(story("A", "a"), story("B", "b")), indent=4)

    def human_edit() -> None:
        data = read_doc(prd_path)
        data["userStories"][1]["title"] = "B edited by a human"
        data["userStories"].append(story("C", "added by a human", 5))
        data["reviewer"] = "sam"
        replace_externally(prd_path, data, indent=4)

    store = MidWriteEditor(prd_path, [human_edit])
    prd = store.update_story("A", {"passes": True})
    assert store.replace_attempts == 2  # the first swap saw the edit and started over
    data = read_doc(prd_path)
    assert data["userStories"][0]["passes"] is True
    assert data["userStories"][1]["title"] == "B edited by a human"
    assert [s["id"] for s in data["userStories"]] == ["A", "B", "C"]
    assert data["reviewer"] == "sam"
    assert [s.key for s in prd.userStories] == ["A", "B", "C"]
    assert prd_path.read_text(encoding="utf-8").startswith('{\n    "project"')


def test_a_file_that_never_settles_is_not_overwritten(prd_path: Path) -> None:
    write_doc(prd_path, doc(story("A", "a")))
    counter = iter(range(1000))

    def keep_editing() -> None:
        data = read_doc(prd_path)
        data["userStories"][0]["notes"] = f"edit {next(counter)}"
        replace_externally(prd_path, data)

    store = MidWriteEditor(prd_path, [keep_editing] * 100)
    with pytest.raises(PrdError, match="kept changing"):
        store.update_story("A", {"passes": True})
    data = read_doc(prd_path)
    assert data["userStories"][0]["passes"] is False
    assert data["userStories"][0]["notes"] == f"edit {store.replace_attempts - 1}"


def test_concurrent_writers_in_process_lose_nothing(prd_path: Path) -> None:
    ids = [f"US-{n:03d}" for n in range(1, 13)]
    write_doc(prd_path, doc(*(story(i, i) for i in ids)))
    store = PrdStore(prd_path)
    start = threading.Barrier(len(ids))

    def mark(story_id: str) -> None:
        start.wait()
        store.update_story(story_id, {"passes": True, "notes": f"by {story_id}"})

    threads = [threading.Thread(target=mark, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stories = read_doc(prd_path)["userStories"]
    assert all(s["passes"] and s["notes"] == f"by {s['id']}" for s in stories)


# --------------------------------------------------------------------------- move_story


def ids_and_priorities(path: Path) -> list[tuple[Any, int]]:
    return [(s["id"], s["priority"]) for s in read_doc(path)["userStories"]]


def test_move_swaps_priority_numbers_with_the_neighbour(prd_path: Path) -> None:
    write_doc(prd_path, doc(story("A", "a", 1), story("B", "b", 2), story("C", "c", 3)))
    store = PrdStore(prd_path)
    prd = store.move_story("C", "up")
    assert [s.key for s in prd.pick_order()] == ["A", "C", "B"]
    assert ids_and_priorities(prd_path) == [("A", 1), ("B", 3), ("C", 2)]  # file order kept
    prd = store.move_story("A", "down")
    assert [s.key for s in prd.pick_order()] == ["C", "A", "B"]
    assert ids_and_priorities(prd_path) == [("A", 2), ("B", 3), ("C", 1)]


def test_move_skips_passing_stories(prd_path: Path) -> None:
    write_doc(
        prd_path,
        doc(story("A", "a", 1), story("X", "x", 2, passes=True), story("B", "b", 3)),
    )
    prd = PrdStore(prd_path).move_story("B", "up")
    assert [s.key for s in prd.pick_order()] == ["B", "A"]
    assert ids_and_priorities(prd_path) == [("A", 3), ("X", 2), ("B", 1)]


def test_move_with_equal_priorities_swaps_file_positions(prd_path: Path) -> None:
    write_doc(prd_path, doc(story("A", "a", 1), story("B", "b", 1), story("C", "c", 1)))
    store = PrdStore(prd_path)
    prd = store.move_story("C", "up")
    assert [s.key for s in prd.pick_order()] == ["A", "C", "B"]
    assert ids_and_priorities(prd_path) == [("A", 1), ("C", 1), ("B", 1)]
    prd = store.move_story("A", "down")
    assert [s.key for s in prd.pick_order()] == ["C", "A", "B"]


def test_move_is_exactly_one_place_even_when_numbers_alone_would_jump(prd_path: Path) -> None:
    # pick order A, N, M. Swapping numbers alone (M->1, N->2) would put M before A, since M
    # comes first in the file; the store also swaps M and N in the file.
    write_doc(prd_path, doc(story("M", "m", 2), story("A", "a", 1), story("N", "n", 1)))
    prd = PrdStore(prd_path).move_story("M", "up")
    assert [s.key for s in prd.pick_order()] == ["A", "M", "N"]
    assert ids_and_priorities(prd_path) == [("N", 2), ("A", 1), ("M", 1)]


def test_move_at_the_ends_and_of_closed_stories_changes_nothing(prd_path: Path) -> None:
    before = write_doc(
        prd_path, doc(story("A", "a", 1), story("B", "b", 2), story("X", "x", 3, passes=True))
    )
    store = PrdStore(prd_path)
    assert [s.key for s in store.move_story("A", "up").pick_order()] == ["A", "B"]
    store.move_story("B", "down")
    store.move_story("X", "up")
    assert prd_path.read_bytes() == before
    with pytest.raises(PrdError, match="no story with id 'nope'"):
        store.move_story("nope", "up")


# --------------------------------------------------------------------------- add_story


@pytest.mark.parametrize(
    ("existing", "new_id"),
    [
        (["US-001", "US-007", "US-003"], "US-008"),
        (["US-099"], "US-100"),
        (["T1", "T2"], "T3"),
        ([1, 5, 2], 6),
        ([], "US-001"),
        (["login", "signup"], "US-001"),
        (["FE-010", "BE-002"], "BE-003"),
    ],
)
def test_add_story_continues_the_id_pattern(
    prd_path: Path, existing: list[str | int], new_id: str | int
) -> None:
    write_doc(prd_path, doc(*(story(i, f"story {i}", n + 1) for n, i in enumerate(existing))))
    added = PrdStore(prd_path).add_story({"title": "Brand new"})
    assert added.id == new_id
    assert added.passes is False
    assert added.priority == len(existing) + 1
    assert read_doc(prd_path)["userStories"][-1]["id"] == new_id


def test_add_story_keeps_given_fields_in_the_usual_key_order(prd_path: Path) -> None:
    write_doc(prd_path, doc(story("US-001", "a", 4)))
    added = PrdStore(prd_path).add_story(
        {"extra": 1, "priority": 2, "title": "New", "acceptanceCriteria": ["works"]}
    )
    entry = read_doc(prd_path)["userStories"][-1]
    assert list(entry) == [
        "id", "title", "description", "acceptanceCriteria", "priority", "passes", "notes", "extra",
    ]  # fmt: skip
    assert entry["id"] == "US-002" and entry["priority"] == 2 and entry["extra"] == 1
    assert added.title == "New" and added.acceptanceCriteria == ["works"]


def test_add_story_with_bad_fields_is_refused(prd_path: Path) -> None:
    before = write_doc(prd_path, doc(story("US-001", "a")))
    store = PrdStore(prd_path)
    with pytest.raises(PrdError, match=r"userStories\[1\]\.title: Field required"):
        store.add_story({"description": "no title"})
    with pytest.raises(PrdError, match="duplicate id 'US-001'"):
        store.add_story({"id": "US-001", "title": "clash"})
    assert prd_path.read_bytes() == before


def test_support_write_prd_round_trips(tmp_path: Path) -> None:
    path = write_prd(tmp_path, [story("US-001", "First")], indent=4)
    before = path.read_text(encoding="utf-8")
    PrdStore(path).update_story("US-001", {"passes": True})
    assert path.read_text(encoding="utf-8") == before.replace('"passes": false', '"passes": true')


# --------------------------------------------------------------------------- watch


class WatchedStore(PrdStore):
    """Records every time the watcher looked at the file, so tests can await it."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.looked: list[str | None] = []
        self.looked_event = asyncio.Event()

    def _checked(self, digest: str | None) -> None:
        self.looked.append(digest)
        self.looked_event.set()

    async def looked_at(self, content: bytes) -> None:
        digest = hashlib.sha256(content).hexdigest()
        while digest not in self.looked:
            self.looked_event.clear()
            await self.looked_event.wait()


class Reports:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: list[bytes] = []
        self.event = asyncio.Event()

    def __call__(self) -> None:
        self.seen.append(self.path.read_bytes())
        self.event.set()

    async def next(self) -> bytes:
        await asyncio.wait_for(self.event.wait(), 10)
        self.event.clear()
        return self.seen[-1]


async def start_watch(
    store: PrdStore, reports: Reports
) -> tuple[asyncio.Task[None], asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(store.watch(reports, stop))
    await asyncio.sleep(0)  # let watch() take its first look at the file and set up the watcher
    return task, stop


async def stop_watch(task: asyncio.Task[None], stop: asyncio.Event) -> None:
    stop.set()
    await asyncio.wait_for(task, 10)


async def test_watch_reports_external_edits_across_atomic_replaces(prd_path: Path) -> None:
    write_doc(prd_path, doc(story("A", "a"), story("B", "b")))
    store = PrdStore(prd_path)
    reports = Reports(prd_path)
    task, stop = await start_watch(store, reports)
    data = read_doc(prd_path)
    data["userStories"][0]["title"] = "first edit"
    replace_externally(prd_path, data)  # new inode
    assert b"first edit" in await reports.next()
    data["userStories"][0]["title"] = "second edit"
    replace_externally(prd_path, data)
    assert b"second edit" in await reports.next()
    prd_path.write_text(prd_path.read_text(encoding="utf-8") + " ", encoding="utf-8")  # in place
    assert (await reports.next()).endswith(b"\n ")
    await stop_watch(task, stop)
    assert len(reports.seen) == 3


async def test_watch_ignores_the_stores_own_writes(prd_path: Path) -> None:
    write_doc(prd_path, doc(story("A", "a"), story("B", "b")))
    store = WatchedStore(prd_path)
    reports = Reports(prd_path)
    task, stop = await start_watch(store, reports)
    store.update_story("A", {"passes": True})
    store.add_story({"title": "C"})
    await asyncio.wait_for(store.looked_at(prd_path.read_bytes()), 10)
    assert reports.seen == []
    data = read_doc(prd_path)
    data["userStories"][1]["notes"] = "human"
    replace_externally(prd_path, data)
    assert b'"human"' in await reports.next()
    await asyncio.wait_for(store.looked_at(prd_path.read_bytes()), 10)
    await stop_watch(task, stop)
    assert len(reports.seen) == 1


async def test_watch_reports_an_external_edit_the_store_merged_before_it_looked(
    prd_path: Path,
) -> None:
    write_doc(prd_path, doc(story("A", "a"), story("B", "b")))
    store = WatchedStore(prd_path)
    reports = Reports(prd_path)
    task, stop = await start_watch(store, reports)
    data = read_doc(prd_path)
    data["userStories"][1]["title"] = "human title"
    replace_externally(prd_path, data)
    store.update_story("A", {"passes": True})  # no await in between: the watcher has not looked
    seen = await reports.next()
    assert b"human title" in seen and b'"passes": true' in seen
    await asyncio.wait_for(store.looked_at(prd_path.read_bytes()), 10)
    await stop_watch(task, stop)
    assert len(reports.seen) == 1


async def test_watch_returns_when_stopped(prd_path: Path) -> None:
    write_doc(prd_path, doc(story("A", "a")))
    store = PrdStore(prd_path)
    reports = Reports(prd_path)
    stop = asyncio.Event()
    stop.set()
    await asyncio.wait_for(store.watch(reports, stop), 1)
    task, stop = await start_watch(store, reports)
    await stop_watch(task, stop)
    assert task.done() and reports.seen == []
