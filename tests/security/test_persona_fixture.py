"""A persona file in the format users already have (Markdown with YAML front matter, escaped
markup and all; tests/fixtures/personas/, the project's own, written after the real ones) tells
the agent to run the loop itself: `git add . && git commit`, set `passes: true` in the PRD and
append its own progress entry. An agent that obeys it, word for word, through the real tools and
engine: the persona loads as the system prompt, ralph-tui's rules come after it and say they
win, and the engine still decides what lands (one commit, its own bookkeeping).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ralph_tui.context import build_system_prompt
from ralph_tui.events import ApprovalNeeded, Committed
from ralph_tui.persona import load_persona
from tests.security.unsandboxed import OFF
from tests.support.engine import complete, create, make_engine
from tests.support.repo import git, make_repo

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures/personas/python-service-engineer.md"


@pytest.fixture
def persona_file() -> Path:
    return FIXTURE


def bash(command: str) -> dict[str, Any]:
    return {"tool": "bash", "input": {"command": command}}


def test_the_users_persona_loads_and_the_loop_rules_override_its_own_loop(
    persona_file: Path,
) -> None:
    persona = load_persona(persona_file)
    assert persona.name == "Python Service Engineer"
    assert persona.description.startswith("Pragmatic engineer")
    assert persona.body.startswith("# Python Service Engineer")
    assert "### 6. Commit Changes" in persona.body  # the persona's own loop is kept as written
    prompt = build_system_prompt(persona)
    # ralph-tui's rules come last, and say they replace the persona's commit/bookkeeping steps
    rules_at = prompt.index("# How this loop works")
    assert rules_at > prompt.index("### 7. Mark Complete")
    assert "replace any commit" in prompt[rules_at:]


async def test_an_agent_obeying_the_persona_cannot_commit_or_mark_itself_done(
    tmp_path: Path, persona_file: Path
) -> None:
    root = make_repo(tmp_path / "ws")
    # what the persona's steps 6-8 say, done by the agent itself before it calls complete_task
    obey = [
        create("src/feature.py", "def feature() -> int:\n    return 1\n"),
        bash(
            "git add . && git commit -qm '[backend] Task #US-001: First story\n\n"
            "Implemented by autonomous agent.\nAll quality checks passing.'"
        ),
        bash(
            "python3 -c \"import json,pathlib; p=pathlib.Path('tasks/backend_prd.json'); "
            "d=json.loads(p.read_text()); d['userStories'][0]['passes']=True; "
            'p.write_text(json.dumps(d, indent=2))"'
        ),
        bash(
            "printf '## Task #US-001: First story\\nCompleted: now\\n\\n' "
            ">> tasks/backend_progress.txt"
        ),
        complete(learnings=["followed the persona"]),
    ]
    engine, agent, sink, _ = make_engine(root, {"default": obey}, persona=str(persona_file), **OFF)
    assert await engine.run() == 0

    # the agent was given the user's persona, then ralph-tui's rules
    system = agent.requests[0].system_prompt
    assert system.startswith("# Python Service Engineer")
    assert system.index("# How this loop works") > system.index("### 6. Commit Changes")

    # the human saw the whole change, the agent's own commit folded back into it
    (approval,) = sink.of(ApprovalNeeded)
    assert "src/feature.py" in approval.diffstat
    # exactly one commit landed on top of the initial one, made by the engine, holding the code
    subjects = git(root, "log", "--format=%s").splitlines()
    assert subjects == ["[backend] Task #US-001: First story", "initial"]
    (committed,) = sink.of(Committed)
    assert "src/feature.py" in committed.files
    # the bookkeeping is the engine's: one progress entry (with the agent's learning), not two
    progress = (root / "tasks" / "backend_progress.txt").read_text(encoding="utf-8")
    assert progress.count("## Task #US-001: First story") == 1
    assert "- followed the persona" in progress
    prd = json.loads((root / "tasks" / "backend_prd.json").read_text(encoding="utf-8"))
    assert prd["userStories"][0]["passes"] is True  # set by the engine's commit
    assert git(root, "status", "--porcelain") == ""
