"""Quality gates: the configured commands ralph-tui runs itself before a commit is offered.

Each gate is a shell command run in the workspace in its own process group (session), inside
the workspace's sandbox when one is given (gates run the agent's code: its tests), with stdin
from /dev/null, stdout and stderr merged, and an environment without secrets. When it
times out, is cancelled, or exits leaving background jobs behind, the whole group is stopped
(SIGTERM, a short grace, then SIGKILL), so no gate outlives its phase. All gates of a phase run
at once: the phase takes as long as the slowest gate, not the sum.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import shlex
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ralph_tui.checks import find_program
from ralph_tui.config import RalphConfig
from ralph_tui.errors import GitError
from ralph_tui.events import GateStateName
from ralph_tui.git.repo import display_path, nested_repositories
from ralph_tui.path_rules import changed_breaches, explain
from ralph_tui.prd.model import Story
from ralph_tui.safety.procgroup import KILL_GRACE_S, run_in_group
from ralph_tui.safety.sandbox import Sandbox
from ralph_tui.safety.text import one_line
from ralph_tui.safety.workspace import agent_env

OUTPUT_CAP = 1 << 20  # bytes of output kept per gate (the tail: summaries are at the end)
_SUMMARY_WIDTH = 80


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GateResult:
    name: str
    command: str
    state: GateStateName
    exit_code: int | None
    duration_s: float
    output: str
    summary: str
    #: for a story's own command: the acceptance criterion (or field) it checks
    criterion: str = ""

    @property
    def passed(self) -> bool:
        return self.state == "passed"


class _Tail:
    """The last ``cap`` bytes of a stream, and how many came before them."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.data = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self.data += chunk
        if len(self.data) > 2 * self.cap:  # trim in batches, not on every chunk
            del self.data[: len(self.data) - self.cap]

    def text(self) -> str:
        kept = bytes(self.data[-self.cap :]) if self.cap else b""
        body = kept.decode("utf-8", errors="replace")
        clipped = self.total - len(kept)
        if clipped > 0:
            return f"[output clipped: the first {clipped} bytes are not kept]\n{body}"
        return body


# First words of a gate command that need no executable on PATH.
_SHELL_WORDS = frozenset(
    {"true", "false", ":", "cd", "test", "[", "echo", "exit", "export", "set", "!", "{", "(", "if"}
)


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


def workspace_programs(
    root: Path, gates: Mapping[str, str], path: str | None
) -> list[tuple[str, Path]]:
    """The gates whose program is a file inside the workspace (``.venv/bin/pytest``,
    ``node_modules/.bin/jest``, ``./check.sh``): the agent can rewrite it, so the run says so.
    (name, the program's path) for each."""
    found: list[tuple[str, Path]] = []
    for name, command in gates.items():
        program = gate_program(command)
        where = find_program(program, root, path) if program else None
        if where is not None and Path(where).resolve().is_relative_to(root):
            found.append((name, Path(where).resolve()))
    return found


def _format_seconds(value: float) -> str:
    return f"{value:g}s"


async def run_gate(
    name: str,
    command: str,
    cwd: Path,
    timeout_s: float,
    env: Mapping[str, str] | None = None,
    *,
    output_cap: int = OUTPUT_CAP,
    kill_grace_s: float = KILL_GRACE_S,
    sandbox: Sandbox | None = None,
) -> GateResult:
    """Run one gate to its end (or its timeout) and say how it went; never raises for the
    command's own failure. Cancelling the call kills the gate's process group at once."""
    started = time.monotonic()
    run_env = dict(agent_env() if env is None else env)

    def result(state: GateStateName, code: int | None, output: str, summary: str) -> GateResult:
        return GateResult(
            name, command, state, code, round(time.monotonic() - started, 3), output, summary
        )

    tail = _Tail(output_cap)
    argv = ["/bin/sh", "-c", command]
    run = await run_in_group(
        sandbox.wrap(argv, cwd) if sandbox is not None else argv,
        cwd=cwd,
        env=run_env,
        timeout_s=timeout_s,
        output=tail,
        kill_grace_s=kill_grace_s,
    )
    if run.start_error is not None:
        return result("error", None, run.start_error, run.start_error)
    timed_out = run.timed_out
    output = tail.text()
    if timed_out:
        return result("timed_out", None, output, f"timed out after {_format_seconds(timeout_s)}")
    code = run.returncode
    assert code is not None
    if code == 0:
        return result("passed", 0, output, summarize(command, output, 0))
    if code in (126, 127):
        return result("error", code, output, summarize(command, output, code))
    if code < 0:
        try:
            signame = signal.Signals(-code).name
        except ValueError:
            signame = f"signal {-code}"
        return result("failed", code, output, f"killed by {signame}")
    return result("failed", code, output, summarize(command, output, code))


async def run_gates(
    gates: Mapping[str, str],
    cwd: Path,
    timeout_s: float,
    *,
    env: Mapping[str, str] | None = None,
    sandbox: Sandbox | None = None,
    on_start: Callable[[str, str], None] | None = None,
    on_finish: Callable[[GateResult], None] | None = None,
) -> list[GateResult]:
    """Run every gate at once; results come back in ``gates`` order.

    ``on_start`` is called for each gate (in order) before any runs, ``on_finish`` as each one
    ends. Cancelling (or a callback raising) stops every gate still running before returning.
    """
    run_env = dict(agent_env() if env is None else env)

    async def one(name: str, command: str) -> GateResult:
        outcome = await run_gate(name, command, cwd, timeout_s, run_env, sandbox=sandbox)
        if on_finish is not None:
            on_finish(outcome)
        return outcome

    if on_start is not None:
        for name, command in gates.items():
            on_start(name, command)
    tasks = [asyncio.create_task(one(name, command)) for name, command in gates.items()]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException as exc:
        # gather already cancelled the gates if we were cancelled; cancelling them again would
        # cut their cleanup short. On any other error (a callback raised) it cancelled nothing.
        if not isinstance(exc, asyncio.CancelledError):
            for task in tasks:
                task.cancel()
        # let every gate kill its group before the error (or the cancellation) goes on
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def run_story_gates(
    config: RalphConfig,
    story: Story | None,
    cwd: Path,
    sandbox: Sandbox,
    *,
    on_start: Callable[[str, str, str], None],
    on_finish: Callable[[GateResult], None],
    base: str | None = None,
) -> list[GateResult]:
    """The project's gates and the story's own commands in ``cwd``, in ``sandbox``; every
    result (and ``on_start``'s third argument) carries the criterion it checks, empty for a
    project gate. One place for the main checkout and the workers' worktrees. ``base``: the
    commit the change applies to where it is already committed on it (a worktree's snapshot),
    for the story's path rules (``path_rules``)."""
    gates, criteria = story_gates(config, story)

    def tagged(result: GateResult) -> GateResult:
        return dataclasses.replace(result, criterion=criteria.get(result.name, ""))

    results = await run_gates(
        gates,
        cwd,
        config.gate_options.timeout_s,
        env=sandbox.env(),
        sandbox=sandbox,
        on_start=lambda name, command: on_start(name, command, criteria.get(name, "")),
        on_finish=lambda result: on_finish(tagged(result)),
    )
    out = [tagged(r) for r in results]
    nested = await asyncio.to_thread(_nested_result, cwd, base)
    if nested is not None:
        on_start(NESTED_CHECK, _NESTED_COMMAND, "")
        out.append(nested)
        on_finish(nested)
    rules = story.path_rules if story is not None else ([], [])
    if rules[0] or rules[1]:
        on_start(PATHS_CHECK, _PATHS_COMMAND, "allowed_paths")
        engine_files = (config.prd_path(cwd), config.progress_path(cwd))
        out.append(await asyncio.to_thread(_path_rules_result, cwd, *rules, engine_files, base))
        on_finish(out[-1])
    return out


NESTED_CHECK = "nested repositories"
_NESTED_COMMAND = "(ralph-tui refuses a nested .git in the change)"


def _nested_result(cwd: Path, base: str | None) -> GateResult | None:
    """A failed check when the change holds a nested repository, else ``None``.

    Committed, it would be a gitlink (the approval shows only a ``Subproject commit`` hash),
    and its own ``.git/config`` (fsmonitor, filters, hooks) is the agent's: ralph-tui never
    steps into it and never commits it, and the agent is told why.
    """
    started = time.monotonic()
    try:
        found = nested_repositories(cwd, base or "HEAD")
    except GitError as exc:  # not a repository (a bare gate run): nothing can be nested
        log.debug("no nested-repository check in %s: %s", cwd, exc)
        return None
    if not found:
        return None
    names = ", ".join(display_path(p) for p in found[:10]) + (" ..." if len(found) > 10 else "")
    summary = f"nested git repository in the change: {names}"
    output = (
        f"{summary}\nralph-tui never commits a nested repository (it would land as a gitlink, "
        "and its own .git config could run programs): remove the .git inside "
        "it, keeping its files as ordinary files, or move it out of the repository."
    )
    took = round(time.monotonic() - started, 3)
    return GateResult(NESTED_CHECK, _NESTED_COMMAND, "failed", 1, took, output, summary)


PATHS_CHECK = "story: allowed paths"
_PATHS_COMMAND = "(ralph-tui checks the story's allowed_paths and forbidden)"


def _path_rules_result(
    cwd: Path,
    allowed: list[str],
    forbidden: list[str],
    engine_files: tuple[Path, ...],
    base: str | None,
) -> GateResult:
    """The story's path rules as one more check beside its gates (see ``path_rules``)."""
    started = time.monotonic()
    found = changed_breaches(cwd, allowed, forbidden, engine_files, base)
    took = round(time.monotonic() - started, 3)
    if not found:
        return GateResult(
            PATHS_CHECK, _PATHS_COMMAND, "passed", 0, took, "", "every changed path is allowed",
            criterion="allowed_paths",
        )  # fmt: skip
    summary, output = explain(found)
    return GateResult(
        PATHS_CHECK, _PATHS_COMMAND, "failed", 1, took, output, summary, criterion="allowed_paths"
    )


def story_gates(config: RalphConfig, story: Story | None) -> tuple[dict[str, str], dict[str, str]]:
    """The project's gates plus the story's own commands, and what each story command checks.

    Story commands are named ``story: <label>`` so they never replace a project gate; they run
    beside the project's gates, the same way (concurrently, same timeout, sandbox and output
    rules). ``[gate_options] story_commands = false`` leaves them out.
    """
    gates = dict(config.gates)
    criteria: dict[str, str] = {}
    if story is None or not config.gate_options.story_commands:
        return gates, criteria
    for cmd in story.commands():
        name = f"story: {cmd.name}"
        n = 2
        while name in gates:
            name = f"story: {cmd.name} ({n})"
            n += 1
        gates[name] = cmd.command
        criteria[name] = cmd.criterion
    return gates, criteria


# -- one-line summaries -----------------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_PYTEST_COUNT = re.compile(
    r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|deselected|warnings?|rerun)"
)
_PYTEST_FINAL = re.compile(
    r"^=*\s*(?P<counts>(?:\d+ \w+(?:, )?)+|no tests ran)"
    r"(?: in [\d.]+s(?: \([^)]*\))?)\s*=*$"
)
_PYTEST_ORDER = ("passed", "failed", "error", "skipped", "xfailed", "xpassed", "deselected")
_MYPY_OK = re.compile(r"^Success: no issues found in (\d+) source files?$")
_MYPY_FOUND = re.compile(r"^Found (\d+ errors? in \d+ files?)(?: \(checked \d+ source files?\))?$")
_RUFF_OK = re.compile(r"^All checks passed!$")
_RUFF_FOUND = re.compile(r"^Found (\d+ errors?)(?: \(([^)]*)\))?\.$")
_FORMAT_WOULD = re.compile(r"(\d+ files? would be reformatted)")
_FORMAT_OK = re.compile(r"^(\d+ files? (?:already formatted|left unchanged))$")
_UNITTEST_RAN = re.compile(r"^Ran (\d+) tests? in [\d.]+s$")
_UNITTEST_END = re.compile(r"^(OK|FAILED)(?: \(([^)]*)\))?$")
_NOT_FOUND = re.compile(r"(?:^|: )([^\s:]+): (?:command )?not found$")


def _pytest(line: str) -> str | None:
    match = _PYTEST_FINAL.match(line)
    if not match:
        return None
    counts = match.group("counts")
    if counts == "no tests ran":
        return counts
    found = _PYTEST_COUNT.findall(counts)
    if not found:
        return None

    def rank(item: tuple[str, str]) -> int:
        word = item[1].rstrip("s") if item[1].startswith(("error", "warning")) else item[1]
        return _PYTEST_ORDER.index(word) if word in _PYTEST_ORDER else len(_PYTEST_ORDER)

    return ", ".join(f"{n} {word}" for n, word in sorted(found, key=rank))


def _one_tool(line: str) -> str | None:
    if summary := _pytest(line):
        return summary
    if match := _MYPY_OK.match(line):
        files = int(match.group(1))
        return f"no issues ({files} file{'s' if files != 1 else ''})"
    if match := _MYPY_FOUND.match(line):
        return match.group(1)
    if _RUFF_OK.match(line):
        return "all checks passed"
    if match := _RUFF_FOUND.match(line):
        extra = f" ({match.group(2)})" if match.group(2) else ""
        return match.group(1) + extra
    if match := _FORMAT_WOULD.search(line):
        return match.group(1)
    if match := _FORMAT_OK.match(line):
        return match.group(1)
    return None


def _unittest(lines: list[str]) -> str | None:
    """unittest's verdict: ``Ran 4 tests in 0.01s`` then ``OK`` or ``FAILED (failures=1)``."""
    for at in range(len(lines) - 1, 0, -1):
        end = _UNITTEST_END.match(lines[at])
        ran = _UNITTEST_RAN.match(lines[at - 1]) if end else None
        if end and ran:
            count = int(ran.group(1))
            tests = f"{count} test{'s' if count != 1 else ''}"
            detail = f" ({end.group(2)})" if end.group(2) else ""
            return f"{tests} ok{detail}" if end.group(1) == "OK" else f"{tests}, failed{detail}"
    return None


def summarize(command: str, output: str, exit_code: int | None) -> str:
    """One line for the Gates panel: a known tool's own verdict, else the last line printed.

    Lines are searched from the end, so a script running several tools reports the last one.
    """
    lines = [ln.strip() for ln in _ANSI.sub("", output).splitlines() if ln.strip()]
    if exit_code == 127:
        for line in reversed(lines[-5:]):
            if match := _NOT_FOUND.search(line):
                return f"command not found: {match.group(1)}"
        try:
            first = shlex.split(command)[0]
        except (ValueError, IndexError):
            first = command.strip()
        return f"command not found: {first}" if first else "exit 127"
    for line in reversed(lines[-60:]):
        if summary := _one_tool(line):
            return summary
    if summary := _unittest(lines[-60:]):
        return summary
    if lines:
        return one_line(lines[-1], _SUMMARY_WIDTH)
    return f"exit {exit_code}" if exit_code is not None else "no output"
