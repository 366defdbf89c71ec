"""Terminal escapes from the agent, a gate or the PRD never reach the console raw (issue 8, s. 5).

Also: signals still end a run while a hostile tool call is in flight. Both are tried on a real
``python -m ralph_tui run --headless --approve auto`` process with a scripted agent.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ralph_tui.cli import main
from ralph_tui.engine import commit_message
from ralph_tui.events import (
    ApprovalDecided,
    Committed,
    Escalated,
    EscalationAnswered,
    GateFinished,
    IterationFinished,
    IterationStarted,
    Notice,
    RunFinished,
    TextDelta,
    ToolCall,
    ToolResult,
)
from ralph_tui.headless import ConsoleSink
from ralph_tui.prd.model import Story
from ralph_tui.safety.text import escape_controls
from ralph_tui.safety.workspace import Redactor
from tests.support.engine import complete, create
from tests.support.repo import git, make_repo, story

# clipboard write (OSC 52), clear screen, cursor up + erase line, carriage return, C1 CSI,
# backspace, a bidi override
ESCAPES = "\x1b]52;c;cHduZWQ=\x07 \x1b[2J \x1b[1A\x1b[2K \r \x9b2J \x08 \u202e"
RAW = [b"\x1b", b"\x07", b"\r", b"\xc2\x9b", b"\x08", "\u202e".encode()]


def assert_no_raw_controls(data: bytes) -> None:
    for raw in RAW:
        assert raw not in data, (raw, data[:2000])


def start(root: Path, out: Path) -> subprocess.Popen[bytes]:
    with out.open("wb") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "ralph_tui", "run", "--headless", "--approve", "auto"],
            cwd=root,
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def attack_repo(tmp_path: Path, steps: list[dict[str, Any]], title: str, **kw: Any) -> Path:
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"default": steps}))
    return make_repo(
        tmp_path / "ws",
        [story("US-001", title)],
        extra_config=f'script = "{script}"\n' + kw.pop("extra", ""),
        **kw,
    )


def test_escapes_from_agent_tools_gates_and_prd_are_shown_escaped(tmp_path: Path) -> None:
    steps = [
        {"text": f"look {ESCAPES} here"},
        {"tool": "bash", "input": {"command": "printf 'out \\033]52;c;eA==\\007 \\033[2J\\r\\n'"}},
        {"tool": "bash", "input": {"command": f"true '{ESCAPES}'"}},
        create("src/x.py", f"# {ESCAPES}\n"),
        {"tool": "str_replace_based_edit_tool", "input": {"command": "view", "path": "src/x.py"}},
        complete(f"done {ESCAPES}", [f"learned {ESCAPES}"]),
    ]
    gate = "printf 'gate \\033]52;c;eA==\\007 \\033[2J \\r ok\\n'"
    root = attack_repo(tmp_path, steps, f"Title {ESCAPES} end", gates={"loud": gate})
    out = tmp_path / "console.log"
    proc = start(root, out)
    try:
        assert proc.wait(timeout=100) == 0, out.read_text(errors="replace")
    finally:
        stop_group(proc)
    console = out.read_bytes()
    assert_no_raw_controls(console)
    text = console.decode("utf-8")
    assert "look \\x1b]52;c;cHduZWQ=\\x07" in text  # shown, escaped, not silently dropped
    assert "Title \\x1b]52" in text
    assert "committed" in text
    # the commit subject and the transcript carry no raw escapes either
    assert_no_raw_controls(git(root, "log", "-1", "--format=%B").encode())
    assert "Task #US-001: Title \\x1b]52" in git(root, "log", "-1", "--format=%s")
    (transcript,) = (root / ".ralph/runs").glob("*/transcript.md")
    assert_no_raw_controls(transcript.read_bytes())
    assert b"look \\x1b]52" in transcript.read_bytes()


def test_every_console_line_is_escaped() -> None:
    """Each event kind the console prints, with escapes in every text field."""
    e = ESCAPES
    events = [
        IterationStarted(iteration=1, story_id="US-001", title=e),
        TextDelta(text=f"a {e}\nb {e}"),
        ToolCall(call_id="1", name="bash", input={"command": e}),
        ToolResult(call_id="1", name="bash", content=e, is_error=True),
        GateFinished(
            name="g", command=e, state="failed", exit_code=1, duration_s=1.0, summary=e, output=e
        ),
        ApprovalDecided(story_id="US-001", decision="reject", feedback=e),
        Committed(story_id="US-001", sha="0" * 40, message=f"{e}\n\nbody"),
        Escalated(story_id="US-001", question=e, tried=e),
        EscalationAnswered(story_id="US-001", answer=e, skipped=False),
        Notice(level="warning", message=e),
        IterationFinished(
            iteration=1, story_id="US-001", outcome="discarded", message=e, patch_path=e
        ),
        RunFinished(exit_code=1, reason=e),
    ]
    out = io.StringIO()
    sink = ConsoleSink(out, Redactor(env={}))
    for event in events:
        sink(event)
    sink._flush_text()
    assert_no_raw_controls(out.getvalue().encode("utf-8"))
    assert out.getvalue().count("\\x1b]52") >= len(events) - 1


def test_escape_controls_keeps_text_and_layout() -> None:
    assert escape_controls("plain text, ünïcödé, 表\n\ttab") == "plain text, ünïcödé, 表\n\ttab"
    assert escape_controls("a\r\nb", multiline=False) == "a\\x0d\\x0ab"
    assert escape_controls("\x1b[2J\x9b\x7f\udcff") == "\\x1b[2J\\x9b\\x7f\\udcff"
    message = commit_message("backend", Story.model_validate(story("US-1", f"T {ESCAPES}\nx")))
    subject, _, body = message.partition("\n")
    assert "\x1b" not in message and "\\x0ax" in subject and body.startswith("\n")


def wait_for_text(path: Path, proc: subprocess.Popen[bytes], *needles: str) -> str:
    """Poll the console log until every needle is in it (the run must still be going)."""
    deadline = time.monotonic() + 90
    while True:
        text = path.read_text(errors="replace")
        if all(n in text for n in needles):
            return text
        if proc.poll() is not None:
            raise AssertionError(f"run exited ({proc.returncode}) early:\n{text}")
        if time.monotonic() > deadline:
            raise AssertionError(f"never saw {needles}:\n{text}")
        time.sleep(0.05)


def sleepers(marker: str) -> list[int]:
    """Pids of processes whose command line holds ``marker`` (the tool's sleep)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if marker.encode() in (entry / "cmdline").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
    return found


@pytest.mark.parametrize(
    ("how", "sandbox"), [("SIGTERM", "auto"), ("SIGINT twice", "auto"), ("SIGTERM", "off")]
)
def test_signals_end_the_run_while_a_tool_runs(tmp_path: Path, how: str, sandbox: str) -> None:
    marker = f"{os.getpid() % 1000}.{len(how)}{len(sandbox)}7"  # this test's own sleep
    steps = [
        {"tool": "bash", "input": {"command": "mkfifo p"}},
        {"tool": "str_replace_based_edit_tool", "input": {"command": "view", "path": "p"}},
        {"text": "the FIFO did not block; now a long command"},
        {"tool": "bash", "input": {"command": f"sleep {marker}"}},
        create("src/never.py", "X = 1\n"),
        complete("never reached"),
    ]
    extra = f'bash_timeout_s = 3000\nsandbox = {{ mode = "{sandbox}" }}\n'
    root = attack_repo(tmp_path, steps, "Signals", extra=extra)
    out = tmp_path / "console.log"
    proc = start(root, out)
    try:
        seen = wait_for_text(out, proc, f'"sleep {marker}"')
        assert "p: a FIFO; the editor opens regular files only" in seen
        assert "the FIFO did not block" in seen
        if how == "SIGTERM":
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=60)
        else:  # the first ^C asks for a stop at a safe point; another one cancels now
            proc.send_signal(signal.SIGINT)
            # exactly two: the second once the first is handled (two pending SIGINTs would be
            # one), never a third that could land in the exit's own teardown
            wait_for_text(out, proc, "press Ctrl-C again to cancel now")
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=60)
    finally:
        stop_group(proc)
    text = out.read_text(errors="replace")
    assert code == 130, text
    assert "run finished: interrupted (exit 130" in text
    # the tool's process went with the run, and the iteration was rolled back
    deadline = time.monotonic() + 30
    while sleepers(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sleepers(marker) == []
    assert not (root / "src/never.py").exists()
    assert git(root, "log", "--format=%s").splitlines() == ["initial"]
    prd = json.loads((root / "tasks/backend_prd.json").read_text())
    assert prd["userStories"][0]["passes"] is False


def test_status_prints_prd_titles_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_repo(tmp_path / "ws", [story("US-001", f"Title {ESCAPES}")])
    assert main(["status", "--workspace", str(root)]) == 0
    printed = capsys.readouterr().out
    assert_no_raw_controls(printed.encode("utf-8"))
    assert "Title \\x1b]52;c;cHduZWQ=\\x07" in printed


def test_sigterm_at_an_approval_prompt_ends_the_process(tmp_path: Path) -> None:
    """The prompt's read of stdin never ends; it must not keep the stopped process alive."""
    root = attack_repo(tmp_path, [create("a.py", "x\n"), complete()], "Ask")
    out = tmp_path / "console.log"
    with out.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ralph_tui", "run", "--headless", "--approve", "ask"],
            cwd=root,
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.PIPE,  # open, and nobody types
            start_new_session=True,
        )
    try:
        wait_for_text(out, proc, "[a]pprove")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 130, out.read_text()
    finally:
        stop_group(proc)
        assert proc.stdin is not None
        proc.stdin.close()
    assert git(root, "log", "--format=%s").splitlines() == ["initial"]
    assert not (root / "a.py").exists()
