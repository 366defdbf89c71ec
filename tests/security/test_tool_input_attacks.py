"""Hostile tool inputs (issue 8, section 5): each is an error result, the run goes on.

A scripted agent drives the real tools through the real engine. Every attack asserts three
things: the attack failed (nothing outside changed, nothing half written), the agent got a
one-line error result, and the run carried on to commit the story (exit 0). Variants that need
no engine (a socket, modes, memory) go through ``ToolBox`` with a recording handle.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import threading
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from ralph_tui.config import RalphConfig
from ralph_tui.events import Committed, ToolCall, ToolResult
from ralph_tui.iteration import ToolOutcome
from ralph_tui.journal import Journal
from ralph_tui.safety.workspace import Redactor, Workspace
from ralph_tui.tools import ToolBox
from ralph_tui.tools.editor import MAX_FILE_BYTES, run_editor_sync
from tests.support.engine import complete, create, make_engine
from tests.support.fake_tools import FakeIterationHandle
from tests.support.repo import git, make_repo

EDITOR = "str_replace_based_edit_tool"


def edit(**tool_input: Any) -> dict[str, Any]:
    return {"tool": EDITOR, "input": tool_input}


def bash(command: str) -> dict[str, Any]:
    return {"tool": "bash", "input": {"command": command}}


@pytest.fixture(params=["auto", "off"])
def sandbox(request: pytest.FixtureRequest) -> str:
    """Each engine-level attack runs sandboxed (bwrap, when installed) and without a sandbox."""
    return str(request.param)


async def run_story(
    root: Path, steps: list[dict[str, Any]], sandbox: str
) -> list[tuple[str, ToolOutcome]]:
    """Run the attack steps, then a legitimate change and complete_task; the run must finish."""
    script = {"default": [*steps, create("src/ok.py", "OK = 1\n"), complete("done")]}
    engine, agent, sink, _ = make_engine(root, script, sandbox={"mode": sandbox})
    assert await engine.run() == 0
    assert len(sink.of(Committed)) == 1
    assert json.loads((root / "tasks/backend_prd.json").read_text())["userStories"][0]["passes"]
    assert git(root, "status", "--porcelain") == ""
    # the run's journal took every event, whatever the input held
    (events,) = (root / ".ralph/runs").glob("*/events.jsonl")
    for line in events.read_text(encoding="utf-8").splitlines():
        json.loads(line)
    return agent.received[: len(steps)]


def refused(outcome: ToolOutcome, *words: str) -> None:
    assert outcome.is_error, outcome.content
    assert "\n" not in outcome.content, outcome.content
    for word in words:
        assert word in outcome.content, outcome.content


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    victim = tmp_path / "outside" / "victim.txt"
    victim.parent.mkdir()
    victim.write_text("original\n")
    return victim


async def test_view_of_a_fifo_is_refused_and_the_run_goes_on(repo: Path, sandbox: str) -> None:
    received = await run_story(
        repo,
        [
            bash("mkfifo p"),
            edit(command="view", path="p"),
            edit(command="str_replace", path="p", old_str="a", new_str="b"),
            edit(command="insert", path="p", insert_line=0, insert_text="x"),
            edit(command="create", path="p", file_text="x"),  # opening it to write blocks too
        ],
        sandbox=sandbox,
    )
    assert not received[0][1].is_error, received[0][1].content
    for _, outcome in received[1:]:
        refused(outcome, "p: a FIFO", "regular files only")
    assert stat.S_ISFIFO(os.lstat(repo / "p").st_mode) or not (repo / "p").exists()


async def test_nul_bytes_in_paths_commands_and_text_are_refused(repo: Path, sandbox: str) -> None:
    received = await run_story(
        repo,
        [
            edit(command="create", path="evil\x00.txt", file_text="x"),
            edit(command="view", path="README.md\x00"),
            edit(command="create", path="nul.txt", file_text="a\x00b"),
            edit(command="str_replace", path="README.md", old_str="test", new_str="\x00"),
            bash("touch pwned\x00; touch pwned2"),
        ],
        sandbox=sandbox,
    )
    for _, outcome in received:
        refused(outcome, "NUL byte")
    assert received[0][1].content.startswith(f"{EDITOR}: 'path'")
    assert received[4][1].content.startswith("bash: 'command'")
    for name in ("evil", "evil.txt", "nul.txt", "pwned", "pwned2"):
        assert not (repo / name).exists()
    assert (repo / "README.md").read_text() == "# test project\n"


async def test_lone_surrogates_are_refused(repo: Path, sandbox: str) -> None:
    received = await run_story(
        repo,
        [
            edit(command="create", path="bad\udcff.txt", file_text="x"),
            edit(command="view", path="\udcff"),
            edit(command="create", path="fine.txt", file_text="text \ud800 here"),
            bash("echo \udcff > pwned"),
            {"tool": "escalate", "input": {"question": "why \udcff?", "tried": "x"}},
        ],
        sandbox=sandbox,
    )
    for _, outcome in received:
        refused(outcome, "lone surrogate")
    assert not (repo / "fine.txt").exists() and not (repo / "pwned").exists()
    assert [p.name for p in repo.iterdir() if "bad" in p.name] == []


async def test_wrong_types_are_error_results(repo: Path, sandbox: str) -> None:
    received = await run_story(
        repo,
        [
            edit(command="view", path=["README.md"]),
            edit(path="README.md"),
            edit(command=["view"], path="README.md"),
            edit(command="create", path="x.txt", file_text=["a", "b"]),
            edit(command="str_replace", path="README.md", old_str=1, new_str="x"),
            edit(command="view", path="README.md", view_range=["1", "2"]),
            edit(command="insert", path="README.md", insert_line="0", insert_text="x"),
            {"tool": "bash", "input": {"command": ["ls", "-la"]}},
            {"tool": "bash", "input": ["ls"]},
            {
                "tool": EDITOR,
                "input": {"command": "view", "path": "a", "x": [[[[[[[[[["deep"]]]]]]]]]]},
            },
        ],
        sandbox=sandbox,
    )
    for _, outcome in received:
        refused(outcome)
    assert "'path'" in received[0][1].content and "'command'" in received[1][1].content
    assert "input must be an object" in received[8][1].content
    assert "nested too deeply" in received[9][1].content
    assert not (repo / "x.txt").exists()
    assert (repo / "README.md").read_text() == "# test project\n"


async def test_str_replace_through_a_hard_link_leaves_the_outside_file_alone(
    tmp_path: Path, outside: Path, sandbox: str
) -> None:
    repo = make_repo(tmp_path / "ws")
    os.link(outside, repo / "h.txt")  # planted before the run, committed: the tree is clean
    git(repo, "add", "h.txt")
    git(repo, "commit", "-q", "-m", "a file that is a hard link")
    received = await run_story(
        repo,
        [edit(command="str_replace", path="h.txt", old_str="original", new_str="pwned")],
        sandbox=sandbox,
    )
    assert not received[0][1].is_error, received[0][1].content
    assert outside.read_text() == "original\n"
    assert (repo / "h.txt").read_text() == "pwned\n"
    assert outside.stat().st_nlink == 1 and (repo / "h.txt").stat().st_nlink == 1


async def test_devices_are_refused(repo: Path, sandbox: str) -> None:
    (repo / "zero").symlink_to("/dev/zero")
    git(repo, "add", "zero")
    git(repo, "commit", "-q", "-m", "a symlink to a device")
    received = await run_story(
        repo,
        [
            edit(command="view", path="/dev/zero"),
            edit(command="view", path="/dev/urandom"),
            edit(command="view", path="zero"),
            edit(command="create", path="/dev/null", file_text="x"),
        ],
        sandbox=sandbox,
    )
    for _, outcome in received:
        refused(outcome, "outside the workspace")


async def test_a_200_mb_sparse_file_is_refused_without_reading_it(repo: Path, sandbox: str) -> None:
    received = await run_story(
        repo,
        [
            bash("truncate -s 200M big.txt"),
            edit(command="view", path="big.txt"),
            edit(command="view", path="big.txt", view_range=[1, 2]),
            edit(command="str_replace", path="big.txt", old_str="\x01", new_str="x"),
            bash("rm big.txt"),
        ],
        sandbox=sandbox,
    )
    for _, outcome in received[1:4]:
        refused(outcome, "209715200 bytes", f"limit of {MAX_FILE_BYTES}")


def test_a_huge_file_costs_no_memory(tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    with big.open("wb") as fh:
        fh.truncate(200 * 1024 * 1024)
    workspace = Workspace(tmp_path)
    tracemalloc.start()
    try:
        outcome = run_editor_sync(workspace, {"command": "view", "path": "big.txt"})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    refused(outcome, "over the editor's limit")
    assert peak < 1_000_000, peak


async def test_the_prd_and_progress_log_are_refused_for_writing(repo: Path, sandbox: str) -> None:
    prd = repo / "tasks/backend_prd.json"
    log = repo / "tasks/backend_progress.txt"
    prd_before, log_before = prd.read_bytes(), log.read_bytes()
    received = await run_story(
        repo,
        [
            edit(
                command="str_replace",
                path="tasks/backend_prd.json",
                old_str='"passes": false',
                new_str='"passes": true',
            ),
            edit(command="create", path="tasks/backend_progress.txt", file_text="forged\n"),
            edit(command="insert", path=str(log), insert_line=0, insert_text="## Task #US-9"),
            bash("ln -s tasks/backend_prd.json alias.json"),
            edit(command="create", path="alias.json", file_text="{}"),
            bash("rm alias.json"),
            edit(command="view", path="tasks/backend_prd.json"),  # reading is fine
        ],
        sandbox=sandbox,
    )
    for index in (0, 1, 2, 4):
        refused(received[index][1], "bookkeeping file")
    assert not received[6][1].is_error and "US-001" in received[6][1].content
    # the engine made its own changes since; the agent's did not land
    assert b"forged" not in log.read_bytes() and b"US-9" not in log.read_bytes()
    assert prd.read_bytes() != prd_before  # marked by the engine's commit...
    assert json.loads(git(repo, "show", "HEAD~1:tasks/backend_prd.json")) == json.loads(prd_before)
    assert log_before in log.read_bytes()


async def test_non_utf8_content_is_refused_and_left_alone(tmp_path: Path, sandbox: str) -> None:
    repo = make_repo(tmp_path / "ws")
    (repo / "latin1.txt").write_bytes(b"caf\xe9 original\n")
    git(repo, "add", "latin1.txt")
    git(repo, "commit", "-q", "-m", "a latin-1 file")
    received = await run_story(
        repo,
        [
            edit(command="view", path="latin1.txt"),
            edit(command="str_replace", path="latin1.txt", old_str="original", new_str="x"),
        ],
        sandbox=sandbox,
    )
    for _, outcome in received:
        refused(outcome, "not a UTF-8 text file (byte 0xe9 at offset 3)")
    assert (repo / "latin1.txt").read_bytes() == b"caf\xe9 original\n"


@pytest.fixture
def box(tmp_path: Path) -> tuple[ToolBox, FakeIterationHandle, Path]:
    root = make_repo(tmp_path / "ws")
    fake = FakeIterationHandle(root)
    return ToolBox(fake, RalphConfig()), fake, root


async def test_non_utf8_and_control_file_names_are_listed_safely(
    box: tuple[ToolBox, FakeIterationHandle, Path], tmp_path: Path
) -> None:
    tools, fake, root = box
    (root / os.fsdecode(b"bad\xff.txt")).write_text("x")
    (root / "two\nlines\x1b[2J.txt").write_text("x")
    out = await tools.call("c1", EDITOR, {"command": "view", "path": "."})
    assert not out.is_error, out.content
    assert "bad\\xff.txt" in out.content and "two\\x0alines\\x1b[2J.txt" in out.content
    out.content.encode("utf-8")  # no lone surrogate reaches the model or the journal
    journal = Journal(tmp_path / "run", Redactor(env={}))
    for event in fake.events:
        journal(event)
    journal.close()
    assert "\x1b" not in (tmp_path / "run/transcript.md").read_text(encoding="utf-8")


async def test_a_socket_is_refused(
    box: tuple[ToolBox, FakeIterationHandle, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    tools, _, root = box
    monkeypatch.chdir(root)  # AF_UNIX paths are short; bind relative to the workspace
    with socket.socket(socket.AF_UNIX) as server:
        server.bind("s.sock")
        out = await tools.call("c1", EDITOR, {"command": "view", "path": "s.sock"})
        refused(out, "s.sock: a socket")
        out = await tools.call(
            "c1", EDITOR, {"command": "create", "path": "s.sock", "file_text": ""}
        )
        refused(out, "s.sock: a socket")
        assert stat.S_ISSOCK(os.lstat(root / "s.sock").st_mode)


async def test_writes_keep_the_mode_and_leave_no_temp_file(
    box: tuple[ToolBox, FakeIterationHandle, Path],
) -> None:
    tools, _, root = box
    script = root / "run.sh"
    script.write_text("echo original\n")
    script.chmod(0o751)
    out = await tools.call(
        "c1",
        EDITOR,
        {"command": "str_replace", "path": "run.sh", "old_str": "original", "new_str": "new"},
    )
    assert not out.is_error, out.content
    assert stat.S_IMODE(script.stat().st_mode) == 0o751
    out = await tools.call(
        "c2",
        EDITOR,
        {"command": "insert", "path": "run.sh", "insert_line": 0, "insert_text": "#!/bin/sh"},
    )
    assert not out.is_error, out.content
    assert script.read_text() == "#!/bin/sh\necho new\n"
    assert stat.S_IMODE(script.stat().st_mode) == 0o751
    assert sorted(p.name for p in root.iterdir() if "ralph-tmp" in p.name) == []


async def test_a_write_failing_halfway_leaves_the_file_whole(
    box: tuple[ToolBox, FakeIterationHandle, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    tools, _, root = box
    target = root / "target.txt"
    target.write_text("original\n" * 1000)
    real_write = os.write

    def disk_full(fd: int, data: Any) -> int:
        real_write(fd, bytes(data[:100]))  # some bytes land, then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("ralph_tui.tools.editor.os.write", disk_full)
    out = await tools.call(
        "c1", EDITOR, {"command": "create", "path": "target.txt", "file_text": "new " * 5000}
    )
    refused(out, "target.txt: No space left on device")
    assert target.read_text() == "original\n" * 1000
    assert [p.name for p in root.iterdir() if "ralph-tmp" in p.name] == []


async def test_call_and_result_events_carry_no_raw_surrogate(
    box: tuple[ToolBox, FakeIterationHandle, Path],
) -> None:
    tools, fake, _ = box
    await tools.call("c1", EDITOR, {"command": "view", "path": "\udcff"})
    call, result = fake.events
    assert isinstance(call, ToolCall) and isinstance(result, ToolResult)
    json.dumps(call.to_dict(), ensure_ascii=False).encode("utf-8")
    result.content.encode("utf-8")


def test_hostile_model_through_the_real_sdk(tmp_path: Path) -> None:
    """The same inputs from a Messages API reply: the SDK path must not crash either."""
    from tests.support.fake_anthropic import FakeAnthropic, reply, tool_use
    from tests.test_anthropic_e2e import last_tool_results, run_ralph

    root = make_repo(tmp_path / "ws")
    replies = [
        # a lone surrogate in tool input JSON ("\udcff" is valid JSON): the agent accumulates
        # the raw stream itself, so the call reaches ToolBox, which refuses it; no crash
        reply("view \udcff \x1b[2J", tool_use(EDITOR, {"command": "view", "path": "bad\udcff"})),
        reply(
            "text \udcff \x1b[2J",
            tool_use(EDITOR, {"command": "create", "path": "a\x00b", "file_text": "x"}),
            tool_use("bash", {"command": "touch pwned\x00"}),
            tool_use(EDITOR, {"command": "create", "path": "src/ok.py", "file_text": "OK = 1\n"}),
        ),
        reply(tool_use("complete_task", {"summary": "done", "learnings": ["ok"]})),
        reply("finished"),
    ]
    with FakeAnthropic(replies) as api:
        done = run_ralph(root, api)
        requests = api.requests
    assert done.returncode == 0, done.stdout + done.stderr
    assert "\x1b" not in done.stdout and "Traceback" not in done.stderr
    (refused,) = last_tool_results(requests[1].body)
    assert refused.get("is_error") and "lone surrogate" in refused["content"], refused
    results = last_tool_results(requests[2].body)
    assert [r.get("is_error", False) for r in results] == [True, True, False], results
    assert "NUL byte" in results[0]["content"] and "NUL byte" in results[1]["content"]
    assert not (root / "pwned").exists()
    assert (root / "src/ok.py").read_text() == "OK = 1\n"


def test_claude_code_policy_refuses_the_same_paths(tmp_path: Path) -> None:
    """Claude Code's own file tools go through the same ``Workspace.resolve``."""
    from ralph_tui.agents.claude_code import policy_decision
    from ralph_tui.config import ClaudeCodeOptions

    root = make_repo(tmp_path / "ws")
    workspace = Workspace(root)
    workspace.protect(root / "tasks/backend_prd.json", root / "tasks/backend_progress.txt")
    options = ClaudeCodeOptions(allow=["Read", "Write", "Edit"])

    def decide(tool: str, path: str) -> str | None:
        return policy_decision(tool, {"file_path": path}, workspace, options)

    assert "NUL byte" in (decide("Read", "a\x00b") or "")
    assert "lone surrogate" in (decide("Write", "bad\udcff") or "")
    assert "bookkeeping file" in (decide("Edit", "tasks/backend_prd.json") or "")
    assert "bookkeeping file" in (decide("Write", str(root / "tasks/backend_progress.txt")) or "")
    assert decide("Read", "tasks/backend_prd.json") is None
    assert decide("Edit", "src/new.py") is None


async def test_file_work_runs_off_the_event_loop(
    box: tuple[ToolBox, FakeIterationHandle, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read stuck in the file system leaves the loop free (signals, the TUI, other tasks)."""
    tools, _, _ = box
    entered, release = threading.Event(), threading.Event()
    real_read = os.read

    def stuck_read(fd: int, size: int) -> bytes:
        entered.set()
        assert release.wait(60)
        return real_read(fd, size)

    monkeypatch.setattr("ralph_tui.tools.editor.os.read", stuck_read)
    call = asyncio.create_task(tools.call("c1", EDITOR, {"command": "view", "path": "README.md"}))
    assert await asyncio.to_thread(entered.wait, 60)  # the loop ran this while the read is stuck
    assert not call.done()
    release.set()
    out = await call
    assert not out.is_error and "# test project" in out.content


async def test_a_cancelled_write_lands_before_the_cancel_does(
    box: tuple[ToolBox, FakeIterationHandle, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop during a write: the engine's rollback must not race the write's thread."""
    tools, _, root = box
    entered, release = threading.Event(), threading.Event()
    real_write = os.write

    def slow_write(fd: int, data: Any) -> int:
        entered.set()
        assert release.wait(60)
        return real_write(fd, data)

    monkeypatch.setattr("ralph_tui.tools.editor.os.write", slow_write)
    tool_input = {"command": "create", "path": "f.txt", "file_text": "whole\n"}
    call = asyncio.create_task(tools.call("c1", EDITOR, tool_input))
    assert await asyncio.to_thread(entered.wait, 60)
    call.cancel()
    done, _ = await asyncio.wait([call], timeout=0.5)
    assert not done  # still waiting for its thread
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert (root / "f.txt").read_text() == "whole\n"  # landed whole, before the cancel returned
    assert [p.name for p in root.iterdir() if "ralph-tmp" in p.name] == []


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
async def test_a_device_node_inside_the_workspace_is_refused(
    box: tuple[ToolBox, FakeIterationHandle, Path],
) -> None:
    tools, _, root = box
    os.mknod(root / "zero", stat.S_IFCHR | 0o666, os.makedev(1, 5))  # /dev/zero
    for tool_input in (
        {"command": "view", "path": "zero"},
        {"command": "str_replace", "path": "zero", "old_str": "\x01", "new_str": "x"},
        {"command": "create", "path": "zero", "file_text": "x"},
    ):
        refused(await tools.call("c1", EDITOR, tool_input), "zero: a character device")
    assert stat.S_ISCHR(os.lstat(root / "zero").st_mode)


async def test_a_huge_folder_is_listed_in_part(
    box: tuple[ToolBox, FakeIterationHandle, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    tools, _, root = box
    monkeypatch.setattr("ralph_tui.tools.editor.MAX_SCANNED", 50)
    (root / "many").mkdir()
    for n in range(80):
        (root / "many" / f"f{n:03}").touch()
    out = await tools.call("c1", EDITOR, {"command": "view", "path": "many"})
    assert not out.is_error, out.content
    lines = out.content.splitlines()
    assert len(lines) == 1 + 50 + 1 and "over 50 entries; only some were read" in lines[-1]
