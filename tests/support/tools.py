"""Tests that need a program pip cannot install: one marker, one reason line where it is missing.

``.ci/run`` installs every one of them, and in CI a skip is a failure
(``tests/support/no_skips_in_ci.py``): a missing tool there is a broken CI, not a pass.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"  # Debian's: browsers that download their own build fail here

_WHY = {
    "bwrap": "bubblewrap, the sandbox",
    "tmux": "tmux, a real terminal for the TUI",
    "chromium": "Debian's chromium, a real browser for the web face",
}


def have_tool(name: str) -> bool:
    if name == "chromium":
        return Path(CHROMIUM).exists()
    return shutil.which(name) is not None


def requires_tool(name: str) -> pytest.MarkDecorator:
    """Skip, with one line saying what is missing and who installs it, where ``name`` is not."""
    what = _WHY.get(name, name)
    return pytest.mark.skipif(
        not have_tool(name), reason=f"needs {what}: `{name}` is not installed (.ci/run installs it)"
    )


requires_bwrap = requires_tool("bwrap")
requires_tmux = requires_tool("tmux")
requires_chromium = requires_tool("chromium")
