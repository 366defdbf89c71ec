"""Trackers through the real engine: issues synced into the PRD, worked by a scripted agent,
commented on and closed as their stories land, and one pull request pushed to a local bare
repository and opened on the fake GitHub (tests/support/fake_github.py, fake_linear.py)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from ralph_tui.agents.scripted import ScriptedAgent
from ralph_tui.config import load_config
from ralph_tui.events import Committed, Event, IterationStarted, Notice
from ralph_tui.parallel import ParallelEngine
from tests.support.engine import (
    RecordingSink,
    ScriptedSupervisor,
    complete,
    create,
    make_engine,
    write_script,
)
from tests.support.fake_github import TOKEN, FakeGitHub, Recorded, fake_github
from tests.support.fake_linear import API_KEY, FakeLinear, fake_linear
from tests.support.repo import git, make_repo

__all__ = ["fake_github", "fake_linear"]  # fixtures


def tracker_repo(tmp_path: Path, table: dict[str, Any]) -> tuple[Path, Path]:
    """A repository with no PRD yet (the tracker is the source), ``[tracker]`` in ralph.toml,
    and a bare repository as its ``origin``."""
    root = make_repo(tmp_path / "ws", [])
    git(root, "rm", "-q", "tasks/backend_prd.json")
    lines = ["", "[tracker]"] + [f"{k} = {json.dumps(v)}" for k, v in table.items()]
    with (root / "ralph.toml").open("a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "tracker")
    remote = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(root, "remote", "add", "origin", str(remote))
    return root, remote


def prd(root: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((root / "tasks/backend_prd.json").read_text())
    return data


def notices(events: list[Event]) -> list[str]:
    return [e.message for e in events if isinstance(e, Notice)]


SCRIPT = {"default": [create("{id}.txt", "done\n"), complete()]}


def script_for(*ids: str) -> dict[str, Any]:
    return {"stories": {i: [create(f"{i}.txt", "done\n"), complete()] for i in ids}}


async def test_github_round_trip_read_work_comment_close_pull_request(
    tmp_path: Path, fake_github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    gh = fake_github
    gh.add_issue("Add greeting", "Say hello.\n\n- [ ] prints hello\n- [ ] has a test\n")
    gh.add_issue("Add farewell", "Say goodbye.\n\nBlocked by #1", labels=("ralph", "P1"))
    gh.add_issue("Not for ralph", labels=("docs",))
    gh.add_issue("A pull request", pull_request=True)
    gh.add_issue("Third", "- [x] already ticked")
    gh.block(5, by=2)  # GitHub's own issue dependency
    gh.state.issues[1]["labels"].append({"name": "priority: high"})
    # every listed page is one issue: the sync follows the Link header
    monkeypatch.setattr("ralph_tui.trackers.github.PER_PAGE", 1)
    gh.rate_limit(1, reset_at=0)  # the first call is limited; the reset has passed already
    table = {
        "kind": "github",
        "repository": "acme/widgets",
        "label": "ralph",
        "api_url": gh.base_url,
        "pull_request": True,
    }
    root, remote = tracker_repo(tmp_path, table)
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    engine, _, sink, _ = make_engine(root, script_for("GH-1", "GH-2", "GH-5"))

    assert await engine.run() == 0

    doc = prd(root)
    stories = {s["id"]: s for s in doc["userStories"]}
    assert list(stories) == ["GH-1", "GH-2", "GH-5"]  # no docs issue, no pull request
    assert stories["GH-1"]["acceptanceCriteria"] == ["prints hello", "has a test"]
    assert stories["GH-1"]["priority"] == 1 and stories["GH-2"]["priority"] == 1
    assert stories["GH-2"]["dependsOn"] == ["GH-1"]
    assert stories["GH-5"]["dependsOn"] == ["GH-2"]
    assert stories["GH-1"]["tracker"]["url"] == "https://github.test/acme/widgets/issues/1"
    assert all(s["passes"] for s in stories.values())
    assert [e.story_id for e in sink.of(IterationStarted)] == ["GH-1", "GH-2", "GH-5"]
    subjects = git(root, "log", "--format=%s").splitlines()
    assert subjects[-3] == "[backend] PRD synced from github:acme/widgets: 3 added"
    head = git(root, "rev-parse", "HEAD").strip()
    for number in (1, 2, 5):
        (comment,) = gh.comments(number)
        assert "ralph-tui landed this in" in comment and "| ok | passed |" in comment
        assert gh.issue(number)["state"] == "closed"
        assert gh.issue(number)["state_reason"] == "completed"
    assert head[:12] in gh.comments(5)[0]
    assert gh.issue(3)["state"] == "open"
    (pull,) = gh.pulls
    branch = "ralph/github-acme-widgets"
    assert (pull["head"], pull["base"]) == (branch, "main")
    assert "GH-2: Add farewell (https://github.test/acme/widgets/issues/2)" in pull["body"]
    assert git(remote, "rev-parse", f"refs/heads/{branch}").strip() == head
    assert any("pull request opened: https://github.test/" in n for n in notices(sink.events))
    assert git(root, "status", "--porcelain") == ""


async def test_a_second_sync_updates_removes_and_keeps_the_prds_own_stories(
    tmp_path: Path, fake_github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    gh = fake_github
    gh.add_issue("One", "- [ ] a")
    gh.add_issue("Two")
    root, _ = tracker_repo(
        tmp_path, {"kind": "github", "repository": "acme/widgets", "api_url": gh.base_url}
    )
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    # a first run syncs and lands nothing (the agent escalates; the human skips)
    script = {"default": [{"tool": "escalate", "input": {"question": "Which greeting?"}}]}
    engine, _, sink, _ = make_engine(root, script, max_iterations=1)
    assert await engine.run() == 3
    assert gh.comments(1) == ["ralph-tui needs a human for this story.\n\n**Question:** Which "
                              "greeting?\n"]  # fmt: skip
    assert [s["id"] for s in prd(root)["userStories"]] == ["GH-1", "GH-2"]
    # meanwhile: one issue is edited, one closed on GitHub, and a story is written by hand
    gh.edit(1, title="One, renamed", body="- [ ] a\n- [ ] b")
    gh.edit(2, state="closed")
    doc = prd(root)
    doc["userStories"].append({"id": "LOCAL-1", "title": "Mine", "passes": False})
    (root / "tasks/backend_prd.json").write_text(json.dumps(doc, indent=2) + "\n")
    git(root, "commit", "-qam", "a story of my own")
    engine, _, sink, _ = make_engine(root, {"default": [complete()]}, max_iterations=1)
    await engine.run()
    stories = {s["id"]: s for s in prd(root)["userStories"]}
    assert list(stories) == ["GH-1", "LOCAL-1"]
    assert stories["GH-1"]["title"] == "One, renamed"
    assert stories["GH-1"]["acceptanceCriteria"] == ["a", "b"]
    assert any("1 updated, 1 removed (closed or deleted)" in n for n in notices(sink.events)), (
        notices(sink.events)
    )


async def test_a_run_started_from_main_syncs_into_the_prd_of_the_runs_own_branch(
    tmp_path: Path, fake_github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """main has a PRD of its own (imported once); the run's branch has the one the last run
    left. The run switches with a clean tree, then syncs the branch's PRD."""
    gh = fake_github
    gh.add_issue("One")
    gh.add_issue("Two")
    root, _ = tracker_repo(
        tmp_path, {"kind": "github", "repository": "acme/widgets", "api_url": gh.base_url}
    )
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    engine, _, _, _ = make_engine(root, script_for("GH-1", "GH-2"), max_iterations=1)
    assert await engine.run() == 3  # GH-1 landed on the branch
    on_branch = prd(root)
    git(root, "checkout", "-q", "main")
    on_branch["userStories"][0]["passes"] = False  # main's copy: nothing done
    (root / "tasks/backend_prd.json").write_text(json.dumps(on_branch, indent=2) + "\n")
    git(root, "add", "tasks/backend_prd.json")
    git(root, "commit", "-qm", "PRD imported on main")
    gh.add_issue("Three")
    engine, _, sink, _ = make_engine(root, script_for("GH-2", "GH-3"))

    assert await engine.run() == 0
    assert git(root, "branch", "--show-current").strip() == "ralph/github-acme-widgets"
    assert [e.story_id for e in sink.of(IterationStarted)] == ["GH-2", "GH-3"]
    assert gh.issue(3)["state"] == "closed"


async def test_an_issue_edited_during_the_run_is_commented_on_but_left_open(
    tmp_path: Path, fake_github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    gh = fake_github
    gh.add_issue("Greeting", "Say hello")
    root, _ = tracker_repo(
        tmp_path, {"kind": "github", "repository": "acme/widgets", "api_url": gh.base_url}
    )
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    engine, _, sink, _ = make_engine(root, script_for("GH-1"))
    engine_sink = engine._sink

    def edit_when_started(event: Event) -> None:  # a human edits the issue mid-iteration
        if isinstance(event, IterationStarted):
            gh.edit(1, body="Say hello, and in French too")
        engine_sink(event)

    engine._sink = edit_when_started

    assert await engine.run() == 0
    (comment,) = gh.comments(1)
    assert "edited after the run read it" in comment
    assert gh.issue(1)["state"] == "open"
    assert any("edited on the tracker during the run" in n for n in notices(sink.events))
    assert prd(root)["userStories"][0]["passes"] is True


async def test_an_issue_deleted_during_the_run_is_reported_and_the_run_goes_on(
    tmp_path: Path, fake_github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    gh = fake_github
    gh.add_issue("One")
    gh.add_issue("Two")
    root, _ = tracker_repo(
        tmp_path, {"kind": "github", "repository": "acme/widgets", "api_url": gh.base_url}
    )
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    engine, _, sink, _ = make_engine(root, script_for("GH-1", "GH-2"))
    engine_sink = engine._sink

    def delete_first(event: Event) -> None:
        if isinstance(event, IterationStarted) and event.story_id == "GH-1":
            gh.delete(1)
        engine_sink(event)

    engine._sink = delete_first

    assert await engine.run() == 0
    assert any("GH-1 (github 1): the issue is gone" in n for n in notices(sink.events))
    assert gh.issue(2)["state"] == "closed"
    assert all(s["passes"] for s in prd(root)["userStories"])


async def test_a_refused_token_stops_the_run_before_anything_changes(
    tmp_path: Path, fake_github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_github.add_issue("One")
    root, _ = tracker_repo(
        tmp_path, {"kind": "github", "repository": "acme/widgets", "api_url": fake_github.base_url}
    )
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_wrong" + "x" * 30)
    engine, _, _, _ = make_engine(root, SCRIPT)
    head = git(root, "rev-parse", "HEAD")
    with pytest.raises(Exception, match=r"^GitHub: 401 Unauthorized at http://127\.0\.0\.1"):
        await engine.run()
    assert git(root, "rev-parse", "HEAD") == head
    assert not (root / "tasks/backend_prd.json").exists()


async def test_linear_round_trip_read_work_comment_move_pull_request(
    tmp_path: Path,
    fake_linear: FakeLinear,
    fake_github: FakeGitHub,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lin = fake_linear
    lin.state.page_size = 1  # every page is one issue: the sync follows pageInfo
    lin.add_issue("Schema", "- [ ] a migration", priority=3)
    lin.add_issue("API", "- [ ] GET /items", priority=2, blocked_by=("ENG-1",))
    lin.add_issue("Elsewhere", project="Other")
    lin.add_issue("Finished", state="Done")
    lin.rate_limit(1, reset_at=0)
    table = {
        "kind": "linear",
        "team": "ENG",
        "project": "Launch",
        "api_url": lin.url,
        "done_state": "In Review",
        "pull_request": True,
        "repository": "acme/widgets",
        "github_api_url": fake_github.base_url,
    }
    root, remote = tracker_repo(tmp_path, table)
    monkeypatch.setenv("LINEAR_API_KEY", API_KEY)
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    engine, _, sink, _ = make_engine(root, script_for("ENG-1", "ENG-2"))

    assert await engine.run() == 0

    stories = {s["id"]: s for s in prd(root)["userStories"]}
    assert list(stories) == ["ENG-1", "ENG-2"]
    assert stories["ENG-2"]["dependsOn"] == ["ENG-1"]
    assert stories["ENG-1"]["acceptanceCriteria"] == ["a migration"]
    assert stories["ENG-1"]["tracker"]["url"] == "https://linear.test/acme/issue/ENG-1"
    # ENG-2 is more urgent but waits for ENG-1
    assert [e.story_id for e in sink.of(IterationStarted)] == ["ENG-1", "ENG-2"]
    for ref in ("ENG-1", "ENG-2"):
        (comment,) = lin.comments(ref)
        assert "| ok | passed |" in comment
        assert lin.state_of(ref) == "In Review"
    assert lin.state_of("ENG-3") == "Todo"
    (pull,) = fake_github.pulls
    assert pull["head"] == "ralph/linear-eng-launch"
    assert "ENG-1: Schema (https://linear.test/acme/issue/ENG-1)" in pull["body"]
    head = git(root, "rev-parse", "HEAD").strip()
    assert git(remote, "rev-parse", "refs/heads/ralph/linear-eng-launch").strip() == head


async def test_a_pull_request_that_cannot_be_pushed_fails_the_run_with_one_line(
    tmp_path: Path, fake_github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_github.add_issue("One")
    table = {
        "kind": "github",
        "repository": "acme/widgets",
        "api_url": fake_github.base_url,
        "pull_request": True,
        "remote": "nowhere",
    }
    root, _ = tracker_repo(tmp_path, table)
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    engine, _, sink, _ = make_engine(root, script_for("GH-1"))

    assert await engine.run() == 1
    (line,) = [n for n in notices(sink.events) if "not opened" in n]
    assert line.startswith("pull request for ralph/github-acme-widgets not opened: git push")
    assert "\n" not in line
    assert fake_github.pulls == []
    assert gh_closed(fake_github, 1)


async def test_a_slow_tracker_holds_up_only_its_own_worker_not_the_next_landing(
    tmp_path: Path, fake_github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first issue comment waits until the other story has committed: under the merge
    lock (or with its ticket still in the train) that commit could never come."""
    for title in ("One", "Two"):
        fake_github.add_issue(title)
    root, _ = tracker_repo(
        tmp_path, {"kind": "github", "repository": "acme/widgets", "api_url": fake_github.base_url}
    )
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    path = write_script(root, script_for("GH-1", "GH-2"))
    config = load_config(root, {"script": str(path), "workers": 2, "approve": "auto"})
    committed = {"GH-1": threading.Event(), "GH-2": threading.Event()}
    first_comment: list[tuple[str, bool]] = []

    def sink(event: Event) -> None:
        recorded(event)
        if isinstance(event, Committed):
            committed[event.story_id].set()

    claimed = threading.Lock()  # the server answers on a thread per request

    def hold_first_comment(rec: Recorded) -> None:
        if rec.method != "POST" or not rec.path.endswith("/comments"):
            return
        with claimed:
            if first_comment:
                return
            first_comment.append(("", False))
        (other,) = set(committed) - {f"GH-{rec.path.split('/')[-2]}"}
        first_comment[0] = (other, committed[other].wait(timeout=30))

    recorded = RecordingSink()
    fake_github.state.on_request = hold_first_comment
    engine = ParallelEngine(
        root, config, ScriptedAgent.from_file(path, config), ScriptedSupervisor(), sink
    )

    assert await engine.run() == 0
    ((other, landed_meanwhile),) = first_comment
    assert landed_meanwhile, f"{other} could not land while the tracker was slow"
    for number in (1, 2):
        assert gh_closed(fake_github, number)
        assert len(fake_github.comments(number)) == 1


def gh_closed(gh: FakeGitHub, number: int) -> bool:
    return gh.issue(number)["state"] == "closed"


async def test_parallel_workers_close_each_issue_as_its_story_lands(
    tmp_path: Path, fake_github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    for title in ("One", "Two", "Three"):
        fake_github.add_issue(title)
    root, _ = tracker_repo(
        tmp_path, {"kind": "github", "repository": "acme/widgets", "api_url": fake_github.base_url}
    )
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    path = write_script(root, script_for("GH-1", "GH-2", "GH-3"))
    config = load_config(root, {"script": str(path), "workers": 2, "approve": "auto"})
    sink = RecordingSink()
    engine = ParallelEngine(
        root, config, ScriptedAgent.from_file(path, config), ScriptedSupervisor(), sink
    )

    assert await engine.run() == 0
    for number in (1, 2, 3):
        assert fake_github.issue(number)["state"] == "closed"
        (comment,) = fake_github.comments(number)
        assert "| ok | passed |" in comment
