"""A symlink the agent plants inside the workspace is no way around the editor's rules: the
path is resolved before it is checked, so `.git/` behind a link is still `.git/`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ralph_tui.iteration import ToolOutcome
from tests.security.unsandboxed import OFF
from tests.support.engine import complete, create, make_engine
from tests.support.repo import git, make_repo


def bash(command: str) -> dict[str, Any]:
    return {"tool": "bash", "input": {"command": command}}


async def test_editor_writes_through_a_planted_link_into_git_are_refused(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    hook = "#!/bin/sh\ntouch /tmp/ralph-hook-ran\n"
    steps = [
        bash("ln -s .git g && ln -s .git/hooks h && ln -s tasks/backend_prd.json prd"),
        create("g/hooks/pre-commit", hook),
        create("h/post-commit", hook),
        create("prd", '{"userStories": []}'),
        bash("rm g h prd"),
        create("src/ok.py", "OK = 1\n"),
        complete(),
    ]
    engine, agent, _, _ = make_engine(root, {"default": steps}, **OFF)
    assert await engine.run() == 0
    edits = [o for name, o in agent.received if name == "str_replace_based_edit_tool"]
    refused: list[ToolOutcome] = edits[:3]
    assert all(o.is_error for o in refused), refused
    assert ".git/ is off limits" in refused[0].content
    assert not (root / ".git" / "hooks" / "pre-commit").exists()
    assert not (root / ".git" / "hooks" / "post-commit").exists()
    # the PRD was not emptied: the story is there and passes through the engine's own commit
    assert '"passes": true' in (root / "tasks" / "backend_prd.json").read_text()
    assert git(root, "log", "--format=%s").splitlines()[0] == "[backend] Task #US-001: First story"
    assert git(root, "status", "--porcelain") == ""
