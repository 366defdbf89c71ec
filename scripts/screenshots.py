"""Regenerate the SVG screenshots in ``screenshots/`` (``make screenshots``).

Each screenshot is one of the deterministic scenes the snapshot tests use (tests/tui/scenes.py):
the real app on a throwaway repository, with a fixed event stream replayed into it.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.tui.scenes import SCENES, scene_app  # noqa: E402

SIZE = (160, 45)


async def shoot(name: str, out: Path) -> Path:
    with tempfile.TemporaryDirectory(prefix="ralph-shot-") as tmp:
        app = scene_app(Path(tmp) / "ws")
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await SCENES[name](pilot)
            await pilot.pause(0.2)
            path = app.save_screenshot(filename=f"{name}.svg", path=str(out))
            app.supervisor.settle_for_quit()  # let the scene's pending question finish
            await pilot.pause()
    return Path(path)


async def main() -> None:
    out = ROOT / "screenshots"
    out.mkdir(exist_ok=True)
    for name in SCENES:
        print(await shoot(name, out))


if __name__ == "__main__":
    asyncio.run(main())
