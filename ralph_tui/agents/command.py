"""``agent = "command"``: any coding CLI (codex, amp, aider, opencode, ...) under supervision.

The CLI gets the same prompt as every other backend, through a ``{prompt_file}`` placeholder in
its argv or on stdin. Its merged stdout/stderr streams into the transcript line by line. It has
no tools of ours, so it signals through its output: process exit, or the Ralph-loop marker
``<promise>COMPLETE</promise>``, claims the story is done (the engine then runs the gates and
asks for approval as for any backend); ``<escalate>question</escalate>`` raises an escalation.
A failed exit after a usage-limit message ("usage limit reached", "try again in 2 hours") is
``AgentRateLimited``: the next ``fallback`` agent takes over (``agents/fallback.py``).
When the engine sends the claim back (gates failed, human feedback) a fresh process runs with the
failure appended to the prompt, until the engine ends the iteration.

Each process runs in the workspace's sandbox (``sandbox.py``: the CLI is agent-controlled code)
in its own session (process group, through ``procgroup``), with the sandbox's environment plus the
``command_env`` variables (the CLI's own API key, handed over by ``credentials``); a run that
exceeds ``agent_timeout_s`` (time spent waiting on the human excluded) is killed with its whole
group, and so is anything a run leaves behind when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ralph_tui.agents.fallback import usage_limit
from ralph_tui.checks import Check, find_program
from ralph_tui.config import RalphConfig
from ralph_tui.errors import AgentError, AgentRateLimited, UsageError
from ralph_tui.events import Notice, TextDelta
from ralph_tui.iteration import AgentOutcome, IterationHandle, IterationRequest, ToolOutcome
from ralph_tui.safety import credentials
from ralph_tui.safety.procgroup import GroupProcess, LineSplitter
from ralph_tui.safety.sandbox import Sandbox
from ralph_tui.safety.tempdirs import process_dir
from ralph_tui.safety.workspace import agent_env
from ralph_tui.tools.definitions import COMPLETE_TASK, ESCALATE
from ralph_tui.tools.toolbox import ToolBox

log = logging.getLogger(__name__)

PROMPT_PLACEHOLDER = "{prompt_file}"
DONE_MARKER = "<promise>COMPLETE</promise>"
_ESCALATE = re.compile(r"<escalate>(.*?)</escalate>", re.DOTALL)

# A CLI that printed the done marker gets this long to exit by itself before its group is killed.
DONE_GRACE_S = 5.0
# After the process exits, its pipe normally closes at once; this only guards a grandchild that
# escaped the process group while holding stdout open.
_DRAIN_GRACE_S = 2.0
_CHUNK = 65_536
# A line longer than this is emitted in pieces, so a CLI printing one giant line still streams.
_MAX_LINE = 8_192
_TAIL_LINES = 20
_SUMMARY_LINES = 10
_SUMMARY_CHARS = 2_000

SIGNALS_HELP = f"""\
# Signals for ralph-tui (this session)
You are running as a command-line program under ralph-tui; you do not have its tools.
Edit files and run commands with your own tools, in the repository root.
- When the story is done, print {DONE_MARKER} on a line of its own and exit
  (exiting with status 0 also counts as done). ralph-tui then runs the quality gates itself.
- Only for a real blocker a human must resolve, print <escalate>your question</escalate>.
  The answer is written to your stdin when it is open, and is always in the next run's prompt."""


@dataclass
class _RunResult:
    exit_code: int | None
    claimed: bool
    timed_out: bool
    tail: list[str]


class CommandAgent:
    """Runs ``config.command`` once per attempt; see the module docstring for the protocol."""

    name = "command"
    done_grace_s = DONE_GRACE_S

    def __init__(self, config: RalphConfig) -> None:
        if not config.command:
            raise UsageError(
                'ralph.toml: agent = "command" needs command = ["your-cli", ...] '
                '(use "{prompt_file}" in an argument, or the prompt goes to stdin)'
            )
        self.config = config
        self.argv = list(config.command)
        self._proc: GroupProcess | None = None

    def _env(self, sandbox: Sandbox) -> dict[str, str]:
        """The sandbox's environment, plus the secrets the user explicitly passes to this CLI."""
        given = {name: credentials.get(name) for name in self.config.command_env}
        return sandbox.env({name: value for name, value in given.items() if value is not None})

    async def run_iteration(
        self, request: IterationRequest, tools: IterationHandle
    ) -> AgentOutcome:
        toolbox = ToolBox(tools, self.config)
        notes: list[str] = []
        run = 0
        while not tools.finished:
            await tools.checkpoint()
            run += 1
            prompt = build_prompt(request, notes)
            result = await self._run_once(
                prompt, tools, toolbox, notes, f"{request.iteration}-{run}"
            )
            if tools.finished:
                break
            if result.timed_out:
                message = (
                    f"{self.argv[0]} ran longer than agent_timeout_s = "
                    f"{self.config.agent_timeout_s:g}s; its process group was killed"
                )
                tools.emit(Notice(level="error", message=message))
                return AgentOutcome("timeout", message)
            if not result.claimed and result.exit_code != 0:
                limited = usage_limit(result.tail, time.time())
                if limited is not None:  # a fallback agent can take over (agents/fallback.py)
                    raise AgentRateLimited(
                        f"{self.argv[0]} exited with status {result.exit_code}: {limited}",
                        reset_at=limited.reset_at,
                        retry_after_s=limited.retry_after_s,
                    )
                last = result.tail[-1].strip() if result.tail else "(no output)"
                message = f"{self.argv[0]} exited with status {result.exit_code}: {last}"
                tools.emit(Notice(level="error", message=message))
                return AgentOutcome("crashed", message)
            outcome = await toolbox.call(
                f"command-{request.iteration}-{run}-done",
                COMPLETE_TASK,
                {"summary": _summary(result, self.argv[0]), "learnings": []},
            )
            if tools.finished:
                break
            if not outcome.is_error:
                # The engine accepted the claim without ending the iteration: nothing more to do.
                return AgentOutcome("end_turn", outcome.content)
            notes.append(f"ralph-tui answered your claim of done (run {run}):\n{outcome.content}")
        return AgentOutcome("finished")

    async def _run_once(
        self,
        prompt: str,
        tools: IterationHandle,
        toolbox: ToolBox,
        notes: list[str],
        run_id: str,
    ) -> _RunResult:
        uses_file = any(PROMPT_PLACEHOLDER in arg for arg in self.argv)
        with tempfile.TemporaryDirectory(dir=process_dir(), prefix="ralph-prompt-") as tmp:
            prompt_path = Path(tmp) / "prompt.md"
            prompt_path.write_text(prompt, encoding="utf-8")
            argv = [arg.replace(PROMPT_PLACEHOLDER, str(prompt_path)) for arg in self.argv]
            tools.emit(
                Notice(level="info", message=f"running {' '.join(self.argv)} (run {run_id})")
            )
            proc = await self._spawn(
                argv, tools.workspace.root, tools.workspace.sandbox, prompt_path
            )
            self._proc = proc
            try:
                session = _Session(proc, tools, toolbox, notes, self.config.agent_timeout_s)
                session.run_id = run_id
                session.done_grace_s = self.done_grace_s
                return await session.run(None if uses_file else prompt)
            finally:
                await proc.kill()
                self._proc = None

    async def _spawn(
        self, argv: list[str], cwd: Path, sandbox: Sandbox, prompt_path: Path
    ) -> GroupProcess:
        env = self._env(sandbox)
        not_found = AgentError(
            f"ralph.toml: command: {argv[0]!r} not found (is it installed and on PATH?)"
        )
        # inside a sandbox a missing program is the sandbox's exit status: say it plainly first
        program = argv[0]
        if (
            sandbox.confined
            and "/" not in program
            and shutil.which(program, path=env.get("PATH")) is None
        ):
            raise not_found
        # the programs and scripts ralph.toml names (the user's, not the agent's) stay visible
        # read-only, as the sandbox shows only the system folders and the toolchain otherwise
        # (never a top-level folder: "/" would show everything)
        named = [Path(a) for a in self.argv if a.startswith("/") and len(Path(a).parts) > 2]
        wrapped = sandbox.wrap(argv, cwd, visible=(prompt_path, *named))
        try:
            return await GroupProcess.start(wrapped, cwd=cwd, env=env, stdin=True)
        except FileNotFoundError:
            raise not_found from None
        except PermissionError:
            raise AgentError(f"ralph.toml: command: {argv[0]!r} is not executable") from None

    async def aclose(self) -> None:
        if self._proc is not None:
            await self._proc.kill()


class _Session:
    """One process run: pumps output into events and reacts to the markers."""

    def __init__(
        self,
        proc: GroupProcess,
        tools: IterationHandle,
        toolbox: ToolBox,
        notes: list[str],
        timeout_s: float,
    ) -> None:
        self.proc = proc
        self.tools = tools
        self.toolbox = toolbox
        self.notes = notes
        self.run_id = "1"
        self.done_grace_s = DONE_GRACE_S
        self.deadline = time.monotonic() + timeout_s
        self.lines = LineSplitter(_MAX_LINE)
        self.scan = ""  # output not yet searched for a complete escalation marker
        self.tail: deque[str] = deque(maxlen=_TAIL_LINES)
        self.claimed = False
        self.claim_deadline = float("inf")
        self.escalations = 0

    async def run(self, stdin_prompt: str | None) -> _RunResult:
        stdout = self.proc.stdout
        feeder = asyncio.create_task(self._feed(stdin_prompt)) if stdin_prompt is not None else None
        try:
            timed_out = not await self._pump(stdout)
            if not timed_out and self.proc.returncode is None and not self.tools.finished:
                timed_out = not await self._wait_exit()
        finally:
            if feeder is not None:
                feeder.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await feeder
        self._flush_partial()
        return _RunResult(self.proc.returncode, self.claimed, timed_out, list(self.tail))

    async def _feed(self, prompt: str) -> None:
        """Writes the prompt and closes stdin (CLIs like ``codex exec -`` read to EOF)."""
        stdin = self.proc.stdin
        assert stdin is not None
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            stdin.write(prompt.encode("utf-8"))
            await stdin.drain()
            stdin.close()

    async def _pump(self, stdout: asyncio.StreamReader) -> bool:
        """Reads until EOF; False when the deadline passed first."""
        while True:
            remaining = self.deadline - time.monotonic()
            if self.claimed:
                remaining = min(remaining, self.claim_deadline - time.monotonic())
            if remaining <= 0:
                return self.claimed  # after the marker, running over the grace is not a hang
            try:
                chunk = await asyncio.wait_for(stdout.read(_CHUNK), remaining)
            except TimeoutError:
                continue
            if not chunk:
                self._take(b"", final=True)
                return True
            self._take(chunk)
            await self._handle_escalations()
            if self.tools.finished:
                return True

    async def _wait_exit(self) -> bool:
        """The pipe closed but the process still runs; False when it outlives the deadline."""
        grace = _DRAIN_GRACE_S if self.claimed else self.deadline - time.monotonic()
        return await self.proc.wait_exit(max(grace, 0.0)) or self.claimed

    def _take(self, chunk: bytes, *, final: bool = False) -> None:
        text, lines = self.lines.feed(chunk, final=final)
        self.scan += text
        for line in lines:
            self._emit_line(line)

    def _flush_partial(self) -> None:
        if rest := self.lines.flush():
            self._emit_line(rest)

    def _emit_line(self, line: str) -> None:
        self.tools.emit(TextDelta(text=line))
        self.tail.append(line.rstrip("\n"))
        if not self.claimed and DONE_MARKER in line:
            self.claimed = True
            self.claim_deadline = time.monotonic() + self.done_grace_s

    async def _handle_escalations(self) -> None:
        while (match := _ESCALATE.search(self.scan)) is not None:
            self.scan = self.scan[match.end() :]
            question = match.group(1).strip()
            if question:
                await self._escalate(question)
            if self.tools.finished:
                return
        # keep only what could still start a marker
        start = self.scan.rfind("<escalate>")
        self.scan = self.scan[start:] if start >= 0 else self.scan[-len("<escalate>") :]

    async def _escalate(self, question: str) -> None:
        # The first line of the output that raised it is already emitted; flush the rest so the
        # transcript shows the question before the wait.
        self._flush_partial()
        self.escalations += 1
        tried = "\n".join(self.tail) or "(no output yet)"
        started = time.monotonic()
        outcome: ToolOutcome = await self.toolbox.call(
            f"command-{self.run_id}-escalate-{self.escalations}",
            ESCALATE,
            {"question": question, "tried": tried},
        )
        # time spent waiting for the human is not the command's time
        self.deadline += time.monotonic() - started
        if self.claimed:
            self.claim_deadline += time.monotonic() - started
        if self.tools.finished:
            return
        self.notes.append(f"You asked: {question}\nThe human answered: {outcome.content}")
        await self._answer_on_stdin(outcome.content)

    async def _answer_on_stdin(self, answer: str) -> None:
        stdin = self.proc.stdin
        if stdin is None or stdin.is_closing() or self.proc.returncode is not None:
            return
        try:
            # one line, so a CLI reading a line gets all of it
            stdin.write((" ".join(answer.split()) + "\n").encode("utf-8"))
            await stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            log.debug("answer not delivered on stdin: the command closed it")


def build_prompt(request: IterationRequest, notes: list[str]) -> str:
    parts = [request.system_prompt, request.user_prompt, SIGNALS_HELP]
    if notes:
        parts.append("# Since your last run\n" + "\n\n".join(notes))
    return "\n\n".join(p.strip() for p in parts if p.strip()) + "\n"


def _summary(result: _RunResult, program: str) -> str:
    lines = [ln for ln in result.tail if ln.strip() and DONE_MARKER not in ln]
    text = "\n".join(lines[-_SUMMARY_LINES:])[-_SUMMARY_CHARS:].strip()
    return text or f"{program} finished (exit status {result.exit_code}) without output"


# ---- registration (``agents.registry``) -------------------------------------------------------


def create(config: RalphConfig, workspace: Path) -> CommandAgent:
    return CommandAgent(config)


def doctor_checks(root: Path, config: RalphConfig) -> Iterator[Check]:
    if not config.command:
        yield Check(
            "missing",
            "command",
            'agent = "command" without a command',
            'set command = ["your-cli", "{prompt_file}"] in ralph.toml',
        )
        return
    program = config.command[0]
    found = find_program(program, root, agent_env().get("PATH"))
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
