"""Names ralph-tui makes from untrusted text: the one place a PRD value (a story id, a project
name, a ``branchName``) becomes a name that git, the file system or a command line sees.

Pure functions, below every package that names things (``prd``, ``git``, the executors).
"""

from __future__ import annotations

import hashlib
import re

_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


def branch_name_problem(name: str) -> str | None:
    """Why git would refuse ``name`` as a branch (``git check-ref-format --branch``), or None.

    Pure, so ``validate`` can point at a PRD's ``branchName`` without a repository; the run
    still asks git itself before it switches.
    """
    if not name:
        return "must not be empty"
    if name.startswith("-"):
        return "must not start with '-'"
    if name in ("@", "HEAD"):
        return f"{name!r} is reserved by git"
    if match := _FORBIDDEN.search(name):
        return f"must not contain {match.group()!r}"
    for part, why in (("..", "'..'"), ("@{", "'@{'"), ("//", "'//'")):
        if part in name:
            return f"must not contain {why}"
    if name.startswith("/") or name.endswith(("/", ".")):
        return "must not start with '/' or end with '/' or '.'"
    if any(c.startswith(".") or c.endswith(".lock") for c in name.split("/")):
        return "no part may start with '.' or end with '.lock'"
    return None


def branch_for(name: str) -> str | None:
    """``ralph/<slug>`` for a project name (``init``, ``import``): lower-case ASCII letters,
    digits and dashes, so any folder or project name gives a branch git accepts."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return f"ralph/{slug}" if slug else None


_SAFE_NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,58}[A-Za-z0-9_])?")


def safe_name(key: str) -> str:
    """A story key as one safe component of a branch, folder or file name: the one place
    where a PRD value becomes a name that git, the file system or a command line sees.

    A key that is already plain (ASCII letters, digits, ``_``, inner ``-`` and ``.``; no
    ``..``; not ending in ``.lock``; at most 60 characters) is used as it is. Anything else
    (``../../x``, ``-rf``, ``a b``, ``@{``, a newline, unicode, a very long id) becomes its
    plain letters and a hash of the whole key, so two keys never share a name and the result
    is always valid for ``git check-ref-format`` under ``ralph/``.
    """
    if _SAFE_NAME.fullmatch(key) and ".." not in key and not key.lower().endswith(".lock"):
        return key
    base = re.sub(r"[^A-Za-z0-9_-]+", "_", key).strip("_-")[:40] or "story"
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{base}-{digest}"


__all__ = ["branch_for", "branch_name_problem", "safe_name"]
