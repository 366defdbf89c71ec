"""The workspace an agent may touch, and the environment its commands get.

Every agent tool resolves paths through ``Workspace.resolve`` so confinement lives in one place:
symlinks are followed, ``..`` collapsed, and ``.git/`` and ``.ralph/`` are refused.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

# Re-exported: the secret rules live in ``credentials``; callers keep importing them from here.
from ralph_tui.credentials import Redactor, clean_env, is_secret_name
from ralph_tui.sandbox import Sandbox

__all__ = ["ConfinementError", "Redactor", "Workspace", "agent_env", "is_secret_name"]

FORBIDDEN_DIRS = (".git", ".ralph")


class ConfinementError(ValueError):
    """A path outside the workspace, or inside ``.git/`` / ``.ralph/``; message is one line."""


class Workspace:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        # where the agent's commands run; the engine sets the configured one before a run
        self.sandbox: Sandbox = Sandbox.unconfined(self.root)

    def resolve(self, path: str | Path) -> Path:
        """The real path for ``path`` (relative to the root, or absolute), if it is allowed."""
        raw = str(path).strip()
        if not raw:
            raise ConfinementError("empty path")
        candidate = Path(raw)
        if not candidate.is_absolute():
            candidate = self.root / candidate
        real = Path(os.path.realpath(candidate))
        try:
            relative = real.relative_to(self.root)
        except ValueError:
            raise ConfinementError(f"{raw}: outside the workspace {self.root}") from None
        if relative.parts and relative.parts[0] in FORBIDDEN_DIRS:
            raise ConfinementError(f"{raw}: {relative.parts[0]}/ is off limits")
        return real

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix() or "."


def agent_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's environment with secrets removed (names and values: see ``credentials``)."""
    return clean_env(base)
