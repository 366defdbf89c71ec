"""The fresh context each iteration starts from (SPEC section 1, step 3).

Every backend (Anthropic, Claude Code, any CLI) gets the same two texts, so the human can reason
about what the agent knew. The system prompt is stable across a run (good for prompt caching);
everything that changes per story lives in the user prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ralph_tui.persona import Persona
from ralph_tui.prd import Story

LOOP_RULES = """\
# How this loop works
You are supervised by ralph-tui. Each iteration you get ONE story; implement only that story.
- Work with the tools: str_replace_based_edit_tool for files, bash for commands. Paths are
  relative to the repository root; .git/ and .ralph/ are off limits.
- Do not commit, do not edit the PRD or the progress log: ralph-tui does that bookkeeping.
- run_quality_gates runs the project's checks (tests, types, lint) whenever you want.
- When the story is done, call complete_task with a short summary and your learnings (facts a
  later iteration should know). ralph-tui then runs the gates itself: if any fail you get the
  output back and must fix it; if they pass a human reviews the change and may send feedback.
- Call escalate only for a real blocker a human must resolve (missing access, contradictory
  requirements); say what you tried. Its result is the human's answer."""


@dataclass(frozen=True)
class StoryContext:
    git_log: str = ""
    progress_tail: str = ""
    agents_md: str = ""
    feedback: Sequence[str] = ()


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
    if story.notes.strip():
        parts.append(f"## Notes\n{story.notes.strip()}")
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
