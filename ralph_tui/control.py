"""The engine's side of one iteration: the three tools whose meaning belongs to the engine.

``IterationControl`` is what an agent backend gets as its ``IterationHandle``. It decides what
``complete_task``, ``run_quality_gates`` and ``escalate`` mean (fix attempts, approval, the
iteration's outcome) and reaches the engine only through ``IterationHost``, a small public
interface, so the rules of an iteration read in one place and the engine's internals stay its own.
``RunHost`` is the part of that interface a worker's host (``executor.WorkerHost``) shares.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

from ralph_tui.errors import GitError, StopRequested
from ralph_tui.events import ApprovalNeeded, Event, GateFinished, IterationOutcome
from ralph_tui.exit_codes import ExitCode
from ralph_tui.gates import GateResult
from ralph_tui.iteration import (
    REJECTED_FOOTER,
    REJECTED_HEADER,
    Agent,
    IterationRequest,
    ToolOutcome,
    Usage,
)
from ralph_tui.pr_review import DropError, feedback_for_agent
from ralph_tui.prd.model import Story
from ralph_tui.review import flags_for_agent
from ralph_tui.safety.text import cap_text
from ralph_tui.safety.workspace import Workspace
from ralph_tui.supervisor import ApprovalDecision, ApprovalRequest, EscalationAnswer

AGENT_TEXT_MAX = 4000  # characters of a summary, a question, what was tried
LEARNING_MAX = 1000  # characters of one learning
MAX_LEARNINGS = 20
GATE_OUTPUT_FOR_AGENT = 6000  # characters of each failed gate's output sent back to the agent


class RunEnded(Exception):
    """The run ends with this exit code once the current iteration has been wound up."""

    def __init__(self, exit_code: int, reason: str) -> None:
        super().__init__(reason)
        self.exit_code = exit_code
        self.reason = reason

    @classmethod
    def waiting_for_human(cls) -> RunEnded:
        return cls(ExitCode.WAITING_FOR_HUMAN, "stopped waiting for a human (escalation)")


class MergeConflict(GitError):
    """An approved change that could not land as it is (a rebase conflict, a red gate on the
    rebased tree): it goes back to the agent and counts as a fix attempt."""


class RunHost(Protocol):
    """What running one story needs from the run, wherever the story runs: the base of the
    two hosts, ``IterationHost`` (the story in the checkout the engine gates and commits in)
    and ``executor.WorkerHost`` (the story in an executor's own checkout, merged by the
    engine). Safe points, cost, events and the human are the same for both."""

    @property
    def max_fix_attempts(self) -> int: ...

    @property
    def stop_requested(self) -> bool: ...

    def emit(self, event: Event) -> None: ...

    def notice(self, message: str, level: Literal["info", "warning", "error"] = "info") -> None: ...

    async def wait_at_safe_point(self) -> None: ...

    def add_usage(self, story: Story, usage: Usage) -> None: ...

    async def ask_human(
        self, story: Story, question: str, tried: str, *, automatic: bool
    ) -> EscalationAnswer: ...

    def add_feedback(self, story: Story, feedback: str) -> None: ...


class ForwardingHost:
    """A ``RunHost`` that hands every call to another one: the base of the adapters between
    the two hosts, which override only what they change (a worker's stop, the escalation
    lock) and add their own side."""

    def __init__(self, run: RunHost) -> None:
        self._run = run

    @property
    def max_fix_attempts(self) -> int:
        return self._run.max_fix_attempts

    @property
    def stop_requested(self) -> bool:
        return self._run.stop_requested

    def emit(self, event: Event) -> None:
        self._run.emit(event)

    def notice(self, message: str, level: Literal["info", "warning", "error"] = "info") -> None:
        self._run.notice(message, level)

    async def wait_at_safe_point(self) -> None:
        await self._run.wait_at_safe_point()

    def add_usage(self, story: Story, usage: Usage) -> None:
        self._run.add_usage(story, usage)

    async def ask_human(
        self, story: Story, question: str, tried: str, *, automatic: bool
    ) -> EscalationAnswer:
        return await self._run.ask_human(story, question, tried, automatic=automatic)

    def add_feedback(self, story: Story, feedback: str) -> None:
        self._run.add_feedback(story, feedback)


class IterationHost(RunHost, Protocol):
    """What ``IterationControl`` needs from the engine (``engine.SerialLoop`` implements it;
    a worker's executor adapts its ``WorkerHost`` to it): where the agent works, its gates,
    approval and the commit."""

    @property
    def workspace(self) -> Workspace: ...

    async def run_gates(self, story: Story | None = None) -> list[GateResult]: ...

    @property
    def approvals_unattended(self) -> bool:
        """``--approve auto`` with nobody to show a flagged change to (headless, not served)."""
        ...

    async def review(self, story: Story) -> list[str]:
        """The change's review flags (``ralph_tui.review``), one line each."""
        ...

    async def ask_approval(
        self, story: Story, summary: str, results: Sequence[GateResult], flags: Sequence[str]
    ) -> ApprovalDecision: ...

    async def commit_story(self, story: Story, learnings: Sequence[str]) -> str: ...

    async def apply_review(self, story: Story, decision: ApprovalDecision) -> ApprovalDecision:
        """Record the review of ``decision`` (comments, dropped parts: the journal, the
        progress entry) and, for an approval with drops, take them out of the change. Returns
        the decision with its comments anchored (the lines quoted from the diff shown).
        Raises ``pr_review.DropError`` when a part cannot be dropped."""
        ...


class IterationControl:
    """The engine's side of one iteration, handed to the agent as its ``IterationHandle``."""

    def __init__(self, host: IterationHost, story: Story) -> None:
        self._host = host
        self.story = story
        self.outcome: IterationOutcome | None = None
        self.message = ""
        self.gate_failures = 0
        self._flag_bounced = False  # a flagged change went back to the agent once already
        # set when the run must end after this iteration (no human to answer an escalation)
        self.run_ended: RunEnded | None = None

    @property
    def workspace(self) -> Workspace:
        return self._host.workspace

    @property
    def finished(self) -> bool:
        return self.outcome is not None

    def emit(self, event: Event) -> None:
        self._host.emit(event)

    async def checkpoint(self) -> None:
        await self._host.wait_at_safe_point()
        if self._host.stop_requested:
            raise StopRequested

    def report_usage(self, usage: Usage) -> None:
        self._host.add_usage(self.story, usage)

    def _end(self, outcome: IterationOutcome, message: str = "") -> None:
        self.outcome, self.message = outcome, message

    async def run_quality_gates(self) -> ToolOutcome:
        results = await self._host.run_gates(self.story)
        ok = all(r.passed for r in results)
        return ToolOutcome(gate_report(results), is_error=not ok)

    async def escalate(self, question: str, tried: str) -> ToolOutcome:
        question, tried = cap_text(question, AGENT_TEXT_MAX), cap_text(tried, AGENT_TEXT_MAX)
        if self.finished:
            return ToolOutcome("The iteration has ended.", is_error=True, ends_iteration=True)
        answer = await self._host.ask_human(self.story, question, tried, automatic=False)
        return self._answered(answer, is_error=False, why="no human to answer the escalation")

    def _answered(self, answer: EscalationAnswer, *, is_error: bool, why: str) -> ToolOutcome:
        """What the agent is told after a question to the human: the answer, a skip, or (no
        human there) the run stops after this iteration."""
        if answer.kind == "answer":
            return ToolOutcome(f"{answer.source}:\n{answer.text.strip()}", is_error=is_error)
        if answer.kind == "skip":
            self._end("skipped", "skipped by the supervisor")
            return ToolOutcome(
                "The supervisor skipped this story for this run. Stop now.", ends_iteration=True
            )
        self.run_ended = RunEnded.waiting_for_human()
        self._end("stopped", why)
        return ToolOutcome(f"{why[:1].upper()}{why[1:]}; the run stops.", ends_iteration=True)

    async def complete_task(self, summary: str, learnings: Sequence[str]) -> ToolOutcome:
        # what the agent says goes into the approval, the progress log and git: capped
        summary = cap_text(summary, AGENT_TEXT_MAX)
        kept = [cap_text(item, LEARNING_MAX) for item in learnings[:MAX_LEARNINGS]]
        if len(learnings) > MAX_LEARNINGS:
            kept.append(f"[... {len(learnings) - MAX_LEARNINGS} more learnings not kept]")
        learnings = kept
        if self.finished:
            return ToolOutcome("The iteration has ended.", is_error=True, ends_iteration=True)
        host = self._host
        results = await host.run_gates(self.story)
        if not all(r.passed for r in results):
            return self._fix_attempt(
                gate_report(results),
                failed="Quality gates failed",
                still="quality gates still failing",
                noticed="gates failed",
                retry="Quality gates failed ({attempt}). Fix the problems",
            )
        return await self._approval(summary, learnings, results)

    async def _approval(
        self, summary: str, learnings: Sequence[str], results: list[GateResult]
    ) -> ToolOutcome:
        host = self._host
        flags = await host.review(self.story)
        if flags and host.approvals_unattended:
            return await self._flagged_unattended(flags)
        decision = await host.ask_approval(self.story, summary, results, flags)
        if decision.comments or decision.drops:
            try:
                decision = await host.apply_review(self.story, decision)
            except DropError as exc:
                host.notice(f"Task #{self.story.key}: {exc}; nothing was dropped", "error")
                return await self._approval(summary, learnings, results)
        if decision.kind == "approve" and decision.drops:
            return await self._after_drop(summary, learnings, decision)
        if decision.kind == "approve":
            try:
                sha = await host.commit_story(self.story, learnings)
            except MergeConflict as exc:
                return self._merge_failed(str(exc))
            except GitError as exc:
                host.notice(f"commit failed: {exc}", "error")
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
            feedback = feedback_for_agent(decision.feedback, decision.comments)
            feedback = feedback or "(no feedback given)"
            host.add_feedback(self.story, feedback)
            return ToolOutcome(
                f"{REJECTED_HEADER}{feedback}{REJECTED_FOOTER}",
                is_error=True,
            )
        self._end("discarded", "the supervisor discarded the change")
        return ToolOutcome(
            "The supervisor discarded the change; the iteration ends.",
            is_error=True,
            ends_iteration=True,
        )

    async def _after_drop(
        self, summary: str, learnings: Sequence[str], decision: ApprovalDecision
    ) -> ToolOutcome:
        """The human left parts out: the gates run again on what remains and the human is
        asked again (the new tree, the new results) before anything is committed. Red gates
        go back to the agent as a fix attempt, with what was dropped."""
        host = self._host
        dropped = ", ".join(d.describe() for d in decision.drops)
        host.notice(f"Task #{self.story.key}: dropped {dropped}; running the gates again")
        results = await host.run_gates(self.story)
        if not all(r.passed for r in results):
            comments = feedback_for_agent("", decision.comments)
            return self._fix_attempt(
                f"The human supervisor dropped {dropped} from your change; what remains "
                f"fails the quality gates.\n{comments}\n\n{gate_report(results)}".replace(
                    "\n\n\n", "\n\n"
                ),
                failed="Quality gates failed after the reviewer's drop",
                still="quality gates still failing",
                noticed="gates failed after a drop",
                retry="Quality gates failed ({attempt}). Fix the problems",
            )
        return await self._approval(summary, learnings, results)

    async def _flagged_unattended(self, flags: Sequence[str]) -> ToolOutcome:
        """``--approve auto`` and no human to show a flagged change to: it is never committed.
        The first time it goes back to the agent with the reason; then the engine escalates
        (headless with nobody there, the run stops with the change saved)."""
        host = self._host
        listed = "\n".join(f"- {flag}" for flag in flags)
        if not self._flag_bounced:
            self._flag_bounced = True
            host.notice(
                f"Task #{self.story.key}: the change is flagged for review and nobody is here "
                f"to approve it; sent back to the agent:\n{listed}",
                "warning",
            )
            return ToolOutcome(flags_for_agent(flags), is_error=True)
        answer = await host.ask_human(
            self.story,
            question=(
                f"Task #{self.story.key}: the change still needs a human's review and "
                "--approve auto does not commit it. Approve it by hand (run with --approve ask "
                "or attach), or tell the agent what to do instead."
            ),
            tried=f"The change was sent back once with these flags:\n{listed}",
            automatic=True,
        )
        return self._answered(
            answer, is_error=True, why="a flagged change needs a human to approve it"
        )

    def _merge_failed(self, report: str) -> ToolOutcome:
        return self._fix_attempt(
            report,
            failed="The approved change could not be merged",
            still="the change still does not merge",
            noticed="merge needs a fix",
            retry="The approved change could not be merged onto the main branch ({attempt}). "
            "Fix it",
        )

    def _fix_attempt(
        self, report: str, *, failed: str, still: str, noticed: str, retry: str
    ) -> ToolOutcome:
        """One more failed try (red gates, or an approved change that does not merge): the
        report goes back to the agent until ``max_fix_attempts`` are used up, then the
        iteration ends without a commit. ``retry`` names the attempt as ``{attempt}``."""
        self.gate_failures += 1
        limit = self._host.max_fix_attempts
        if self.gate_failures > limit:
            self._end("failed", f"{still} after {limit} fix attempts")
            return ToolOutcome(
                f"{failed} and the {limit} fix attempts are used up; "
                f"the iteration ends without a commit.\n\n{report}",
                is_error=True,
                ends_iteration=True,
            )
        attempt = f"fix attempt {self.gate_failures} of {limit}"
        self._host.notice(f"{noticed}; {attempt} for Task #{self.story.key}")
        return ToolOutcome(
            retry.format(attempt=attempt) + f", then call complete_task again.\n\n{report}",
            is_error=True,
        )


def gate_event(result: GateResult) -> GateFinished:
    return GateFinished(
        name=result.name,
        command=result.command,
        state=result.state,
        exit_code=result.exit_code,
        duration_s=result.duration_s,
        summary=result.summary,
        output=result.output,
        criterion=result.criterion,
    )


def gate_report(results: Sequence[GateResult]) -> str:
    """One line per gate, then the (clipped) output of each gate that did not pass."""
    lines = [
        f"- {r.name} (`{r.command}`{f', checks: {r.criterion}' if r.criterion else ''}): "
        f"{r.state}, {r.summary}"
        for r in results
    ]
    for r in results:
        if r.passed:
            continue
        output = r.output
        if len(output) > GATE_OUTPUT_FOR_AGENT:
            output = "[... earlier output clipped ...]\n" + output[-GATE_OUTPUT_FOR_AGENT:]
        lines.append(f"\n## {r.name} output\n{output.rstrip()}")
    return "\n".join(lines)


def approval_request(
    story: Story,
    commit_message: str,
    summary: str,
    diffstat: str,
    results: Sequence[GateResult],
    worker: int = 0,
    flags: Sequence[str] = (),
) -> tuple[ApprovalNeeded, ApprovalRequest]:
    """The event that says a change waits for the human, and the question put to them: one
    shape for the single loop and the workers' queue."""
    event = ApprovalNeeded(
        story_id=story.key,
        title=story.title,
        commit_message=commit_message,
        diffstat=diffstat,
        summary=summary,
        flags=tuple(flags),
    )
    request = ApprovalRequest(
        story_id=story.key,
        title=story.title,
        commit_message=commit_message,
        diffstat=diffstat,
        summary=summary,
        gates=tuple(gate_event(r) for r in results),
        worker=worker,
        flags=tuple(flags),
    )
    return event, request


async def drive_agent(
    agent: Agent, request: IterationRequest, control: IterationControl
) -> tuple[IterationOutcome, str, RunEnded | None]:
    """Run the agent's conversation and say how the iteration ended: the engine's verdict when
    it ended it, else why the agent stopped. ``RunEnded`` is returned, not raised, so the
    caller winds the iteration up first; other errors propagate."""
    try:
        result = await agent.run_iteration(request, control)
    except StopRequested:
        return "stopped", "stopped at a safe point", None
    except RunEnded as exc:
        return "stopped", exc.reason, exc
    if control.outcome is not None:
        return control.outcome, control.message, None
    message = f"agent stopped without completing the story ({result.reason})"
    if result.message:
        message += f": {result.message}"
    return "failed", message, None
