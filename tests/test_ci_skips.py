"""In CI a skip is a failure (tests/support/no_skips_in_ci.py); elsewhere it stays a skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = """
import pytest

def test_skips():
    pytest.skip("no frobnicator here")

@pytest.mark.xfail(reason="known", strict=True)
def test_expected_failure():
    assert False

def test_passes():
    pass
"""


@pytest.mark.parametrize(("ci", "code", "summary"), [("true", 1, "1 failed"), ("", 0, "1 skipped")])
def test_a_skip_fails_only_in_ci(tmp_path: Path, ci: str, code: int, summary: str) -> None:
    (tmp_path / "test_sample.py").write_text(SAMPLE, encoding="utf-8")
    env = {**os.environ, "CI": ci, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.support.no_skips_in_ci",
         "-p", "no:cacheprovider", "-o", "addopts=", str(tmp_path / "test_sample.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == code, done.stdout
    assert summary in done.stdout and "1 passed" in done.stdout and "1 xfailed" in done.stdout
    if ci:
        assert "skipped in CI, where nothing may be" in done.stdout
        assert "no frobnicator here" in done.stdout
