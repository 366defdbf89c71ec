"""Fixtures every attack test shares."""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def outside_tmp(request: pytest.FixtureRequest) -> Iterator[Path]:
    """A folder outside /tmp, as a user's repository would be (the sandbox's private /tmp must
    not be what hides things); named after the test module, removed afterwards."""
    kind = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_").removesuffix("_attacks")
    base = Path("/var/tmp") / f"ralph-{kind}-{secrets.token_hex(4)}"
    base.mkdir(mode=0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)
