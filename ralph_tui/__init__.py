"""ralph-tui: run and supervise an autonomous coding agent working through a PRD."""

__version__ = "0.1.0"
