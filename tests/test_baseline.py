"""Which gates get a baseline, and how counts compare (``ralph_tui.baseline``)."""

from __future__ import annotations

import pytest

from ralph_tui.baseline import Counts, baseline_flags, counts_of, runs_tests
from ralph_tui.gates import GateResult


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("pytest -q", True),
        ("/work/.venv/bin/python -m pytest -q -p no:cacheprovider", True),
        ("python3 -m unittest discover", True),
        ("make test", True),
        ("npm run test", True),
        ("go test ./...", True),
        ("ruff check .", False),
        ("mypy --strict src", False),
        ('if [ ! -f "/tmp/pytest-of-root/x" ]; then sleep 1; fi; true', False),
        ("echo 'unbalanced", False),
    ],
)
def test_a_test_runner_is_a_word_of_the_command_not_a_path(command: str, expected: bool) -> None:
    assert runs_tests(command) is expected


def _result(summary: str, state: str = "passed") -> GateResult:
    return GateResult("tests", "pytest", state, 0, 0.1, "", summary)  # type: ignore[arg-type]


def test_fewer_passing_or_more_skipped_is_flagged_and_more_tests_are_not() -> None:
    base = {"tests": Counts(passed=5, skipped=1)}
    assert counts_of(_result("4 passed, 2 skipped, 1 deselected")) == Counts(4, 0, 2, 1)
    flags = baseline_flags(base, [_result("4 passed, 2 skipped, 1 deselected")])
    assert flags == [
        "[baseline] gate tests: 1 fewer passing, 1 more skipped, 1 more deselected than on "
        "the base tree (4 passed, 2 skipped, 1 deselected; the base tree: 5 passed, 1 skipped)"
    ]
    assert baseline_flags(base, [_result("7 passed, 1 skipped")]) == []
    assert baseline_flags(base, [_result("all checks passed")]) == []  # no counts: no verdict
    assert baseline_flags(None, [_result("1 passed")]) == []
