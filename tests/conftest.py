from __future__ import annotations

import os
from pathlib import Path

import pytest

from ralph_tui.safety import credentials
from tests.support.repo import make_repo

pytest_plugins = ["tests.support.no_skips_in_ci"]

# Commits made by tests (and by ralph-tui subprocesses they start) need an identity that does
# not depend on the machine's global git config.
os.environ.setdefault("GIT_AUTHOR_NAME", "ralph-tui tests")
os.environ.setdefault("GIT_AUTHOR_EMAIL", "tests@ralph-tui.invalid")
os.environ.setdefault("GIT_COMMITTER_NAME", "ralph-tui tests")
os.environ.setdefault("GIT_COMMITTER_EMAIL", "tests@ralph-tui.invalid")
os.environ.pop("ANTHROPIC_API_KEY", None)


@pytest.fixture(autouse=True)
def _forget_withheld_secrets() -> object:
    """An engine withholds the secrets a test set; the next test must not inherit them."""
    yield
    credentials.reset()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repo with a one-story PRD, a progress log, ralph.toml (scripted agent) and a commit."""
    return make_repo(tmp_path / "ws")


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """An empty workspace folder (no git): for the tools and agents that need only files."""
    root = tmp_path / "ws"
    root.mkdir()
    return root
