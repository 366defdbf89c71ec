"""Attacks on the tracker credentials: a real ``ralph-tui run`` synced from the fake GitHub
(the token in its initial environment, as a user who exported it) whose agent goes looking for
GITHUB_TOKEN and LINEAR_API_KEY, from a repository outside /tmp."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.security.support import MODES, assert_nowhere, bash, run_cli, sandbox_config
from tests.support.engine import complete, make_engine
from tests.support.fake_github import TOKEN, FakeGitHub, fake_github
from tests.support.repo import git, make_repo

__all__ = ["fake_github"]  # the fixture

LINEAR_KEY = "lin_api_attack" + "k" * 30
# the agent's shell, a gate and a hand-written script all read what they can reach
LOOK = (
    "{ env; tr '\\0' '\\n' < /proc/$PPID/environ; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n';"
    " git config --list; } > found.txt 2>&1; true"
)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("variable", ["GITHUB_TOKEN", "ACME_GH"])
def test_the_agent_cannot_read_the_tracker_credentials(
    outside_tmp: Path, fake_github: FakeGitHub, mode: str, variable: str
) -> None:
    """GITHUB_TOKEN looks like a secret by its name; ACME_GH does not, and is withheld
    because ``token_env`` names it."""
    fake_github.add_issue("Do the thing", "- [ ] it is done")
    script = outside_tmp / "script.json"
    script.write_text(json.dumps({"default": [bash(LOOK), complete("looked")]}))
    tracker = {"kind": "github", "repository": "acme/widgets", "api_url": fake_github.base_url}
    if variable != "GITHUB_TOKEN":
        tracker["token_env"] = variable
    root = make_repo(
        outside_tmp / "ws",
        [],
        gates={"look": LOOK.replace("found.txt", "gate.txt")},
        extra_config=f"script = {json.dumps(str(script))}\n{sandbox_config(mode)}",
    )
    git(root, "rm", "-q", "tasks/backend_prd.json")
    with (root / "ralph.toml").open("a") as fh:
        fh.write("[tracker]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in tracker.items()))
    git(root, "commit", "-qam", "tracker")

    done = run_cli(root, {variable: TOKEN, "LINEAR_API_KEY": LINEAR_KEY})

    assert done.returncode == 0, done.stdout + done.stderr
    assert "PATH=" in (root / "found.txt").read_text()  # it did read an environment
    assert fake_github.issue(1)["state"] == "closed"  # ralph-tui itself had the token
    (comment,) = fake_github.comments(1)
    for text in (comment, done.stdout, done.stderr):
        assert TOKEN not in text and LINEAR_KEY not in text
    assert_nowhere(root, [TOKEN, LINEAR_KEY], done.stdout, done.stderr)


TAMPER = (
    "python3 -c \"import json; p='tasks/backend_prd.json'; d=json.load(open(p)); "
    "t=d['userStories'][0]['tracker']; t['ref']='2'; t['url']='https://evil.test/'; "
    "json.dump(d, open(p, 'w'))\""
)


async def test_an_agent_that_rewrites_its_storys_issue_cannot_close_another(
    outside_tmp: Path, fake_github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a sandbox the agent can write the PRD: it points its story's ``tracker`` at
    issue 2 before claiming done. The landing still reports to issue 1, the one the story was
    synced from; issue 2 is untouched, and the next sync still gives GH-2 its own story."""
    fake_github.add_issue("Mine")
    fake_github.add_issue("Someone else's")
    tracker = {"kind": "github", "repository": "acme/widgets", "api_url": fake_github.base_url}
    root = make_repo(outside_tmp / "ws", [], extra_config=sandbox_config("off"))
    git(root, "rm", "-q", "tasks/backend_prd.json")
    with (root / "ralph.toml").open("a") as fh:
        fh.write("[tracker]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in tracker.items()))
    git(root, "commit", "-qam", "tracker")
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    script = {"stories": {"GH-1": [bash(TAMPER), complete("tampered")]}}
    engine, _, _, _ = make_engine(root, script, max_iterations=1)

    assert await engine.run() == 3
    assert fake_github.issue(1)["state"] == "closed" and len(fake_github.comments(1)) == 1
    assert fake_github.issue(2)["state"] == "open" and fake_github.comments(2) == []
    engine, _, _, _ = make_engine(root, {"default": [complete()]})
    assert await engine.run() == 0
    stories = json.loads((root / "tasks/backend_prd.json").read_text())["userStories"]
    assert [(s["id"], s["title"], s["passes"]) for s in stories] == [
        ("GH-1", "Mine", True),
        ("GH-2", "Someone else's", True),
    ]
    assert fake_github.issue(2)["state"] == "closed" and len(fake_github.comments(2)) == 1
