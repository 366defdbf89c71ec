"""One line of ``ralph-tui doctor`` and the helpers its checks share.

Apart from ``doctor`` so each agent backend can say how to check it (``doctor_checks`` in its
module, listed by ``agents.registry``) without the backends importing the command.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ralph_tui.safety import credentials

Status = Literal["ok", "missing", "warn", "skip"]
VERSION_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Check:
    status: Status
    name: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.status:<8} {self.name}: {self.detail}"
        return f"{text} -> {self.fix}" if self.fix else text


def find_program(program: str, root: Path, path: str | None) -> str | None:
    if "/" in program:
        candidate = Path(program).expanduser()
        candidate = candidate if candidate.is_absolute() else root / candidate
        return str(candidate) if os.access(candidate, os.X_OK) and candidate.is_file() else None
    return shutil.which(program, path=path)


def api_key_check(*, required: bool) -> Check:
    # Never print the key itself, not even a prefix.
    # the CLI withheld them from os.environ at start-up: ask the vault
    base = credentials.get("ANTHROPIC_BASE_URL")
    where = f" (API at {base})" if base else ""
    if credentials.get("ANTHROPIC_API_KEY"):
        return Check("ok", "credentials", f"ANTHROPIC_API_KEY is set{where}")
    if required:
        return Check(
            "missing",
            "credentials",
            "ANTHROPIC_API_KEY is not set",
            "export ANTHROPIC_API_KEY=... (or choose another agent)",
        )
    if credentials.get("CLAUDE_CODE_OAUTH_TOKEN") or credentials.get("ANTHROPIC_AUTH_TOKEN"):
        return Check("ok", "credentials", f"a Claude Code token is set{where}")
    return Check(
        "warn",
        "credentials",
        "no ANTHROPIC_API_KEY: Claude Code will use its own login (run `claude /login` once)",
    )


def run_program(argv: list[str], cwd: Path | None = None) -> tuple[int, str]:
    try:
        done = subprocess.run(
            argv,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=VERSION_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return 124, f"timed out after {VERSION_TIMEOUT_S:g}s"
    except OSError as exc:
        return 127, str(exc)
    return done.returncode, (done.stdout or done.stderr)


def first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""
