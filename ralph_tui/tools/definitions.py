"""The five tools of SPEC section 5, as Anthropic Messages API tool params.

Names and input shapes are fixed (other agents and recorded transcripts depend on them). The
descriptions are sent on every turn, so they say only what the model cannot guess.
"""

from __future__ import annotations

from typing import Any

EDITOR = "str_replace_based_edit_tool"
BASH = "bash"
RUN_QUALITY_GATES = "run_quality_gates"
ESCALATE = "escalate"
COMPLETE_TASK = "complete_task"

TOOL_NAMES = (EDITOR, BASH, RUN_QUALITY_GATES, ESCALATE, COMPLETE_TASK)

TOOL_DEFINITIONS: list[dict[str, Any]] = [
    {
        "name": EDITOR,
        "description": (
            "View, create and edit files. Paths are relative to the repository root.\n"
            "view: a file with line numbers (view_range [start, end], end -1 = last line), "
            "or a directory listing.\n"
            "create: write file_text (overwrites).\n"
            "str_replace: replace old_str, which must occur exactly once, with new_str.\n"
            "insert: insert insert_text after line insert_line (0 = top)."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "command": {"type": "string", "enum": ["view", "create", "str_replace", "insert"]},
                "path": {"type": "string"},
                "file_text": {"type": "string"},
                "old_str": {"type": "string"},
                "new_str": {"type": "string"},
                "insert_line": {"type": "integer"},
                "insert_text": {"type": "string"},
                "view_range": {"type": "array", "items": {"type": "integer"}},
            },
            "required": ["command", "path"],
        },
    },
    {
        "name": BASH,
        "description": (
            "Run a shell command in the repository root; returns its output (long output is "
            "clipped in the middle) and exit code. Each command runs in a fresh shell: "
            "cd and variables do not carry over. No stdin; a timeout applies."
        ),
        "input_schema": {
            "type": "object",
            "properties": {"command": {"type": "string"}, "restart": {"type": "boolean"}},
        },
    },
    {
        "name": RUN_QUALITY_GATES,
        "description": "Run the project's quality gates (tests, types, lint) now.",
        "input_schema": {"type": "object", "properties": {}},
    },
    {
        "name": ESCALATE,
        "description": (
            "Ask the human for help with a real blocker. Waits for the answer, which is the result."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "question": {"type": "string"},
                "tried": {"type": "string", "description": "what you already tried"},
            },
            "required": ["question", "tried"],
        },
    },
    {
        "name": COMPLETE_TASK,
        "description": (
            "Claim the story is done. The gates run; failures come back for you to fix; "
            "if they pass a human reviews the change."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "summary": {"type": "string"},
                "learnings": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "facts a later iteration should know",
                },
            },
            "required": ["summary", "learnings"],
        },
    },
]
