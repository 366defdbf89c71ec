"""Agent tools of SPEC section 5: definitions for the API, and the confined implementations."""

from ralph_tui.tools.definitions import TOOL_DEFINITIONS, TOOL_NAMES
from ralph_tui.tools.editor import run_editor
from ralph_tui.tools.shell import clip, run_bash
from ralph_tui.tools.toolbox import ToolBox

__all__ = ["TOOL_DEFINITIONS", "TOOL_NAMES", "ToolBox", "clip", "run_bash", "run_editor"]
