"""Driving headless Chromium over the Chrome DevTools Protocol, with aiohttp (no new dependency).

Enough for the browser-face test and the screenshot script: start Debian's ``chromium`` with a
debugging port, open a page, record what its WebSockets receive (the terminal output textual-serve
streams to the page: xterm.js draws on a canvas, so the DOM has no text to read), type keys, and
capture a PNG.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.tools import CHROMIUM

# wraps window.WebSocket before the page's own script runs; frames are kept as text
RECORD_FRAMES = """
(() => {
  const Native = window.WebSocket;
  window.__frames = [];
  const keep = (data) => {
    if (typeof data === "string") { window.__frames.push(data); }
    else if (data instanceof ArrayBuffer) { window.__frames.push(new TextDecoder().decode(data)); }
    else if (data instanceof Blob) { data.text().then((t) => window.__frames.push(t)); }
  };
  function Recorded(url, protocols) {
    const ws = protocols === undefined ? new Native(url) : new Native(url, protocols);
    ws.addEventListener("message", (event) => keep(event.data));
    return ws;
  }
  Recorded.prototype = Native.prototype;
  Object.assign(Recorded, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
  window.WebSocket = Recorded;
})();
"""

_ANSI = re.compile(r"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[()][A-Z0-9]")


def plain(text: str) -> str:
    """Terminal output without escape sequences."""
    return _ANSI.sub("", text)


class Page:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self._ws:
            data = json.loads(message.data)
            future = self._waiting.pop(data.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(data)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[call_id] = future
        await self._ws.send_str(json.dumps({"id": call_id, "method": method, "params": params}))
        reply = await asyncio.wait_for(future, 30)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, awaitPromise=True)
        return result.get("result", {}).get("value")

    async def screen_text(self) -> str:
        """Everything the page's WebSockets received so far, escape sequences removed."""
        return plain(str(await self.evaluate("(window.__frames || []).join('')")))

    async def wait_for_text(self, *needles: str, timeout: float = 60.0) -> str:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            text = await self.screen_text()
            if all(n in text for n in needles):
                return text
            if asyncio.get_running_loop().time() > deadline:
                missing = [n for n in needles if n not in text]
                raise AssertionError(f"the page never showed {missing}; it got:\n{text[-2000:]}")
            await asyncio.sleep(0.2)  # polling another process's screen: no event to await

    async def type(self, key: str) -> None:
        await self.evaluate(
            "document.querySelector('.xterm-helper-textarea') && "
            "document.querySelector('.xterm-helper-textarea').focus()"
        )
        await self.call("Input.dispatchKeyEvent", type="keyDown", text=key, key=key)
        await self.call("Input.dispatchKeyEvent", type="keyUp", key=key)

    async def screenshot(self, path: Path) -> None:
        data = await self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(data["data"]))

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        await self._ws.close()


@contextlib.asynccontextmanager
async def chromium(width: int = 1280, height: int = 800) -> AsyncIterator[Any]:
    """A headless Chromium; yields ``open(url) -> Page``."""
    binary = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if binary is None:
        raise FileNotFoundError(CHROMIUM)
    profile = tempfile.mkdtemp(prefix="ralph-chromium-")
    proc = await asyncio.create_subprocess_exec(
        binary,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        f"--window-size={width},{height}",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        # chromium leaves its singleton socket folder (org.chromium.Chromium.*) in TMPDIR when it
        # is terminated; inside the profile it goes with it
        env={**os.environ, "TMPDIR": profile},
    )
    pages: list[Page] = []
    try:
        assert proc.stderr is not None
        endpoint = await asyncio.wait_for(_devtools_port(proc.stderr), 60)
        # keep reading chromium's chatter, or a full pipe would block it
        drain = asyncio.create_task(proc.stderr.read())
        async with aiohttp.ClientSession() as session:

            async def open_page(url: str) -> Page:
                async with session.get(f"http://{endpoint}/json/list") as resp:
                    targets = await resp.json()
                target = next(t for t in targets if t.get("type") == "page")
                ws = await session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0)
                page = Page(ws)
                pages.append(page)
                await page.call("Page.enable")
                await page.call("Page.addScriptToEvaluateOnNewDocument", source=RECORD_FRAMES)
                await page.call("Page.navigate", url=url)
                return page

            yield open_page
            for page in pages:
                await page.close()
        drain.cancel()
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


async def _devtools_port(stderr: asyncio.StreamReader) -> str:
    while line := (await stderr.readline()).decode(errors="replace"):
        match = re.search(r"DevTools listening on ws://([^/]+)/", line)
        if match:
            return match.group(1)
    raise RuntimeError("chromium exited before opening its DevTools port")
