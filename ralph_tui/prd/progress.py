"""The progress log `tasks/<role>_progress.txt` (SPEC section 4).

Append-only: humans and later agents read it as the project's memory, so entries are never
rewritten. Each entry goes to disk in one write on a descriptor opened with O_APPEND, then
fsync, so a crash leaves either the whole entry or nothing of it (short of a torn disk write),
and `truncate` exists only to drop an entry whose commit never happened.

Free text (titles, learnings, questions, answers) comes from the agent and the PRD, so it can
never start a line that reads as an entry header or field label: such lines are indented, and
control characters (terminal escapes a `cat` or `git log -p` would obey) are shown escaped.
The file is opened without following symlinks; a symlink or anything but a regular file is a
`BookkeepingError` naming it (the agent could otherwise point the log at a file outside).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from ralph_tui.safety.safe_open import open_regular, replace_regular
from ralph_tui.safety.text import escape_controls, one_line

__all__ = ["ProgressLog", "timestamp"]

ENTRY_START = "## "
# A line of free text that starts like one of these would read as part of the log's structure.
_STRUCTURE = re.compile(
    r"^(#|Completed:|Raised:|Answer \(|PM note \(|Tried:|Question:|Learnings:|Files modified:)"
)


def timestamp(when: datetime | None = None) -> str:
    """ISO-8601 with the UTC offset, to the second; naive times are taken as local time."""
    moment = when if when is not None else datetime.now()
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return moment.isoformat(timespec="seconds")


def _one_line(text: str) -> str:
    """Headings must stay one line, or the entry boundary `## ` would be misread."""
    return escape_controls(one_line(text), multiline=False)


def _lines(text: str) -> list[str]:
    """Every kind of line break (``\\r``, ``\\u2028``, ...) becomes a plain one."""
    return [escape_controls(line) for line in text.splitlines()]


def _block(text: str) -> str:
    """A free-text block without leading/trailing blank lines, so the format's blank lines hold;
    a line that would look like a header or a field label is indented."""
    lines = ["  " + ln if _STRUCTURE.match(ln) else ln for ln in _lines(text)]
    return "\n".join(lines).strip("\n")


def _bullets(items: Sequence[str], empty: str) -> str:
    lines = ["\n  ".join(_lines(item.strip("\r\n"))) for item in items]
    lines = [line for line in lines if line.strip()]
    if not lines:
        return f"- {empty}\n"
    return "".join(f"- {line}\n" for line in lines)


class ProgressLog:
    """Appends entries to one progress file and reads its tail for the agent's context."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # every byte this object appended, in order: what the bookkeeping guard lets through
        self.written = bytearray()

    def append_completed(
        self,
        story_id: str,
        title: str,
        learnings: Sequence[str],
        files: Sequence[str],
        review: Sequence[str] = (),
        when: datetime | None = None,
    ) -> None:
        """``review``: what the human flagged, dropped and commented (a section only when
        there was a review beyond a plain approve)."""
        reviewed = f"Review:\n{_bullets(review, '')}\n" if review else ""
        self._append(
            f"## Task #{_one_line(story_id)}: {_one_line(title)}\n"
            f"Completed: {timestamp(when)}\n"
            "\n"
            "Learnings:\n"
            f"{_bullets(learnings, '(none reported)')}"
            "\n"
            "Files modified:\n"
            f"{_bullets(files, '(none)')}"
            "\n"
            f"{reviewed}"
        )

    def append_blocker(
        self, story_id: str, title: str, tried: str, question: str, when: datetime | None = None
    ) -> None:
        self._append(
            f"## Blocker: Task #{_one_line(story_id)}: {_one_line(title)}\n"
            f"Raised: {timestamp(when)}\n"
            "\n"
            "Tried:\n"
            f"{_block(tried)}\n"
            "\n"
            "Question:\n"
            f"{_block(question)}\n"
            "\n"
        )

    def append_answer(
        self, answer: str | None, when: datetime | None = None, *, by: str = ""
    ) -> None:
        """Follows the blocker entry it answers; `None` means the human skipped the story.

        ``by`` says whose answer it is when it is not simply the human's (``"the PM"``), so a
        reader knows which answers came from a person."""
        text = "Skipped by supervisor" if answer is None else _block(answer)
        whose = f", {_one_line(by)}" if by else ""
        self._append(f"Answer ({timestamp(when)}{whose}):\n{text}\n\n")

    def append_pm_note(self, note: str, when: datetime | None = None) -> None:
        """The PM's word that is not an answer (it could not answer; a PRD change it proposed)."""
        self._append(f"PM note ({timestamp(when)}):\n{_block(note)}\n\n")

    def tail(self, max_chars: int = 4000) -> str:
        """The latest entries that fit in `max_chars`, starting at an entry heading if one fits."""
        text = self.read_from(0)
        if len(text) <= max_chars:
            return text
        if max_chars <= 0:
            return ""
        window = text[-max_chars:]
        if window.startswith(ENTRY_START) and text[-max_chars - 1] == "\n":
            return window
        cut = window.find("\n" + ENTRY_START)
        if cut != -1:
            return window[cut + 1 :]
        line = window.find("\n")  # no whole entry fits: at least start at a line
        return window[line + 1 :] if line != -1 else window

    def read_from(self, offset: int) -> str:
        """The text after ``offset`` bytes ("" for a missing file)."""
        return self.read_bytes()[offset:].decode("utf-8", errors="replace")

    def read_bytes(self) -> bytes:
        try:
            fd = open_regular(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return b""
        with os.fdopen(fd, "rb") as f:
            return f.read()

    def size(self) -> int:
        try:
            return self.path.lstat().st_size
        except FileNotFoundError:
            return 0

    def replace_content(self, data: bytes) -> None:
        """Put back content ralph-tui knows (temp file + rename: a planted link is replaced)."""
        replace_regular(self.path, data)

    def truncate(self, size: int) -> None:
        """Crash recovery only: drop what was appended after `size` bytes (never grows the file)."""
        if size < 0:
            raise ValueError("size must be >= 0")
        if self.size() <= size:
            return
        fd = open_regular(self.path, os.O_RDWR)
        try:
            os.ftruncate(fd, size)
            os.fsync(fd)
        finally:
            os.close(fd)

    def _append(self, entry: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self._ends_with_newline():
            entry = "\n" + entry
        data = entry.encode("utf-8", errors="backslashreplace")
        fd = open_regular(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            written = os.write(fd, data)
            while written < len(data):  # regular files write fully; this is for odd filesystems
                written += os.write(fd, data[written:])
            os.fsync(fd)
        finally:
            os.close(fd)
        self.written += data

    def _ends_with_newline(self) -> bool:
        """True for a missing or empty file too: nothing to separate from."""
        try:
            fd = open_regular(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return True
        with os.fdopen(fd, "rb") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() == 0:
                return True
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"\n"
