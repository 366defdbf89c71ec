"""``ralph-tui web`` in a real browser: headless Chromium opens the page (with the token), the
attached TUI draws its four panels, ``a`` approves, and the commit lands in the repository.

Skipped only when /usr/bin/chromium is absent (``.ci/run`` installs Debian's chromium)."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ralph_tui.server.http import SERVE_FILE
from tests.remote.support import SCRIPT
from tests.support.cdp import chromium
from tests.support.repo import git, make_repo
from tests.support.tools import requires_chromium

RALPH = Path(sys.executable).with_name("ralph-tui")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def start_run(tmp_path: Path) -> tuple[Path, asyncio.subprocess.Process]:
    script = tmp_path / "script.json"
    script.write_text(json.dumps(SCRIPT), encoding="utf-8")
    root = make_repo(tmp_path / "ws", extra_config=f"script = {json.dumps(str(script))}")
    run = await asyncio.create_subprocess_exec(
        str(RALPH),
        "run",
        "--headless",
        "--approve",
        "ask",
        "--listen",
        "127.0.0.1:0",
        "--workspace",
        str(root),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
    )
    assert run.stdout is not None
    while b"approval needed" not in (line := await asyncio.wait_for(run.stdout.readline(), 60)):
        assert line, "the run ended before asking"
    return root, run


async def start_web(root: Path, port: int) -> tuple[asyncio.subprocess.Process, str]:
    web = await asyncio.create_subprocess_exec(
        str(RALPH),
        "web",
        "--port",
        str(port),
        "--workspace",
        str(root),
        stdout=asyncio.subprocess.PIPE,
    )
    assert web.stdout is not None
    line = (await asyncio.wait_for(web.stdout.readline(), 60)).decode()
    assert line.startswith("ralph-tui web: open http://127.0.0.1:"), line
    return web, line.split("open ", 1)[1].strip()


async def stop(*procs: asyncio.subprocess.Process) -> None:
    for proc in procs:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


@requires_chromium
async def test_browser_face_shows_the_panels_and_approves(tmp_path: Path) -> None:
    root, run = await start_run(tmp_path)
    web, address = await start_web(root, free_port())
    try:
        async with chromium() as open_page:
            page = await open_page(address)
            await page.wait_for_text("Tasks", "Gates", "Transcript", "Diff", "Approval needed")
            await page.type("a")
            assert await asyncio.wait_for(run.wait(), 60) == 0
        assert "Task #US-001" in git(root, "log", "-1", "--format=%s")
        assert not (root / SERVE_FILE).exists()
    finally:
        await stop(run, web)


async def test_browser_face_refuses_without_the_token(tmp_path: Path) -> None:
    root, run = await start_run(tmp_path)
    port = free_port()
    web, address = await start_web(root, port)
    try:
        base = f"http://127.0.0.1:{port}"
        for path in ("/", "/ws", "/static/js/textual.js", "/?token=wrong"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                await asyncio.to_thread(urllib.request.urlopen, base + path, timeout=10)
            assert refused.value.code == 401, path
        # the right token: a cookie, and a redirect that takes the token out of the address
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        with await asyncio.to_thread(opener.open, address, timeout=10) as page:
            assert page.status == 200 and page.url == base + "/"
            assert b"textual-terminal" in page.read()
        with await asyncio.to_thread(opener.open, base + "/static/js/textual.js", timeout=10) as js:
            assert js.status == 200
    finally:
        await stop(run, web)
