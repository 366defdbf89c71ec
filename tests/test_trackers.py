"""The tracker clients against the fake GitHub and Linear servers, and ``ralph-tui import
github:`` / ``linear:`` through the installed CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ralph_tui.config import load_config
from ralph_tui.errors import UsageError
from ralph_tui.safety import credentials
from ralph_tui.trackers import IssueGone, TrackerError, github_token
from ralph_tui.trackers.base import criteria_from_body
from ralph_tui.trackers.github import GitHubTracker
from ralph_tui.trackers.linear import LinearTracker
from tests.support.fake_github import TOKEN, FakeGitHub, fake_github
from tests.support.fake_linear import API_KEY, FakeLinear, fake_linear
from tests.support.repo import make_repo

__all__ = ["fake_github", "fake_linear"]  # fixtures

NOW = 1_000_000.0


class Sleeps:
    """An injected sleep: records the waits, returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def github(gh: FakeGitHub, token: str = TOKEN, **kwargs: object) -> GitHubTracker:
    return GitHubTracker("acme/widgets", token, api_url=gh.base_url, **kwargs)  # type: ignore[arg-type]


async def test_github_lists_every_page_oldest_first_without_pull_requests(
    fake_github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(1, 6):
        fake_github.add_issue(f"Issue {n}", pull_request=n == 3)
    monkeypatch.setattr("ralph_tui.trackers.github.PER_PAGE", 2)
    tracker = github(fake_github, label="ralph")
    try:
        issues = await tracker.open_issues()
    finally:
        await tracker.aclose()
    assert [i.story_id for i in issues] == ["GH-1", "GH-2", "GH-4", "GH-5"]
    listed = [r for r in fake_github.requests if r.path.endswith("/issues")]
    assert len(listed) == 3  # 5 items, 2 a page


async def test_github_milestone_is_looked_up_by_title(fake_github: FakeGitHub) -> None:
    fake_github.state.milestones = [{"number": 7, "title": "v1"}]
    fake_github.add_issue("In v1", milestone=7)
    fake_github.add_issue("Later")
    tracker = github(fake_github, milestone="v1")
    try:
        assert [i.title for i in await tracker.open_issues()] == ["In v1"]
        with pytest.raises(TrackerError, match="no open milestone 'v2'"):
            tracker.milestone = "v2"
            await tracker.open_issues()
    finally:
        await tracker.aclose()


async def test_github_rate_limit_is_waited_out_until_its_reset(fake_github: FakeGitHub) -> None:
    fake_github.add_issue("One")
    fake_github.rate_limit(2, reset_at=NOW + 42)
    sleeps = Sleeps()
    tracker = github(fake_github, clock=lambda: NOW, sleep=sleeps)
    try:
        assert [i.title for i in await tracker.open_issues()] == ["One"]
    finally:
        await tracker.aclose()
    assert sleeps.waits == [42.0, 42.0]


async def test_github_rate_limit_past_the_allowed_wait_is_one_line(
    fake_github: FakeGitHub,
) -> None:
    fake_github.rate_limit(1, reset_at=NOW + 3600)
    sleeps = Sleeps()
    tracker = github(fake_github, clock=lambda: NOW, sleep=sleeps, max_wait=300.0)
    try:
        with pytest.raises(TrackerError) as caught:
            await tracker.open_issues()
    finally:
        await tracker.aclose()
    assert str(caught.value) == (
        "GitHub: rate limited; the limit resets in 3600s, more than the 300s "
        "rate_limit_wait_s allows"
    )
    assert sleeps.waits == []


async def test_github_401_and_a_deleted_issue(fake_github: FakeGitHub) -> None:
    fake_github.add_issue("One")
    bad = github(fake_github, token="ghp_" + "x" * 36)
    try:
        with pytest.raises(TrackerError) as caught:
            await bad.open_issues()
    finally:
        await bad.aclose()
    message = str(caught.value)
    assert message.startswith(f"GitHub: 401 Unauthorized at {fake_github.base_url}/repos/")
    assert "Bad credentials" in message and "\n" not in message
    fake_github.delete(1)
    tracker = github(fake_github)
    try:
        with pytest.raises(IssueGone, match="410"):
            await tracker.get_issue("1")
        with pytest.raises(IssueGone):
            await tracker.comment("1", "hello")
    finally:
        await tracker.aclose()


async def test_linear_pages_filters_priority_and_relations(fake_linear: FakeLinear) -> None:
    fake_linear.state.page_size = 2
    fake_linear.add_issue("Last", sort_order=9, labels=("ralph",))
    fake_linear.add_issue("First", priority=1, sort_order=1, labels=("ralph",))
    fake_linear.add_issue("No label", labels=())
    fake_linear.add_issue("Blocked", blocked_by=("ENG-2",), labels=("ralph",), sort_order=5)
    fake_linear.add_issue("Canceled", labels=("ralph",), state="Canceled")
    tracker = LinearTracker("ENG", API_KEY, api_url=fake_linear.url, label="ralph")
    try:
        issues = await tracker.open_issues()
    finally:
        await tracker.aclose()
    assert [i.story_id for i in issues] == ["ENG-2", "ENG-4", "ENG-1"]
    assert [i.priority for i in issues] == [1, None, None]
    assert issues[1].blocked_by == ("ENG-2",)
    pages = [c for c in fake_linear.calls if c.operation == "RalphIssues"]
    assert len(pages) == 2


async def test_linear_view_keeps_its_own_order(fake_linear: FakeLinear) -> None:
    for title in ("A", "B", "C"):
        fake_linear.add_issue(title)
    fake_linear.state.views["view-1"] = ["ENG-3", "ENG-1"]
    tracker = LinearTracker("ENG", API_KEY, api_url=fake_linear.url, view="view-1")
    try:
        assert [i.title for i in await tracker.open_issues()] == ["C", "A"]
        tracker.view = "nope"
        with pytest.raises(TrackerError, match="no custom view 'nope'"):
            await tracker.open_issues()
    finally:
        await tracker.aclose()


async def test_linear_rate_limit_reset_in_milliseconds_401_and_deleted(
    fake_linear: FakeLinear,
) -> None:
    fake_linear.add_issue("One")
    fake_linear.rate_limit(1, reset_at=NOW + 12.5)
    sleeps = Sleeps()
    tracker = LinearTracker(
        "ENG", API_KEY, api_url=fake_linear.url, clock=lambda: NOW, sleep=sleeps
    )
    bad = LinearTracker("ENG", "lin_api_wrong" + "x" * 20, api_url=fake_linear.url)
    try:
        assert [i.title for i in await tracker.open_issues()] == ["One"]
        assert sleeps.waits == [12.5]
        fake_linear.delete("ENG-1")
        with pytest.raises(IssueGone, match="Entity not found"):
            await tracker.get_issue("ENG-1")
        with pytest.raises(TrackerError) as caught:
            await bad.open_issues()
    finally:
        await tracker.aclose()
        await bad.aclose()
    assert str(caught.value).startswith(f"Linear: 401 Unauthorized at {fake_linear.url}")


async def test_linear_done_state_that_does_not_exist_names_the_states(
    fake_linear: FakeLinear,
) -> None:
    fake_linear.add_issue("One")
    tracker = LinearTracker("ENG", API_KEY, api_url=fake_linear.url, done_state="Shipped")
    try:
        with pytest.raises(TrackerError, match="no state 'Shipped' \\(Todo, In Review, Done"):
            await tracker.close("ENG-1")
    finally:
        await tracker.aclose()
    assert fake_linear.state_of("ENG-1") == "Todo"


def test_task_list_items_are_the_criteria() -> None:
    body = "Intro\n- [ ] one\n  * [x] two\n- not a task\n- [ ] one\n"
    assert criteria_from_body(body) == ["one", "two"]


def test_gh_auth_token_is_used_and_kept_in_the_vault(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    gh = bin_dir / "gh"
    gh.write_text("#!/bin/sh\n[ \"$1 $2\" = 'auth token' ] && echo gho_fromghcli0000000000\n")
    gh.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    monkeypatch.delenv("GH_TOKEN", raising=False)
    assert github_token(None) == "gho_fromghcli0000000000"
    assert "gho_fromghcli0000000000" in credentials.withheld().values()
    with pytest.raises(UsageError, match=r"no GitHub token: set MY_TOKEN$"):
        github_token("MY_TOKEN")


@pytest.mark.parametrize(
    ("table", "error"),
    [
        ('kind = "github"', 'kind = "github" needs repository'),
        ('kind = "linear"', 'kind = "linear" needs team'),
        ('kind = "jira"\nteam = "X"', "should be 'github' or 'linear'"),
    ],
)
def test_an_incomplete_tracker_table_names_the_file(tmp_path: Path, table: str, error: str) -> None:
    root = make_repo(tmp_path / "ws")
    with (root / "ralph.toml").open("a") as fh:
        fh.write(f"\n[tracker]\n{table}\n")
    with pytest.raises(UsageError, match=f"^{root}/ralph.toml: tracker.*{error}"):
        load_config(root)


# -- the installed CLI --------------------------------------------------------------------


def ralph_tui(root: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "ralph-tui"
    worktree = str(Path(__file__).resolve().parents[1])
    return subprocess.run(
        [str(script), *args],
        cwd=root,
        env={**os.environ, "PYTHONPATH": worktree, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_import_github_writes_the_prd_once(tmp_path: Path, fake_github: FakeGitHub) -> None:
    fake_github.add_issue("Add greeting", "- [ ] prints hello")
    fake_github.add_issue("Add farewell", "Blocked by #1")
    fake_github.add_issue("Docs", labels=("docs",))
    root = make_repo(tmp_path / "ws")
    (root / "tasks/backend_prd.json").unlink()
    args = ["import", "github:acme/widgets", "--label", "ralph", "--api-url", fake_github.base_url]
    done = ralph_tui(root, *args, env={"GITHUB_TOKEN": TOKEN})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "imported github:acme/widgets (2 open issues) -> tasks/backend_prd.json",
        "  GH-1: Add greeting",
        "  GH-2: Add farewell",
    ]
    doc = json.loads((root / "tasks/backend_prd.json").read_text())
    assert doc["branchName"] == "ralph/github-acme-widgets"
    assert [s["id"] for s in doc["userStories"]] == ["GH-1", "GH-2"]
    assert doc["userStories"][1]["dependsOn"] == ["GH-1"]
    again = ralph_tui(root, *args, env={"GITHUB_TOKEN": TOKEN})
    assert again.returncode == 2 and "a PRD is already there (use --force" in again.stderr
    status = ralph_tui(root, "status", env={})
    assert "https://github.test/acme/widgets/issues/1" in status.stdout


def test_cli_import_of_no_open_issues_writes_nothing(
    tmp_path: Path, fake_github: FakeGitHub
) -> None:
    fake_github.add_issue("Docs", labels=("docs",))
    root = make_repo(tmp_path / "ws")
    target = root / "tasks/backend_prd.json"
    target.unlink()
    args = ["import", "github:acme/widgets", "--label", "ralph", "--api-url", fake_github.base_url]
    done = ralph_tui(root, *args, env={"GITHUB_TOKEN": TOKEN})
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        f"ralph-tui: github:acme/widgets: no open issues labelled ralph; {target} not written"
    ]
    assert not target.exists()


def test_cli_import_with_a_refused_token_is_one_line(
    tmp_path: Path, fake_github: FakeGitHub
) -> None:
    root = make_repo(tmp_path / "ws")
    (root / "tasks/backend_prd.json").unlink()
    done = ralph_tui(
        root,
        "import",
        "github:acme/widgets",
        "--api-url",
        fake_github.base_url,
        env={"GITHUB_TOKEN": "ghp_wrong" + "y" * 30},
    )
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.startswith("ralph-tui: GitHub: 401 Unauthorized at http://127.0.0.1:")
    assert "ghp_wrong" not in done.stderr
    assert not (root / "tasks/backend_prd.json").exists()


def test_cli_import_linear(tmp_path: Path, fake_linear: FakeLinear) -> None:
    fake_linear.add_issue("Schema", priority=2)
    fake_linear.add_issue("Other project", project="Other")
    root = make_repo(tmp_path / "ws")
    args = ["import", "linear:ENG/Launch", "--api-url", fake_linear.url, "--force"]
    done = ralph_tui(root, *args, env={"LINEAR_API_KEY": API_KEY})
    assert done.returncode == 0, done.stderr
    doc = json.loads((root / "tasks/backend_prd.json").read_text())
    assert [(s["id"], s["priority"]) for s in doc["userStories"]] == [("ENG-1", 2)]
    missing = ralph_tui(root, *args, env={"LINEAR_API_KEY": ""})
    assert missing.returncode == 2
    assert missing.stderr.strip() == "ralph-tui: [tracker]: no Linear API key: set LINEAR_API_KEY"


def test_cli_pr_needs_a_tracker(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    done = ralph_tui(root, "run", "--headless", "--pr", env={})
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "ralph-tui: --pr: needs a [tracker] table in ralph.toml (github or linear)"
    )


def test_cli_run_headless_with_pr_opens_the_pull_request(
    tmp_path: Path, fake_github: FakeGitHub
) -> None:
    fake_github.add_issue("Add greeting", "- [ ] greets")
    script = tmp_path / "script.json"
    steps = [
        {"tool": "str_replace_based_edit_tool",
         "input": {"command": "create", "path": "hello.txt", "file_text": "hello\n"}},
        {"tool": "complete_task", "input": {"summary": "done", "learnings": ["x"]}},
    ]  # fmt: skip
    script.write_text(json.dumps({"default": steps}))
    root = make_repo(tmp_path / "ws", [], extra_config=f"script = {json.dumps(str(script))}")
    (root / "tasks/backend_prd.json").unlink()
    with (root / "ralph.toml").open("a") as fh:
        fh.write(
            f'[tracker]\nkind = "github"\nrepository = "acme/widgets"\n'
            f"api_url = {json.dumps(fake_github.base_url)}\n"
        )
    subprocess.run(["git", "commit", "-qam", "tracker"], cwd=root, check=True)
    remote = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    subprocess.run(["git", "remote", "add", "origin", str(remote)], cwd=root, check=True)

    done = ralph_tui(
        root, "run", "--headless", "--approve", "auto", "--pr", env={"GITHUB_TOKEN": TOKEN}
    )

    assert done.returncode == 0, done.stdout + done.stderr
    (pull,) = fake_github.pulls
    assert pull["head"] == "ralph/github-acme-widgets"
    assert "pull request opened: https://github.test/acme/widgets/pull/1000" in done.stdout
    assert fake_github.issue(1)["state"] == "closed"
    # a later run (a new issue) pushes to the same branch: the open pull request is the one
    fake_github.add_issue("Add farewell")
    again = ralph_tui(
        root, "run", "--headless", "--approve", "auto", "--pr", env={"GITHUB_TOKEN": TOKEN}
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(fake_github.pulls) == 1
    assert "pull request opened: https://github.test/acme/widgets/pull/1000" in again.stdout
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
    ).stdout
    pushed = subprocess.run(
        ["git", "rev-parse", "refs/heads/ralph/github-acme-widgets"],
        cwd=remote, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert pushed == head
