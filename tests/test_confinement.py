"""The file tool never reaches outside the workspace, nor into .git/ or .ralph/.

Each attack is tried through ``ToolBox`` with every command that writes, and the test then looks
at the real target paths to prove nothing was written there.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ralph_tui.config import RalphConfig
from ralph_tui.events import ToolResult
from ralph_tui.tools import ToolBox
from tests.support.fake_tools import FakeIterationHandle
from tests.support.repo import make_repo


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    d = tmp_path / "outside"
    d.mkdir()
    (d / "victim.txt").write_text("original\n")
    return d


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "ws")


@pytest.fixture
def fake(ws: Path) -> FakeIterationHandle:
    return FakeIterationHandle(ws)


@pytest.fixture
def box(fake: FakeIterationHandle) -> ToolBox:
    return ToolBox(fake, RalphConfig())


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


async def attempt_all_writes(box: ToolBox, path: str) -> list[str]:
    """Every writing command against ``path``; returns the error messages (all must refuse)."""
    calls: list[dict[str, object]] = [
        {"command": "create", "path": path, "file_text": "pwned\n"},
        {"command": "str_replace", "path": path, "old_str": "original", "new_str": "pwned"},
        {"command": "insert", "path": path, "insert_line": 0, "insert_text": "pwned"},
        {"command": "view", "path": path},
    ]
    messages = []
    for tool_input in calls:
        out = await box.call("x", "str_replace_based_edit_tool", tool_input)
        assert out.is_error, (tool_input, out.content)
        assert "\n" not in out.content  # a one-line reason
        messages.append(out.content)
    return messages


@pytest.mark.parametrize("relative", ["../outside/victim.txt", "src/../../outside/victim.txt"])
async def test_dotdot_is_refused(box: ToolBox, ws: Path, outside: Path, relative: str) -> None:
    before = snapshot(outside.parent)
    messages = await attempt_all_writes(box, relative)
    assert all("outside the workspace" in m for m in messages)
    assert snapshot(outside.parent) == before
    assert not (ws / "src").exists()


async def test_new_file_via_dotdot_is_not_created(box: ToolBox, outside: Path) -> None:
    out = await box.call(
        "x",
        "str_replace_based_edit_tool",
        {"command": "create", "path": "../new.txt", "file_text": "x"},
    )
    assert out.is_error
    assert not (outside.parent / "new.txt").exists()


async def test_absolute_path_outside_is_refused(box: ToolBox, outside: Path) -> None:
    before = snapshot(outside)
    await attempt_all_writes(box, str(outside / "victim.txt"))
    out = await box.call(
        "x",
        "str_replace_based_edit_tool",
        {"command": "create", "path": str(outside / "fresh.txt"), "file_text": "x"},
    )
    assert out.is_error
    assert snapshot(outside) == before
    assert not (outside / "fresh.txt").exists()


async def test_absolute_path_inside_is_allowed(box: ToolBox, ws: Path) -> None:
    out = await box.call(
        "x",
        "str_replace_based_edit_tool",
        {"command": "create", "path": str(ws / "inside.txt"), "file_text": "ok\n"},
    )
    assert not out.is_error, out.content
    assert (ws / "inside.txt").read_text() == "ok\n"


async def test_symlinked_file_pointing_out_is_refused(
    box: ToolBox, ws: Path, outside: Path
) -> None:
    (ws / "link.txt").symlink_to(outside / "victim.txt")
    (ws / "dangling.txt").symlink_to(outside / "not-yet.txt")
    before = snapshot(outside)
    await attempt_all_writes(box, "link.txt")
    out = await box.call(
        "x",
        "str_replace_based_edit_tool",
        {"command": "create", "path": "dangling.txt", "file_text": "pwned"},
    )
    assert out.is_error and "outside the workspace" in out.content
    assert snapshot(outside) == before
    assert not (outside / "not-yet.txt").exists()


async def test_symlinked_parent_dir_pointing_out_is_refused(
    box: ToolBox, ws: Path, outside: Path
) -> None:
    (ws / "vendor").symlink_to(outside, target_is_directory=True)
    before = snapshot(outside)
    await attempt_all_writes(box, "vendor/victim.txt")
    out = await box.call(
        "x",
        "str_replace_based_edit_tool",
        {"command": "create", "path": "vendor/sub/new.py", "file_text": "x"},
    )
    assert out.is_error
    assert snapshot(outside) == before
    assert not (outside / "sub").exists()


async def test_symlink_inside_the_workspace_still_works(box: ToolBox, ws: Path) -> None:
    (ws / "real.txt").write_text("original\n")
    (ws / "alias.txt").symlink_to(ws / "real.txt")
    out = await box.call(
        "x",
        "str_replace_based_edit_tool",
        {"command": "str_replace", "path": "alias.txt", "old_str": "original", "new_str": "new"},
    )
    assert not out.is_error, out.content
    assert (ws / "real.txt").read_text() == "new\n"
    assert (ws / "alias.txt").is_symlink()


@pytest.mark.parametrize("path", [".git/config", ".git/hooks/pre-commit", "./.git/HEAD"])
async def test_git_dir_is_off_limits(box: ToolBox, ws: Path, path: str) -> None:
    before = snapshot(ws / ".git")
    messages = await attempt_all_writes(box, path)
    assert all(".git/ is off limits" in m for m in messages)
    assert snapshot(ws / ".git") == before
    assert not (ws / ".git/hooks/pre-commit").exists()


async def test_symlink_into_git_dir_is_off_limits(box: ToolBox, ws: Path) -> None:
    (ws / "cfg").symlink_to(ws / ".git" / "config")
    before = (ws / ".git/config").read_bytes()
    await attempt_all_writes(box, "cfg")
    assert (ws / ".git/config").read_bytes() == before


async def test_ralph_dir_is_off_limits(box: ToolBox, ws: Path) -> None:
    messages = await attempt_all_writes(box, ".ralph/x")
    assert all(".ralph/ is off limits" in m for m in messages)
    assert not (ws / ".ralph").exists()


async def test_refusals_are_reported_as_error_events(
    box: ToolBox, fake: FakeIterationHandle
) -> None:
    await box.call("c9", "str_replace_based_edit_tool", {"command": "view", "path": "/etc/passwd"})
    (result,) = [e for e in fake.events if isinstance(e, ToolResult)]
    assert result.call_id == "c9" and result.is_error
    assert "root:" not in result.content
