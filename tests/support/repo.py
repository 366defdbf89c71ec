"""Real git repositories in temp folders, with a PRD, for tests."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any


def git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True)
    return done.stdout


def story(
    story_id: str | int, title: str, priority: int = 1, passes: bool = False, **extra: Any
) -> dict[str, Any]:
    return {
        "id": story_id,
        "title": title,
        "description": f"As a user I want {title.lower()}.",
        "acceptanceCriteria": [f"{title} works", "Typecheck passes"],
        "priority": priority,
        "passes": passes,
        "notes": "",
        **extra,
    }


def write_prd(
    root: Path, stories: list[dict[str, Any]], role: str = "backend", indent: int = 2
) -> Path:
    path = root / "tasks" / f"{role}_prd.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "project": "Test project",
        "branchName": "ralph/test",
        "description": "A project for tests.",
        "userStories": stories,
    }
    path.write_text(json.dumps(doc, indent=indent) + "\n", encoding="utf-8")
    return path


def make_repo(
    root: Path,
    stories: list[dict[str, Any]] | None = None,
    *,
    gates: dict[str, str] | None = None,
    extra_config: str = "",
    role: str = "backend",
) -> Path:
    """A git repo with a PRD, an empty progress log, a ralph.toml and one commit."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    write_prd(root, stories if stories is not None else [story("US-001", "First story")], role)
    (root / "tasks" / f"{role}_progress.txt").write_text("# Progress log\n\n", encoding="utf-8")
    gate_table = gates if gates is not None else {"ok": "true"}
    lines = [f'role = "{role}"', 'agent = "scripted"', "[gates]"]
    lines += [f"{name} = {json.dumps(cmd)}" for name, cmd in gate_table.items()]
    config = "\n".join(lines) + "\n"
    if extra_config:
        # top-level keys must come before the first table
        config = extra_config.rstrip() + "\n" + config
    (root / "ralph.toml").write_text(config, encoding="utf-8")
    (root / "README.md").write_text("# test project\n", encoding="utf-8")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    return root
