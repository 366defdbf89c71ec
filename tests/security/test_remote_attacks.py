"""The remote faces check where a request comes from, and a token holder cannot crash them
(issue 20 items 2 and 5): the installed ``ralph-tui run --listen`` and ``ralph-tui web``,
attacked over real sockets and from a real browser.

- A page on another origin, or on another port of 127.0.0.1 (a dev server the human opens,
  same-site for SameSite cookies), opens the web face's WebSocket with the human's cookie:
  refused, nothing approved.
- A request whose ``Host`` is not the address served (DNS rebinding): refused, token or not.
- Malformed frames from a token holder: an error frame back, no traceback, the run goes on
  and a good frame still decides.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import aiohttp
import pytest

from ralph_tui.server.http import read_serve_file
from ralph_tui.server.protocol import MAX_FRAME_BYTES
from tests.remote.test_web import free_port, start_run, start_web, stop
from tests.support.cdp import chromium
from tests.support.repo import git
from tests.support.tools import requires_chromium


async def _handshake(url: str, headers: dict[str, str]) -> int:
    """The HTTP status of a WebSocket upgrade (101 when accepted)."""
    async with aiohttp.ClientSession() as session:
        try:
            async with session.ws_connect(url, headers=headers) as ws:
                await ws.close()
                return 101
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status


async def test_the_run_server_refuses_foreign_origins_and_hosts(tmp_path: Path) -> None:
    root, run = await start_run(tmp_path)
    try:
        url, token = read_serve_file(root)
        port = int(url.rsplit(":", 1)[1])
        ws_url = url.replace("http://", "ws://") + "/ws"
        auth = {"X-Ralph-Token": token}
        assert await _handshake(ws_url, auth) == 101  # a client: no Origin, the token
        for origin in ("http://evil.example", f"http://127.0.0.1:{free_port()}", "null"):
            assert await _handshake(ws_url, {**auth, "Origin": origin}) == 403, origin
        assert await _handshake(ws_url, {**auth, "Host": f"evil.example:{port}"}) == 403
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{url}/api/prd/update",
                json={"key": "US-001", "changes": {"passes": True}},
                headers={**auth, "Origin": "http://evil.example"},
            ) as response,
        ):
            assert response.status == 403
        assert "Task #US-001" not in git(root, "log", "--format=%s")
    finally:
        await stop(run)


BAD_FRAMES = [
    ('{"t": "decide", "id": 1, "decision": ["approve"]}', "decision"),
    ('{"t": "decide", "id": "1e999", "decision": {"kind": "approve"}}', "id"),
    ('{"t": "decide", "id": 1e999, "decision": {"kind": "approve"}}', "id"),
    ('{"t": "decide", "id": 1, "decision": {"kind": "merge-anyway"}}', "decision.kind"),
    ('{"t": "launch-missiles"}', "does not match any of the expected tags"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ("not json", "not JSON"),
    ('{"t": "control", "action": "stop", "extra": 1}', "extra"),
    ('"' + "x" * (MAX_FRAME_BYTES + 1) + '"', "frame longer than"),  # read, then refused
    (json.dumps({"t": "decide", "id": 1, "decision": {"kind": "reject", "feedback": "x" * 70_000}}),
     "decision.feedback"),
    ('{"t": "reply", "id": -1, "answer": {"kind": "answer"}}', "id"),
    ('{"t": "decide", "id": 1, "decision": {"kind": "reject", "feedback": "\\ud800"}}',
     "decision.feedback"),
    ('{"t": "decide", "id": true, "decision": {"kind": "approve"}}', "id"),
]  # fmt: skip


async def test_malformed_frames_get_an_error_and_the_run_goes_on(tmp_path: Path) -> None:
    root, run = await start_run(tmp_path)
    try:
        url, token = read_serve_file(root)
        ws_url = url.replace("http://", "ws://") + "/ws"
        headers = {"X-Ralph-Token": token}
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(ws_url, headers=headers) as ws,
        ):
            ask_id = None
            while ask_id is None:  # the history, then the pending approval
                batch = json.loads((await ws.receive(timeout=30)).data)
                batch = batch if isinstance(batch, list) else [batch]
                ask_id = next((m["id"] for m in batch if m.get("t") == "ask"), None)
            for frame, expected in BAD_FRAMES:
                await ws.send_str(frame)
                while True:  # skip the events the run keeps sending
                    reply = json.loads((await ws.receive(timeout=30)).data)
                    if isinstance(reply, dict) and reply.get("t") == "error":
                        break
                assert expected in reply["error"], (frame[:60], reply)
            decide = {"t": "decide", "id": ask_id, "decision": {"kind": "approve"}}
            await ws.send_str(json.dumps(decide))
            assert await asyncio.wait_for(run.wait(), 60) == 0
        assert run.stdout is not None
        rest = (await run.stdout.read()).decode()
        assert "Traceback" not in rest
        assert "Task #US-001" in git(root, "log", "-1", "--format=%s")
    finally:
        await stop(run)


ATTACK_PAGE = """<!doctype html><title>waiting</title><script>
const edit = JSON.stringify({key: "US-001", changes: {passes: true}});
const posted = fetch("http://127.0.0.1:%(run)d/api/prd/update", {
  method: "POST", mode: "no-cors", credentials: "include", body: edit,
}).then(() => "sent", () => "failed");
const ws = new WebSocket("ws://127.0.0.1:%(web)d/ws");
const opened = new Promise((done) => {
  ws.onopen = () => { ws.send(JSON.stringify(["stdin", "a"])); done("open"); };
  ws.onerror = () => done("refused");
});
Promise.all([opened, posted]).then(([w, p]) => { document.title = w + " " + p; });
</script>"""


@contextmanager
def attack_site(web_port: int, run_port: int) -> Iterator[int]:
    """A page on another port of 127.0.0.1 that opens the web face's WebSocket and presses
    ``a``, and POSTs a PRD edit (a simple request: no preflight) to the run server."""
    body = (ATTACK_PAGE % {"web": web_port, "run": run_port}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@requires_chromium
async def test_a_page_on_another_port_cannot_drive_the_browser_face(tmp_path: Path) -> None:
    root, run = await start_run(tmp_path)
    port = free_port()
    web, address = await start_web(root, port)
    try:
        async with chromium() as open_page:
            page = await open_page(address)  # the human logs in: the cookie is set
            await page.wait_for_text("Approval needed")
            run_port = int(read_serve_file(root)[0].rsplit(":", 1)[1])
            with attack_site(port, run_port) as attack_port:
                await page.call("Page.navigate", url=f"http://127.0.0.1:{attack_port}/")
                title = ""
                for _ in range(300):  # the page's own verdict, polled (an event in the page)
                    title = await page.evaluate("document.title")
                    if title.startswith(("open", "refused")):
                        break
                    await asyncio.sleep(0.1)
                assert title.startswith("refused "), title
        assert run.returncode is None  # still waiting for a human
        assert "Task #US-001" not in git(root, "log", "--format=%s")
        prd = json.loads((root / "tasks" / "backend_prd.json").read_text(encoding="utf-8"))
        assert not any(s.get("passes") for s in prd["userStories"]), prd
    finally:
        await stop(run, web)


@pytest.mark.parametrize("host", ["evil.example", "127.0.0.1.nip.io"])
async def test_the_web_face_refuses_a_foreign_host(tmp_path: Path, host: str) -> None:
    root, run = await start_run(tmp_path)
    port = free_port()
    web, address = await start_web(root, port)
    try:
        headers = {"Host": f"{host}:{port}"}
        async with aiohttp.ClientSession() as session, session.get(address, headers=headers) as got:
            assert got.status == 403
    finally:
        await stop(run, web)


async def test_a_cookie_alone_decides_nothing_on_the_run_server(tmp_path: Path) -> None:
    """The run server takes the token from a header (or the query), never a cookie: a page that
    somehow has the web face's cookie still cannot open the run's socket or edit its PRD."""
    root, run = await start_run(tmp_path)
    try:
        url, token = read_serve_file(root)
        cookie = {"Cookie": f"ralph_token={token}"}
        assert await _handshake(url.replace("http://", "ws://") + "/ws", cookie) == 401
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{url}/api/prd/update",
                json={"key": "US-001", "changes": {"passes": True}},
                headers={**cookie, "Origin": url},
            ) as response,
        ):
            assert response.status == 401
        prd = json.loads((root / "tasks" / "backend_prd.json").read_text(encoding="utf-8"))
        assert not any(s.get("passes") for s in prd["userStories"]), prd
        assert run.returncode is None  # still waiting for a human
    finally:
        await stop(run)


async def test_the_web_face_socket_needs_its_own_origin_even_with_the_cookie(
    tmp_path: Path,
) -> None:
    root, run = await start_run(tmp_path)
    port = free_port()
    web, _address = await start_web(root, port)
    try:
        _url, token = read_serve_file(root)
        ws_url = f"ws://127.0.0.1:{port}/ws"
        cookie = {"Cookie": f"ralph_token={token}"}
        for origin in ("http://evil.example", f"http://127.0.0.1:{free_port()}", "null"):
            assert await _handshake(ws_url, {**cookie, "Origin": origin}) == 403, origin
        host = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
        assert await _handshake(ws_url, {**cookie, **host}) == 403
        assert await _handshake(ws_url, {"Origin": f"http://127.0.0.1:{port}"}) == 401
        assert "Task #US-001" not in git(root, "log", "--format=%s")
    finally:
        await stop(run, web)


BAD_BROWSER_FRAMES = [
    '["stdin"]',
    '["stdin", ["a"]]',
    '["resize", {"width": "80", "height": 24}]',
    '["resize", 5]',
    '{"stdin": "a"}',
    '["launch-missiles", 1]',
    "[" * 100_000 + "]" * 100_000,
    "not json",
    '"' + "x" * (MAX_FRAME_BYTES + 1) + '"',
]


async def test_malformed_browser_frames_are_ignored_and_the_tab_stays(tmp_path: Path) -> None:
    """textual-serve's own loop asserts and indexes: a bad frame from the page was a traceback
    and a dropped tab. Each one now gets a console line back and the tab goes on."""
    root, run = await start_run(tmp_path)
    port = free_port()
    web, _address = await start_web(root, port)
    try:
        _url, token = read_serve_file(root)
        headers = {"Cookie": f"ralph_token={token}", "Origin": f"http://127.0.0.1:{port}"}
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"ws://127.0.0.1:{port}/ws", headers=headers) as ws,
        ):
            for frame in BAD_BROWSER_FRAMES:
                await ws.send_str(frame)
                while True:  # skip the screen the attached TUI keeps drawing
                    reply = await ws.receive(timeout=30)
                    assert reply.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY)
                    if reply.type == aiohttp.WSMsgType.TEXT and "bad frame" in reply.data:
                        break
            await ws.send_str('["stdin", "\\ud800"]')  # a lone surrogate: a key, replaced
            await ws.send_str('["ping", "still-here"]')
            while True:
                reply = await ws.receive(timeout=30)
                assert reply.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY)
                if reply.type == aiohttp.WSMsgType.TEXT and "still-here" in reply.data:
                    assert json.loads(reply.data) == ["pong", "still-here"]
                    break
        assert web.returncode is None
        assert "Task #US-001" not in git(root, "log", "--format=%s")
    finally:
        await stop(run, web)


BAD_EDITS = [
    ("update", {"key": "US-001", "changes": ["passes", True]}),
    ("update", {"key": ["US-001"], "changes": {"title": "x"}}),
    ("update", {"key": "US-001", "changes": {"priority": [1e999]}}),
    ("update", {"key": "US-001", "changes": {"passes": "yes"}}),
    ("update", {"key": "US-001"}),
    ("move", {"key": "US-001", "direction": ["up"]}),
    ("move", {"key": {"a": 1}, "direction": "up"}),
    ("add", {"fields": "a story"}),
    ("add", {"fields": {"id": ["x"], "title": 5}}),
    ("update", []),
    ("launch", {}),
]


async def test_malformed_prd_edits_are_refused_in_one_line(tmp_path: Path) -> None:
    """PRD edits are plain HTTP from a token holder: each bad body is a 4xx with the reason,
    never a 500 and a traceback, and the run and its PRD go on unharmed."""
    root, run = await start_run(tmp_path)
    try:
        url, token = read_serve_file(root)
        prd_file = root / "tasks" / "backend_prd.json"
        before = prd_file.read_bytes()
        async with aiohttp.ClientSession(headers={"X-Ralph-Token": token}) as session:
            for op, body in BAD_EDITS:
                async with session.post(f"{url}/api/prd/{op}", json=body) as response:
                    text = await response.text()
                    assert 400 <= response.status < 500, (op, body, response.status, text)
                    assert "error" in json.loads(text), text
            async with session.get(f"{url}/api/info") as response:
                assert response.status == 200
        assert prd_file.read_bytes() == before
        assert run.returncode is None
    finally:
        await stop(run)
    assert run.stdout is not None
    assert "Traceback" not in (await run.stdout.read()).decode()
