"""The engine reads the agent's files safely (issue 28 item 3): a scripted agent through a real
``ralph-tui run --headless`` from a repository outside ``/tmp``.

- ``AGENTS.md`` made a symlink to a secret outside the repository: the next iteration's prompt,
  the transcript, the journal, the progress log and the commits never hold it.
- A 3 GiB ``AGENTS.md`` (sparse): read up to its cap, never whole.
- A symlinked ``tasks/`` folder: refused at start with one line, nothing written through it.
- Megabytes of agent text: capped in the progress log, the commit and the journal.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.security.support import MODES, attack_repo, run_cli
from tests.support.engine import complete, create
from tests.support.repo import git, make_repo, story


def _everything_written(root: Path) -> str:
    """Every file ralph-tui wrote (the run folder, the bookkeeping) and every commit."""
    parts = [git(root, "log", "-p", "--all", "--format=%B")]
    for path in (root / ".ralph").rglob("*"):
        if path.is_file():
            parts.append(path.read_text(encoding="utf-8", errors="replace"))
    parts.append((root / "tasks" / "backend_progress.txt").read_text())
    return "\n".join(parts)


@pytest.mark.parametrize("mode", MODES)
def test_agents_md_linked_to_a_secret_is_never_read(outside_tmp: Path, mode: str) -> None:
    secret = outside_tmp / "id_rsa"
    marker = f"FAKE-KEY-{secrets.token_hex(8)}"
    secret.write_text(f"-----BEGIN FAKE-----\n{marker}\n")
    # a link that landed with an earlier (approved) change: every later prompt is built with it
    root = attack_repo(outside_tmp, [complete("nothing to do")], mode)
    (root / "AGENTS.md").symlink_to(secret)
    git(root, "add", "AGENTS.md")
    git(root, "commit", "-qm", "a link that landed earlier")
    done = run_cli(root, {}, timeout=120)
    output = done.stdout + done.stderr
    assert "AGENTS.md not given to the agent" in output and "leads outside" in output, output
    assert marker not in output
    assert marker not in _everything_written(root)


def test_a_huge_agents_md_is_read_up_to_its_cap(outside_tmp: Path) -> None:
    root = attack_repo(outside_tmp, [complete("nothing to do")], "off")
    with (root / "AGENTS.md").open("wb") as handle:
        handle.write(b"Be brief.\n")
        handle.truncate(3 << 30)  # 3 GiB, sparse: reading it whole would take 3 GiB of memory
    # left untracked and ignored (git would hash all 3 GiB to commit it); read all the same
    with (root / ".git" / "info" / "exclude").open("a") as exclude:
        exclude.write("AGENTS.md\n")
    done = subprocess.run(
        [sys.executable, "-c", RSS_WRAPPER, "run", "--headless", "--approve", "auto"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    peak_kib = int(done.stderr.strip().splitlines()[-1].split()[-1])
    assert peak_kib < 1024 * 1024, f"peak RSS {peak_kib} KiB"  # far below 3 GiB
    assert done.returncode == 0, done.stdout + done.stderr


# ralph-tui in-process, then its own peak RSS (the kernel's count, not a timing)
RSS_WRAPPER = """
import resource, sys
from ralph_tui.cli import main
code = main(sys.argv[1:])
print("peak-rss-kib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def test_a_symlinked_tasks_folder_is_refused(outside_tmp: Path) -> None:
    elsewhere = outside_tmp / "elsewhere"
    root = make_repo(outside_tmp / "ws", [story("US-001", "One")])
    shutil.move(root / "tasks", elsewhere)
    (root / "tasks").symlink_to(elsewhere)
    before = {p.name: p.read_bytes() for p in elsewhere.iterdir()}
    done = run_cli(root, {}, timeout=60)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stdout + done.stderr
    assert "its folder leads outside the repository" in lines[-1] and len(lines) == 1
    assert {p.name: p.read_bytes() for p in elsewhere.iterdir()} == before


def test_agent_text_is_capped_where_it_is_stored(outside_tmp: Path) -> None:
    flood = "x" * (2 << 20)  # twice what a transcript keeps of one iteration
    steps = [
        {"text": flood},
        create("src/feature.py", "FEATURE = 1\n"),
        complete("y" * (100 << 10), ["z" * (10 << 10)] * 30),
    ]
    root = attack_repo(outside_tmp, steps, "off")
    done = run_cli(root, {}, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    log = (root / "tasks" / "backend_progress.txt").read_text()
    assert len(log) < 64 * 1024 and "characters cut" in log and "more learnings not kept" in log
    assert len(git(root, "log", "-1", "--format=%B")) < 4096
    events = next((root / ".ralph" / "runs").rglob("events.jsonl"))
    transcript = next((root / ".ralph" / "runs").rglob("transcript.md"))
    assert events.stat().st_size < 4 << 20 and transcript.stat().st_size < 4 << 20
    assert "agent text over" in transcript.read_text()
