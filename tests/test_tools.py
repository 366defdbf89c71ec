"""The agent tools through ``ToolBox``: editor commands, the bash tool, events and input checks."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from ralph_tui.config import RalphConfig
from ralph_tui.events import ToolCall, ToolResult
from ralph_tui.iteration import ToolOutcome
from ralph_tui.safety.workspace import agent_env
from ralph_tui.tools import TOOL_DEFINITIONS, TOOL_NAMES, ToolBox, clip, run_bash
from tests.support.fake_tools import FakeIterationHandle


@pytest.fixture
def fake(ws: Path) -> FakeIterationHandle:
    return FakeIterationHandle(ws)


@pytest.fixture
def box(fake: FakeIterationHandle) -> ToolBox:
    return ToolBox(fake, RalphConfig(bash_timeout_s=10))


async def edit(box: ToolBox, **tool_input: object) -> ToolOutcome:
    return await box.call("c1", "str_replace_based_edit_tool", tool_input)


def test_definitions_match_spec_names() -> None:
    assert [d["name"] for d in TOOL_DEFINITIONS] == list(TOOL_NAMES)
    assert TOOL_NAMES == (
        "str_replace_based_edit_tool",
        "bash",
        "run_quality_gates",
        "escalate",
        "complete_task",
    )
    for d in TOOL_DEFINITIONS:
        assert d["input_schema"]["type"] == "object"
        assert len(d["description"]) < 400  # resent every turn: keep them tight


async def test_create_makes_parents_and_overwrites(box: ToolBox, ws: Path) -> None:
    out = await edit(box, command="create", path="src/pkg/mod.py", file_text="a = 1\n")
    assert not out.is_error, out.content
    assert (ws / "src/pkg/mod.py").read_text() == "a = 1\n"
    out = await edit(box, command="create", path="src/pkg/mod.py", file_text="b = 2\n")
    assert not out.is_error and out.content.startswith("Overwrote")
    assert (ws / "src/pkg/mod.py").read_text() == "b = 2\n"


async def test_create_requires_file_text(box: ToolBox, ws: Path) -> None:
    out = await edit(box, command="create", path="x.py")
    assert out.is_error and "file_text" in out.content
    assert not (ws / "x.py").exists()


async def test_view_file_with_line_numbers_and_range(box: ToolBox, ws: Path) -> None:
    (ws / "f.txt").write_text("one\ntwo\nthree\nfour\n")
    out = await edit(box, command="view", path="f.txt")
    assert out.content == "     1\tone\n     2\ttwo\n     3\tthree\n     4\tfour"
    out = await edit(box, command="view", path="f.txt", view_range=[2, 3])
    assert out.content == "     2\ttwo\n     3\tthree"
    out = await edit(box, command="view", path="f.txt", view_range=[3, -1])
    assert out.content == "     3\tthree\n     4\tfour"
    out = await edit(box, command="view", path="f.txt", view_range=[3, 9])
    assert out.is_error and "outside 1..4" in out.content
    out = await edit(box, command="view", path="missing.txt")
    assert out.is_error and "no such file" in out.content


async def test_view_directory_lists_two_levels_without_hidden(box: ToolBox, ws: Path) -> None:
    (ws / "src/pkg/deep").mkdir(parents=True)
    (ws / "src/pkg/deep/x.py").write_text("")
    (ws / "src/a.py").write_text("")
    (ws / ".hidden").mkdir()
    (ws / ".env").write_text("SECRET=1")
    (ws / "README.md").write_text("")
    out = await edit(box, command="view", path=".")
    lines = out.content.splitlines()
    assert lines[1:] == ["README.md", "src/", "src/a.py", "src/pkg/"]
    assert ".hidden" not in out.content and ".env" not in out.content


async def test_str_replace_requires_exactly_one_match(box: ToolBox, ws: Path) -> None:
    f = ws / "m.py"
    f.write_text("x = 1\ny = 1\nx = 1\n")
    out = await edit(box, command="str_replace", path="m.py", old_str="x = 1", new_str="x = 2")
    assert out.is_error and "2 times" in out.content
    out = await edit(box, command="str_replace", path="m.py", old_str="z = 1", new_str="z = 2")
    assert out.is_error and "0 matches" in out.content
    assert f.read_text() == "x = 1\ny = 1\nx = 1\n"
    out = await edit(box, command="str_replace", path="m.py", old_str="y = 1", new_str="y = 3")
    assert not out.is_error, out.content
    assert f.read_text() == "x = 1\ny = 3\nx = 1\n"
    # new_str omitted deletes
    out = await edit(box, command="str_replace", path="m.py", old_str="y = 3\n")
    assert not out.is_error
    assert f.read_text() == "x = 1\nx = 1\n"


async def test_insert_with_insert_text_or_new_str(box: ToolBox, ws: Path) -> None:
    f = ws / "i.txt"
    f.write_text("a\nb")
    out = await edit(box, command="insert", path="i.txt", insert_line=0, insert_text="top")
    assert not out.is_error, out.content
    assert f.read_text() == "top\na\nb"
    out = await edit(box, command="insert", path="i.txt", insert_line=3, new_str="end\n")
    assert not out.is_error, out.content
    assert f.read_text() == "top\na\nb\nend\n"
    out = await edit(box, command="insert", path="i.txt", insert_line=1, insert_text="mid")
    assert f.read_text() == "top\nmid\na\nb\nend\n"
    out = await edit(box, command="insert", path="i.txt", insert_line=99, insert_text="x")
    assert out.is_error and "outside 0..5" in out.content
    out = await edit(box, command="insert", path="i.txt", insert_text="x")
    assert out.is_error and "insert_line" in out.content


async def test_unknown_command_and_binary_file(box: ToolBox, ws: Path) -> None:
    out = await edit(box, command="undo_edit", path="x")
    assert out.is_error and "unknown command" in out.content
    (ws / "b.bin").write_bytes(b"\xff\xfe\x00")
    out = await edit(box, command="view", path="b.bin")
    assert out.is_error and "UTF-8" in out.content


async def test_toolbox_emits_call_and_result_events(
    box: ToolBox, fake: FakeIterationHandle
) -> None:
    await box.call("id-7", "bash", {"command": "echo hi"})
    call, result = fake.events
    assert isinstance(call, ToolCall) and call.call_id == "id-7" and call.name == "bash"
    assert call.input == {"command": "echo hi"}
    assert isinstance(result, ToolResult) and result.call_id == "id-7"
    assert result.content == "hi\n[exit code 0]" and not result.is_error


async def test_engine_tools_are_routed_and_validated(
    box: ToolBox, fake: FakeIterationHandle
) -> None:
    out = await box.call("1", "escalate", {"tried": "x"})
    assert out.is_error and "question" in out.content and fake.escalations == []
    out = await box.call("2", "escalate", {"question": "Which DB?", "tried": "read docs"})
    assert out.content == fake.answer and fake.escalations == [("Which DB?", "read docs")]
    out = await box.call("3", "run_quality_gates", {})
    assert out.content == "all gates passed"
    out = await box.call("4", "complete_task", {"learnings": ["a"]})
    assert out.is_error and fake.completions == []
    out = await box.call("5", "complete_task", {"summary": "done", "learnings": "one fact"})
    assert out.ends_iteration and fake.completions == [("done", ["one fact"])]
    out = await box.call("6", "web_search", {"q": "x"})
    assert out.is_error and "unknown tool" in out.content
    results = [e for e in fake.events if isinstance(e, ToolResult)]
    assert [r.call_id for r in results] == ["1", "2", "3", "4", "5", "6"]


async def test_bash_runs_in_workspace_and_reports_exit_code(box: ToolBox, ws: Path) -> None:
    out = await box.call("b", "bash", {"command": "pwd; echo oops >&2; exit 3"})
    assert out.content == f"{box.tools.workspace.root}\noops\n[exit code 3]"
    assert out.is_error
    out = await box.call("b", "bash", {"restart": True})
    assert not out.is_error and "fresh shell" in out.content
    out = await box.call("b", "bash", {})
    assert out.is_error and "command" in out.content
    out = await box.call("b", "bash", {"command": "cat"})  # stdin is /dev/null: no hang
    assert out.content == "[exit code 0]"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def _wait_dead(pid: int, within_s: float = 5.0) -> bool:
    """The kill is synchronous; reaping by init is not, so allow it a moment."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.02)
    return False


async def test_bash_timeout_kills_the_whole_group(ws: Path) -> None:
    started = time.monotonic()
    out = await run_bash(
        "sleep 60 & echo $! > child.pid; sleep 60",
        cwd=ws,
        env=agent_env(),
        timeout_s=0.5,
    )
    assert time.monotonic() - started < 5
    assert out.is_error and "timed out after 0.5s" in out.content
    child = int((ws / "child.pid").read_text())
    assert _wait_dead(child)


async def test_bash_background_jobs_do_not_outlive_the_command(ws: Path) -> None:
    started = time.monotonic()
    out = await run_bash(
        "sleep 60 & echo $! > child.pid; echo done", cwd=ws, env=agent_env(), timeout_s=30
    )
    assert time.monotonic() - started < 5
    assert out.content == "done\n[exit code 0]"
    assert _wait_dead(int((ws / "child.pid").read_text()))


async def test_bash_output_is_clipped_head_and_tail(ws: Path) -> None:
    cmd = "printf 'HEAD'; head -c 100000 /dev/zero | tr '\\0' a; printf 'TAIL'"
    out = await run_bash(cmd, cwd=ws, env=agent_env(), timeout_s=30, max_output_bytes=1000)
    text = out.content
    assert text.startswith("HEAD") and text.endswith("TAIL\n[exit code 0]")
    assert f"\n... [{100008 - 1000} bytes clipped] ...\n" in text
    assert len(text) < 1100


def test_clip_keeps_short_text_whole() -> None:
    assert clip(b"short", 100) == "short"
    assert clip(b"0123456789", 4) == "01\n... [6 bytes clipped] ...\n89"


async def test_bash_env_has_no_secrets(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-secret-value")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_test_secret_value")
    monkeypatch.setenv("RALPH_VISIBLE", "yes")
    box = ToolBox(FakeIterationHandle(ws), RalphConfig())
    out = await box.call("e", "bash", {"command": "env"})
    assert "RALPH_VISIBLE=yes" in out.content
    assert "sk-ant-test-secret-value" not in out.content
    assert "ANTHROPIC" not in out.content
    assert "ghp_test_secret_value" not in out.content
    assert os.environ["ANTHROPIC_API_KEY"] == "sk-ant-test-secret-value"  # parent untouched
