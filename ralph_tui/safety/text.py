"""Making untrusted text safe to show: the agent, a gate or a PRD must not drive the terminal.

Text from the agent, tool results, gate output and PRD titles can carry escape sequences (an
OSC 52 clipboard write, a screen clear, cursor moves that rewrite earlier lines). Everything
printed to a console or written to a human-read file passes through ``escape_controls`` first,
which turns such characters into visible ``\\xNN`` / ``\\uNNNN`` text instead of dropping them,
so a reader still sees that something was there. ``one_line`` collapses any text to one
clipped line (progress headings, summaries, console lines, error details).
"""

from __future__ import annotations

import re
from typing import Any

# C0 except tab and newline, DEL, C1, bidirectional overrides/isolates ("trojan source"), and
# lone surrogates (from undecodable file names; they cannot even be encoded as UTF-8)
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_UNSAFE_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


# For code under review: every character a reader cannot see or that reorders what they see,
# the controls above plus zero-width ones, soft hyphen, bidi marks and the BOM.
_HIDDEN_IN_CODE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u2069\ufeff\ud800-\udfff]"
)


def reveal_hidden(line: str) -> list[tuple[str, bool]]:
    """``line`` (one diff line) in pieces: ``(text, False)`` as written, ``(escape, True)`` for
    each character a reviewer could not see (``\\x1b``, ``\\u202e``, ``\\u200b``): shown
    where it stands, for the face to highlight. A line without any is one piece."""
    pieces: list[tuple[str, bool]] = []
    last = 0
    for match in _HIDDEN_IN_CODE.finditer(line):
        if match.start() > last:
            pieces.append((line[last : match.start()], False))
        pieces.append((_escape(match), True))
        last = match.end()
    if last < len(line) or not pieces:
        pieces.append((line[last:], False))
    return pieces


def has_hidden(line: str) -> bool:
    return _HIDDEN_IN_CODE.search(line) is not None


def escape_controls(text: str, *, multiline: bool = True) -> str:
    """``text`` with control characters made visible; newline and tab kept if ``multiline``."""
    pattern = _UNSAFE if multiline else _UNSAFE_ONE_LINE
    return pattern.sub(_escape, text)


def has_lone_surrogate(text: str) -> bool:
    """True if ``text`` cannot be encoded as UTF-8 (a lone surrogate, e.g. ``\\udcff``)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def encodable(text: str) -> str:
    """``text`` with lone surrogates spelled out, so it can be written as UTF-8 or sent as JSON."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def encodable_data(value: Any) -> Any:
    """A copy of JSON-like data (dicts, lists, strings) with every string made ``encodable``."""
    if isinstance(value, str):
        return encodable(value) if has_lone_surrogate(value) else value
    if isinstance(value, dict):
        return {encodable_data(k): encodable_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encodable_data(v) for v in value]
    return value


def one_line(text: str, limit: int | None = None) -> str:
    """``text`` with every run of whitespace (newlines included) as one space, cut to ``limit``.

    For anything shown or written as a single line: headings in the progress log, summaries,
    error details, console lines. A cut line ends in ``…``.
    """
    line = " ".join(text.split())
    if limit is None or len(line) <= limit:
        return line
    return line[: max(0, limit - 1)] + "…"


def cap_text(text: str, limit: int) -> str:
    """``text`` cut at ``limit`` characters with a visible note of what was cut: the agent's
    text goes into files a human reads and git keeps (8 MiB of it once reached the log)."""
    if len(text) <= limit:
        return text
    return text[:limit] + f" [... {len(text) - limit} characters cut]"


def cap_strings(value: Any, limit: int) -> Any:
    """A copy of JSON-like data with every string capped (``cap_text``)."""
    if isinstance(value, str):
        return cap_text(value, limit)
    if isinstance(value, dict):
        return {k: cap_strings(v, limit) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [cap_strings(v, limit) for v in value]
    return value


def counted(count: int, noun: str) -> str:
    """``1 story``, ``2 stories``, ``0 warnings``: English plurals for the nouns we count."""
    if count == 1:
        return f"{count} {noun}"
    plural = noun[:-1] + "ies" if noun.endswith("y") and noun[-2:-1] not in "aeiou" else noun + "s"
    return f"{count} {plural}"
