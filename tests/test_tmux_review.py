"""A line comment typed in a real terminal (tmux, the installed ``ralph-tui run``) reaches the
agent anchored to ``path:line`` with the line quoted; a dropped file is never committed."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.repo import git, make_repo
from tests.support.tools import requires_tmux
from tests.test_tmux import Tmux, tmux

pytestmark = requires_tmux
__all__ = ["tmux"]  # the fixture, shared with test_tmux


def _create(path: str, text: str) -> dict[str, object]:
    return {
        "tool": "str_replace_based_edit_tool",
        "input": {"command": "create", "path": path, "file_text": text},
    }


def _complete() -> dict[str, object]:
    return {"tool": "complete_task", "input": {"summary": "done", "learnings": []}}


def _tool_results(root: Path) -> list[dict[str, object]]:
    journal = next((root / ".ralph" / "runs").glob("*/events.jsonl"))
    events = [json.loads(line) for line in journal.read_text().splitlines() if line.strip()]
    return [e for e in events if e.get("kind") == "tool_result"]


def test_a_comment_typed_in_the_terminal_reaches_the_agent(tmp_path: Path, tmux: Tmux) -> None:
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps(
            {
                "stream_delay_s": 0.002,
                "default": [
                    _create("src/a.py", "A = 1\nB = 2\nC = 3\n"),
                    _create("src/zdebug.py", "import pdb\n"),
                    _complete(),
                    _create("src/a.py", "A = 1\nB = 3\nC = 3\n"),
                    _complete(),
                ],
            }
        ),
        encoding="utf-8",
    )
    root = make_repo(tmp_path / "ws", extra_config=f"script = {json.dumps(str(script))}")
    tmux.start_run(root)
    tmux.wait(lambda: "Approval needed" in tmux.screen(), "the approval bar")
    tmux.wait(lambda: "A src/a" in tmux.screen(), "the diff's file list")
    # } jumps into the diff at the first hunk; two lines down is "+B = 2", line 2
    tmux("send-keys", "-t", "ralph", "-l", "}")
    tmux("send-keys", "-t", "ralph", "Down", "Down", "c")
    tmux("send-keys", "-t", "ralph", "-l", "B should be 3")  # typed at once: the box has focus
    tmux("send-keys", "-t", "ralph", "Enter")
    tmux.wait(lambda: "1 comment" in tmux.screen(), "the review count in the bar")
    tmux("send-keys", "-t", "ralph", "r")
    tmux.wait(lambda: "What should the agent change?" in tmux.screen(), "the feedback box")
    tmux("send-keys", "-t", "ralph", "Enter")

    def told() -> bool:
        return any(
            r.get("name") == "complete_task" and "B should be 3" in str(r.get("content"))
            for r in _tool_results(root)
        )

    tmux.wait(told, "the agent to be told")
    result = next(r for r in _tool_results(root) if "B should be 3" in str(r.get("content")))
    assert "- src/a.py:2\n  > +B = 2\n  B should be 3" in str(result["content"])
    # the second approval: drop src/zdebug.py (X on it), approve what remains
    tmux.wait(lambda: "review:" not in tmux.screen() and "Approval needed" in tmux.screen(), "2nd")
    tmux("send-keys", "-t", "ralph", "-l", "]")
    tmux("send-keys", "-t", "ralph", "X")
    tmux.wait(lambda: "1 file dropped" in tmux.screen(), "the drop in the bar")
    tmux("send-keys", "-t", "ralph", "a")
    tmux.wait(
        lambda: "1 file changed" in tmux.screen() and "review:" not in tmux.screen(),
        "the approval of what remains",
    )
    tmux("send-keys", "-t", "ralph", "a")
    tmux.wait(lambda: "Task #US-001" in git(root, "log", "-1", "--format=%s"), "the commit", 20.0)
    files = git(root, "show", "--name-only", "--format=", "HEAD").split()
    assert "src/a.py" in files and "src/zdebug.py" not in files
    tmux.wait(lambda: "every story passes" in tmux.screen(), "the run to finish", 20.0)
    tmux("send-keys", "-t", "ralph", "q")
    tmux.wait(lambda: "EXITED 0" in tmux.screen(), "the app to exit", 20.0)
