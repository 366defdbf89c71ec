"""Reviewing a change like a pull request: line comments and dropped hunks.

The faces (the TUI, an attached TUI, the browser) show ``describe_change``'s patch of each file
and let the human comment on a line or leave a hunk or a file out. What they send back is only
``(path, line, side)`` and ``(path, hunk)``: the engine reads the lines and the hunks from the
same diff it showed, here, so the feedback quotes the real code and a drop removes exactly the
hunk that was on screen.

Dropping works on the working tree (the change is uncommitted there): a hunk is reverse-applied
with ``git apply -R``, a file goes back to what HEAD has. The engine then runs the gates again
and asks for approval again, so what is committed is what the human saw last, gated.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from ralph_tui.errors import GitError
from ralph_tui.git.repo import FileDiff, GitRepo, display_path
from ralph_tui.safety.text import escape_controls
from ralph_tui.supervisor import ApprovalDecision, DroppedPart, ReviewComment

_HUNK_HEAD = re.compile(r"^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@")
QUOTE_MAX = 300  # characters of a quoted line in the agent's feedback
COMMENT_MAX = 4000  # characters of one comment kept


@dataclass(frozen=True)
class DiffLine:
    """Where one line of a file's shown patch sits: its hunk (``None`` above the first one) and
    its numbers in the old and new file (``None`` where the line has no such side)."""

    hunk: int | None
    old: int | None
    new: int | None
    text: str

    @property
    def anchor(self) -> tuple[Literal["new", "old"], int] | None:
        """(side, line) a comment on this line is anchored to; ``None``: not a line of code."""
        if self.hunk is None or self.text.startswith(("@@", "\\")):
            return None
        if self.text.startswith("-"):
            return ("old", self.old) if self.old is not None else None
        return ("new", self.new) if self.new is not None else None


def patch_lines(patch: str) -> list[DiffLine]:
    """Each line of ``patch`` (one file's, as ``describe_change`` shows it) with its place."""
    found: list[DiffLine] = []
    hunk = -1
    old = new = 0
    for text in patch.splitlines():
        head = _HUNK_HEAD.match(text)
        if head:
            hunk += 1
            old, new = int(head.group(1)), int(head.group(2))
            found.append(DiffLine(hunk, None, None, text))
        elif hunk < 0 or text.startswith("diff --git "):
            found.append(DiffLine(None, None, None, text))
        elif text.startswith("+"):
            found.append(DiffLine(hunk, None, new, text))
            new += 1
        elif text.startswith("-"):
            found.append(DiffLine(hunk, old, None, text))
            old += 1
        elif text.startswith(" ") or text == "":
            found.append(DiffLine(hunk, old, new, text))
            old += 1
            new += 1
        else:  # "\ No newline at end of file"
            found.append(DiffLine(hunk, None, None, text))
    return found


def hunk_count(patch: str) -> int:
    return sum(1 for line in patch.splitlines() if _HUNK_HEAD.match(line))


def _find(files: Sequence[FileDiff], path: str) -> FileDiff | None:
    return next((f for f in files if f.path == path), None)


def anchor_comments(
    files: Sequence[FileDiff], comments: Sequence[ReviewComment]
) -> list[ReviewComment]:
    """``comments`` with ``quote`` read from the diff shown (a comment whose line is not in it
    keeps no quote, and says so)."""
    anchored: list[ReviewComment] = []
    for comment in comments:
        text = comment.text.strip()[:COMMENT_MAX]
        diff = _find(files, comment.path)
        quote = ""
        if diff is not None:
            for line in patch_lines(diff.patch):
                if line.anchor == (comment.side, comment.line):
                    quote = line.text
                    break
        if not quote:
            quote = "(this line is not in the diff any more)"
        anchored.append(replace(comment, text=text, quote=quote[:QUOTE_MAX]))
    return anchored


def comment_lines(comments: Sequence[ReviewComment]) -> list[str]:
    """One line per comment, for the journal, the progress entry and notices."""
    return [
        f"{escape_controls(display_path(c.anchor()), multiline=False)}: "
        f"{escape_controls(c.text, multiline=False)}"
        for c in comments
    ]


def feedback_for_agent(feedback: str, comments: Sequence[ReviewComment]) -> str:
    """A rejection as the agent reads it: the reviewer's words, then each comment anchored to
    ``path:line`` with the line it is about quoted."""
    parts = [feedback.strip()] if feedback.strip() else []
    if comments:
        block = ["Review comments on your diff:"]
        for c in comments:
            block.append(f"- {display_path(c.anchor())}")
            if c.quote:
                block.append(f"  > {c.quote}")
            block += [f"  {line}" for line in c.text.splitlines() or [""]]
        parts.append("\n".join(block))
    return "\n\n".join(parts)


def drop_lines(files: Sequence[FileDiff], drops: Sequence[DroppedPart]) -> list[str]:
    """What was left out, one line each (the hunk's header names its place)."""
    lines: list[str] = []
    for drop in drops:
        shown = escape_controls(display_path(drop.path), multiline=False)
        if drop.hunk is None:
            lines.append(f"dropped {shown} (the whole file)")
            continue
        diff = _find(files, drop.path)
        heads = [ln for ln in (diff.patch.splitlines() if diff else []) if _HUNK_HEAD.match(ln)]
        head = heads[drop.hunk] if drop.hunk < len(heads) else "?"
        lines.append(f"dropped {shown} hunk {drop.hunk + 1} ({head})")
    return lines


def review_summary(decision: ApprovalDecision, files: Sequence[FileDiff]) -> list[str]:
    """The journal's and progress log's lines for one decision's review."""
    return [*drop_lines(files, decision.drops), *comment_lines(decision.comments)]


class DropError(GitError):
    """A part the reviewer dropped could not be taken out (said to the human, never hidden)."""


def drop_parts(
    git: GitRepo,
    files: Sequence[FileDiff],
    drops: Sequence[DroppedPart],
    protected: Collection[str] = (),
    base: str = "HEAD",
) -> None:
    """Take ``drops`` out of the working tree: whole files back to HEAD, hunks reverse-applied.

    ``files``: the diff the human was shown (the tree has not moved since: the agent waits for
    the approval). ``protected``: paths that are not the agent's change (the PRD, the progress
    log) and cannot be dropped. ``base``: what the change is on (a worker's base commit).
    Raises ``DropError`` naming the part that could not go.
    """
    whole = {d.path for d in drops if d.hunk is None}
    hunks: dict[str, set[int]] = {}
    for drop in drops:
        if drop.hunk is not None and drop.path not in whole:
            hunks.setdefault(drop.path, set()).add(drop.hunk)
    for path in [*whole, *hunks]:
        if path in protected:
            raise DropError(f"{display_path(path)}: the run's own bookkeeping, not droppable")
        if _find(files, path) is None:
            raise DropError(f"{display_path(path)}: not in the change shown")
    for path in sorted(whole):
        diff = _find(files, path)
        assert diff is not None
        _restore_file(git, diff, base)
    for path, indices in sorted(hunks.items()):
        diff = _find(files, path)
        assert diff is not None
        count = hunk_count(diff.patch)
        if diff.binary or diff.status in ("added", "deleted") or count <= len(indices):
            _restore_file(git, diff, base)  # every hunk of it, or a file that is one hunk: the file
            continue
        bad = [i for i in indices if i >= count]
        if bad:
            raise DropError(f"{display_path(path)}: no hunk {bad[0] + 1} (it has {count})")
        patch = _hunks_patch(diff, sorted(indices))
        try:
            git.reverse_apply(patch.encode("utf-8", "surrogateescape"))
        except GitError as exc:
            raise DropError(
                f"{display_path(path)}: the hunk could not be taken out: {exc}"
            ) from exc


def _restore_file(git: GitRepo, diff: FileDiff, base: str) -> None:
    paths = [diff.path] + ([diff.old_path] if diff.old_path else [])
    git.restore_paths(paths, base)


def _patch_name(prefix: str, path: str) -> str:
    """``prefix + path`` as git writes a name in a patch header: C-quoted when it holds a
    space, a quote, a backslash, a control or a non-ASCII byte (``git apply`` reads both)."""
    raw = (prefix + path).encode("utf-8", "surrogateescape")
    if all(0x20 < b < 0x7F and b not in b'"\\' for b in raw):
        return prefix + path
    escapes = {0x22: '\\"', 0x5C: "\\\\", 0x09: "\\t", 0x0A: "\\n"}
    body = "".join(escapes.get(b) or (chr(b) if 0x20 <= b < 0x7F else f"\\{b:03o}") for b in raw)
    return f'"{body}"'


def _hunks_patch(diff: FileDiff, indices: Sequence[int]) -> str:
    """A patch of the chosen hunks of ``diff`` alone, on the file's new path (the reverse of it
    takes those hunks out and keeps a rename or a mode change)."""
    old, new = _patch_name("a/", diff.path), _patch_name("b/", diff.path)
    out = [f"diff --git {old} {new}", f"--- {old}", f"+++ {new}"]
    current = -1
    for line in diff.patch.splitlines():
        if _HUNK_HEAD.match(line):
            current += 1
        elif current < 0:
            continue
        if current in indices:
            out.append(line)
    return "\n".join(out) + "\n"


__all__ = [
    "DiffLine",
    "DropError",
    "anchor_comments",
    "comment_lines",
    "drop_lines",
    "drop_parts",
    "feedback_for_agent",
    "hunk_count",
    "patch_lines",
    "review_summary",
]
