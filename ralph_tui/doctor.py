"""``ralph-tui doctor``: is this workspace ready for a run, and if not, what to do about it.

Each check prints one line: ``ok``, ``missing`` (with the fix; makes the exit status 1),
``warn`` (worth knowing, not blocking) or ``skip`` (depends on something already missing). The
checks only read: nothing is created, installed or written.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

from ralph_tui.agents.registry import agent_spec
from ralph_tui.checks import Check, find_program, first_line, run_program
from ralph_tui.config import RalphConfig, TrackerOptions, find_config_file, load_config
from ralph_tui.errors import UsageError
from ralph_tui.gates import gate_program
from ralph_tui.persona import load_persona
from ralph_tui.prd.store import PrdStore
from ralph_tui.safety.sandbox import resolve_sandbox
from ralph_tui.safety.text import counted
from ralph_tui.safety.workspace import agent_env


# First words of a gate command that need no executable on PATH.
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
    if config.tracker is not None:
        yield _tracker_check(config.tracker)
    if config.persona:
        yield _persona_check(root, config.persona)
    yield from _gate_checks(root, config)
    yield _sandbox_check(root, config)
    yield from agent_spec(config.agent).doctor_checks(root, config)
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
    yield Check("ok", "git", first_line(run_program([git, "--version"])[1]) or git)
    if not root.is_dir():
        yield Check("missing", "repository", f"{root}: no such folder", "pass --workspace DIR")
        return
    code, output = run_program([git, "rev-parse", "--show-toplevel"], root)
    if code != 0:
        yield Check(
            "missing",
            "repository",
            f"{root}: not a git repository",
            "run `git init` there (or pass --workspace DIR)",
        )
        return
    code, _ = run_program([git, "rev-parse", "--verify", "--quiet", "HEAD"], root)
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
    if config.tracker is not None and not path.exists():
        return Check("ok", "prd", f"{_rel(path, root)}: written by the run's first tracker sync")
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


def _tracker_check(options: TrackerOptions) -> Check:
    """Which issues a run reads, and whether the credential is there (no network call)."""
    from ralph_tui.trackers import github_token, linear_key

    if options.kind == "github":
        where = f"github {options.repository}"
        narrowed = options.label or options.milestone
    else:
        where = f"linear {options.team}" + (f"/{options.project}" if options.project else "")
        narrowed = options.label or options.view
    where += f" ({narrowed})" if narrowed else " (every open issue)"
    try:
        if options.kind == "github":
            github_token(options.token_env)
        else:
            linear_key(options.token_env)
        if options.pull_request and options.kind == "linear":
            github_token(None)
    except UsageError as exc:
        return Check("missing", "tracker", f"{where}: {exc}", "export the variable it names")
    pr = ", pull request at the end" if options.pull_request else ""
    return Check("ok", "tracker", f"{where}: credential found{pr}")


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
        found = find_program(program, root, path)
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


# ---- the agent -------------------------------------------------------------------------------


def _fallback_checks(root: Path, config: RalphConfig) -> Iterator[Check]:
    """Each fallback agent of another kind than the primary is checked as the primary is: a
    missing key or CLI would otherwise show only when the primary is rate-limited, mid-run."""
    for name in config.agents_used[1:]:
        own = config.model_copy(update={"agent": name, "fallback": []})
        for check in agent_spec(name).doctor_checks(root, own):
            yield dataclasses.replace(check, name=f"fallback {name} {check.name}")


def _ray_checks(config: RalphConfig) -> Iterator[Check]:
    try:
        from ralph_tui.executors.ray.executor import check_cluster
    except ImportError:
        yield Check(
            "missing",
            "ray",
            'executor = "ray" but ray is not installed',
            "pip install 'ralph-supervisor[ray]'",
        )
        return
    program = agent_spec(config.agent).program(config)
    for ok, name, detail in check_cluster(config.ray, program):
        yield Check("ok" if ok else "missing", name, detail)


# ---- helpers -----------------------------------------------------------------------------------


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
