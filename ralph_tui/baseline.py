"""What the test gates counted on the base tree, to compare a change's run against.

A change can make the test gate pass by making fewer tests run: a ``conftest.py`` that skips,
a ``-k`` that deselects, a test module that stops being collected. The file flags
(``review.py``) catch the known ways; the baseline catches the effect. For each test gate the
engine keeps the counts (passed, failed, skipped, deselected, xfailed, errors) it reported on
the story's base tree, once per code tree (the tree without the PRD and progress log), and a
change whose gates pass with fewer tests passing, or more skipped, deselected or xfailed, is
flagged.

Where the counts come from: the gate's own summary line (``gates.summarize``), read from the
end of its output. A test suite that prints a fake summary after the runner's own can lie
about it; that needs a change to the test configuration or code, which is flagged as such.

Where a base tree's counts come from: the gates of the change that became it (their last run
was on exactly that code), or, for a tree nobody has gated yet (the first iteration of a run,
a commit made outside ralph-tui), one run of the test gates on the clean tree before the
agent starts. Cached in ``.ralph/baselines.json``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

from ralph_tui.gates import GateResult
from ralph_tui.git.repo import git_output, split_z

log = logging.getLogger(__name__)

BASELINE_FILE = "baselines.json"
_KEPT_TREES = 200
_COUNT = re.compile(r"(\d+) (passed|failed|skipped|deselected|xfailed|xpassed|errors?|tests? ok)\b")
# Gates that run tests (the ones worth a baseline); others (lint, types) report no counts.
_RUNNERS = {"pytest", "py.test", "tox", "nox", "jest", "vitest", "mocha"}
_TEST_VERBS = {"go", "cargo", "npm", "pnpm", "yarn", "make", "just", "hatch"}


@dataclass(frozen=True)
class Counts:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    deselected: int = 0
    xfailed: int = 0
    errors: int = 0

    def text(self) -> str:
        return ", ".join(f"{v} {k}" for k, v in asdict(self).items() if v) or "nothing ran"


def counts_of(result: GateResult) -> Counts | None:
    """The test counts a gate reported, ``None`` when its summary holds none."""
    found: dict[str, int] = {}
    for number, word in _COUNT.findall(result.summary):
        key = {"error": "errors", "xpassed": "passed", "test ok": "passed", "tests ok": "passed"}
        name = key.get(word, word)
        found[name] = found.get(name, 0) + int(number)
    return Counts(**found) if found else None


def code_key(root: Path, rev: str, bookkeeping: Sequence[str]) -> str:
    """An id of ``rev``'s code: its tree without the bookkeeping files (which every story
    commit changes)."""
    out = git_output(root, "ls-tree", "-r", "-z", "--full-tree", rev)
    skip = set(bookkeeping)
    kept = [rec for rec in split_z(out) if rec.partition("\t")[2] not in skip]
    return hashlib.sha256("\0".join(kept).encode("utf-8", "surrogateescape")).hexdigest()[:32]


class Baselines:
    """Per code tree, per gate: the counts. Read once, when first needed (a run refused at
    its preflight never reads it, nor warns about it), written on each change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._loaded: dict[str, dict[str, dict[str, int]]] | None = None

    @property
    def _data(self) -> dict[str, dict[str, dict[str, int]]]:
        if self._loaded is None:
            self._loaded = self._read()
        return self._loaded

    def _read(self) -> dict[str, dict[str, dict[str, int]]]:
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:  # a broken cache is only a cache
            log.warning("%s: unreadable baseline cache, starting afresh: %s", self.path, exc)
            return {}
        if not isinstance(loaded, dict):
            return {}
        return {str(k): v for k, v in loaded.items() if isinstance(v, dict)}

    def get(self, key: str) -> dict[str, Counts] | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        try:
            return {gate: Counts(**counts) for gate, counts in entry.items()}
        except TypeError:
            return None

    def put(self, key: str, results: Sequence[GateResult]) -> None:
        counted = {r.name: counts_of(r) for r in results if not r.criterion}
        self._data[key] = {name: asdict(c) for name, c in counted.items() if c is not None}
        while len(self._data) > _KEPT_TREES:
            self._data.pop(next(iter(self._data)))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self._data), encoding="utf-8")
            tmp.replace(self.path)
        except OSError as exc:
            log.warning("%s: baseline not cached: %s", self.path, exc)


def runs_tests(command: str) -> bool:
    """Whether a gate's command runs a test runner: a word of it, not a path that happens to
    contain "pytest" (``pytest``, ``python -m pytest``, ``make test``, ``npm run test``)."""
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    names = [PurePosixPath(word).name for word in words]
    for i, name in enumerate(names):
        if name in _RUNNERS:
            return True
        following = names[i + 1 : i + 3]
        module = following[1] if following[:1] == ["-m"] and len(following) > 1 else ""
        if name.startswith("python") and module in ("pytest", "unittest", "tox", "nox"):
            return True
        if name in _TEST_VERBS and ("test" in following[:1] or following == ["run", "test"]):
            return True
    return False


def test_runner_gates(gates: Mapping[str, str]) -> dict[str, str]:
    return {name: command for name, command in gates.items() if runs_tests(command)}


def baseline_flags(base: Mapping[str, Counts] | None, results: Sequence[GateResult]) -> list[str]:
    """A flag per gate that passes with fewer tests passing, or more skipped, deselected or
    xfailed, than on the base tree."""
    if not base:
        return []
    flags: list[str] = []
    for result in results:
        before = base.get(result.name)
        now = counts_of(result)
        if before is None or now is None or not result.passed:
            continue
        worse = []
        if now.passed < before.passed:
            worse.append(f"{before.passed - now.passed} fewer passing")
        for field in ("skipped", "deselected", "xfailed"):
            grew = getattr(now, field) - getattr(before, field)
            if grew > 0:
                worse.append(f"{grew} more {field}")
        if worse:
            flags.append(
                f"[baseline] gate {result.name}: {', '.join(worse)} than on the base tree "
                f"({now.text()}; the base tree: {before.text()})"
            )
    return flags


__all__ = ["Baselines", "Counts", "baseline_flags", "code_key", "counts_of", "test_runner_gates"]
