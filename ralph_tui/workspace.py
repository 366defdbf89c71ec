"""The workspace an agent may touch, and the environment its commands get.

Every agent tool resolves paths through ``Workspace.resolve`` so confinement lives in one place:
symlinks are followed, ``..`` collapsed, and ``.git/``, ``.ralph/`` and the engine's bookkeeping
files (the PRD and the progress log, see ``protect``) are refused, as are paths no file system
call could take (a NUL byte, a lone surrogate).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from ralph_tui.text import escape_controls, has_lone_surrogate

FORBIDDEN_DIRS = (".git", ".ralph")

# Variables an agent's shell (and the gates) never see: the API key and anything that looks like
# a credential. The values are also what ``Redactor`` scrubs from files ralph-tui writes.
_SECRET_NAME = re.compile(
    r"^(ANTHROPIC_.*|CLAUDE_CODE_OAUTH_TOKEN|.*(_API_KEY|_TOKEN|_SECRET|_PASSWORD|SECRET_KEY))$"
)


class ConfinementError(ValueError):
    """A path outside the workspace, in ``.git/`` / ``.ralph/``, or unusable; one-line message."""


class Workspace:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._protected: tuple[Path, ...] = ()

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


def is_secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.match(name))


def agent_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for the agent's commands and the gates: the caller's, secrets removed."""
    source = os.environ if base is None else base
    return {k: v for k, v in source.items() if not is_secret_name(k)}


class Redactor:
    """Replaces secret values (from the environment) with a marker in text about to be written."""

    MARKER = "[REDACTED]"

    def __init__(self, extra_secrets: tuple[str, ...] = (), env: Mapping[str, str] | None = None):
        source = os.environ if env is None else env
        values = [v for k, v in source.items() if is_secret_name(k) and len(v) >= 8]
        values.extend(s for s in extra_secrets if len(s) >= 8)
        # longest first, so a secret containing another is replaced whole
        self._secrets = sorted(set(values), key=len, reverse=True)

    @property
    def longest(self) -> int:
        """Length of the longest secret: how much text a streaming writer must hold back."""
        return len(self._secrets[0]) if self._secrets else 0

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, self.MARKER)
        return text
