"""The workspace an agent may touch, and the environment its commands get.

Every agent tool resolves paths through ``Workspace.resolve`` so confinement lives in one place:
symlinks are followed, ``..`` collapsed, and ``.git/``, ``.ralph/`` and the engine's bookkeeping
files (the PRD and the progress log, see ``protect``) are refused, as are paths no file system
call could take (a NUL byte, a lone surrogate).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

# Re-exported: the secret rules live in ``credentials``; callers keep importing them from here.
from ralph_tui.safety.credentials import Redactor, clean_env, is_secret_name
from ralph_tui.safety.sandbox import Sandbox
from ralph_tui.safety.text import escape_controls, has_lone_surrogate

__all__ = ["ConfinementError", "Redactor", "Workspace", "agent_env", "is_secret_name"]

FORBIDDEN_DIRS = (".git", ".ralph")


class ConfinementError(ValueError):
    """A path outside the workspace, in ``.git/`` / ``.ralph/``, or unusable; one-line message."""


class Workspace:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._protected: tuple[Path, ...] = ()
        # where the agent's commands run; the engine sets the configured one before a run
        self.sandbox: Sandbox = Sandbox.unconfined(self.root)

    def protect(self, *paths: Path) -> None:
        """Files only the engine writes (the PRD, the progress log): refused for writing."""
        self._protected = (*self._protected, *paths)

    def resolve(self, path: str | Path, *, write: bool = False) -> Path:
        """The real path for ``path`` (relative to the root, or absolute), if it is allowed.

        ``write``: the caller will write there, so the bookkeeping files are refused too (they
        may be read: the agent is told its story and the latest progress).
        """
        raw = str(path).strip()
        if not raw:
            raise ConfinementError("empty path")
        shown = escape_controls(raw, multiline=False)  # messages are one line, no escapes
        if "\x00" in raw:
            raise ConfinementError(f"{shown}: path has a NUL byte")
        if has_lone_surrogate(raw):
            raise ConfinementError(f"{shown}: path is not valid UTF-8 (a lone surrogate)")
        candidate = Path(raw)
        if not candidate.is_absolute():
            candidate = self.root / candidate
        real = Path(os.path.realpath(candidate))
        try:
            relative = real.relative_to(self.root)
        except ValueError:
            raise ConfinementError(f"{shown}: outside the workspace {self.root}") from None
        if relative.parts and relative.parts[0] in FORBIDDEN_DIRS:
            raise ConfinementError(f"{shown}: {relative.parts[0]}/ is off limits")
        # realpath of each, taken now: a symlinked PRD protects its target, and an alias of it
        if write and any(real == Path(os.path.realpath(p)) for p in self._protected):
            raise ConfinementError(
                f"{shown}: the engine's bookkeeping file; only ralph-tui writes it "
                "(complete_task marks the story and logs progress)"
            )
        return real

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix() or "."


def agent_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's environment with secrets removed (names and values: see ``credentials``)."""
    return clean_env(base)
