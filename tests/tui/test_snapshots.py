"""The look of the main states, at the smallest supported size (80x24), a comfortable one and a
large one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.tui.scenes import SCENES, scene_app


@pytest.mark.parametrize("scene", sorted(SCENES))
def test_scene_120x40(scene: str, tmp_path: Path, snap_compare: Any) -> None:
    assert snap_compare(
        scene_app(tmp_path / "ws"), terminal_size=(120, 40), run_before=SCENES[scene]
    )


@pytest.mark.parametrize("scene", ["approval", "escalation", "flagged_approval", "pm_suggestion"])
def test_scene_100x30(scene: str, tmp_path: Path, snap_compare: Any) -> None:
    assert snap_compare(
        scene_app(tmp_path / "ws"), terminal_size=(100, 30), run_before=SCENES[scene]
    )


@pytest.mark.parametrize("scene", ["running", "approval", "escalation", "reject"])
@pytest.mark.parametrize("size", [(80, 24), (200, 50)], ids=["80x24", "200x50"])
def test_scene_sizes(scene: str, size: tuple[int, int], tmp_path: Path, snap_compare: Any) -> None:
    assert snap_compare(scene_app(tmp_path / "ws"), terminal_size=size, run_before=SCENES[scene])
