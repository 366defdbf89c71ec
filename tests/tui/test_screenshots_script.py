"""``make screenshots`` on an unchanged app leaves the repository clean: the README's pictures
are regenerated only when the picture changes."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("screenshots", ROOT / "scripts/screenshots.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_two_shots_of_the_real_three_worker_run_are_the_same_picture(
    tmp_path: Path,
) -> None:
    """The workers shot is a real run: which change came first, where the cursor is, a toast's
    life and the gates' measured seconds used to make every regeneration a new file."""
    shots = _script()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = await shots.shoot_workers(tmp_path / "a")
    second = await shots.shoot_workers(tmp_path / "b")
    assert shots.keep_if_same(second, first).startswith("unchanged")
    assert "Health&#160;endpoint" in first.read_text(encoding="utf-8")


def test_a_changed_picture_replaces_the_committed_one(tmp_path: Path) -> None:
    shots = _script()
    committed = tmp_path / "committed.svg"
    committed.write_text('<svg class="terminal-1">gate 0.1s</svg>')
    same = tmp_path / "same.svg"
    same.write_text('<svg class="terminal-2">gate 0.0s</svg>')
    assert shots.keep_if_same(same, committed).startswith("unchanged")
    changed = tmp_path / "changed.svg"
    changed.write_text('<svg class="terminal-3">gate 0.0s, and a new line</svg>')
    assert shots.keep_if_same(changed, committed).startswith("updated")
    assert "a new line" in committed.read_text()
