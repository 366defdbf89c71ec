"""The look of the main states, at the smallest supported size and at a comfortable one."""

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


@pytest.mark.parametrize("scene", ["approval", "escalation", "flagged_approval"])
def test_scene_100x30(scene: str, tmp_path: Path, snap_compare: Any) -> None:
    assert snap_compare(
        scene_app(tmp_path / "ws"), terminal_size=(100, 30), run_before=SCENES[scene]
    )
