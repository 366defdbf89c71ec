"""Issue 28, item 2: a gate whose program lives in the workspace (``.venv/bin/pytest``,
``node_modules/.bin/jest``, ``./check.sh``) runs a file the agent can rewrite. The run says so
at start, naming the gate and the file, and says whether it runs in the sandbox."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.security.support import run_as, run_cli, sandbox_config
from tests.security.test_power_attacks import attack_user  # noqa: F401 (a fixture)
from tests.support.engine import complete, create
from tests.support.repo import git, make_repo, story
from tests.support.tools import requires_bwrap


def _repo(base: Path, mode: str) -> Path:
    script = base / "script.json"
    script.write_text(json.dumps({"default": [create("x.txt", "x\n"), complete()]}))
    root = make_repo(
        base / "ws",
        [story("US-001", "One")],
        gates={"tests": ".venv/bin/pytest -q", "lint": "true"},
        extra_config=f"script = {json.dumps(str(script))}\n{sandbox_config(mode)}",
    )
    program = root / ".venv" / "bin" / "pytest"
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o755)
    (root / ".gitignore").write_text(".venv/\n")
    git(root, "add", ".gitignore")
    git(root, "commit", "-qm", "ignore the venv")
    return root


@pytest.mark.parametrize("who", ["root", "user"])
@pytest.mark.parametrize(
    ("mode", "where"),
    [
        pytest.param("bwrap", "it runs in the sandbox", marks=requires_bwrap),
        ("off", "the sandbox is off: it runs unconfined, as you"),
    ],
)
def test_a_gate_from_the_workspace_is_named_at_start(
    outside_tmp: Path, request: pytest.FixtureRequest, mode: str, where: str, who: str
) -> None:
    root = _repo(outside_tmp, mode)
    if who == "user":
        user = request.getfixturevalue("attack_user")
        home = outside_tmp / "home"
        home.mkdir()
        subprocess.run(["chown", "-R", f"{user}:", str(outside_tmp)], check=True)
        done = run_as(user, root, home)
    else:
        done = run_cli(root, {})
    assert done.returncode == 0, done.stdout + done.stderr
    said = done.stdout + done.stderr
    assert (
        "gate tests starts .venv/bin/pytest from the workspace, a file the agent can change; "
        + where
    ) in said, said
    assert "gate lint starts" not in said  # a shell builtin is nobody's file
