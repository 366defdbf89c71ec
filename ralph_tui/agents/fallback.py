"""``fallback = [...]``: when the agent is rate-limited, the iteration goes on with the next one.

A backend says it is limited by raising ``AgentRateLimited`` once its own retries are spent: the
Anthropic agent on HTTP 429/529 (``retry-after`` and the ``anthropic-ratelimit-*-reset`` headers
say when it resets), a CLI agent (``command``, ``claude-code``) on a usage-limit message and a
failed exit (``usage_limit`` reads the reset time out of the message). Without fallback agents
that error stops the run, as before.

``FallbackAgent`` wraps the agents in order (the primary first) and is itself the run's agent:

- each iteration starts on the first agent whose limit has reset, so the primary is tried again
  as soon as its reset time has passed (an ``AgentSwitched`` event names the agent);
- a limited agent hands the iteration to the next available one: the same story, the working
  tree as the limited agent left it, and a note in the prompt saying what happened with the
  change so far as a diff (``handoff_note``); the engine's side of the iteration (fix attempts,
  approval) carries on unchanged, as the same ``IterationHandle`` is passed on;
- when every agent is limited the run waits for the earliest reset (an ``AgentsLimited`` event,
  shown as a countdown; pause and stop still work, at every tick) instead of failing the story.

Usage each agent reports is stamped with its name and model, so the cost is priced by the model
that spent it and the journal and the summary say which agent spent what. The clock and the
sleep are injectable: tests run hours of waiting without sleeping.

Parallel workers each have their own agents; their wrappers share one table of limits
(``follow``), so a limit one worker meets holds for the others. Ray nodes keep their own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ralph_tui.config import RalphConfig, fallback_entry
from ralph_tui.errors import AgentRateLimited, GitError
from ralph_tui.events import AgentsLimited, AgentSwitched, Event, Notice
from ralph_tui.git.repo import GitRepo
from ralph_tui.iteration import (
    Agent,
    AgentOutcome,
    IterationHandle,
    IterationRequest,
    ToolOutcome,
    Usage,
)
from ralph_tui.safety.workspace import Workspace

log = logging.getLogger(__name__)

# when a limited agent does not say when it resets: try it again after this long
DEFAULT_RESET_S = 300.0
# while every agent is limited, the wait checks for pause and stop this often
WAIT_TICK_S = 1.0
HANDOFF_DIFF_CHARS = 40_000  # the change so far, as given to the next agent
LIMIT_LINES = 3  # a CLI's last non-empty lines searched for its usage-limit message

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


# ---- reading a CLI's usage-limit message -------------------------------------------------------

_LIMIT = re.compile(
    r"usage limit|rate.?limit|limit reached|hit your (?:\w+ )?limit|quota exceeded|"
    r"exceeded your (?:current )?quota|too many requests|resource.?exhausted",
    re.IGNORECASE,
)
# Claude Code's own form: "Claude AI usage limit reached|1767225600" (the reset, epoch seconds)
_EPOCH = re.compile(r"limit reached\s*\|\s*(\d{9,11})", re.IGNORECASE)
_UNIT = r"(?:days?|d|hours?|hrs?|h|minutes?|mins?|m|seconds?|secs?|s)\b"
_RELATIVE = re.compile(
    rf"(?:try again|retry|resets?|available again|wait)\s+(?:in|after)\s+"
    rf"((?:\d+(?:\.\d+)?\s*{_UNIT}[\s,]*(?:and\s+)?)+)",
    re.IGNORECASE,
)
_AMOUNT = re.compile(rf"(\d+(?:\.\d+)?)\s*({_UNIT})", re.IGNORECASE)
# "resets 3pm", "resets at 14:30", "resets 3:30pm (Europe/London)"
_CLOCK = re.compile(
    r"resets?\s+(?:at\s+)?(\d{1,2})(?::(\d{2}))?\s*([ap]m)?(?:\s*\(([A-Za-z_]+(?:/[A-Za-z_+-]+)*)\))?",
    re.IGNORECASE,
)
_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


def usage_limit(
    lines: Sequence[str], now: float, local: tzinfo | None = None
) -> AgentRateLimited | None:
    """The usage-limit or rate-limit message among a CLI's last lines, as the error a backend
    raises (its reset time read from the message when it gives one), or None. Only the last
    few lines count: the agent's own work may print "rate limit" long before a crash.

    ``now`` is epoch seconds; a clock time without a zone ("resets 3pm") is in ``local`` (the
    machine's zone by default), the next such time after ``now``.
    """
    last = [line for line in lines if line.strip()][-LIMIT_LINES:]
    for line in reversed(last):
        if not _LIMIT.search(line):
            continue
        message = line.strip()
        if match := _EPOCH.search(line):
            return AgentRateLimited(message, reset_at=float(match.group(1)))
        if match := _RELATIVE.search(line):
            seconds = sum(
                float(amount) * _SECONDS[unit[0].lower()]
                for amount, unit in _AMOUNT.findall(match.group(1))
            )
            return AgentRateLimited(message, retry_after_s=seconds)
        if (match := _CLOCK.search(line)) and (match.group(2) or match.group(3)):
            reset = _next_clock_time(match, now, local)
            if reset is not None:
                return AgentRateLimited(message, reset_at=reset)
        return AgentRateLimited(message)
    return None


def _next_clock_time(match: re.Match[str], now: float, local: tzinfo | None) -> float | None:
    hour, minute = int(match.group(1)), int(match.group(2) or 0)
    half = (match.group(3) or "").lower()
    if half:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if half == "pm" else 0)
    if hour > 23 or minute > 59:
        return None
    zone: tzinfo | None = local
    if match.group(4):
        try:
            zone = ZoneInfo(match.group(4))
        except (ZoneInfoNotFoundError, ValueError):
            log.debug("unknown time zone %r in a usage-limit message", match.group(4))
    current = datetime.fromtimestamp(now, zone).astimezone(zone)
    reset = current.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if reset <= current:
        reset += timedelta(days=1)
    return reset.timestamp()


def format_wait(seconds: float) -> str:
    """``1h02m``, ``4m05s``, ``12s``: how long until a reset, for notices and the status line."""
    whole = max(0, int(seconds + 0.999))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


# ---- the wrapper -------------------------------------------------------------------------------


@dataclass
class FallbackSlot:
    """One agent of the list: what it is called in events and the model its usage is priced
    by (until when it is limited is in ``FallbackAgent.limits``, by label)."""

    label: str
    agent: Agent
    model: str | None = None


class _Stamped:
    """The engine's ``IterationHandle`` for one agent of the list: usage is stamped with the
    agent's label and model; everything else is the engine's own."""

    def __init__(self, inner: IterationHandle, slot: FallbackSlot) -> None:
        self._inner = inner
        self._slot = slot

    @property
    def workspace(self) -> Workspace:
        return self._inner.workspace

    @property
    def finished(self) -> bool:
        return self._inner.finished

    def emit(self, event: Event) -> None:
        self._inner.emit(event)

    async def checkpoint(self) -> None:
        await self._inner.checkpoint()

    def report_usage(self, usage: Usage) -> None:
        model = usage.model or self._slot.model
        self._inner.report_usage(dataclasses.replace(usage, agent=self._slot.label, model=model))

    async def run_quality_gates(self) -> ToolOutcome:
        return await self._inner.run_quality_gates()

    async def escalate(self, question: str, tried: str) -> ToolOutcome:
        return await self._inner.escalate(question, tried)

    async def complete_task(self, summary: str, learnings: Sequence[str]) -> ToolOutcome:
        return await self._inner.complete_task(summary, learnings)


class FallbackAgent:
    """The run's agent when ``fallback`` is set: see the module docstring."""

    def __init__(
        self,
        slots: Sequence[FallbackSlot],
        *,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        tick_s: float = WAIT_TICK_S,
    ) -> None:
        if not slots:
            raise ValueError("a fallback agent needs at least one agent")
        self.slots = list(slots)
        # label -> until when (epoch seconds, by ``clock``) the agent is known to be limited
        self.limits: dict[str, float] = {}
        self.clock = clock
        self.sleep = sleep
        self.tick_s = tick_s
        rest = ", ".join(s.label for s in self.slots[1:])
        self.name = f"{self.slots[0].label} (fallback: {rest})" if rest else self.slots[0].label

    @classmethod
    def from_config(
        cls,
        config: RalphConfig,
        workspace: Path,
        create: Callable[[RalphConfig, Path], Agent],
        *,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> FallbackAgent:
        """The primary (``agent``, ``model``) and each ``fallback`` entry, made by ``create``
        from the configuration with that entry's agent and model; a repeated entry is dropped."""
        primary = config.model_copy(update={"fallback": []})
        slots = [FallbackSlot(config.agent, create(primary, workspace), config.model)]
        for entry in config.fallback:
            name, model = fallback_entry(entry)
            label = f"{name}:{model}" if model else name
            same_as_primary = name == config.agent and (model or config.model) == config.model
            if label in {s.label for s in slots} or same_as_primary:
                continue
            own = primary.model_copy(update={"agent": name, "model": model or config.model})
            slots.append(FallbackSlot(label, create(own, workspace), own.model))
        return cls(slots, clock=clock, sleep=sleep)

    def follow(self, leader: FallbackAgent) -> None:
        """Share ``leader``'s limits, clock and sleep: parallel workers each have their own
        agents, but a limit one of them meets holds for all (``parallel._agent_for``)."""
        self.limits = leader.limits
        self.clock, self.sleep = leader.clock, leader.sleep

    def limited_until(self, slot: FallbackSlot) -> float:
        return self.limits.get(slot.label, 0.0)

    async def aclose(self) -> None:
        for slot in self.slots:
            try:
                await slot.agent.aclose()
            except Exception:  # one agent failing to close must not leave the others open
                log.warning("closing the %s agent failed", slot.label, exc_info=True)

    async def run_iteration(
        self, request: IterationRequest, tools: IterationHandle
    ) -> AgentOutcome:
        story = request.story.key
        previous, reason = "", ""
        handed: list[str] = []  # what happened to the agents before this one, this iteration
        while True:
            slot = await self._available(tools, story)
            if not previous and slot is not self.slots[0]:
                reason = self._why_not_primary()
            tools.emit(
                AgentSwitched(story_id=story, agent=slot.label, previous=previous, reason=reason)
            )
            if handed:
                diff = await asyncio.to_thread(changes_so_far, tools.workspace.root)
                prompt = request.user_prompt.rstrip() + "\n\n" + handoff_note(handed, diff)
                current = dataclasses.replace(request, user_prompt=prompt)
            else:
                current = request
            try:
                return await slot.agent.run_iteration(current, _Stamped(tools, slot))
            except AgentRateLimited as exc:
                if tools.finished:  # limited after the engine ended the iteration: nothing lost
                    return AgentOutcome("finished")
                self.limits[slot.label] = self._reset_of(exc)
                wait = format_wait(self.limits[slot.label] - self.clock())
                previous = slot.label
                reason = f"{slot.label} is rate-limited ({exc}); it resets in {wait}"
                handed.append(f"{slot.label}: {exc} (it resets in {wait})")
                tools.emit(Notice(level="warning", message=reason))

    def _reset_of(self, exc: AgentRateLimited) -> float:
        now = self.clock()
        if exc.reset_at is not None and exc.reset_at > now:
            return exc.reset_at
        if exc.retry_after_s is not None and exc.retry_after_s > 0:
            return now + exc.retry_after_s
        return now + DEFAULT_RESET_S

    def _why_not_primary(self) -> str:
        primary = self.slots[0]
        wait = format_wait(self.limited_until(primary) - self.clock())
        return f"{primary.label} is rate-limited for {wait} more"

    async def _available(self, tools: IterationHandle, story: str) -> FallbackSlot:
        """The first agent whose limit has reset; when none, the run waits for the earliest
        reset (at a safe point every tick: pause and stop work meanwhile)."""
        while True:
            now = self.clock()
            for slot in self.slots:
                if self.limited_until(slot) <= now:
                    return slot
            first = min(self.slots, key=self.limited_until)
            wait = self.limited_until(first) - now
            message = (
                f"every agent is rate-limited; waiting {format_wait(wait)} for {first.label} "
                "to reset, then the story goes on"
            )
            tools.emit(
                AgentsLimited(
                    story_id=story, wait_s=wait, resume_agent=first.label, message=message
                )
            )
            tools.emit(Notice(level="warning", message=message))
            while (remaining := self.limited_until(first) - self.clock()) > 0:
                await tools.checkpoint()
                await self.sleep(min(remaining, self.tick_s))
            await tools.checkpoint()


def changes_so_far(root: Path) -> str:
    """The working tree against HEAD as a patch (new files included), for the next agent."""
    try:
        patch = GitRepo.open(root).diff_patch()
    except GitError as exc:
        return f"(the change could not be read: {exc})"
    if len(patch) > HANDOFF_DIFF_CHARS:
        cut = len(patch) - HANDOFF_DIFF_CHARS
        patch = patch[:HANDOFF_DIFF_CHARS] + f"\n[... {cut} more characters of the diff]\n"
    return patch


def handoff_note(handed: Sequence[str], diff: str) -> str:
    """What the next agent is told: who stopped and why, and the change it inherits."""
    stopped = "\n".join(f"- {line}" for line in handed)
    change = (
        f"Their change so far is in the working tree, uncommitted; here it is against HEAD:\n\n"
        f"```diff\n{diff.rstrip()}\n```"
        if diff.strip()
        else "They left no change in the working tree."
    )
    return (
        "# Handed over mid-iteration\n"
        "[ralph-tui] This iteration of the story began on another agent, which hit its rate "
        f"limit and could not go on:\n{stopped}\n\n{change}\n\n"
        "Continue the same story from there: check what is already done, keep what is right, "
        "fix what is not, and finish it as usual."
    )
