"""Drafting a PRD from an idea (``ralph-tui prd "..."``) with the configured Anthropic model.

The request goes through ``AnthropicAgent.ask``: the same client construction (API key, base
URL), SDK retries and mid-stream retries as the agent, and the cost is estimated with the same
price table. The answer must pass the same validation as a PRD on disk; an invalid answer is
sent back with the problem, at most twice. The PRD is written for the human to review (``ralph-tui
status`` shows it); nothing runs.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ralph_tui.agents.anthropic_agent import AnthropicAgent
from ralph_tui.config import RalphConfig
from ralph_tui.errors import UsageError
from ralph_tui.events import Event, Notice
from ralph_tui.prd.format import PrdError, validate_prd, write_new
from ralph_tui.prd.importers import write_atomic
from ralph_tui.prd.model import Prd
from ralph_tui.pricing import estimate_cost

#: how many times an invalid answer is sent back for another try
MAX_REASKS = 2
MAX_IDEA_CHARS = 20_000

SYSTEM = """\
You write PRDs (product requirement documents) for ralph-tui, which runs an autonomous coding \
agent over them one user story at a time, one commit per story.

Answer with ONE JSON object and nothing else (no prose, no Markdown fence), of this shape:
{"project": "...", "branchName": "ralph/<kebab-name>", "description": "...",
 "userStories": [{"id": "US-001", "title": "...", "description": "As a <user>, I want ... so \
that ...", "acceptanceCriteria": ["...", "Typecheck passes"], "priority": 1, "passes": false, \
"notes": ""}]}

Rules: ids "US-001", "US-002", ... unique; every story small enough for one iteration of an \
agent (one focused change); order by dependency (schema and models first, then logic, then \
interfaces) and give priority numbers in that order (1 = first); each criterion concrete and \
checkable (a test, a command, an observable behaviour); "passes" is false for every story. \
A story may list "dependsOn": ["US-001"] when it cannot start before another.
"""


@dataclass(frozen=True)
class Drafted:
    prd: Prd
    attempts: int
    cost_usd: float


def extract_json(text: str) -> Any:
    """The JSON document in an answer: the whole text, else a fenced block, else the outermost
    braces. Raises ValueError with a short reason."""
    stripped = text.strip()
    candidates = [stripped] if stripped[:1] in ("{", "[") else []
    fence = re.search(r"```(?:json)?\s*\n(.*?)```", text, re.DOTALL)
    if fence:
        candidates.append(fence.group(1).strip())
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    problem = "the answer holds no JSON object"
    for candidate in candidates:
        if not candidate:
            continue
        try:
            return json.loads(candidate)
        except json.JSONDecodeError as e:
            problem = f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"
        except (RecursionError, ValueError):
            problem = "JSON too deeply nested or with a number too long"
    raise ValueError(problem)


async def draft_prd(
    idea: str,
    config: RalphConfig,
    target: Path,
    *,
    force: bool = False,
    agent: AnthropicAgent | None = None,
    on_event: Callable[[Event], None] | None = None,
) -> Drafted:
    """Ask the model for a PRD, validate it, write it to `target`; raise UsageError otherwise."""
    idea = idea.strip()
    if not idea:
        raise UsageError('prd: the idea is empty (ralph-tui prd "what to build ...")')
    if len(idea) > MAX_IDEA_CHARS:
        raise UsageError(f"prd: the idea is too long ({len(idea)} characters)")
    if not force and await asyncio.to_thread(target.exists):
        raise UsageError(f"{target}: a PRD is already there (use --force to replace it)")
    owned = agent is None
    client = agent or AnthropicAgent(config)
    emit = on_event or _print_notices(sys.stderr)
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": f"Write the PRD for this idea:\n\n{idea}"}
    ]
    cost = 0.0
    problem = ""
    try:
        for attempt in range(1, MAX_REASKS + 2):
            text, usage = await client.ask(SYSTEM, messages, emit)
            cost += estimate_cost(config.model, usage, config.pricing)
            try:
                doc = extract_json(text)
                if isinstance(doc, dict):
                    for story in doc.get("userStories") or []:
                        if isinstance(story, dict):
                            story["passes"] = False  # a draft has nothing done yet
                prd = validate_prd(doc, target)
                if not prd.userStories:
                    raise ValueError("the PRD has no user stories")
            except (ValueError, PrdError) as e:
                problem = str(e).replace(f"{target}: ", "").replace(f"{target}:", "line ")
                messages.append({"role": "assistant", "content": text.strip() or "(empty)"})
                messages.append(
                    {
                        "role": "user",
                        "content": f"That answer is not a valid PRD: {problem}. "
                        "Answer again with the whole corrected JSON object only, kept compact "
                        "(short descriptions) so it is not cut off.",
                    }
                )
                continue
            await asyncio.to_thread(write_atomic, target, write_new(doc))
            return Drafted(prd, attempt, cost)
    finally:
        if owned:
            await client.aclose()
    raise UsageError(
        f"{target}: not written: the model's answer was not a valid PRD after "
        f"{MAX_REASKS + 1} tries ({problem}); cost ${cost:.4f}"
    )


def _print_notices(out: TextIO) -> Callable[[Event], None]:
    def emit(event: Event) -> None:
        if isinstance(event, Notice):
            print(f"ralph-tui: {event.level}: {event.message}", file=out)

    return emit
