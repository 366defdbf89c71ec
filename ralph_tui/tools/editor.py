"""The text-editor tool (``str_replace_based_edit_tool``), confined to the workspace.

Every path goes through ``Workspace.resolve`` (symlinks followed, ``..`` collapsed, ``.git/`` and
``.ralph/`` refused, the PRD and progress log refused for writing) and the file is then touched
at its *resolved* path. A refused or failed call writes nothing and returns a one-line reason as
an error result. The agent is not trusted to point the editor at something sane:

- only regular files are opened, and without blocking (``O_NONBLOCK``, checked with ``fstat`` on
  the opened descriptor): a FIFO would otherwise hang the process, a device never ends;
- files above ``MAX_FILE_BYTES`` are refused before they are read, and reads stop there;
- the work runs in a thread (``asyncio.to_thread``), so the event loop, and with it the signal
  handlers and the TUI, never waits on the file system;
- writes go to a temporary file in the same folder that is then renamed over the target, keeping
  its mode: the file is never half written, and a hard link to a file outside the workspace is
  broken rather than written through.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ralph_tui.iteration import ToolOutcome
from ralph_tui.safety.text import escape_controls
from ralph_tui.safety.workspace import ConfinementError, Workspace

# A view is sent back to the model on every later turn; past this it must ask for a range.
MAX_VIEW_CHARS = 40_000
MAX_LISTING_ENTRIES = 400
MAX_SCANNED = 20_000  # entries read from one folder for a listing
# Larger files are refused (view and edits alike): source files are far smaller, and reading a
# generated blob or a sparse 200 MB file into memory to show 40 kB of it helps no one.
MAX_FILE_BYTES = 4 * 1024 * 1024
_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
_COMMANDS = "view, create, str_replace or insert"
CANCEL_WAIT_S = 5.0  # how long a cancelled call waits for its thread to finish


class EditorError(Exception):
    """A call the editor refuses; the message (one line) goes back to the agent."""


async def run_editor(workspace: Workspace, tool_input: Mapping[str, Any]) -> ToolOutcome:
    """One editor call, off the event loop (file system calls can be slow or hostile).

    A thread cannot be stopped. When the call is cancelled (the run stops, SIGTERM) it waits a
    moment for the thread to end, so the engine's rollback that follows does not race a write
    still landing. The wait is bounded: it must not make a stuck file system block the stop.
    """
    work = asyncio.ensure_future(asyncio.to_thread(run_editor_sync, workspace, tool_input))
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait([work], timeout=CANCEL_WAIT_S)
        raise


def run_editor_sync(workspace: Workspace, tool_input: Mapping[str, Any]) -> ToolOutcome:
    try:
        return ToolOutcome(_dispatch(workspace, tool_input))
    except (EditorError, ConfinementError) as exc:
        return ToolOutcome(str(exc), is_error=True)
    except OSError as exc:
        label = _label(str(tool_input.get("path")))
        return ToolOutcome(f"{label}: {exc.strerror or exc}", is_error=True)
    except UnicodeEncodeError:  # a lone surrogate in the text (ToolBox refuses these first)
        return ToolOutcome("the text to write is not valid UTF-8 (a lone surrogate)", True)


def _label(raw: str) -> str:
    """A path as it may appear in a one-line message."""
    return escape_controls(raw, multiline=False)


def _dispatch(workspace: Workspace, tool_input: Mapping[str, Any]) -> str:
    command = tool_input.get("command")
    if not isinstance(command, str):
        raise EditorError(f"missing 'command' (a string: {_COMMANDS})")
    raw_path = tool_input.get("path")
    if not isinstance(raw_path, str) or not raw_path.strip():
        raise EditorError("missing 'path' (a string)")
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
    raise EditorError(f"unknown command {_label(repr(command))}: use {_COMMANDS}")


def _text(tool_input: Mapping[str, Any], key: str) -> str:
    value = tool_input.get(key)
    if not isinstance(value, str):
        raise EditorError(f"missing '{key}' (a string)")
    return value


_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _require_regular(st: os.stat_result, raw: str) -> None:
    if stat.S_ISREG(st.st_mode):
        return
    if stat.S_ISDIR(st.st_mode):
        raise EditorError(f"{_label(raw)}: is a directory")
    kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a regular file")
    raise EditorError(f"{_label(raw)}: {kind}; the editor opens regular files only")


def _too_big(raw: str, size: int) -> EditorError:
    return EditorError(
        f"{_label(raw)}: {size} bytes, over the editor's limit of {MAX_FILE_BYTES}; "
        "use bash (head, sed -n, grep) for files this large"
    )


def _read(path: Path, raw: str) -> str:
    """The file's text: a regular file, at most ``MAX_FILE_BYTES``, valid UTF-8."""
    try:
        _require_regular(os.lstat(path), raw)
    except FileNotFoundError:
        raise EditorError(f"{_label(raw)}: no such file") from None
    fd = os.open(path, _READ_FLAGS)  # non-blocking: a FIFO swapped in since the lstat opens now
    try:
        st = os.fstat(fd)
        _require_regular(st, raw)  # ... and is refused here, before any read could block
        if st.st_size > MAX_FILE_BYTES:
            raise _too_big(raw, st.st_size)
        chunks: list[bytes] = []
        total = 0
        while total <= MAX_FILE_BYTES:  # the size can grow after the fstat: read at most this
            chunk = os.read(fd, min(1 << 20, MAX_FILE_BYTES + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > MAX_FILE_BYTES:
            raise _too_big(raw, total)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EditorError(
            f"{_label(raw)}: not a UTF-8 text file (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}); use bash to inspect or convert it"
        ) from None


def _write(workspace: Workspace, path: Path, raw: str, text: str) -> None:
    """Replace ``path`` with ``text``: temp file in the same folder, then an atomic rename.

    The rename replaces the directory entry, so a hard link to a file elsewhere is broken, not
    written through, and a reader never sees half a file. An existing file keeps its mode.
    """
    data = text.encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    if workspace.resolve(path, write=True) != path:  # something changed the path under us
        raise EditorError(f"{_label(raw)}: path changed while writing; not written")
    try:
        existing: os.stat_result | None = os.lstat(path)
    except FileNotFoundError:
        existing = None
    if existing is not None:
        _require_regular(existing, raw)
    temp = path.parent / f".{path.name[:200]}.{secrets.token_hex(4)}.ralph-tmp"
    fd = os.open(temp, _TEMP_FLAGS, 0o644)
    try:
        try:
            if existing is not None:
                os.fchmod(fd, stat.S_IMODE(existing.st_mode))
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        temp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


def _view(workspace: Workspace, raw: str, view_range: object) -> str:
    path = workspace.resolve(raw)
    if path.is_dir():
        if view_range is not None:
            raise EditorError(f"{_label(raw)}: view_range does not apply to a directory")
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
            raise EditorError(
                f"{_label(raw)}: view_range {list(view_range)} outside 1..{len(lines)}"
            )
    body = "\n".join(f"{n:6}\t{lines[n - 1]}" for n in range(start, end + 1))
    if len(body) > MAX_VIEW_CHARS:
        cut = body.rfind("\n", 0, MAX_VIEW_CHARS)
        body = body[: cut if cut > 0 else MAX_VIEW_CHARS]
        shown = body.count("\n") + start
        body += f"\n[clipped at line {shown} of {len(lines)}; use view_range to see more]"
    return body if body else f"{_label(raw)}: (empty file)"


def _listing(workspace: Workspace, root: Path) -> str:
    entries: list[str] = []
    children, partial = _children(root)
    for child in children:
        entries.append(_entry(workspace, child))
        if child.is_dir() and not child.is_symlink():
            grandchildren, cut = _children(child)
            partial = partial or cut
            entries.extend(_entry(workspace, g) for g in grandchildren)
    total = len(entries)
    if total > MAX_LISTING_ENTRIES:
        entries = [*entries[:MAX_LISTING_ENTRIES], f"[{total - MAX_LISTING_ENTRIES} more]"]
    if partial:
        entries.append(f"[a folder has over {MAX_SCANNED} entries; only some were read]")
    header = f"{_name(workspace.relative(root))}/ (2 levels, hidden entries skipped)"
    return "\n".join([header, *entries])


def _entry(workspace: Workspace, path: Path) -> str:
    return _name(workspace.relative(path)) + ("/" if path.is_dir() else "")


def _name(relative: str) -> str:
    """A file name as text: undecodable bytes as ``\\xff``, control characters escaped."""
    return escape_controls(
        os.fsencode(relative).decode("utf-8", "backslashreplace"), multiline=False
    )


def _children(directory: Path) -> tuple[list[Path], bool]:
    """Visible entries, sorted, and whether the folder had more than ``MAX_SCANNED`` to read."""
    found: list[Path] = []
    scanned = 0
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                scanned += 1
                if scanned > MAX_SCANNED:  # a million-file folder costs no more than this
                    break
                if not entry.name.startswith("."):
                    found.append(directory / entry.name)
    except OSError:
        return [], False
    return sorted(found, key=lambda p: p.name), scanned > MAX_SCANNED


def _create(workspace: Workspace, raw: str, text: str) -> str:
    path = workspace.resolve(raw, write=True)
    if path.is_dir():
        raise EditorError(f"{_label(raw)}: is a directory")
    existed = os.path.lexists(path)
    _write(workspace, path, raw, text)
    verb = "Overwrote" if existed else "Created"
    return f"{verb} {_name(workspace.relative(path))} ({len(text.splitlines())} lines)"


def _str_replace(workspace: Workspace, raw: str, old: str, new: str) -> str:
    if not old:
        raise EditorError("'old_str' must not be empty")
    path = workspace.resolve(raw, write=True)
    text = _read(path, raw)
    count = text.count(old)
    if count == 0:
        raise EditorError(
            f"{_label(raw)}: old_str not found (0 matches); view the file and copy it exactly"
        )
    if count > 1:
        raise EditorError(
            f"{_label(raw)}: old_str matches {count} times; include more context to make it unique"
        )
    at = text.index(old)
    _write(workspace, path, raw, text[:at] + new + text[at + len(old) :])
    first = text.count("\n", 0, at) + 1
    last = first + new.count("\n")
    return f"Edited {_name(workspace.relative(path))}: replaced 1 match (now lines {first}-{last})"


def _insert(workspace: Workspace, raw: str, line: object, insert: str) -> str:
    if not isinstance(line, int) or isinstance(line, bool):
        raise EditorError("missing 'insert_line' (an integer)")
    path = workspace.resolve(raw, write=True)
    text = _read(path, raw)
    lines = text.splitlines(keepends=True)
    if line < 0 or line > len(lines):
        raise EditorError(f"{_label(raw)}: insert_line {line} outside 0..{len(lines)}")
    if lines and not lines[-1].endswith("\n") and line == len(lines):
        lines[-1] += "\n"
    block = insert if insert.endswith("\n") else insert + "\n"
    lines.insert(line, block)
    _write(workspace, path, raw, "".join(lines))
    relative = _name(workspace.relative(path))
    return f"Inserted {block.count(chr(10))} lines after line {line} of {relative}"
