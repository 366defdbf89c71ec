"""Agent persona files: Markdown with YAML front matter, as Claude Code and opencode use.

The body becomes the system prompt; the front matter's ``name`` and ``description`` label it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from ralph_tui.errors import UsageError
from ralph_tui.safety.safe_open import BookkeepingError, read_capped

DEFAULT_PERSONA_BODY = """\
You are a senior software engineer working alone in a git repository, one PRD story at a time.
Read before you write: look at the code, the tests and the conventions already there, and
follow them. Make the smallest complete change that meets every acceptance criterion, with
tests that would fail without it. Keep the build green: types, lint and tests."""


@dataclass(frozen=True)
class Persona:
    name: str
    description: str
    body: str
    source: Path | None = None


DEFAULT_PERSONA = Persona(
    name="ralph-tui default",
    description="A careful engineer who implements one story per iteration.",
    body=DEFAULT_PERSONA_BODY,
)


def parse_persona(text: str, source: Path | None = None) -> Persona:
    label = str(source) if source else "persona"
    meta: dict[str, object] = {}
    body = text
    if text.startswith("---"):
        lines = text.splitlines(keepends=True)
        end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), None)
        if end is None:
            raise UsageError(f"{label}: front matter has no closing '---'")
        try:
            loaded = yaml.safe_load("".join(lines[1:end]))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f":{mark.line + 2}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or "invalid YAML"
            raise UsageError(f"{label}{where}: front matter: {problem}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise UsageError(f"{label}: front matter must be a mapping of keys to values")
        meta = loaded or {}
        body = "".join(lines[end + 1 :])
    body = body.strip()
    if not body:
        raise UsageError(f"{label}: the persona has no body to use as a system prompt")
    fallback = source.stem if source else "persona"
    return Persona(
        name=str(meta.get("name") or fallback),
        description=str(meta.get("description") or ""),
        body=body,
        source=source,
    )


PERSONA_MAX_BYTES = 256 * 1024


def load_persona(path: Path | None, root: Path | None = None) -> Persona:
    """The persona at ``path`` (relative paths are the caller's business), or the default.
    ``root``: the repository, when the file is inside it (the agent can rewrite it there): a
    link out of it is refused."""
    if path is None:
        return DEFAULT_PERSONA
    try:
        data, more = read_capped(path, PERSONA_MAX_BYTES, root=root)
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: persona file not found") from None
    except BookkeepingError as exc:
        raise UsageError(f"{exc} (persona)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read persona: {exc}") from exc
    if more:
        raise UsageError(f"{path}: persona larger than {PERSONA_MAX_BYTES // 1024} KiB")
    return parse_persona(text, path)
