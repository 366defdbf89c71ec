"""A hostile PM model ([pm]) through a real headless run: its tools only read.

The engineering agent (scripted) escalates; the PM, the built-in Anthropic agent code against
the fake Messages API, tries to write files, run commands, commit, write through ``git log
--output`` (abbreviated too), run an external diff, and read a secret outside the repository,
directly and through a link the repository holds. Every call is refused, nothing is written or
read, and its answer still reaches the agent (``--approve auto``: at once).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.security.support import MODES, attack_repo, run_cli
from tests.support.engine import complete
from tests.support.fake_anthropic import FakeAnthropic, reply, tool_use
from tests.support.repo import git

SECRET = "pm-attack-secret-6f1c0d"


@pytest.mark.parametrize("mode", MODES)
def test_a_hostile_pm_writes_runs_and_reads_nothing(outside_tmp: Path, mode: str) -> None:
    secret = outside_tmp / "secret.txt"
    secret.write_text(SECRET + "\n")
    written = outside_tmp / "written.txt"
    escalate = {"tool": "escalate", "input": {"question": "Which port?", "tried": "-"}}
    root = attack_repo(outside_tmp, [escalate, complete()], mode, extra='pm = { mode = "answer" }')
    (root / "link").symlink_to(secret)
    git(root, "add", "link")
    git(root, "commit", "-q", "-m", "a link out")
    head = git(root, "rev-parse", "HEAD").strip()
    attempts = [
        tool_use("bash", {"command": f"touch {written}"}),
        tool_use(
            "str_replace_based_edit_tool",
            {"command": "create", "path": "pwned.txt", "file_text": "x"},
        ),
        tool_use("view_file", {"path": "pwned.txt", "file_text": "x"}),
        tool_use("git", {"args": ["commit", "--allow-empty", "-m", "pm"]}),
        tool_use("git", {"args": ["log", f"--output={written}"]}),
        tool_use("git", {"args": ["log", f"--outp={written}"]}),
        tool_use("git", {"args": ["log", "-po", str(written)]}),
        tool_use("git", {"args": ["show", "--ext-diff", "HEAD"]}),
        tool_use("view_file", {"path": str(secret)}),
        tool_use("view_file", {"path": "link"}),
        tool_use("search", {"pattern": f"--open-files-in-pager=touch {written}"}),
    ]
    with FakeAnthropic(
        [reply(*attempts), reply(tool_use("answer", {"answer": "Use 8080"}))]
    ) as api:
        done = run_cli(
            root,
            {"ANTHROPIC_API_KEY": "sk-ant-test-0000", "ANTHROPIC_BASE_URL": api.base_url},
        )
        requests = api.requests
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(requests) == 2, done.stdout + done.stderr
    results = requests[1].body["messages"][-1]["content"]
    assert len(results) == len(attempts)
    assert all(r.get("is_error") for r in results[:-1]), results  # the search finds nothing
    refused = [str(r["content"]) for r in results[:8]]
    assert all(text.startswith("refused") for text in refused), refused
    assert not written.exists() and not (root / "pwned.txt").exists()
    assert SECRET not in json.dumps(results)
    assert "answer (the PM, not a human): Use 8080" in done.stdout
    subjects = git(root, "log", "--format=%s", f"{head}..HEAD").splitlines()
    assert subjects == ["[backend] Task #US-001: Do the thing"]
