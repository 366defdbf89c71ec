"""The text-editor tool (``str_replace_based_edit_tool``), confined to the workspace.

Every path goes through ``Workspace.resolve`` (symlinks followed, ``..`` collapsed, ``.git/`` and
``.ralph/`` refused) and the file is then touched at its *resolved* path, so a symlink cannot
redirect a write after the check. A refused or failed call writes nothing and returns a one-line
reason as an error result.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ralph_tui.iteration import ToolOutcome
from ralph_tui.workspace import ConfinementError, Workspace

# A view is sent back to the model on every later turn; past this it must ask for a range.
MAX_VIEW_CHARS = 40_000
MAX_LISTING_ENTRIES = 400


class EditorError(Exception):
    """A call the editor refuses; the message (one line) goes back to the agent."""


def run_editor(workspace: Workspace, tool_input: Mapping[str, Any]) -> ToolOutcome:
    try:
        return ToolOutcome(_dispatch(workspace, tool_input))
    except (EditorError, ConfinementError) as exc:
        return ToolOutcome(str(exc), is_error=True)
    except OSError as exc:
        return ToolOutcome(f"{tool_input.get('path')}: {exc.strerror or exc}", is_error=True)


def _dispatch(workspace: Workspace, tool_input: Mapping[str, Any]) -> str:
    command = tool_input.get("command")
    raw_path = tool_input.get("path")
    if not isinstance(raw_path, str) or not raw_path.strip():
        raise EditorError("missing 'path'")
    if command == "view":
        return _view(workspace, raw_path, tool_input.get("view_range"))
    if command == "create":
        return _create(workspace, raw_path, _text(tool_input, "file_text"))
    if command == "str_replace":
        new = tool_input.get("new_str", "")
        if not isinstance(new, str):
            raise EditorError("'new_str' must be a string")
        return _str_replace(workspace, raw_path, _text(tool_input, "old_str"), new)
    if command == "insert":
        key = "insert_text" if "insert_text" in tool_input else "new_str"
        return _insert(workspace, raw_path, tool_input.get("insert_line"), _text(tool_input, key))
    raise EditorError(f"unknown command {command!r}: use view, create, str_replace or insert")


def _text(tool_input: Mapping[str, Any], key: str) -> str:
    value = tool_input.get(key)
    if not isinstance(value, str):
        raise EditorError(f"missing '{key}' (a string)")
    return value


def _read(path: Path, raw: str) -> str:
    if not path.exists():
        raise EditorError(f"{raw}: no such file")
    if path.is_dir():
        raise EditorError(f"{raw}: is a directory")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise EditorError(f"{raw}: not a UTF-8 text file") from None


def _write(workspace: Workspace, path: Path, raw: str, text: str) -> None:
    """Write at the resolved path, re-checking after parents are made (they are real dirs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if workspace.resolve(path) != path:  # something changed the path under us
        raise EditorError(f"{raw}: path changed while writing; not written")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)


def _view(workspace: Workspace, raw: str, view_range: object) -> str:
    path = workspace.resolve(raw)
    if path.is_dir():
        if view_range is not None:
            raise EditorError(f"{raw}: view_range does not apply to a directory")
        return _listing(workspace, path)
    lines = _read(path, raw).splitlines()
    start, end = 1, len(lines)
    if view_range is not None:
        if (
            not isinstance(view_range, list | tuple)
            or len(view_range) != 2
            or not all(isinstance(n, int) for n in view_range)
        ):
            raise EditorError("view_range must be [start, end]")
        start, end = view_range[0], view_range[1]
        if end == -1:
            end = len(lines)
        if start < 1 or start > max(len(lines), 1) or end < start or end > len(lines):
            raise EditorError(f"{raw}: view_range {list(view_range)} outside 1..{len(lines)}")
    body = "\n".join(f"{n:6}\t{lines[n - 1]}" for n in range(start, end + 1))
    if len(body) > MAX_VIEW_CHARS:
        cut = body.rfind("\n", 0, MAX_VIEW_CHARS)
        body = body[: cut if cut > 0 else MAX_VIEW_CHARS]
        shown = body.count("\n") + start
        body += f"\n[clipped at line {shown} of {len(lines)}; use view_range to see more]"
    return body if body else f"{raw}: (empty file)"


def _listing(workspace: Workspace, root: Path) -> str:
    entries: list[str] = []
    for child in _children(root):
        entries.append(workspace.relative(child) + ("/" if child.is_dir() else ""))
        if child.is_dir() and not child.is_symlink():
            entries.extend(
                workspace.relative(g) + ("/" if g.is_dir() else "") for g in _children(child)
            )
    total = len(entries)
    if total > MAX_LISTING_ENTRIES:
        entries = [*entries[:MAX_LISTING_ENTRIES], f"[{total - MAX_LISTING_ENTRIES} more]"]
    header = f"{workspace.relative(root)}/ (2 levels, hidden entries skipped)"
    return "\n".join([header, *entries])


def _children(directory: Path) -> list[Path]:
    try:
        found = sorted(directory.iterdir(), key=lambda p: p.name)
    except OSError:
        return []
    return [p for p in found if not p.name.startswith(".")]


def _create(workspace: Workspace, raw: str, text: str) -> str:
    path = workspace.resolve(raw)
    if path.is_dir():
        raise EditorError(f"{raw}: is a directory")
    existed = path.exists()
    _write(workspace, path, raw, text)
    verb = "Overwrote" if existed else "Created"
    return f"{verb} {workspace.relative(path)} ({len(text.splitlines())} lines)"


def _str_replace(workspace: Workspace, raw: str, old: str, new: str) -> str:
    if not old:
        raise EditorError("'old_str' must not be empty")
    path = workspace.resolve(raw)
    text = _read(path, raw)
    count = text.count(old)
    if count == 0:
        raise EditorError(
            f"{raw}: old_str not found (0 matches); view the file and copy it exactly"
        )
    if count > 1:
        raise EditorError(
            f"{raw}: old_str matches {count} times; include more context to make it unique"
        )
    at = text.index(old)
    _write(workspace, path, raw, text[:at] + new + text[at + len(old) :])
    first = text.count("\n", 0, at) + 1
    last = first + new.count("\n")
    return f"Edited {workspace.relative(path)}: replaced 1 match (now lines {first}-{last})"


def _insert(workspace: Workspace, raw: str, line: object, insert: str) -> str:
    if not isinstance(line, int) or isinstance(line, bool):
        raise EditorError("missing 'insert_line' (an integer)")
    path = workspace.resolve(raw)
    text = _read(path, raw)
    lines = text.splitlines(keepends=True)
    if line < 0 or line > len(lines):
        raise EditorError(f"{raw}: insert_line {line} outside 0..{len(lines)}")
    if lines and not lines[-1].endswith("\n") and line == len(lines):
        lines[-1] += "\n"
    block = insert if insert.endswith("\n") else insert + "\n"
    lines.insert(line, block)
    _write(workspace, path, raw, "".join(lines))
    return f"Inserted {block.count(chr(10))} lines after line {line} of {workspace.relative(path)}"
