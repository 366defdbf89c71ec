"""The Ralph loop (SPEC section 1): pick -> context -> agent -> gates -> approve -> commit -> log.

The engine, not the agent, decides "done": ``complete_task`` runs the gates here and asks the
``Supervisor``. Everything the engine does is reported as events to one sink.

Crash safety rests on a small state file, ``.ralph/state.json``, written before each risky step:
- ``phase: iteration`` while an agent works: on restart, the leftover change is saved as a patch
  and the tree restored, so an interrupted iteration never blocks the next run.
- ``phase: committing`` from just before the PRD is marked until the commit has landed: on
  restart, if HEAD carries the commit the marker is dropped; otherwise the story's ``passes`` flag
  and the progress log are rolled back. A story is never left ``passes: true`` without its commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from ralph_tui import credentials
from ralph_tui.agents import create_agent
from ralph_tui.config import RalphConfig
from ralph_tui.context import StoryContext, build_system_prompt, build_user_prompt
from ralph_tui.errors import AgentError, GitError, StopRequested, UsageError
from ralph_tui.events import (
    ApprovalDecided,
    ApprovalNeeded,
    Committed,
    Escalated,
    EscalationAnswered,
    Event,
    EventSink,
    GateFinished,
    GateStarted,
    IterationFinished,
    IterationOutcome,
    IterationStarted,
    Notice,
    PrdChanged,
    RunFinished,
    RunStarted,
    RunState,
    RunStateChanged,
    UsageReported,
)
from ralph_tui.gates import GateResult, run_gates
from ralph_tui.git_repo import GitRepo
from ralph_tui.iteration import Agent, IterationRequest, ToolOutcome, Usage
from ralph_tui.journal import Journal
from ralph_tui.persona import load_persona
from ralph_tui.prd import Story
from ralph_tui.prd_store import PrdStore
from ralph_tui.pricing import estimate_cost
from ralph_tui.progress import ProgressLog
from ralph_tui.sandbox import resolve_sandbox
from ralph_tui.supervisor import (
    ApprovalRequest,
    EscalationAnswer,
    EscalationRequest,
    Supervisor,
)
from ralph_tui.text import escape_controls
from ralph_tui.workspace import Redactor, Workspace

log = logging.getLogger(__name__)

EXIT_DONE = 0
EXIT_RUNTIME = 1
EXIT_LIMIT = 3
EXIT_WAITING_FOR_HUMAN = 4
EXIT_INTERRUPTED = 130

FAILURES_BEFORE_ESCALATION = 3
GATE_OUTPUT_FOR_AGENT = 6000  # characters of each failed gate's output sent back to the agent


def commit_message(role: str, story: Story) -> str:
    return (
        f"[{role}] Task #{story.key}: {escape_controls(story.title, multiline=False)}\n\n"
        "Implemented by autonomous agent.\n"
        "All quality checks passing.\n"
    )


def new_run_id() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


class _RunEnded(Exception):
    """Control flow inside the engine: the run ends with this exit code."""

    def __init__(self, exit_code: int, reason: str) -> None:
        super().__init__(reason)
        self.exit_code = exit_code
        self.reason = reason


class Engine:
    def __init__(
        self,
        workspace: Path,
        config: RalphConfig,
        agent: Agent | None,
        supervisor: Supervisor,
        sink: EventSink,
        *,
        allow_dirty: bool = False,
        run_id: str | None = None,
    ) -> None:
        self.workspace = Workspace(workspace)
        self.root = self.workspace.root
        self.config = config
        self._agent = agent  # None: built from config after the preflight checks pass
        self.supervisor = supervisor
        self.git = GitRepo.open(self.root)
        self.store = PrdStore(config.prd_path(self.root))
        self.progress = ProgressLog(config.progress_path(self.root))
        self.workspace.protect(self.store.path, self.progress.path)  # the agent's editor may not
        self.allow_dirty = allow_dirty
        self.run_id = run_id or new_run_id()
        self.run_dir = self.root / ".ralph" / "runs" / self.run_id
        self.state_path = self.root / ".ralph" / "state.json"
        self.skipped: set[str] = set()
        self.feedback: dict[str, list[str]] = {}
        self.failures: dict[str, int] = {}
        self.story_cost: dict[str, float] = {}
        self.run_cost = 0.0
        self.tokens = 0
        self.iteration = 0
        self.state: RunState = "starting"
        self._sink = sink
        self._journal: Journal | None = None
        # secrets leave os.environ before anything is spawned (the CLI did it too, if it ran)
        credentials.withhold()
        self._redact = Redactor()
        self._running = asyncio.Event()
        self._running.set()
        self._stop_requested = False
        self._budget_spent = False
        self._bookkeeping = (
            self.workspace.relative(self.store.path),
            self.workspace.relative(self.progress.path),
        )

    # ----------------------------------------------------------------- control (any thread-safe
    # caller on the engine's loop: the TUI, the headless signal handler, tests)

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def pause(self) -> None:
        if self._running.is_set():
            self._running.clear()
            self._set_state("pausing")

    def resume(self) -> None:
        if not self._running.is_set():
            self._running.set()
            self._set_state("running")

    def request_stop(self) -> None:
        self._stop_requested = True
        self._running.set()  # a paused loop must wake up to stop

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested

    @property
    def agent(self) -> Agent:
        if self._agent is None:
            raise RuntimeError("the agent is created when the run starts")
        return self._agent

    # ----------------------------------------------------------------- events

    def emit(self, event: Event) -> None:
        if self._journal is not None:
            self._journal(event)
        self._sink(event)

    def _set_state(self, state: RunState) -> None:
        if state != self.state:
            self.state = state
            self.emit(RunStateChanged(state=state))

    def _notice(self, message: str, level: Literal["info", "warning", "error"] = "info") -> None:
        self.emit(Notice(level=level, message=message))

    # ----------------------------------------------------------------- the run

    async def run(self) -> int:
        """The whole loop; returns the exit code of SPEC section 7."""
        await asyncio.to_thread(self._preflight)
        if self._agent is None:
            self._agent = create_agent(self.config, self.root)
        self._journal = Journal(self.run_dir, self._redact)
        self.emit(
            RunStarted(
                run_id=self.run_id,
                role=self.config.role,
                workspace=str(self.root),
                agent=self.agent.name,
                model=self.config.model,
                max_iterations=self.config.max_iterations,
            )
        )
        if self.workspace.sandbox.warning:
            self._notice(self.workspace.sandbox.warning, "warning")
        self._set_state("running")
        stop_watch = asyncio.Event()
        watcher = asyncio.create_task(self._watch_prd(stop_watch), name="prd-watch")
        exit_code, reason = EXIT_RUNTIME, "not started"
        try:
            exit_code, reason = await self._loop()
        except _RunEnded as ended:
            exit_code, reason = ended.exit_code, ended.reason
        except (AgentError, GitError) as exc:
            exit_code, reason = EXIT_RUNTIME, str(exc)
        except asyncio.CancelledError:
            exit_code, reason = EXIT_INTERRUPTED, "interrupted"
            raise
        finally:
            stop_watch.set()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            if self._agent is not None:
                try:
                    await self._agent.aclose()
                except Exception:  # closing must not hide the run's own outcome
                    log.warning("closing the agent failed", exc_info=True)
            self._set_state("finished")
            self.emit(RunFinished(exit_code=exit_code, reason=reason))
            if self._journal is not None:
                self._journal.close()
                self._journal = None
        return exit_code

    def _preflight(self) -> None:
        self.store.load()  # a malformed PRD is a UsageError naming the file
        self._recover()
        dirty = self.git.dirty_paths(ignore=self._bookkeeping)
        if dirty and not self.allow_dirty:
            listed = ", ".join(dirty[:3]) + (
                f" and {len(dirty) - 3} more" if len(dirty) > 3 else ""
            )
            raise UsageError(
                f"{self.root}: working tree has uncommitted changes ({listed}); "
                "commit or stash them, or pass --allow-dirty"
            )
        self.git.ensure_excluded(".ralph/")
        self.workspace.sandbox = resolve_sandbox(
            self.config.sandbox,
            self.root,
            read_only=(self.store.path, self.progress.path),
            hidden=(self.root / ".ralph",),
        )
        if self.config.persona:
            load_persona(self._persona_path())  # fail before the run starts, not mid-iteration

    async def _watch_prd(self, stop: asyncio.Event) -> None:
        def changed() -> None:
            self.emit(PrdChanged(source="external"))

        try:
            await self.store.watch(changed, stop)
        except OSError as exc:  # inotify limits and the like: the loop still re-reads per pick
            log.warning("PRD watch stopped: %s", exc)

    async def _loop(self) -> tuple[int, str]:
        while True:
            await self._safe_point()
            prd = await asyncio.to_thread(self.store.load)
            if prd.all_pass:
                return EXIT_DONE, "every story passes"
            story = prd.next_story(skip=self.skipped)
            if story is None:
                return EXIT_LIMIT, f"no story left to pick ({len(self.skipped)} skipped this run)"
            if self.iteration >= self.config.max_iterations:
                return EXIT_LIMIT, f"reached max_iterations ({self.config.max_iterations})"
            if self._budget_spent:
                return EXIT_LIMIT, f"cost budget spent (${self.run_cost:.2f})"
            self.iteration += 1
            await self._iteration(story)

    async def wait_at_safe_point(self) -> None:
        """Hold here while paused; then end the run if the budget is spent.

        A stop request is left to the caller: between iterations it ends the run, inside an
        iteration it first ends the iteration (``StopRequested``) so the tree is restored.
        """
        if not self._running.is_set() and not self._stop_requested:
            self._set_state("paused")
            await self._running.wait()
            self._set_state("running")
        if self._budget_spent and not self._stop_requested:
            raise _RunEnded(EXIT_LIMIT, f"cost budget spent (${self.run_cost:.2f})")

    async def _safe_point(self) -> None:
        await self.wait_at_safe_point()
        if self._stop_requested:
            raise _RunEnded(EXIT_INTERRUPTED, "stopped by the supervisor")

    # ----------------------------------------------------------------- one iteration

    async def _iteration(self, story: Story) -> None:
        number = self.iteration
        self.emit(IterationStarted(iteration=number, story_id=story.key, title=story.title))
        await asyncio.to_thread(self._write_state, {"phase": "iteration", "story": story.key})
        control = IterationControl(self, story)
        request = await asyncio.to_thread(self._build_request, story, number)
        outcome: IterationOutcome = "failed"
        message = ""
        ended: _RunEnded | None = None
        try:
            result = await self.agent.run_iteration(request, control)
            if control.outcome is not None:
                outcome, message = control.outcome, control.message
            else:
                message = f"agent stopped without completing the story ({result.reason})"
                if result.message:
                    message += f": {result.message}"
        except StopRequested:
            outcome, message = "stopped", "stopped at a safe point"
        except _RunEnded as exc:
            outcome, message, ended = "stopped", exc.reason, exc
        except AgentError as exc:
            outcome, message = "error", str(exc)
            await asyncio.to_thread(self._finish_uncommitted, story, number, outcome, message)
            raise
        except asyncio.CancelledError:
            self._finish_uncommitted(story, number, "stopped", "interrupted")
            raise
        if outcome == "committed":
            self.failures[story.key] = 0
            await asyncio.to_thread(self._clear_state)
            self.emit(IterationFinished(iteration=number, story_id=story.key, outcome=outcome))
        else:
            await asyncio.to_thread(self._finish_uncommitted, story, number, outcome, message)
        if ended is not None:
            raise ended
        if control.stop_for_human:
            raise _RunEnded(EXIT_WAITING_FOR_HUMAN, "stopped waiting for a human (escalation)")
        if outcome in ("failed", "error"):
            await self._count_failure(story)

    def _finish_uncommitted(
        self, story: Story, number: int, outcome: IterationOutcome, message: str
    ) -> None:
        """Save the change as a patch and restore the tree, so the next iteration starts clean."""
        patch_path: Path | None = None
        try:
            patch_path = self.git.save_patch(
                self.run_dir / "patches" / f"iter-{number:03d}-{_safe_name(story.key)}.patch"
            )
            self.git.restore_to_head(keep=self._bookkeeping)
        finally:
            self._clear_state()
            self.emit(
                IterationFinished(
                    iteration=number,
                    story_id=story.key,
                    outcome=outcome,
                    message=message,
                    patch_path=str(patch_path) if patch_path else None,
                )
            )

    async def _count_failure(self, story: Story) -> None:
        count = self.failures.get(story.key, 0) + 1
        self.failures[story.key] = count
        if count < FAILURES_BEFORE_ESCALATION:
            return
        self.failures[story.key] = 0
        answer = await self._ask_human(
            story,
            question=(
                f"Task #{story.key} failed {count} iterations in a row. "
                "What should the agent do differently? (Or skip the story.)"
            ),
            tried="See the transcript and the saved patches of the failed iterations.",
            automatic=True,
        )
        if answer.kind == "stop":
            raise _RunEnded(EXIT_WAITING_FOR_HUMAN, "stopped waiting for a human (escalation)")

    def _build_request(self, story: Story, number: int) -> IterationRequest:
        persona = load_persona(self._persona_path() if self.config.persona else None)
        feedback = tuple(self.feedback.get(story.key, ()))
        ctx = StoryContext(
            git_log=self.git.recent_log(10),
            progress_tail=self.progress.tail(),
            agents_md=self._agents_md(),
            feedback=feedback,
        )
        return IterationRequest(
            iteration=number,
            story=story,
            system_prompt=build_system_prompt(persona),
            user_prompt=build_user_prompt(story, ctx),
            workspace=self.root,
            config=self.config,
            feedback=feedback,
        )

    def _persona_path(self) -> Path:
        assert self.config.persona is not None
        path = Path(self.config.persona).expanduser()
        return path if path.is_absolute() else self.root / path

    def _agents_md(self) -> str:
        parts = []
        for name in ("AGENTS.md", "CLAUDE.md"):
            path = self.root / name
            if path.is_file():
                with contextlib.suppress(OSError, UnicodeDecodeError):
                    parts.append(path.read_text(encoding="utf-8")[:20_000])
        return "\n\n".join(parts)

    # ----------------------------------------------------------------- gates, approval, commit

    async def run_gates(self) -> list[GateResult]:
        def started(name: str, command: str) -> None:
            self.emit(GateStarted(name=name, command=command))

        def finished(result: GateResult) -> None:
            self.emit(_gate_event(result))

        sandbox = self.workspace.sandbox
        return await run_gates(
            self.config.gates,
            self.root,
            self.config.gate_options.timeout_s,
            env=sandbox.env(),
            sandbox=sandbox,
            on_start=started,
            on_finish=finished,
        )

    async def commit_story(self, story: Story, learnings: Sequence[str]) -> str:
        """Mark the story, log it, and make ONE commit holding the change and the bookkeeping."""
        head = await asyncio.to_thread(self.git.head_sha)
        files = [
            self._redact(d.path)
            for d in await asyncio.to_thread(self.git.diff)
            if d.path not in self._bookkeeping
        ]
        marker = {
            "phase": "committing",
            "story": story.key,
            "head": head,
            "progress_size": self.progress.size(),
        }
        await asyncio.to_thread(self._write_state, marker)
        clean_learnings = [self._redact(item) for item in learnings]
        message = self._redact(commit_message(self.config.role, story))
        title = self._redact(story.title)
        try:
            await asyncio.to_thread(self.store.update_story, story.key, {"passes": True})
            await asyncio.to_thread(
                self.progress.append_completed, story.key, title, clean_learnings, files
            )
            sha = await asyncio.to_thread(self.git.commit_all, message)
        except GitError:
            await asyncio.to_thread(self._roll_back_marking, marker)
            raise
        await asyncio.to_thread(self._write_state, {"phase": "iteration", "story": story.key})
        committed = await asyncio.to_thread(self.git.files_in_commit, sha)
        self.emit(Committed(story_id=story.key, sha=sha, message=message, files=tuple(committed)))
        self.emit(PrdChanged(source="engine"))
        return sha

    def _roll_back_marking(self, marker: dict[str, Any]) -> None:
        story_id = str(marker["story"])
        prd = self.store.load()
        current = prd.story(story_id)
        if current is not None and current.passes:
            self.store.update_story(story_id, {"passes": False})
        self.progress.truncate(int(marker["progress_size"]))
        self._write_state({"phase": "iteration", "story": story_id})

    # ----------------------------------------------------------------- escalation

    async def _ask_human(
        self, story: Story, question: str, tried: str, *, automatic: bool
    ) -> EscalationAnswer:
        question, tried = self._redact(question), self._redact(tried)
        await asyncio.to_thread(
            self.progress.append_blocker, story.key, story.title, tried, question
        )
        self.emit(
            Escalated(story_id=story.key, question=question, tried=tried, automatic=automatic)
        )
        self._set_state("waiting")
        try:
            answer = await self.supervisor.answer(
                EscalationRequest(story.key, story.title, question, tried, automatic)
            )
        finally:
            self._set_state("running")
        text = answer.text.strip() if answer.kind == "answer" else None
        if answer.kind != "stop":
            await asyncio.to_thread(
                self.progress.append_answer, self._redact(text) if text else None
            )
        self.emit(
            EscalationAnswered(
                story_id=story.key, answer=text or "", skipped=answer.kind != "answer"
            )
        )
        if answer.kind == "answer" and text:
            self.feedback.setdefault(story.key, []).append(f"Answer to '{question}': {text}")
        elif answer.kind == "skip":
            self.skipped.add(story.key)
        return answer

    # ----------------------------------------------------------------- cost

    def add_usage(self, story: Story, usage: Usage) -> None:
        cost = estimate_cost(self.config.model, usage, self.config.pricing)
        self.story_cost[story.key] = self.story_cost.get(story.key, 0.0) + cost
        self.run_cost += cost
        self.tokens += (
            usage.input_tokens
            + usage.output_tokens
            + usage.cache_creation_input_tokens
            + usage.cache_read_input_tokens
        )
        self.emit(
            UsageReported(
                story_id=story.key,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cache_creation_input_tokens=usage.cache_creation_input_tokens,
                cache_read_input_tokens=usage.cache_read_input_tokens,
                cost_usd=cost,
            )
        )
        limit = self.config.max_cost_usd
        if limit is not None and self.run_cost >= limit and not self._budget_spent:
            self._budget_spent = True
            self._notice(
                f"cost budget ${limit:.2f} spent; stopping at the next safe point", "warning"
            )

    # ----------------------------------------------------------------- crash recovery

    def _write_state(self, data: dict[str, Any]) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_name(f".state.{os.getpid()}.tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            json.dump({**data, "run_id": self.run_id, "ts": time.time()}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self.state_path)

    def _clear_state(self) -> None:
        self.state_path.unlink(missing_ok=True)

    def _recover(self) -> None:
        """Finish or undo what a killed run left half done (see the module docstring)."""
        try:
            state = json.loads(self.state_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable %s: %s", self.state_path, exc)
            self._clear_state()
            return
        story_id = str(state.get("story", ""))
        if state.get("phase") == "committing":
            landed = self.git.head_sha() != state.get("head") and (
                f"Task #{story_id}:" in self.git.head_message()
            )
            if landed:
                self._clear_state()
                return
            self._roll_back_marking(state)
        # an iteration was interrupted: keep its work as a patch, start clean
        recovered = self.root / ".ralph" / "runs" / str(state.get("run_id", "unknown"))
        self.git.save_patch(recovered / "patches" / f"interrupted-{_safe_name(story_id)}.patch")
        self.git.restore_to_head(keep=self._bookkeeping)
        self._clear_state()


class IterationControl:
    """The engine's side of one iteration, handed to the agent as its ``IterationHandle``."""

    def __init__(self, engine: Engine, story: Story) -> None:
        self._engine = engine
        self.story = story
        self.outcome: IterationOutcome | None = None
        self.message = ""
        self.gate_failures = 0
        self.stop_for_human = False

    @property
    def workspace(self) -> Workspace:
        return self._engine.workspace

    @property
    def finished(self) -> bool:
        return self.outcome is not None

    def emit(self, event: Event) -> None:
        self._engine.emit(event)

    async def checkpoint(self) -> None:
        await self._engine.wait_at_safe_point()
        if self._engine.stop_requested:
            raise StopRequested

    def report_usage(self, usage: Usage) -> None:
        self._engine.add_usage(self.story, usage)

    def _end(self, outcome: IterationOutcome, message: str = "") -> None:
        self.outcome, self.message = outcome, message

    async def run_quality_gates(self) -> ToolOutcome:
        results = await self._engine.run_gates()
        ok = all(r.passed for r in results)
        return ToolOutcome(_gate_report(results), is_error=not ok)

    async def escalate(self, question: str, tried: str) -> ToolOutcome:
        if self.finished:
            return ToolOutcome("The iteration has ended.", is_error=True, ends_iteration=True)
        answer = await self._engine._ask_human(self.story, question, tried, automatic=False)
        if answer.kind == "answer":
            return ToolOutcome(f"Answer from the human supervisor:\n{answer.text.strip()}")
        if answer.kind == "skip":
            self._end("skipped", "skipped by the supervisor")
            return ToolOutcome(
                "The supervisor skipped this story for this run. Stop now.", ends_iteration=True
            )
        self.stop_for_human = True
        self._end("stopped", "no human to answer the escalation")
        return ToolOutcome("No human is available to answer; the run stops.", ends_iteration=True)

    async def complete_task(self, summary: str, learnings: Sequence[str]) -> ToolOutcome:
        if self.finished:
            return ToolOutcome("The iteration has ended.", is_error=True, ends_iteration=True)
        engine = self._engine
        results = await engine.run_gates()
        if not all(r.passed for r in results):
            self.gate_failures += 1
            report = _gate_report(results)
            limit = engine.config.max_fix_attempts
            if self.gate_failures > limit:
                self._end("failed", f"quality gates still failing after {limit} fix attempts")
                return ToolOutcome(
                    f"Quality gates failed and the {limit} fix attempts are used up; "
                    f"the iteration ends without a commit.\n\n{report}",
                    is_error=True,
                    ends_iteration=True,
                )
            engine._notice(
                f"gates failed; fix attempt {self.gate_failures} of {limit} "
                f"for Task #{self.story.key}"
            )
            return ToolOutcome(
                f"Quality gates failed (fix attempt {self.gate_failures} of {limit}). "
                f"Fix the problems, then call complete_task again.\n\n{report}",
                is_error=True,
            )
        return await self._ask_approval(summary, learnings, results)

    async def _ask_approval(
        self, summary: str, learnings: Sequence[str], results: list[GateResult]
    ) -> ToolOutcome:
        engine = self._engine
        story = self.story
        diffstat = await asyncio.to_thread(engine.git.diffstat)
        message = commit_message(engine.config.role, story)
        engine.emit(
            ApprovalNeeded(
                story_id=story.key,
                title=story.title,
                commit_message=message,
                diffstat=diffstat,
                summary=summary,
            )
        )
        engine._set_state("waiting")
        try:
            decision = await engine.supervisor.approve(
                ApprovalRequest(
                    story_id=story.key,
                    title=story.title,
                    commit_message=message,
                    diffstat=diffstat,
                    summary=summary,
                    gates=tuple(_gate_event(r) for r in results),
                )
            )
        finally:
            engine._set_state("running")
        engine.emit(
            ApprovalDecided(story_id=story.key, decision=decision.kind, feedback=decision.feedback)
        )
        if decision.kind == "approve":
            try:
                sha = await engine.commit_story(story, learnings)
            except GitError as exc:
                engine._notice(f"commit failed: {exc}", "error")
                return ToolOutcome(
                    f"The commit failed, nothing was committed:\n{exc}\n"
                    "Fix the cause, then call complete_task again.",
                    is_error=True,
                )
            self._end("committed", f"committed {sha[:10]}")
            return ToolOutcome(
                f"Approved and committed as {sha[:10]}. The story is done; stop now.",
                ends_iteration=True,
            )
        if decision.kind == "reject":
            feedback = decision.feedback.strip() or "(no feedback given)"
            engine.feedback.setdefault(story.key, []).append(feedback)
            return ToolOutcome(
                "The human supervisor rejected the change. Their feedback:\n"
                f"{feedback}\nAddress it, then call complete_task again.",
                is_error=True,
            )
        self._end("discarded", "the supervisor discarded the change")
        return ToolOutcome(
            "The supervisor discarded the change; the iteration ends.",
            is_error=True,
            ends_iteration=True,
        )


def _gate_event(result: GateResult) -> GateFinished:
    return GateFinished(
        name=result.name,
        command=result.command,
        state=result.state,
        exit_code=result.exit_code,
        duration_s=result.duration_s,
        summary=result.summary,
        output=result.output,
    )


def _gate_report(results: Sequence[GateResult]) -> str:
    """One line per gate, then the (clipped) output of each gate that did not pass."""
    lines = [f"- {r.name} (`{r.command}`): {r.state}, {r.summary}" for r in results]
    for r in results:
        if r.passed:
            continue
        output = r.output
        if len(output) > GATE_OUTPUT_FOR_AGENT:
            output = "[... earlier output clipped ...]\n" + output[-GATE_OUTPUT_FOR_AGENT:]
        lines.append(f"\n## {r.name} output\n{output.rstrip()}")
    return "\n".join(lines)


def _safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:60] or "story"
