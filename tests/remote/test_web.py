"""``ralph-tui web`` in a real browser: headless Chromium opens the page (with the token), the
attached TUI draws its four panels, ``a`` approves, and the commit lands in the repository.

Skipped only when /usr/bin/chromium is absent (``.ci/run`` installs Debian's chromium)."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ralph_tui.server.http import SERVE_FILE
from tests.remote.support import SCRIPT
from tests.support.cdp import CHROMIUM, chromium
from tests.support.repo import git, make_repo
from tests.support.tools import requires_chromium

RALPH = Path(sys.executable).with_name("ralph-tui")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def start_run(
    tmp_path: Path, root: Path | None = None, listen: str = "127.0.0.1:0"
) -> tuple[Path, asyncio.subprocess.Process]:
    if root is None:
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
        listen,
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


def attach_children(web_pid: int) -> list[int]:
    """Pids of the ``ralph-tui attach`` processes ``web`` (``web_pid``) started for tabs, by the
    parent pid they were given (``RALPH_WEB_PID``), whoever their parent is now."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if f"RALPH_WEB_PID={web_pid}\0".encode() in environ.read_bytes():
                stat = (environ.parent / "stat").read_text()
                if stat.rsplit(")", 1)[1].split()[0] != "Z":  # a zombie has ended
                    found.append(int(environ.parent.name))
        except OSError:
            continue
    return found


async def until(condition: object, what: str, timeout: float = 30.0) -> None:
    """Poll another process's state (no event to await) until ``condition()`` holds."""
    assert callable(condition)
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out: {what}"
        await asyncio.sleep(0.05)


@requires_chromium
async def test_a_tab_closed_while_the_app_starts_leaves_no_process(tmp_path: Path) -> None:
    """A one-shot headless screenshot opens the page and goes away while the tab's app is
    still starting (the reported way, 3 of 3 times): no process of it is left, by pid."""
    root, run = await start_run(tmp_path)
    web, address = await start_web(root, free_port())
    try:
        for attempt in range(3):
            shot = tmp_path / f"shot-{attempt}.png"
            chrome = await asyncio.create_subprocess_exec(
                CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                f"--user-data-dir={tmp_path / f'profile-{attempt}'}", f"--screenshot={shot}",
                "--window-size=1000,700", address,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            assert await asyncio.wait_for(chrome.wait(), 120) == 0
            assert shot.exists()
            await until(lambda: not attach_children(web.pid), "every tab's process to end")
        assert web.returncode is None  # web itself serves on
    finally:
        await stop(run, web)


@requires_chromium
@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
async def test_tab_processes_end_with_web(tmp_path: Path, how: str) -> None:
    """``web`` stopped (SIGTERM: it stops them; SIGKILL: they follow their parent) leaves no
    tab's process behind, whatever state the app is in."""
    root, run = await start_run(tmp_path)
    web, address = await start_web(root, free_port())
    try:
        async with chromium() as open_page:
            page = await open_page(address)
            await until(lambda: attach_children(web.pid), "the tab's process to start")
            if how == "SIGTERM":  # an app drawn and waiting; SIGKILL: whatever it is doing
                await page.wait_for_text("Approval needed")
            children = attach_children(web.pid)
            web.send_signal(getattr(signal, how))
            code = await asyncio.wait_for(web.wait(), 30)
            assert code == (0 if how == "SIGTERM" else -signal.SIGKILL)
            await until(lambda: not attach_children(web.pid), f"{children} to end")
    finally:
        await stop(run, web)


@requires_chromium
async def test_a_stale_token_says_so_on_the_page(tmp_path: Path) -> None:
    """The run restarted (a new token, the same address): a tab of the old ``web`` shows why it
    cannot attach, where textual-serve showed its splash for ever."""
    root, run = await start_run(tmp_path)
    url = json.loads((root / SERVE_FILE).read_text(encoding="utf-8"))["url"]
    web, address = await start_web(root, free_port())
    await stop(run)
    _, run = await start_run(tmp_path, root=root, listen=url.removeprefix("http://"))
    try:
        async with chromium() as open_page:
            page = await open_page(address)
            text = await page.wait_for_text("cannot attach to the run", "new token")
            assert "wrong token" in text
    finally:
        await stop(run, web)
