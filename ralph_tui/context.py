"""The fresh context each iteration starts from (SPEC section 1, step 3).

Every backend (Anthropic, Claude Code, any CLI) gets the same two texts, so the human can reason
about what the agent knew; each backend appends the one section that differs, its tools
(``RALPH_TOOL_RULES`` here, Claude Code's and the command CLI's in their modules). The system
prompt is stable across a run (good for prompt caching); everything that changes per story
lives in the user prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ralph_tui.persona import Persona
from ralph_tui.prd.model import Story

LOOP_RULES = """\
# How this loop works
You are supervised by ralph-tui. Each iteration you get ONE story; implement only that story.
These rules replace any commit, PRD, progress-log or loop steps given above.
- Paths are relative to the repository root; .git/ and .ralph/ are off limits.
- Do not commit, do not edit the PRD or the progress log: ralph-tui does that bookkeeping.
- When the story is done, say so in the way the tools section below describes, with a short
  summary and your learnings (facts a later iteration should know). ralph-tui then runs the
  project's quality gates itself: if any fail you get the output back and must fix it; if they
  pass a human reviews the change and may send feedback.
- Ask the human only about a real blocker (missing access, contradictory requirements); say
  what you tried."""

# The backends differ in their tools, so each adds its own section after LOOP_RULES (the rules
# above name no tool, and no backend contradicts them). This one is for the backends that use
# ralph-tui's own tools: the Anthropic API agent (and the scripted agent that mimics it).
RALPH_TOOL_RULES = """\
# Tools in this session
- str_replace_based_edit_tool for files, bash for commands.
- run_quality_gates runs the project's checks (tests, types, lint) whenever you want.
- complete_task, with the summary and learnings, when the story is done.
- escalate for a blocker; its result is the human's answer."""


@dataclass(frozen=True)
class StoryContext:
    git_log: str = ""
    progress_tail: str = ""
    agents_md: str = ""
    feedback: Sequence[str] = ()
    prd_about: str = ""  # the PRD's description and context: what the story is part of


def build_system_prompt(persona: Persona) -> str:
    return f"{persona.body.strip()}\n\n{LOOP_RULES}"


def build_user_prompt(story: Story, ctx: StoryContext) -> str:
    parts = [f"# Task #{story.key}: {story.title}"]
    if story.description.strip():
        parts.append(story.description.strip())
    if story.criteria:
        parts.append("## Acceptance criteria\n" + "\n".join(f"- {c}" for c in story.criteria))
    commands = story.commands()
    if commands:
        parts.append(
            "## Checks ralph-tui runs as gates for this story\n"
            + "\n".join(f"- `{c.command}` (checks: {c.criterion})" for c in commands)
        )
    allowed, forbidden = story.path_rules
    if allowed or forbidden:
        rules = [f"- Change only files under: {', '.join(allowed)}"] if allowed else []
        rules += [f"- Do not change: {', '.join(forbidden)}"] if forbidden else []
        parts.append("## Paths for this story\n" + "\n".join(rules))
    if story.notes.strip():
        parts.append(f"## Notes\n{story.notes.strip()}")
    if ctx.prd_about.strip():
        parts.append(f"## The PRD this story is part of\n{ctx.prd_about.strip()}")
    if ctx.feedback:
        parts.append(
            "## Feedback from the human supervisor on earlier attempts at this story\n"
            + "\n".join(f"- {f}" for f in ctx.feedback)
        )
    if ctx.git_log.strip():
        parts.append(f"## Recent git history\n{ctx.git_log.strip()}")
    if ctx.progress_tail.strip():
        parts.append(f"## Progress log (latest entries)\n{ctx.progress_tail.strip()}")
    if ctx.agents_md.strip():
        parts.append(f"## Project instructions (AGENTS.md / CLAUDE.md)\n{ctx.agents_md.strip()}")
    return "\n\n".join(parts) + "\n"
