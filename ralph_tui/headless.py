"""The headless face: a line-oriented console log and a terminal (or policy) supervisor.

Output is meant for a human tailing a CI log or a tmux pane: one line per thing that happened,
the agent's streamed text as whole lines, tool results clipped. Every line passes through
``escape_controls`` on its way out: the agent, a gate or a PRD title must not be able to drive
the terminal (set the clipboard with OSC 52, clear the screen, rewrite earlier lines).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import select
import signal
import sys
import threading
from pathlib import Path
from typing import Literal, TextIO, cast

from ralph_tui.config import RalphConfig
from ralph_tui.events import (
    AgentSwitched,
    ApprovalDecided,
    ApprovalNeeded,
    Committed,
    Escalated,
    EscalationAnswered,
    Event,
    GateFinished,
    IterationFinished,
    IterationStarted,
    Notice,
    PmAnswered,
    PmProposal,
    PmToolUsed,
    ReviewRecorded,
    RunFinished,
    RunStarted,
    TextDelta,
    ToolCall,
    ToolResult,
    UsageReported,
)
from ralph_tui.exit_codes import ExitCode
from ralph_tui.iteration import Agent
from ralph_tui.run_handle import RunFactory, RunHandle
from ralph_tui.runs import RunSpec, build_run
from ralph_tui.safety.text import escape_controls, one_line
from ralph_tui.safety.workspace import Redactor
from ralph_tui.supervisor import (
    ApprovalDecision,
    ApprovalRequest,
    EscalationAnswer,
    EscalationRequest,
    ReviewComment,
)

CLIP = 200
# a line comment at the prompt: the path may hold spaces and colons, the last ":N" is the line
_COMMENT = re.compile(r"^(?P<path>.+):(?P<line>-?\d+)\s+(?P<text>\S.*)$")


CONSOLE_LINE_MAX = 16_384  # characters of one unbroken line of agent text held back


class ConsoleSink:
    """Formats events as lines; the agent's text is printed a whole line at a time."""

    def __init__(self, out: TextIO, redact: Redactor | None = None) -> None:
        self.out = out
        self._redact = redact if redact is not None else Redactor()
        self._pending: dict[int, str] = {}  # per worker (0: the single-worker loop)
        self._cost = 0.0
        self._agent_cost: dict[str, float] = {}  # a fallback run: what each agent spent
        self._pm_cost = 0.0  # [pm]: the product-manager agent's share
        self._stories: dict[int, str] = {}  # parallel worker -> the story it runs

    def __call__(self, event: Event) -> None:
        worker = event.worker
        if isinstance(event, IterationStarted) and worker:
            self._stories[worker] = event.story_id
        if isinstance(event, TextDelta):
            pending = self._pending.get(worker, "") + event.text
            if "\n" in event.text:
                *lines, pending = pending.split("\n")
                for line in lines:
                    if line.strip():
                        self._line(f"  │ {line}", worker)
            if len(pending) > CONSOLE_LINE_MAX:
                # a line with no end in sight (megabytes of text, no newline): print it in
                # pieces, keeping back a tail that could be the start of a secret
                keep = self._redact.longest
                self._line(f"  │ {pending[: len(pending) - keep]}", worker)
                pending = pending[len(pending) - keep :] if keep else ""
            self._pending[worker] = pending
            return
        self._flush_text(worker)
        formatted = self._format(event)
        if formatted:
            self._line(formatted, worker)

    def _flush_text(self, worker: int | None = None) -> None:
        """The held-back text of ``worker`` (``None``: of every worker)."""
        for who in list(self._pending) if worker is None else [worker]:
            pending = self._pending.pop(who, "")
            if pending.strip():
                self._line(f"  │ {pending}", who)

    def _line(self, text: str, worker: int = 0) -> None:
        if worker:  # parallel workers: each line says whose it is
            story = self._stories.get(worker, f"worker {worker}")
            text = "\n".join(f"[{story}] {part}" if part else part for part in text.split("\n"))
        # a line is whole before it is redacted, so a secret split across deltas is caught
        self.out.write(escape_controls(self._redact(text)) + "\n")
        self.out.flush()

    def _format(self, event: Event) -> str | None:
        match event:
            case RunStarted(run_id=run_id, role=role, agent=agent, model=model, branch=branch):
                on = f", branch {branch}" if branch else ""
                return f"ralph-tui run {run_id}: role {role}, agent {agent}, model {model}{on}"
            case IterationStarted(iteration=n, story_id=sid, title=title):
                return f"\n[iteration {n}] Task #{sid}: {title}"
            case ToolCall(name=name, input=tool_input):
                return f"  → {name} {one_line(json.dumps(tool_input, ensure_ascii=False), 160)}"
            case ToolResult(name=name, content=content, is_error=is_error):
                mark = "✗" if is_error else "←"
                return f"  {mark} {name}: {one_line(content, CLIP)}"
            case GateFinished(name=name, state=state, duration_s=d, summary=summary, criterion=c):
                checks = f" [checks: {one_line(c, 80)}]" if c else ""
                return f"  gate {name}{checks}: {state} ({d:.1f}s) {summary}"
            case ApprovalNeeded(story_id=sid, diffstat=diffstat, flags=flags):
                last = diffstat.strip().splitlines()[-1:] or ["no changes"]
                flagged = "".join(f"\n  ⚑ review flag: {one_line(f, 160)}" for f in flags)
                return f"  approval needed for Task #{sid}: {last[0].strip()}{flagged}"
            case ApprovalDecided(decision=decision, feedback=feedback):
                return f"  supervisor: {decision}" + (
                    f" ({one_line(feedback, 120)})" if feedback else ""
                )
            case ReviewRecorded(dropped=dropped, comments=comments):
                return "\n".join(f"  review: {one_line(line, CLIP)}" for line in dropped + comments)
            case Committed(sha=sha, message=message, files=files):
                subject = message.splitlines()[0]
                return f"  ✓ committed {sha[:10]} {subject} ({len(files)} files)"
            case Escalated(question=question, automatic=automatic):
                who = "engine" if automatic else "agent"
                return f"  ? escalation ({who}): {one_line(question, CLIP)}"
            case EscalationAnswered(answer=answer, skipped=skipped, by=by, correction=correction):
                whose = (
                    "" if by == "human" else " (the PM, not a human)" if by == "pm" else f" ({by})"
                )
                label = "correction" if correction else "answer"
                return (
                    "  supervisor: skipped the story"
                    if skipped
                    else f"  {label}{whose}: {one_line(answer, CLIP)}"
                )
            case PmAnswered(answer=answer, known=known):
                said = one_line(answer, CLIP)
                return f"  PM: {said}" if known else f"  PM: cannot answer ({said})"
            case PmToolUsed(name=name, detail=detail, refused=refused):
                return f"  PM → {name}{' (refused)' if refused else ''} {one_line(detail, 160)}"
            case PmProposal(proposal=proposal, decision=decision):
                return f"  PM proposes a PRD change ({decision}): {one_line(proposal, CLIP)}"
            case UsageReported(cost_usd=spent, by=by, agent=agent):
                self._cost += spent
                if by == "pm":
                    self._pm_cost += spent
                elif agent:
                    self._agent_cost[agent] = self._agent_cost.get(agent, 0.0) + spent
                return None
            case AgentSwitched(agent=agent, previous=previous, reason=reason):
                # a hand-over's reason is the notice just before it; at an iteration's start
                # it says why the run is not on the primary agent
                if previous:
                    return f"  agent: {agent} takes over from {previous}"
                return f"  agent: {agent}" + (f" ({one_line(reason, CLIP)})" if reason else "")
            case Notice(level=level, message=message):
                return f"  {level}: {message}"
            case IterationFinished(outcome=outcome, message=message, patch_path=patch):
                extra = f"; change saved to {patch}" if patch else ""
                return f"  iteration {outcome}" + (f": {message}" if message else "") + extra
            case RunFinished(exit_code=code, reason=reason):
                pm = f", the PM ${self._pm_cost:.4f} of it" if self._pm_cost else ""
                total = f", est. cost ${self._cost:.4f}{pm}" if self._cost else ""
                if len(self._agent_cost) > 1:  # the cost table of a fallback run, by agent
                    total += " by agent: " + ", ".join(
                        f"{agent} ${cost:.4f}" for agent, cost in self._agent_cost.items()
                    )
                return f"\nrun finished: {reason} (exit {code}{total})"
        return None


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty() and stream.fileno() >= 0
    except (OSError, ValueError):  # closed, or a stream without a descriptor
        return False


class InterruptibleLines:
    """A terminal's lines for a prompt waiting in a thread, which a remote decision can end.

    The headless prompt reads stdin in a worker thread; when a client decides first, the thread
    must return (else it would swallow the next line typed, and hold the process at exit).
    ``interrupt()`` wakes it through a pipe and it returns ``""``, which nobody awaits any more.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._wake_r, self._wake_w = os.pipe()
        self._lock = threading.Lock()
        self._generation = 0
        self._interrupted = 0

    def readline(self) -> str:
        with self._lock:
            self._generation += 1
            mine = self._generation
        fd = self._stream.fileno()
        while True:
            with self._lock:
                if self._interrupted >= mine:
                    return ""
            ready, _, _ = select.select([fd, self._wake_r], [], [])
            if self._wake_r in ready:
                os.read(self._wake_r, 1024)
                continue
            return self._stream.readline()

    def interrupt(self) -> None:
        with self._lock:
            self._interrupted = self._generation
        os.write(self._wake_w, b"x")

    def isatty(self) -> bool:
        return self._stream.isatty()


class TerminalSupervisor:
    """``--approve auto`` decides by policy; ``--approve ask`` asks on the terminal."""

    def __init__(self, mode: str, sink: ConsoleSink, stdin: TextIO | None = None) -> None:
        self.mode = mode
        self.sink = sink
        stream = stdin if stdin is not None else sys.stdin
        self._terminal = _is_terminal(stream)
        # a terminal's prompt can be ended when the question is settled elsewhere (a client
        # of a served run answered first): its reading thread must not swallow the next line
        self.stdin: TextIO = cast(TextIO, InterruptibleLines(stream)) if self._terminal else stream
        # with workers one story's approval and another's question are open together; the
        # terminal asks them one at a time, or the line typed at the last prompt on screen went
        # to whichever prompt read first (an "a" meant to approve became the agent's answer)
        self._turn = asyncio.Lock()

    async def _ask(self, prompt: str) -> str | None:
        self.sink._flush_text()
        self.sink.out.write(prompt)
        self.sink.out.flush()
        try:
            line = await _readline(self.stdin)
        except asyncio.CancelledError:
            if isinstance(self.stdin, InterruptibleLines):
                self.stdin.interrupt()
            raise
        return line.rstrip("\n") if line else None  # None: stdin closed

    @property
    def reaches_human(self) -> bool:
        """``--approve auto`` asks nobody: a flagged change cannot be shown to anyone here.
        Nor does a stdin that is not a terminal (CI): a PM in ``answer`` mode answers at once."""
        return self.mode == "ask" and self._terminal

    async def approve(self, request: ApprovalRequest) -> ApprovalDecision:
        if self.mode == "auto":
            if request.flags:
                # only reached beside remote faces (SharedSupervisor): a client decides; alone,
                # the engine never asks (``approvals_unattended``)
                await asyncio.get_running_loop().create_future()
            return ApprovalDecision.approve()
        async with self._turn:
            return await self._ask_approval(request)

    async def _ask_approval(self, request: ApprovalRequest) -> ApprovalDecision:
        self.sink._line(request.diffstat.rstrip() or "  (no file changes)")
        while True:
            answer = await self._ask(
                f"  {escape_controls(request.story_id, multiline=False)}: "
                "[a]pprove, [r]eject with feedback, [c]omment on lines, [d]iscard? "
            )
            if answer is None:
                return ApprovalDecision.discard()
            choice = answer.strip().lower()[:1]
            if choice == "a":
                return ApprovalDecision.approve()
            if choice == "d":
                return ApprovalDecision.discard()
            if choice == "r":
                feedback = await self._ask("  feedback for the agent: ")
                return ApprovalDecision.reject(feedback or "")
            if choice == "c":
                comments = await self._comments()
                if comments is None:
                    return ApprovalDecision.discard()
                if comments:
                    feedback = await self._ask("  feedback beside the comments (optional): ")
                    return ApprovalDecision.reject(feedback or "", comments)

    async def _comments(self) -> list[ReviewComment] | None:
        """Line comments typed as ``path:line text`` (``path:-line`` for a removed line), one per
        line, until an empty one; the engine quotes each line from the diff it showed. ``None``:
        stdin closed."""
        comments: list[ReviewComment] = []
        while True:
            typed = await self._ask(
                "  comment as path:line text (path:-line on a removed line; empty line: done): "
            )
            if typed is None:
                return None
            if not typed.strip():
                return comments
            found = _COMMENT.match(typed.strip())
            if found is None:
                self.sink._line("  (not path:line text: e.g. app/models.py:42 use a dict here)")
                continue
            path, line, text = found.group("path", "line", "text")
            side: Literal["new", "old"] = "old" if line.startswith("-") else "new"
            comments.append(ReviewComment(path, int(line.lstrip("-")), text.strip(), side))

    async def answer(self, request: EscalationRequest) -> EscalationAnswer:
        if self.mode == "auto":
            return EscalationAnswer("stop")
        async with self._turn:
            return await self._ask_answer(request)

    async def _ask_answer(self, request: EscalationRequest) -> EscalationAnswer:
        self.sink._line(f"  Tried: {request.tried}\n  Question: {request.question}")
        if request.pm_note:
            self.sink._line(f"  {request.pm_note}")
        if request.suggestion:
            self.sink._line(f"  The PM suggests: {request.suggestion}")
        sends = "'.' sends the PM's suggestion, " if request.suggestion else ""
        story = escape_controls(request.story_id, multiline=False)
        text = await self._ask(f"  your answer for {story} ({sends}empty line to skip the story): ")
        if text is None:
            return EscalationAnswer("stop")
        if request.suggestion and text.strip() == ".":
            return EscalationAnswer("answer", request.suggestion)
        return EscalationAnswer("answer", text) if text.strip() else EscalationAnswer("skip")


async def _readline(stream: TextIO) -> str:
    """``stream.readline()`` in a daemon thread.

    Not ``asyncio.to_thread``: ``asyncio.run`` waits for its executor's threads before it
    returns, and a read of a terminal nobody types into never ends, so a SIGTERM at a prompt
    would stop the run and then hang the process. A daemon thread is left behind instead.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str] = loop.create_future()

    def deliver(line: str | None, error: Exception | None) -> None:
        if future.done():  # cancelled meanwhile
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(line or "")

    def read() -> None:
        try:
            line, error = stream.readline(), None
        except (OSError, ValueError) as exc:  # stdin closed or broken: the caller sees it
            line, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
            loop.call_soon_threadsafe(deliver, line, error)

    threading.Thread(target=read, name="stdin-readline", daemon=True).start()
    return await future


async def run_headless(
    workspace: Path,
    config: RalphConfig,
    *,
    allow_dirty: bool = False,
    out: TextIO | None = None,
    agent: Agent | None = None,
    run_factory: RunFactory | None = None,
) -> int:
    sink = ConsoleSink(out if out is not None else sys.stdout)
    supervisor = TerminalSupervisor(config.approve, sink)
    # run_factory: the run served to remote faces and/or with notifications (ralph_tui/server/)
    engine: RunHandle = (
        run_factory(supervisor, sink)
        if run_factory is not None
        else build_run(RunSpec(workspace, config, agent, allow_dirty), supervisor, sink)
    )
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    interrupts = 0

    def on_signal(now: bool) -> None:
        # first ^C: stop at the next safe point; second: cancel now (the iteration is rolled
        # back). SIGTERM (a service manager, `timeout`, a cancelled CI job) is not a human who
        # can press again: it cancels now, even while a tool runs.
        nonlocal interrupts
        interrupts += 1
        engine.request_stop()
        if (now or interrupts > 1) and task is not None:
            task.cancel()
        elif interrupts == 1:  # say what the first ^C did, and what a second one would do
            sink(
                Notice(
                    level="warning",
                    message="stopping at the next safe point; press Ctrl-C again to cancel now",
                )
            )

    loop.add_signal_handler(signal.SIGINT, on_signal, False)
    loop.add_signal_handler(signal.SIGTERM, on_signal, True)
    try:
        return await engine.run()
    except asyncio.CancelledError:
        return ExitCode.INTERRUPTED
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
