"""Secrets stay with ralph-tui: taken out of its own environment at start-up, handed out by name.

``withhold()`` (called by the CLI and again when an engine starts) moves every secret-looking
variable out of ``os.environ`` into this module's vault, and scrubs its value from the process's
original environment block, which ``/proc/<pid>/environ`` (and ``ps e``) keep showing after an
``unsetenv``. From then on no child inherits them (the bash tool, the gates, the command CLI, the
engine's own git), sandboxed or not. The code that needs a secret asks for it by name with
``get()``: the Anthropic client (``api_key=``), the claude-agent-sdk child (its ``env``), the
command CLI (``command_env``) and the sandbox's ``pass_env``.

What counts as a secret (names are compared case-insensitively):
- ``ANTHROPIC_*`` and ``CLAUDE_CODE_OAUTH_TOKEN`` (ralph-tui's own credentials, base URL included);
- a name with a ``_``-separated word that is, or ends with, KEY, TOKEN, SECRET, PASSWORD, PASSWD,
  PASSPHRASE, CREDENTIAL(S) or PAT (``OPENAI_KEY``, ``AWS_SECRET_ACCESS_KEY``, ``github_token``,
  ``DB_PASSWORD``, ``APIKEY``);
- a value that is a URL with a password (``postgres://user:pw@host/db``, whatever its name) or
  holds a PEM private key.
Every such value also goes into ``Redactor``, which scrubs it from what ralph-tui writes, also
base64-, hex-encoded, reversed or split by invisible characters.
"""

from __future__ import annotations

import base64
import ctypes
import ctypes.util
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

log = logging.getLogger(__name__)

_SECRET_WORD = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|PASSPHRASE|CREDENTIALS?)$")
_SECRET_WORDS_EXACT = frozenset({"PAT"})
# Variables that look like credentials by name but only point at an agent socket or a path that
# ralph-tui's own git (commit signing) needs; none of them is a secret by itself.
_NOT_SECRET = frozenset({"SSH_AUTH_SOCK", "GPG_AGENT_INFO", "GPG_TTY", "KEYTIMEOUT"})
_URL_WITH_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:[^/\s@]+@")
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
MIN_SECRET_LEN = 8  # shorter values would redact ordinary words

_vault: dict[str, str] = {}


def is_secret_name(name: str) -> bool:
    upper = name.upper()
    if upper in _NOT_SECRET:
        return False
    if upper.startswith("ANTHROPIC_") or upper == "CLAUDE_CODE_OAUTH_TOKEN":
        return True
    words = [w for w in upper.split("_") if w]
    return any(w in _SECRET_WORDS_EXACT or _SECRET_WORD.search(w) for w in words)


def is_secret_value(value: str) -> bool:
    return bool(_URL_WITH_PASSWORD.search(value) or _PRIVATE_KEY.search(value))


def is_secret(name: str, value: str) -> bool:
    return is_secret_name(name) or is_secret_value(value)


def withhold(
    environ: MutableMapping[str, str] | None = None, also: Iterable[str] = ()
) -> list[str]:
    """Move the secrets out of ``environ`` (default ``os.environ``) into the vault; idempotent.

    ``also``: names that are secrets whatever they look like (``[tracker] token_env``).
    Returns the names withheld by this call.
    """
    env = os.environ if environ is None else environ
    forced = set(also)
    names = [name for name, value in list(env.items()) if name in forced or is_secret(name, value)]
    for name in names:
        _vault[name] = env[name]
        if env is os.environ:
            _scrub_initial(name)
        del env[name]
    if env is os.environ:
        make_undumpable()
    return names


PR_SET_DUMPABLE = 4


def make_undumpable() -> bool:
    """Make this process unreadable to the other processes of the same user.

    The vault lives in this process's memory: without this, anything the user runs (the agent's
    bash with the sandbox off, a hook, a gate) reads it through ``/proc/<pid>/mem`` or attaches
    with ptrace. ``PR_SET_DUMPABLE`` 0 makes ``/proc/<pid>/`` root-owned and refuses ptrace to
    anyone without ``CAP_SYS_PTRACE``; children get it back at their ``execve``, so they are
    unaffected. Root outside a sandbox keeps that capability: there only the sandbox protects.
    Returns whether the kernel accepted it.
    """
    libc = _libc()
    if libc is None:
        return False
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        log.warning("could not make ralph-tui undumpable: errno %d", ctypes.get_errno())
        return False
    return True


def get(name: str) -> str | None:
    """A variable's value for a child that was explicitly given it: the environment, else the
    vault."""
    value = os.environ.get(name)
    return value if value is not None else _vault.get(name)


def keep(name: str, value: str) -> None:
    """Put a secret ralph-tui obtained itself (``gh auth token``) in the vault: handed out by
    name only, and scrubbed by every ``Redactor`` built afterwards."""
    _vault[name] = value


def withheld() -> dict[str, str]:
    return dict(_vault)


def secret_values(env: Mapping[str, str] | None = None) -> list[str]:
    """Every secret value known: the vault and whatever secret still sits in ``env``."""
    source = os.environ if env is None else env
    found = [v for k, v in source.items() if is_secret(k, v)]
    if env is None:
        found.extend(_vault.values())
    return found


def reset() -> None:
    """Forget the vault (tests: each test starts with its own environment)."""
    _vault.clear()


def clean_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: the process environment) without anything secret-looking."""
    source = os.environ if base is None else base
    return {k: v for k, v in source.items() if not is_secret(k, v)}


def _scrub_initial(name: str) -> None:
    """Overwrite the value in the environment block the process started with.

    ``unsetenv`` only drops libc's pointer; the bytes stay where ``/proc/<pid>/environ`` reads
    them, readable by every process of the same user (a child reads ``/proc/$PPID/environ``).
    """
    libc = _libc()
    if libc is None:
        return
    try:
        pointer = libc.getenv(os.fsencode(name))
        if pointer:
            ctypes.memset(pointer, 0, libc.strlen(pointer))
    except (OSError, ValueError) as exc:
        log.warning("could not scrub %s from the initial environment: %s", name, exc)


def _libc() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    except OSError:
        return None
    libc.getenv.restype = ctypes.c_void_p
    libc.getenv.argtypes = [ctypes.c_char_p]
    libc.strlen.restype = ctypes.c_size_t
    libc.strlen.argtypes = [ctypes.c_void_p]
    libc.prctl.restype = ctypes.c_int
    libc.prctl.argtypes = [
        ctypes.c_int,
        ctypes.c_ulong,
        ctypes.c_ulong,
        ctypes.c_ulong,
        ctypes.c_ulong,
    ]
    return libc


# Characters a terminal or an editor does not show: an agent splits a secret with them so that
# an exact match misses it while a human (or a program that strips them) still reads it whole.
_INVISIBLE = "\u00ad\u180e\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff"
_INVISIBLE_RUN = f"[{_INVISIBLE}]*"
_HAS_INVISIBLE = re.compile(f"[{_INVISIBLE}]")


def _encoded(piece: str) -> set[str]:
    """The common encodings an agent would print a secret in to get it past an exact match:
    reversed, hex (either case) and base64 (standard and URL-safe, at each of the three byte
    alignments it can have inside a longer encoded text, so only whole 4-character groups)."""
    raw = piece.encode("utf-8")
    found = {piece[::-1], raw.hex(), raw.hex().upper()}
    for start in range(3):
        chunk = raw[start:]
        chunk = chunk[: len(chunk) // 3 * 3]
        if chunk:
            found.add(base64.b64encode(chunk).decode("ascii"))
            found.add(base64.urlsafe_b64encode(chunk).decode("ascii"))
    return {form for form in found if len(form) >= MIN_SECRET_LEN}


def _forms(value: str) -> set[str]:
    """The ways a value can appear in text ralph-tui writes: whole, line by line (a PEM printed
    by a command, or joined into one console line), JSON-escaped once or twice, and encoded
    (``_encoded``)."""
    pieces = {value, value.strip()}
    if "\n" in value or "\r" in value:
        pieces.update(line.strip() for line in value.splitlines())
    forms: set[str] = set()
    for piece in pieces:
        if len(piece) < MIN_SECRET_LEN:
            continue
        forms.add(piece)
        forms |= _encoded(piece)
        for ascii_only in (False, True):
            once = json.dumps(piece, ensure_ascii=ascii_only)[1:-1]
            forms.add(once)
            forms.add(json.dumps(once, ensure_ascii=ascii_only)[1:-1])
    return forms


def _split_pattern(secret: str) -> str:
    """``secret`` with any run of invisible characters allowed between its characters."""
    return _INVISIBLE_RUN.join(re.escape(ch) for ch in secret)


class Redactor:
    """Replaces secret values with a marker in text about to be written or shown.

    Built from the vault and the environment (or ``env``) plus ``extra_secrets``. Call it on
    decoded text; ``data()`` walks a JSON-able structure so events are redacted before encoding.
    """

    MARKER = "[REDACTED]"

    def __init__(self, extra_secrets: Iterable[str] = (), env: Mapping[str, str] | None = None):
        values = [*secret_values(env), *extra_secrets]
        forms: set[str] = set()
        for value in values:
            forms |= _forms(value)
        # longest first, so a secret containing another is replaced whole
        self._secrets = sorted(forms, key=len, reverse=True)
        self._pattern = (
            re.compile("|".join(re.escape(s) for s in self._secrets)) if self._secrets else None
        )
        # text with invisible characters in it (rare) takes the slower pattern that allows them
        # between the characters of a secret; ordinary text keeps the exact, fast one
        self._split = (
            re.compile("|".join(_split_pattern(s) for s in self._secrets))
            if self._secrets
            else None
        )

    @property
    def longest(self) -> int:
        """Length of the longest secret: how much text a streaming writer must hold back."""
        return len(self._secrets[0]) if self._secrets else 0

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        if self._split is not None and _HAS_INVISIBLE.search(text):
            return self._split.sub(self.MARKER, text)
        return self._pattern.sub(self.MARKER, text)

    def data(self, value: Any) -> Any:
        """``value`` with every string in it (keys included) redacted."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self(value)
        if isinstance(value, Mapping):
            return {self.data(k): self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        return value
