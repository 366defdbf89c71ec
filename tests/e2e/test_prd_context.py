"""A Markdown PRD's every section reaches the agent (issue 29): kept by ``import`` in the PRD
file and given with each story, through the installed CLI and the built-in agent."""

from __future__ import annotations

import json

from tests.e2e.support import Site, assert_clean
from tests.support.repo import git

MARKDOWN = """\
# PRD: Task Priority System

## Introduction

Add priority levels to tasks so users can focus on what matters most.

## Goals

- Allow assigning priority (high/medium/low) to any task

## User Stories

### US-001: Add priority field to database
**Description:** As a developer, I need to store task priority.

**Acceptance Criteria:**
- [ ] Add priority column: 'high' | 'medium' | 'low'

## Functional Requirements

- FR-1: default priority is 'medium'

## Non-Goals

- No priority-based notifications

## Technical Considerations

- Reuse the badge component

## Success Metrics

- Priority changes in under 2 clicks

## Open Questions

- Should priority affect ordering within a column?
"""

SECTIONS = [
    "## Goals\n- Allow assigning priority (high/medium/low) to any task",
    "## Functional Requirements\n- FR-1: default priority is 'medium'",
    "## Non-Goals\n- No priority-based notifications",
    "## Technical Considerations\n- Reuse the badge component",
    "## Success Metrics\n- Priority changes in under 2 clicks",
    "## Open Questions\n- Should priority affect ordering within a column?",
]


def test_every_section_of_a_markdown_prd_is_kept_and_given_to_the_agent(site: Site) -> None:
    root = site.repo(1)
    (root / "prd-task-priority.md").write_text(MARKDOWN, encoding="utf-8")
    imported = site.ralph("import", "prd-task-priority.md", "--force")
    assert imported.returncode == 0, imported.stderr
    assert (
        "note: kept for the agent, with every story: Goals, Functional Requirements, Non-Goals, "
        "Technical Considerations, Success Metrics, Open Questions" in imported.stdout
    )
    prd = json.loads((root / "tasks/backend_prd.json").read_text(encoding="utf-8"))
    assert prd["description"] == (
        "Add priority levels to tasks so users can focus on what matters most."
    )
    assert prd["context"] == "\n\n".join(SECTIONS)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "the PRD")

    done = site.ralph("run", "--headless", "--approve", "auto", "--agent", "anthropic")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    first = site.api.requests[0].body
    prompt = first["messages"][0]["content"][0]["text"]
    assert "# Task #US-001: Add priority field to database" in prompt
    about = prompt[prompt.index("## The PRD this story is part of\n") :]
    assert about.startswith(
        "## The PRD this story is part of\n"
        "Add priority levels to tasks so users can focus on what matters most.\n\n## Goals\n"
    )
    for section in SECTIONS:
        assert section in about
    assert_clean(site)
