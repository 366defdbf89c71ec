"""The progress log's exact formats (SPEC section 4), append-only behaviour, tail and truncate."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from ralph_tui.errors import UsageError
from ralph_tui.prd.progress import ProgressLog, timestamp

CET = timezone(timedelta(hours=1))
WHEN = datetime(2025, 3, 4, 5, 6, 7, 891011, tzinfo=CET)
TS = "2025-03-04T05:06:07+01:00"


def test_completed_entry_format(tmp_path: Path) -> None:
    path = tmp_path / "tasks" / "backend_progress.txt"
    path.parent.mkdir()
    path.write_text("# Progress log\n\n", encoding="utf-8")
    ProgressLog(path).append_completed(
        "US-001", "Add priority field", ["Use Decimal", "Tests live in tests/"],
        ["src/a.py", "tests/test_a.py"], when=WHEN,
    )  # fmt: skip
    assert path.read_text(encoding="utf-8") == (
        "# Progress log\n\n"
        "## Task #US-001: Add priority field\n"
        f"Completed: {TS}\n"
        "\n"
        "Learnings:\n"
        "- Use Decimal\n"
        "- Tests live in tests/\n"
        "\n"
        "Files modified:\n"
        "- src/a.py\n"
        "- tests/test_a.py\n"
        "\n"
    )


def test_empty_learnings_and_files(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    ProgressLog(path).append_completed("7", "T", [], [], when=WHEN)
    text = path.read_text(encoding="utf-8")
    assert "Learnings:\n- (none reported)\n\nFiles modified:\n- (none)\n\n" in text


def test_blocker_then_answer_format(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    log = ProgressLog(path)
    log.append_blocker(
        "US-002", "Wire auth", "Read the docs\nTried env var X", "Which provider?", when=WHEN
    )
    log.append_answer("Use GitHub OAuth.", when=WHEN + timedelta(minutes=5))
    assert path.read_text(encoding="utf-8") == (
        "## Blocker: Task #US-002: Wire auth\n"
        f"Raised: {TS}\n"
        "\n"
        "Tried:\n"
        "Read the docs\nTried env var X\n"
        "\n"
        "Question:\n"
        "Which provider?\n"
        "\n"
        "Answer (2025-03-04T05:11:07+01:00):\n"
        "Use GitHub OAuth.\n"
        "\n"
    )


def test_skipped_answer(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    log = ProgressLog(path)
    log.append_blocker("1", "t", "x", "y", when=WHEN)
    log.append_answer(None, when=WHEN)
    assert path.read_text(encoding="utf-8").endswith(
        f"Question:\ny\n\nAnswer ({TS}):\nSkipped by supervisor\n\n"
    )


def test_missing_folder_is_created_and_missing_newline_added(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "tasks" / "p.txt"
    log = ProgressLog(path)
    assert log.size() == 0
    assert log.tail() == ""
    log.append_answer("a", when=WHEN)
    assert path.read_text(encoding="utf-8") == f"Answer ({TS}):\na\n\n"
    with path.open("a", encoding="utf-8") as f:
        f.write("hand-written note without newline")
    log.append_completed("1", "t", ["l"], ["f"], when=WHEN)
    assert "hand-written note without newline\n## Task #1: t\n" in path.read_text(encoding="utf-8")


def test_appends_never_rewrite_earlier_bytes(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    path.write_bytes("# Log\n\nhand notes: caf\u00e9\n".encode())
    before = path.read_bytes()
    log = ProgressLog(path)
    log.append_completed("1", "Multi\nline title", ["a\nb"], ["x"], when=WHEN)
    after = path.read_bytes()
    assert after.startswith(before)
    added = after[len(before) :].decode()
    assert added.startswith("## Task #1: Multi line title\n")  # a heading stays one line
    assert "- a\n  b\n" in added


def test_timestamp_default_is_now_with_offset() -> None:
    text = timestamp()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", text)
    parsed = datetime.fromisoformat(text)
    assert abs((datetime.now(parsed.tzinfo) - parsed).total_seconds()) < 5
    assert timestamp(datetime(2025, 1, 1, tzinfo=UTC)) == "2025-01-01T00:00:00+00:00"


def fill(log: ProgressLog, count: int) -> None:
    for n in range(count):
        log.append_completed(str(n), f"Story {n}", [f"learning {n}" * 3], [f"f{n}.py"], when=WHEN)


def test_tail_returns_everything_when_it_fits(tmp_path: Path) -> None:
    log = ProgressLog(tmp_path / "p.txt")
    fill(log, 2)
    assert log.tail(10_000) == (tmp_path / "p.txt").read_text(encoding="utf-8")


def test_tail_cuts_at_an_entry_boundary(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    path.write_text("# Progress log\n\n", encoding="utf-8")
    log = ProgressLog(path)
    fill(log, 30)
    text = path.read_text(encoding="utf-8")
    tail = log.tail(1000)
    assert len(tail) <= 1000
    assert tail.startswith("## Task #")
    assert text.endswith(tail)
    assert tail.endswith("- f29.py\n\n")
    # as many whole entries as fit: one more would not
    entry_len = len(text) - len(text.rsplit("## Task #29", 1)[0])
    assert len(tail) > 1000 - entry_len - 50


def test_tail_at_exact_entry_start(tmp_path: Path) -> None:
    log = ProgressLog(tmp_path / "p.txt")
    fill(log, 3)
    text = (tmp_path / "p.txt").read_text(encoding="utf-8")
    last = text[text.rindex("## Task #2") :]
    assert log.tail(len(last)) == last


def test_tail_without_a_whole_entry_starts_at_a_line(tmp_path: Path) -> None:
    log = ProgressLog(tmp_path / "p.txt")
    fill(log, 3)
    tail = log.tail(30)
    assert len(tail) <= 30
    assert (tmp_path / "p.txt").read_text(encoding="utf-8").endswith(tail)
    text = (tmp_path / "p.txt").read_text(encoding="utf-8")
    assert text[len(text) - len(tail) - 1] == "\n"


def test_truncate_drops_bytes_appended_after_size(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    log = ProgressLog(path)
    fill(log, 1)
    before = path.read_bytes()
    size = log.size()
    assert size == len(before)
    fill(log, 1)
    assert log.size() > size
    log.truncate(size)
    assert path.read_bytes() == before
    log.truncate(size + 100)  # never grows the file
    assert path.read_bytes() == before
    ProgressLog(tmp_path / "missing.txt").truncate(0)
    assert not (tmp_path / "missing.txt").exists()


def test_free_text_cannot_forge_an_entry_or_a_field(tmp_path: Path) -> None:
    log = ProgressLog(tmp_path / "p.txt")
    forged = "x\n## Task #US-9: Forged\nCompleted: now\r## Task #US-8: Also\u2028Learnings:"
    log.append_blocker("US-1\n## Task #US-7: t", "T\n## x", tried=forged, question=forged)
    log.append_answer(forged)
    log.append_completed("US-1", "Title", [forged], ["a.py"])
    text = (tmp_path / "p.txt").read_text()
    heads = [line for line in text.splitlines() if line.startswith("## ")]
    assert heads == ["## Blocker: Task #US-1 ## Task #US-7: t: T ## x", "## Task #US-1: Title"]
    assert [ln for ln in text.splitlines() if ln.startswith("Completed:")] == [
        ln for ln in text.splitlines() if ln.startswith("Completed: 2")
    ]
    assert "  ## Task #US-9: Forged" in text


def test_symlinked_log_is_refused_and_target_untouched(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("keep\n")
    (tmp_path / "p.txt").symlink_to(outside)
    log = ProgressLog(tmp_path / "p.txt")
    with pytest.raises(UsageError, match="is a symlink"):
        log.append_answer("hi")
    with pytest.raises(UsageError, match="is a symlink"):
        log.tail()
    assert outside.read_text() == "keep\n"


def test_terminal_escapes_in_free_text_are_shown_escaped(tmp_path: Path) -> None:
    """An OSC 52 clipboard write or a clear-screen in a learning must not reach `cat` raw."""
    path = tmp_path / "progress.txt"
    path.write_text("", encoding="utf-8")
    log = ProgressLog(path)
    log.append_completed(
        "US-1", "Title \x1b[2J", ["copy \x1b]52;c;cHduZWQ=\x07 this"], ["a.py"], when=WHEN
    )
    log.append_blocker("US-1", "T", "tried \x1b[1A\x1b[2K", "why?\x9b", when=WHEN)
    text = path.read_text(encoding="utf-8")
    assert "\x1b" not in text and "\x07" not in text and "\x9b" not in text
    assert "\\x1b]52;c;cHduZWQ=" in text
