"""``ralph-tui doctor``: is this workspace ready for a run, and if not, what to do about it.

Each check prints one line: ``ok``, ``missing`` (with the fix; makes the exit status 1),
``warn`` (worth knowing, not blocking) or ``skip`` (depends on something already missing). The
checks only read: nothing is created, installed or written.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

from ralph_tui import credentials
from ralph_tui.config import RalphConfig, fallback_entry, find_config_file, load_config
from ralph_tui.errors import UsageError
from ralph_tui.persona import load_persona
from ralph_tui.prd_store import PrdStore
from ralph_tui.sandbox import resolve_sandbox
from ralph_tui.text import counted
from ralph_tui.workspace import agent_env

Status = Literal["ok", "missing", "warn", "skip"]
_VERSION_TIMEOUT_S = 30.0
# First words of a gate command that need no executable on PATH.
_SHELL_WORDS = frozenset(
    {"true", "false", ":", "cd", "test", "[", "echo", "exit", "export", "set", "!", "{", "(", "if"}
)


@dataclass(frozen=True)
class Check:
    status: Status
    name: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.status:<8} {self.name}: {self.detail}"
        return f"{text} -> {self.fix}" if self.fix else text


def run_doctor(workspace: Path, overrides: Mapping[str, Any] | None, out: TextIO) -> int:
    """Runs every check, prints one line each and a verdict; 1 if anything is missing, else 0.

    ``overrides`` are the command-line flags (``role``, ``agent``; ``None`` values are ignored),
    applied over ``ralph.toml`` as ``run`` would.
    """
    missing = 0
    for check in diagnose(workspace, overrides):
        out.write(check.line() + "\n")
        missing += check.status == "missing"
    if missing:
        out.write(
            f"{missing} problem{'s' if missing != 1 else ''} to fix before `ralph-tui run`.\n"
        )
        return 1
    out.write("Ready to run.\n")
    return 0


def diagnose(workspace: Path, overrides: Mapping[str, Any] | None = None) -> Iterator[Check]:
    root = workspace.expanduser().resolve()
    yield from _git_checks(root)
    config = None
    try:
        config = load_config(root, overrides)
        found = find_config_file(root)
        source = found[0].name if found else "defaults (no ralph.toml)"
        yield Check("ok", "config", f"{source}, agent {config.agent}, role {config.role}")
    except UsageError as exc:
        yield Check("missing", "config", str(exc), "fix the file (see SPEC section 6)")
    if config is None:
        for name in ("prd", "gates", "agent"):
            yield Check("skip", name, "needs a valid configuration")
        return
    yield _prd_check(root, config)
    if config.persona:
        yield _persona_check(root, config.persona)
    yield from _gate_checks(root, config)
    yield _sandbox_check(root, config)
    yield from _AGENT_CHECKS[config.agent](root, config)
    yield from _fallback_checks(root, config)
    if config.executor == "ray":
        yield from _ray_checks(config)


# ---- git ---------------------------------------------------------------------------------------


def _git_checks(root: Path) -> Iterator[Check]:
    git = shutil.which("git")
    if git is None:
        yield Check("missing", "git", "not found on PATH", "install git")
        yield Check("skip", "repository", "needs git")
        return
    yield Check("ok", "git", _first_line(_run([git, "--version"])[1]) or git)
    if not root.is_dir():
        yield Check("missing", "repository", f"{root}: no such folder", "pass --workspace DIR")
        return
    code, output = _run([git, "rev-parse", "--show-toplevel"], root)
    if code != 0:
        yield Check(
            "missing",
            "repository",
            f"{root}: not a git repository",
            "run `git init` there (or pass --workspace DIR)",
        )
        return
    code, _ = _run([git, "rev-parse", "--verify", "--quiet", "HEAD"], root)
    if code != 0:
        yield Check(
            "missing", "repository", f"{root}: no commits yet", "make a first commit (git commit)"
        )
        return
    yield Check("ok", "repository", output.strip())


# ---- PRD, persona, gates -------------------------------------------------------------------------


def _prd_check(root: Path, config: RalphConfig) -> Check:
    try:
        pinned = config.pinned(root)
    except UsageError as exc:  # two candidate PRDs (prd.json and tasks/...): never a pick
        return Check("missing", "prd", str(exc), "")
    path = pinned.prd_path(root)
    try:
        prd = PrdStore(path).load()
    except UsageError as exc:
        # a missing file's message already says to run `ralph-tui init`
        fix = "fix the file (`ralph-tui validate` shows where)" if path.exists() else ""
        return Check("missing", "prd", str(exc), fix)
    total = len(prd.userStories)
    open_count = len(prd.open_order())
    found = f" (found: no tasks/{config.role}_prd.json)" if pinned.prd_note else ""
    return Check(
        "ok", "prd", f"{_rel(path, root)}{found}: {counted(total, 'story')}, {open_count} open"
    )


def _persona_check(root: Path, persona: str) -> Check:
    path = Path(persona).expanduser()
    path = path if path.is_absolute() else root / path
    try:
        loaded = load_persona(path)
    except UsageError as exc:
        return Check("missing", "persona", str(exc), "fix `persona` in ralph.toml")
    return Check("ok", "persona", f"{_rel(path, root)} ({loaded.name})")


def _gate_checks(root: Path, config: RalphConfig) -> Iterator[Check]:
    if not config.gates:
        yield Check("warn", "gates", "none configured: every claim of done goes straight to review")
        return
    path = agent_env().get("PATH")
    for name, command in config.gates.items():
        program = gate_program(command)
        label = f"gate {name}"
        if program is None:
            yield Check("ok", label, f"{command} (shell)")
            continue
        found = _find_program(program, root, path)
        if found is None:
            yield Check(
                "missing",
                label,
                f"{program!r} not found on PATH (command: {command})",
                f"install {program}, or change [gates] {name} in ralph.toml",
            )
        else:
            yield Check("ok", label, f"{command} ({found})")


def _sandbox_check(root: Path, config: RalphConfig) -> Check:
    """Where the agent's commands and the gates will run: the same decision ``run`` makes."""
    try:
        sandbox = resolve_sandbox(config.sandbox, root)
    except UsageError as exc:
        return Check("missing", "sandbox", str(exc), "install bubblewrap, or set [sandbox] mode")
    if sandbox.confined and sandbox.weaknesses:
        # confined, but weaker than it should be: its real strength, what is missing included
        return Check("warn", "sandbox", sandbox.describe())
    if sandbox.warning:
        return Check("warn", "sandbox", sandbox.warning)
    if not sandbox.confined:
        return Check("warn", "sandbox", 'off ([sandbox] mode = "off"): commands run unconfined')
    return Check("ok", "sandbox", sandbox.describe())


def gate_program(command: str) -> str | None:
    """The executable a gate command starts, or None when the shell itself handles it."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None  # unbalanced quotes: let the shell report it when the gate runs
    for word in words:
        if (
            "=" in word
            and not word.startswith(("=", "/", "."))
            and word.split("=")[0].isidentifier()
        ):
            continue  # FOO=1 pytest
        return None if word in _SHELL_WORDS else word
    return None


def _find_program(program: str, root: Path, path: str | None) -> str | None:
    if "/" in program:
        candidate = Path(program).expanduser()
        candidate = candidate if candidate.is_absolute() else root / candidate
        return str(candidate) if os.access(candidate, os.X_OK) and candidate.is_file() else None
    return shutil.which(program, path=path)


# ---- the agent -------------------------------------------------------------------------------


def _fallback_checks(root: Path, config: RalphConfig) -> Iterator[Check]:
    """Each fallback agent of another kind than the primary is checked as the primary is: a
    missing key or CLI would otherwise show only when the primary is rate-limited, mid-run."""
    seen = {config.agent}
    for entry in config.fallback:
        name, _ = fallback_entry(entry)
        if name in seen:
            continue
        seen.add(name)
        own = config.model_copy(update={"agent": name, "fallback": []})
        for check in _AGENT_CHECKS[name](root, own):
            yield dataclasses.replace(check, name=f"fallback {name} {check.name}")


def _anthropic(root: Path, config: RalphConfig) -> Iterator[Check]:
    yield _api_key_check(required=True)


def _claude_code(root: Path, config: RalphConfig) -> Iterator[Check]:
    from ralph_tui.agents.claude_code import INSTALL_HINT, bundled_cli_path, sdk_available

    if not sdk_available():
        yield Check("missing", "claude-code", "claude-agent-sdk is not installed", INSTALL_HINT)
        return
    cli = bundled_cli_path()
    if cli is None:
        yield Check(
            "missing",
            "claude-code",
            "claude-agent-sdk has no bundled CLI",
            "reinstall: pip install --force-reinstall 'ralph-supervisor[claude]'",
        )
        return
    code, output = _run([str(cli), "--version"])
    if code != 0:
        yield Check(
            "missing",
            "claude-code",
            f"{cli} --version failed: {_first_line(output) or f'exit status {code}'}",
            "reinstall: pip install --force-reinstall 'ralph-supervisor[claude]'",
        )
        return
    yield Check("ok", "claude-code", _first_line(output))
    yield _api_key_check(required=False)


def _command(root: Path, config: RalphConfig) -> Iterator[Check]:
    if not config.command:
        yield Check(
            "missing",
            "command",
            'agent = "command" without a command',
            'set command = ["your-cli", "{prompt_file}"] in ralph.toml',
        )
        return
    program = config.command[0]
    found = _find_program(program, root, agent_env().get("PATH"))
    if found is None:
        yield Check(
            "missing",
            "command",
            f"{program!r} not found on PATH",
            f"install {program}, or change command in ralph.toml",
        )
        return
    how = (
        "prompt in {prompt_file}"
        if any("{prompt_file}" in a for a in config.command)
        else ("prompt on stdin")
    )
    yield Check("ok", "command", f"{' '.join(config.command)} ({found}; {how})")


def _scripted(root: Path, config: RalphConfig) -> Iterator[Check]:
    from ralph_tui.agents.scripted import ScriptedAgent

    if not config.script:
        yield Check(
            "missing",
            "script",
            'agent = "scripted" without a script',
            "set script = \"<path>\" (the format: 'Rehearse without a model: the scripted agent' "
            "in the README)",
        )
        return
    path = Path(config.script).expanduser()
    path = path if path.is_absolute() else root / path
    if not path.is_file():
        yield Check("missing", "script", f"{path}: file not found", "fix script in ralph.toml")
        return
    try:
        ScriptedAgent.from_file(path, config)  # checks every step, as a run does first
    except UsageError as exc:
        yield Check("missing", "script", str(exc), "fix the script")
        return
    yield Check("ok", "script", str(path))


def _ray_checks(config: RalphConfig) -> Iterator[Check]:
    try:
        from ralph_tui.ray_executor import check_cluster
    except ImportError:
        yield Check(
            "missing",
            "ray",
            'executor = "ray" but ray is not installed',
            "pip install 'ralph-supervisor[ray]'",
        )
        return
    program: str | None = None
    if config.agent == "claude-code":
        program = "claude"
    elif config.agent == "command" and config.command:
        program = config.command[0]
    for ok, name, detail in check_cluster(config.ray, program):
        yield Check("ok" if ok else "missing", name, detail)


_AGENT_CHECKS: dict[str, Callable[[Path, RalphConfig], Iterator[Check]]] = {
    "anthropic": _anthropic,
    "claude-code": _claude_code,
    "command": _command,
    "scripted": _scripted,
}


def _api_key_check(*, required: bool) -> Check:
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


# ---- helpers -----------------------------------------------------------------------------------


def _run(argv: list[str], cwd: Path | None = None) -> tuple[int, str]:
    try:
        done = subprocess.run(
            argv,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=_VERSION_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return 124, f"timed out after {_VERSION_TIMEOUT_S:g}s"
    except OSError as exc:
        return 127, str(exc)
    return done.returncode, (done.stdout or done.stderr)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
