"""The progress log's escalation entries (issue 29): committed, never left to pile up."""

from __future__ import annotations

import json

from tests.e2e.support import Site, assert_clean
from tests.support.repo import git

ESCALATE = {
    "default": [{"tool": "escalate", "input": {"question": "Which DB?", "tried": "read docs"}}]
}


def test_a_skipped_escalation_is_committed_and_two_runs_leave_no_pile_up(site: Site) -> None:
    root = site.repo(1, config='script = "script.json"')
    (root / "script.json").write_text(json.dumps(ESCALATE), encoding="utf-8")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "the script")
    for run in (1, 2):
        done = site.ralph("run", "--headless", "--agent", "scripted", input="\n")  # skip it
        assert "Traceback" not in done.stderr, done.stderr
        assert "committed the progress log's new entries" in done.stdout, done.stdout[-2000:]
        assert git(root, "status", "--porcelain") == ""  # nothing left in the tree
        log = (root / "tasks/backend_progress.txt").read_text(encoding="utf-8")
        assert log.count("## Blocker: Task #US-001: Story 1") == run
        assert log.count("Skipped by supervisor") == run
    subjects = git(root, "log", "--format=%s").splitlines()
    runs = {p.name for p in (root / ".ralph/runs").iterdir()}
    assert set(subjects[:2]) == {
        f"[backend] Progress log: 1 escalation recorded in run {rid}" for rid in runs
    }
    assert_clean(site)
