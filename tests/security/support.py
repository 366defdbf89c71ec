"""Shared by the attack tests: the sandbox modes, real headless runs, and leak searches."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.support.repo import git, make_repo, story
from tests.support.tools import have_tool, requires_bwrap

HAS_BWRAP = have_tool("bwrap")
# the engine-side defences hold in both modes; "bwrap" is skipped (with the reason) without it
MODES = [pytest.param("bwrap", marks=requires_bwrap), "off"]


def sandbox_config(mode: str, **extra: Any) -> str:
    """A top-level ``sandbox = {...}`` line for ``make_repo(extra_config=...)``."""
    table = {"mode": mode, **extra}
    return "sandbox = " + _inline(table)


def _inline(table: Mapping[str, Any]) -> str:
    return "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in table.items()) + " }"


def attack_repo(
    tmp_path: Path,
    steps: list[dict[str, Any]],
    mode: str,
    *,
    gates: dict[str, str] | None = None,
    extra: str = "",
    **sandbox: Any,
) -> Path:
    """A one-story repo whose scripted agent runs ``steps``; the script lives outside it."""
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"default": steps}), encoding="utf-8")
    lines = [f"script = {json.dumps(str(script))}", sandbox_config(mode, **sandbox), extra]
    return make_repo(
        tmp_path / "ws",
        [story("US-001", "Do the thing")],
        gates=gates if gates is not None else {"ok": "true"},
        extra_config="\n".join(line for line in lines if line),
    )


def run_cli(
    root: Path, env: Mapping[str, str], *args: str, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    """A real ``ralph-tui run --headless --approve auto``: the secrets are in its initial
    environment, as they would be for a user who exported them."""
    return subprocess.run(
        [sys.executable, "-m", "ralph_tui", "run", "--headless", "--approve", "auto", *args],
        cwd=root,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def bash(command: str) -> dict[str, Any]:
    return {"tool": "bash", "input": {"command": command}}


def files_under(root: Path) -> Iterator[Path]:
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            yield path


def assert_nowhere(root: Path, needles: list[str], *texts: str) -> None:
    """None of ``needles`` in any file of the workspace (``.git`` and ``.ralph`` included), in
    the whole history (patches) or in ``texts`` (console output)."""
    history = git(root, "log", "-p", "--all", "--format=%H%n%B")
    for needle in needles:
        assert needle not in history, f"{needle!r} in git history"
        for text in texts:
            assert needle not in text, f"{needle!r} in the console"
        for path in files_under(root):
            data = path.read_bytes()
            assert needle.encode() not in data, f"{needle!r} in {path}"


def cmdline_pids(marker: str) -> list[int]:
    """Live processes (zombies excluded) whose command line holds ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if marker.encode() in cmdline and stat[stat.rfind(")") + 2 :][:1] not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def run_as(
    user: str | None, root: Path, home: Path, *args: str, extra_env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``ralph-tui run --headless --approve auto ARGS`` in ``root`` with a clean environment
    (HOME the given fake home), as root or as the normal ``user``; its own pid is handed to
    the agent as ``PYTHON_ATTACK_ENGINE_PID`` (a PYTHON* variable passes into the sandbox)."""
    env = {
        "HOME": str(home),
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        **(extra_env or {}),
    }
    python = sys.executable
    paths = [str(Path(__file__).resolve().parents[2])]
    if user is not None:
        # the venv's python may sit in root's 0700 home: the system one with its packages
        python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
        version = subprocess.run(
            [python, "-c", "import sys; print(sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        if version != str(sys.version_info[:2]):
            pytest.skip(f"{python} is not Python {sys.version_info[:2]}: the user cannot run us")
        paths.append(sysconfig.get_paths()["purelib"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    command = (
        'export PYTHON_ATTACK_ENGINE_PID=$$; exec "$0" -m ralph_tui run --headless '
        '--approve auto "$@"'
    )
    argv = ["sh", "-c", command, python, *args]
    if user is not None:
        runuser = shutil.which("runuser", path="/usr/sbin:/sbin:/usr/bin:/bin")
        if runuser is None:
            pytest.skip("runuser (util-linux) is needed to run ralph-tui as a normal user")
        argv = [runuser, "-u", user, "--", *argv]
    return subprocess.run(
        ["env", "-i", *(f"{k}={v}" for k, v in env.items()), *argv],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        stdin=subprocess.DEVNULL,
    )
