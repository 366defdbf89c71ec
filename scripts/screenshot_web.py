"""Regenerate ``screenshots/web.png``: the browser face (``ralph-tui web``) in headless Chromium.

A real headless run serving on 127.0.0.1 waits for approval on the offline demo project; the
browser opens ``ralph-tui web``'s page with the token and the screenshot is taken once the
approval bar shows. Needs /usr/bin/chromium (Debian's ``chromium`` package).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.remote.test_web import free_port, start_run, start_web, stop  # noqa: E402
from tests.support.cdp import chromium  # noqa: E402


async def main(out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="ralph-web-shot-") as tmp:
        root, run = await start_run(Path(tmp))
        web, address = await start_web(root, free_port())
        try:
            async with chromium(1400, 860) as open_page:
                page = await open_page(address)
                await page.wait_for_text("Tasks", "Gates", "Transcript", "Diff", "Approval needed")
                await asyncio.sleep(1.0)  # let the canvas finish its last paint
                await page.screenshot(out)
        finally:
            await stop(run, web)
    print(f"wrote {out}")


if __name__ == "__main__":
    asyncio.run(main(ROOT / "screenshots" / "web.png"))
