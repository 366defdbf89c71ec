from __future__ import annotations

import asyncio
import os
import shlex
import sys
from pathlib import Path

import pytest

from ralph_tui.gates import GateResult, run_gate, run_gates, summarize
from ralph_tui.safety.workspace import agent_env

PY = shlex.quote(sys.executable)


def gone(pid: int) -> bool:
    """True once the process has exited (a zombie nobody reaped counts as exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except FileNotFoundError:
        return True
    return stat[stat.rfind(")") + 2] in "ZX"


def read_fifo(path: Path) -> str:
    """Blocks until a writer opens, writes and closes the FIFO: an event, not a sleep."""
    return path.read_text(encoding="ascii").strip()


# -- states ------------------------------------------------------------------------------------


async def test_passing_and_failing_gates(tmp_path: Path) -> None:
    ok = await run_gate("ok", "echo hello; echo all good", tmp_path, 30)
    assert (ok.state, ok.exit_code, ok.passed) == ("passed", 0, True)
    assert ok.output == "hello\nall good\n"
    assert ok.summary == "all good"
    assert ok.duration_s >= 0

    bad = await run_gate("bad", "echo to stdout; echo broken >&2; exit 3", tmp_path, 30)
    assert (bad.state, bad.exit_code, bad.passed) == ("failed", 3, False)
    assert bad.output == "to stdout\nbroken\n"  # stderr merged, in order
    assert bad.summary == "broken"

    silent = await run_gate("silent", "exit 1", tmp_path, 30)
    assert (silent.state, silent.summary) == ("failed", "exit 1")


async def test_gate_runs_in_the_workspace(tmp_path: Path) -> None:
    (tmp_path / "marker.txt").write_text("here\n", encoding="utf-8")
    result = await run_gate("cat", "cat marker.txt", tmp_path, 30)
    assert result.output == "here\n"


async def test_missing_executable_is_an_error_not_a_crash(tmp_path: Path) -> None:
    result = await run_gate("tests", "definitely-not-a-command-xyz -q", tmp_path, 30)
    assert result.state == "error"
    assert result.exit_code == 127
    assert result.summary == "command not found: definitely-not-a-command-xyz"
    assert not result.passed


async def test_a_gate_that_cannot_start_is_an_error(tmp_path: Path) -> None:
    result = await run_gate("tests", "true", tmp_path / "missing-folder", 30)
    assert result.state == "error"
    assert result.exit_code is None
    assert result.summary.startswith("could not start:")
    assert "missing-folder" in result.summary


async def test_not_executable_is_an_error(tmp_path: Path) -> None:
    script = tmp_path / "check.sh"
    script.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    script.chmod(0o644)
    result = await run_gate("check", "./check.sh", tmp_path, 30)
    assert (result.state, result.exit_code) == ("error", 126)
    assert "Permission denied" in result.summary


async def test_secrets_do_not_reach_gates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOME_SERVICE_API_KEY", "sk-very-secret-value")
    monkeypatch.setenv("RALPH_TEST_PLAIN", "visible")
    cmd = 'echo "${SOME_SERVICE_API_KEY:-unset} ${RALPH_TEST_PLAIN:-unset}"'
    result = await run_gate("env", cmd, tmp_path, 30)
    assert result.output == "unset visible\n"
    explicit = await run_gate("env", cmd, tmp_path, 30, env={"PATH": os.environ["PATH"]})
    assert explicit.output == "unset unset\n"


async def test_output_keeps_the_tail_and_says_when_clipped(tmp_path: Path) -> None:
    cmd = f"{PY} -c \"import sys; sys.stdout.write('x' * 3_000_000 + '\\nlast line\\n')\""
    result = await run_gate("big", cmd, tmp_path, 30, output_cap=1000)
    assert result.state == "passed"
    assert result.output.startswith("[output clipped: the first 2999011 bytes are not kept]\n")
    assert result.output.endswith("x\nlast line\n")
    assert result.summary == "last line"


# -- timeouts, leftovers, cancellation -------------------------------------------------------------


async def test_timeout_kills_the_whole_group(tmp_path: Path) -> None:
    cmd = "sleep 300 & echo $! > child.pid; echo started; wait"
    result = await run_gate("hang", cmd, tmp_path, 1.5)
    assert result.state == "timed_out"
    assert result.exit_code is None
    assert result.summary == "timed out after 1.5s"
    assert result.output == "started\n"
    assert gone(int((tmp_path / "child.pid").read_text(encoding="ascii")))


async def test_timeout_escalates_to_sigkill_when_sigterm_is_ignored(tmp_path: Path) -> None:
    cmd = "trap '' TERM; (trap '' TERM; sleep 300) & echo $! > child.pid; wait; wait"
    result = await run_gate("stubborn", cmd, tmp_path, 1.0, kill_grace_s=0.3)
    assert result.state == "timed_out"
    assert gone(int((tmp_path / "child.pid").read_text(encoding="ascii")))


async def test_background_job_left_behind_is_killed_and_not_waited_for(tmp_path: Path) -> None:
    # The shell exits at once but its job holds the output pipe; waiting for EOF would hang
    # until the timeout and report timed_out.
    result = await run_gate("leaves-a-job", "sleep 300 & echo $! > child.pid", tmp_path, 60)
    assert result.state == "passed"
    assert gone(int((tmp_path / "child.pid").read_text(encoding="ascii")))


async def test_cancelling_a_gate_kills_its_group(tmp_path: Path) -> None:
    fifo = tmp_path / "pid.fifo"
    os.mkfifo(fifo)
    task = asyncio.create_task(
        run_gate("hang", "sleep 300 & echo $! > pid.fifo; wait", tmp_path, 60)
    )
    pid = int(await asyncio.to_thread(read_fifo, fifo))
    assert not gone(pid)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert gone(pid)


async def test_cancelling_run_gates_kills_every_gate(tmp_path: Path) -> None:
    fifos = [tmp_path / "a.fifo", tmp_path / "b.fifo"]
    for fifo in fifos:
        os.mkfifo(fifo)
    gates = {name: f"sleep 300 & echo $! > {name}.fifo; wait" for name in ("a", "b")}
    task = asyncio.create_task(run_gates(gates, tmp_path, 60))
    pids = [int(await asyncio.to_thread(read_fifo, fifo)) for fifo in fifos]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert all(gone(pid) for pid in pids)


# -- several gates ---------------------------------------------------------------------------------


async def test_gates_run_concurrently_and_report_in_config_order(tmp_path: Path) -> None:
    # "second" needs "first" running; "first" ends only after "second" was reported finished.
    # One after the other, the first gate would wait until its timeout.
    wait_for = "while [ ! -e {0} ]; do sleep 0.01; done"
    gates = {
        "first": f"touch first.ready; {wait_for.format('second.reported')}; echo first done",
        "second": f"{wait_for.format('first.ready')}; echo second done",
        "third": "exit 2",
    }
    started: list[tuple[str, str]] = []
    finished: list[str] = []

    def on_start(name: str, command: str) -> None:
        assert not finished
        started.append((name, command))

    def on_finish(result: GateResult) -> None:
        finished.append(result.name)
        if result.name == "second":
            (tmp_path / "second.reported").touch()

    results = await run_gates(gates, tmp_path, 30, on_start=on_start, on_finish=on_finish)

    assert started == list(gates.items())
    assert [r.name for r in results] == ["first", "second", "third"]
    assert [(r.state, r.output) for r in results] == [
        ("passed", "first done\n"),
        ("passed", "second done\n"),
        ("failed", ""),
    ]
    assert [r.command for r in results] == list(gates.values())
    assert finished.index("second") < finished.index("first")
    assert sorted(finished) == ["first", "second", "third"]


async def test_no_gates_is_an_empty_phase(tmp_path: Path) -> None:
    assert await run_gates({}, tmp_path, 30) == []


# -- summaries from the real tools ---------------------------------------------------------------


BAD_TESTS = """\
import pytest

def test_ok():
    pass

def test_bad():
    assert 1 == 2

@pytest.mark.skip
def test_skipped():
    pass
"""

GOOD_TESTS = "def test_one():\n    pass\n\n\ndef test_two():\n    pass\n"
BAD_TYPES = "def f(x: int) -> str:\n    return x\n"
GOOD_TYPES = "def f(x: int) -> str:\n    return str(x)\n"


UT_BAD = """import unittest


class T(unittest.TestCase):
    def test_fails(self) -> None:
        self.assertEqual(1, 2)

    @unittest.skip("not here")
    def test_skipped(self) -> None:
        pass
"""
UT_GOOD = """import unittest


class T(unittest.TestCase):
    def test_a(self) -> None:
        pass

    def test_b(self) -> None:
        pass
"""


async def test_summaries_of_real_pytest_mypy_and_ruff(tmp_path: Path) -> None:
    for name, text in {
        "bad/test_bad.py": BAD_TESTS,
        "good/test_good.py": GOOD_TESTS,
        "types_bad/mod.py": BAD_TYPES,
        "types_good/mod.py": GOOD_TYPES,
        "lint_bad/mod.py": "import os\n",
        "lint_good/mod.py": "X = 1\n",
        "fmt_bad/a.py": "x=1\n",
        "fmt_bad/b.py": "y = [1,2]\n",
        "fmt_good/a.py": "x = 1\n",
        "ut_bad/test_u.py": UT_BAD,
        "ut_good/test_u.py": UT_GOOD,
    }.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    (tmp_path / "empty").mkdir()
    pytest_cmd = f"{PY} -m pytest -q -p no:cacheprovider"
    # each mypy without a cache: the gates run at once, and two mypys writing one .mypy_cache
    # crashed one of them on a loaded machine ("INTERNAL ERROR")
    mypy_cmd = f"{PY} -m mypy --cache-dir=/dev/null"
    ruff_cmd = f"{PY} -m ruff"
    gates = {
        "pytest-bad": f"{pytest_cmd} bad",
        "pytest-good": f"{pytest_cmd} good",
        "pytest-none": f"cd empty && {pytest_cmd}",
        "mypy-bad": f"{mypy_cmd} --no-incremental types_bad/mod.py",
        "mypy-good": f"{mypy_cmd} --no-incremental types_good/mod.py",
        "ruff-bad": f"{ruff_cmd} check --isolated --no-cache lint_bad",
        "ruff-good": f"{ruff_cmd} check --isolated --no-cache lint_good",
        "format-bad": f"{ruff_cmd} format --isolated --no-cache --check fmt_bad",
        "format-good": f"{ruff_cmd} format --isolated --no-cache --check fmt_good",
        "unittest-bad": f"{PY} -m unittest discover -q -s ut_bad -t ut_bad",
        "unittest-good": f"{PY} -m unittest discover -q -s ut_good -t ut_good",
    }
    env = agent_env() | {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    env.pop("PYTEST_ADDOPTS", None)
    results = {r.name: r for r in await run_gates(gates, tmp_path, 120, env=env)}

    seen = {name: (r.state, r.summary) for name, r in results.items()}
    assert seen == {
        "pytest-bad": ("failed", "1 passed, 1 failed, 1 skipped"),
        "pytest-good": ("passed", "2 passed"),
        "pytest-none": ("failed", "no tests ran"),
        "mypy-bad": ("failed", "1 error in 1 file"),
        "mypy-good": ("passed", "no issues (1 file)"),
        "ruff-bad": ("failed", "1 error"),
        "ruff-good": ("passed", "all checks passed"),
        "format-bad": ("failed", "2 files would be reformatted"),
        "format-good": ("passed", "1 file already formatted"),
        "unittest-bad": ("failed", "2 tests, failed (failures=1, skipped=1)"),
        "unittest-good": ("passed", "2 tests ok"),
    }, {name: r.output[-400:] for name, r in results.items()}


# -- summaries from recorded output --------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("..F\n===== 1 failed, 12 passed in 0.52s =====\n", "12 passed, 1 failed"),
        ("12 passed, 1 failed in 0.52s\n", "12 passed, 1 failed"),
        ("== 3 passed, 2 skipped, 1 xfailed, 4 warnings in 61.23s (0:01:01) ==",
         "3 passed, 2 skipped, 1 xfailed, 4 warnings"),
        ("ERROR collecting x.py\n!!! Interrupted: 1 error during collection !!!\n"
         "=========== 1 error in 0.05s ===========", "1 error"),
        ("= 2 failed, 3 errors in 1.00s =", "2 failed, 3 errors"),
        ("\x1b[31m===== \x1b[1m1 failed\x1b[0m, \x1b[32m2 passed\x1b[0m in 0.1s =====\x1b[0m",
         "2 passed, 1 failed"),
        ("=== no tests ran in 0.00s ===", "no tests ran"),
        ("Success: no issues found in 12 source files", "no issues (12 files)"),
        ("a.py:1: error: bad\nFound 3 errors in 2 files (checked 9 source files)",
         "3 errors in 2 files"),
        ("All checks passed!\n", "all checks passed"),
        ("x.py:1:1: F401 ...\nFound 4 errors.\n[*] 4 fixable with `--fix`.\n", "4 errors"),
        ("Found 3 errors (3 fixed, 0 remaining).", "3 errors (3 fixed, 0 remaining)"),
        ("Would reformat: a.py\n1 file would be reformatted, 4 files already formatted\n",
         "1 file would be reformatted"),
        ("make: *** [Makefile:3: check] Error 2\n", "make: *** [Makefile:3: check] Error 2"),
        ("first\n\n   \n", "first"),
    ],
)  # fmt: skip
def test_summarize_recorded_outputs(output: str, expected: str) -> None:
    assert summarize("some gate", output, 1) == expected


def test_summarize_fallbacks() -> None:
    long_line = "y" * 200
    clipped = summarize("x", f"head\n{long_line}\n", 1)
    assert len(clipped) == 80
    assert clipped.endswith("…")
    assert summarize("x", "", 1) == "exit 1"
    assert summarize("x", "", 0) == "exit 0"
    assert summarize("x", "", None) == "no output"


@pytest.mark.parametrize(
    ("shell_output", "expected"),
    [
        ("/bin/sh: 1: pytest: not found\n", "command not found: pytest"),
        ("bash: line 1: mypy: command not found\n", "command not found: mypy"),
        ("", "command not found: ruff"),
    ],
)
def test_summarize_command_not_found(shell_output: str, expected: str) -> None:
    assert summarize("ruff check .", shell_output, 127) == expected


async def test_a_raising_callback_stops_the_other_gates(tmp_path: Path) -> None:
    fifo = tmp_path / "pid.fifo"
    os.mkfifo(fifo)
    gates = {"quick": "true", "hang": "sleep 300 & echo $! > pid.fifo; wait"}
    pids: list[int] = []

    def on_finish(result: GateResult) -> None:
        if result.name == "quick":
            pids.append(int(read_fifo(fifo)))  # the hanging gate is up: now fail
            raise RuntimeError("sink broke")

    with pytest.raises(RuntimeError, match="sink broke"):
        await run_gates(gates, tmp_path, 60, on_finish=on_finish)
    assert pids and gone(pids[0])
