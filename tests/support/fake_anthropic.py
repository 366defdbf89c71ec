"""A Messages-API server on 127.0.0.1 that the test suite owns.

It answers ``POST /v1/messages`` from a queue of scripted replies, in JSON mode or as an SSE
stream shaped like Anthropic's (text and ``input_json_delta`` split into several chunks), and
injects faults: HTTP errors (429/529/500/401, with ``retry-after-ms`` headers so SDK retries are
instant, and a rate limit's ``retry-after`` and reset headers) and a mid-stream
``event: error``. It records every request for assertions, and simulates prompt caching
(prefixes up to a ``cache_control`` breakpoint, 20-block lookback) so the
usage it reports behaves like the real API's.

A real listening socket, so other processes (ralph-tui as a subprocess, the Claude Code CLI) can
use it: ``python -m tests.support.fake_anthropic --script replies.json`` prints its base URL.

Reply dicts (see ``reply``, ``text``, ``tool_use``, ``http_error``, ``stream_error``)::

    {"content": [{"type": "text", "text": "..."},
                 {"type": "tool_use", "name": "bash", "input": {"command": "ls"}}],
     "stop_reason": "tool_use",           # default: tool_use if a tool_use block, else end_turn
     "usage": {"output_tokens": 5},       # optional; the rest is simulated
     "error": {"status": 429},            # optional: answer with this HTTP error instead
     "stream_error": {"type": "overloaded_error"},  # optional: SSE breaks off with an error
     "delay_s": 1.0}                      # optional: model latency before the answer starts
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import json
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.fake_server import ServedInThread, send_json

Reply = dict[str, Any]

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
CACHE_LOOKBACK_BLOCKS = 20
_ids = itertools.count(1)


# ---- building replies -------------------------------------------------------------------


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def tool_use(name: str, tool_input: dict[str, Any], call_id: str | None = None) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": name, "input": tool_input}


def reply(
    *blocks: dict[str, Any] | str,
    stop_reason: str | None = None,
    usage: dict[str, int] | None = None,
) -> Reply:
    content = [text(b) if isinstance(b, str) else b for b in blocks]
    out: Reply = {"content": content}
    if stop_reason:
        out["stop_reason"] = stop_reason
    if usage:
        out["usage"] = usage
    return out


def http_error(
    status: int,
    error_type: str | None = None,
    message: str | None = None,
    *,
    retry_after: str | None = None,
    reset: str | None = None,
) -> Reply:
    """An HTTP error. ``retry_after`` (the ``retry-after`` header, seconds or an HTTP date) and
    ``reset`` (``anthropic-ratelimit-requests-reset``, RFC 3339) say when a limit resets, as
    the API's 429s do; ``retry-after-ms: 1`` is always sent, so the SDK's own retries (which
    read it first) stay instant."""
    kind = error_type or ERROR_TYPES.get(status, "api_error")
    error: dict[str, Any] = {"status": status, "type": kind, "message": message or f"fake {kind}"}
    if retry_after is not None:
        error["retry_after"] = retry_after
    if reset is not None:
        error["reset"] = reset
    return {"error": error}


def rate_limited(
    times: int, *, status: int = 429, retry_after: str | None = None, reset: str | None = None
) -> list[Reply]:
    """``times`` limit errors in a row: the SDK's ``max_retries`` plus one are the agent's
    first request and every retry of it failing (the limit outlasts the retries)."""
    return [http_error(status, retry_after=retry_after, reset=reset) for _ in range(times)]


def stream_error(
    error_type: str = "overloaded_error", message: str = "Overloaded", *, drop: bool = False
) -> Reply:
    """Starts a reply, then breaks off with ``event: error`` (the SDK raises, without retrying).

    ``drop``: the connection dies instead, mid-body, without an error event.
    """
    error: dict[str, Any] = {"type": error_type, "message": message}
    if drop:
        error["drop"] = True
    return {"content": [text("Let me start by looking at")], "stream_error": error}


# ---- prompt caching, as the API does it ---------------------------------------------------


def prompt_blocks(body: dict[str, Any]) -> list[tuple[bytes, bool]]:
    """The request's prompt in cache order (tools, system, messages) as (canonical bytes, marked).

    Bytes are canonical JSON without ``cache_control``; ``marked`` says a breakpoint is there.
    """
    out: list[tuple[bytes, bool]] = []

    def add(kind: str, block: Any) -> None:
        marked = isinstance(block, dict) and "cache_control" in block
        if isinstance(block, dict):
            block = {k: v for k, v in block.items() if k != "cache_control"}
        data = json.dumps([kind, block], sort_keys=True, separators=(",", ":")).encode()
        out.append((data, marked))

    for tool in body.get("tools") or []:
        add("tool", tool)
    system = body.get("system")
    if isinstance(system, str):
        add("system", {"type": "text", "text": system})
    elif isinstance(system, list):
        for block in system:
            add("system", block)
    for message in body.get("messages") or []:
        role = message.get("role", "")
        content = message.get("content")
        if isinstance(content, str):
            add(role, {"type": "text", "text": content})
        else:
            for block in content or []:
                add(role, block)
    return out


def _prefix_hashes(blocks: list[tuple[bytes, bool]]) -> tuple[list[str], list[int]]:
    """Hash and byte size of every prefix: entry i covers blocks[0..i]."""
    digest = hashlib.sha256()
    hashes, sizes, total = [], [], 0
    for data, _ in blocks:
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
        total += len(data)
        hashes.append(digest.copy().hexdigest())
        sizes.append(total)
    return hashes, sizes


def tokens(nbytes: int) -> int:
    return max(0, nbytes // 4)


class PromptCache:
    """Which prefixes are cached; ``account`` says what a request reads, writes and pays in full."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def account(self, body: dict[str, Any]) -> dict[str, int]:
        blocks = prompt_blocks(body)
        hashes, sizes = _prefix_hashes(blocks)
        marks = [i for i, (_, marked) in enumerate(blocks) if marked]
        hit = -1
        for m in marks:
            for j in range(m, max(-1, m - CACHE_LOOKBACK_BLOCKS), -1):
                if hashes[j] in self._seen:
                    hit = max(hit, j)
                    break
        read = sizes[hit] if hit >= 0 else 0
        cached_to = sizes[marks[-1]] if marks else 0
        write = max(0, cached_to - read)
        self._seen.update(hashes[m] for m in marks)
        total = sizes[-1] if sizes else 0
        return {
            "input_tokens": tokens(total - max(read, cached_to)),
            "cache_creation_input_tokens": tokens(write),
            "cache_read_input_tokens": tokens(read),
        }


# ---- the server -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    raw_len: int

    @property
    def stream(self) -> bool:
        return isinstance(self.body, dict) and bool(self.body.get("stream"))


@dataclass
class _State:
    replies: deque[Reply] = field(default_factory=deque)
    requests: list[RecordedRequest] = field(default_factory=list)
    cache: PromptCache = field(default_factory=PromptCache)
    default_text: str = "Nothing more to do."
    chunk_size: int = 7
    lock: threading.Lock = field(default_factory=threading.Lock)
    # answers from the request itself (several agents at once: which story, which turn)
    responder: Callable[[dict[str, Any]], Reply] | None = None


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: pytest shows failures
        pass

    def do_GET(self) -> None:
        self._record(b"")
        self._json(404, _error_body("not_found_error", f"no route for GET {self.path}"))

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        record = self._record(raw)
        route = urlsplit(self.path).path
        state = self.server.state
        if route == "/v1/messages/count_tokens":
            total = sum(len(b) for b, _ in prompt_blocks(_as_dict(record.body)))
            self._json(200, {"input_tokens": tokens(total)})
            return
        if route != "/v1/messages":
            self._json(404, _error_body("not_found_error", f"no route for POST {route}"))
            return
        body = _as_dict(record.body)
        with state.lock:
            if state.responder is not None and not state.replies:
                planned = state.responder(body)
            else:
                planned = state.replies.popleft() if state.replies else reply(state.default_text)
        if planned.get("delay_s"):  # outside the lock: agents at once wait side by side
            time.sleep(float(planned["delay_s"]))
        error = planned.get("error")
        if error:
            status = int(error.get("status", 500))
            kind = error.get("type") or ERROR_TYPES.get(status, "api_error")
            headers = {"retry-after": str(error.get("retry_after", "0")), "retry-after-ms": "1"}
            if error.get("reset"):
                headers["anthropic-ratelimit-requests-reset"] = str(error["reset"])
            self._json(status, _error_body(kind, error.get("message", kind)), headers=headers)
            return
        message = self._message(planned, body)
        if record.stream:
            self._sse(message, planned.get("stream_error"))
        elif planned.get("stream_error"):
            err = planned["stream_error"]
            self._json(529, _error_body(err.get("type", "overloaded_error"), err.get("message")))
        else:
            self._json(200, message)

    # -- helpers --

    def _record(self, raw: bytes) -> RecordedRequest:
        parts = urlsplit(self.path)
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", errors="replace")
        record = RecordedRequest(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            raw_len=len(raw),
        )
        with self.server.state.lock:
            self.server.state.requests.append(record)
        return record

    def _message(self, planned: Reply, body: dict[str, Any]) -> dict[str, Any]:
        content = []
        for block in planned.get("content", []):
            if block.get("type") == "tool_use":
                block = {**block, "id": block.get("id") or f"toolu_fake_{next(_ids):04d}"}
            content.append(block)
        has_tool = any(b.get("type") == "tool_use" for b in content)
        stop = planned.get("stop_reason") or ("tool_use" if has_tool else "end_turn")
        with self.server.state.lock:
            usage = self.server.state.cache.account(body)
        out_bytes = len(json.dumps(content))
        usage = {"output_tokens": max(1, tokens(out_bytes)), **usage, **planned.get("usage", {})}
        return {
            "id": f"msg_fake_{next(_ids):04d}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "claude-fake"),
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": usage,
        }

    def _json(self, status: int, payload: Any, *, headers: dict[str, str] | None = None) -> None:
        send_json(
            self, status, payload, {"request-id": f"req_fake_{next(_ids):04d}", **(headers or {})}
        )

    def _sse(self, message: dict[str, Any], error: dict[str, Any] | None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("request-id", f"req_fake_{next(_ids):04d}")
        self.end_headers()
        for event in _sse_events(message, self.server.state.chunk_size, error):
            if event["type"] == "error" and event["error"].get("drop"):
                # the connection dies: no error event, no final chunk
                self.close_connection = True
                return
            name = event["type"]
            data = f"event: {name}\ndata: {json.dumps(event)}\n\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")


def _chunks(value: str, size: int) -> Iterator[str]:
    for start in range(0, len(value), size):
        yield value[start : start + size]


def _sse_events(
    message: dict[str, Any], chunk_size: int, error: dict[str, Any] | None
) -> Iterator[dict[str, Any]]:
    usage = message["usage"]
    start_usage = {**usage, "output_tokens": 1}
    start = {**message, "content": [], "stop_reason": None, "usage": start_usage}
    yield {"type": "message_start", "message": start}
    yield {"type": "ping"}
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            yield {
                "type": "content_block_start",
                "index": index,
                "content_block": {"type": "text", "text": ""},
            }
            for piece in _chunks(block["text"], chunk_size):
                delta = {"type": "text_delta", "text": piece}
                yield {"type": "content_block_delta", "index": index, "delta": delta}
                if error:
                    yield {"type": "error", "error": error}
                    return
        elif block["type"] == "tool_use":
            opening = {**block, "input": {}}
            yield {"type": "content_block_start", "index": index, "content_block": opening}
            for piece in _chunks(json.dumps(block["input"]), chunk_size):
                delta = {"type": "input_json_delta", "partial_json": piece}
                yield {"type": "content_block_delta", "index": index, "delta": delta}
        else:
            yield {"type": "content_block_start", "index": index, "content_block": block}
        yield {"type": "content_block_stop", "index": index}
    if error:
        yield {"type": "error", "error": error}
        return
    yield {
        "type": "message_delta",
        "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
        "usage": {"output_tokens": usage["output_tokens"]},
    }
    yield {"type": "message_stop"}


def _error_body(kind: str, message: str | None) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message or kind}}


def _as_dict(body: Any) -> dict[str, Any]:
    return body if isinstance(body, dict) else {}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: _State

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that closes its keep-alive connection at exit is not an error."""
        if isinstance(sys.exc_info()[1], ConnectionResetError | BrokenPipeError):
            return
        super().handle_error(request, client_address)


class FakeAnthropic(ServedInThread):
    """The server; ``with FakeAnthropic([...]) as api:`` then point the SDK at ``api.base_url``."""

    name = "fake-anthropic"

    def __init__(self, replies: Iterable[Reply] = (), *, chunk_size: int = 7) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.state = _State(replies=deque(replies), chunk_size=chunk_size)
        super().__init__()

    @property
    def requests(self) -> list[RecordedRequest]:
        """Requests to ``/v1/messages`` (what the agent sent), in order."""
        with self._server.state.lock:
            return [r for r in self._server.state.requests if r.path == "/v1/messages"]

    @property
    def all_requests(self) -> list[RecordedRequest]:
        with self._server.state.lock:
            return list(self._server.state.requests)

    @property
    def pending(self) -> int:
        with self._server.state.lock:
            return len(self._server.state.replies)

    def add(self, *replies: Reply) -> None:
        with self._server.state.lock:
            self._server.state.replies.extend(replies)

    def respond_with(self, responder: Callable[[dict[str, Any]], Reply]) -> None:
        """Answer each request by ``responder(body)`` once the queue is empty: for agents
        that run at once (parallel workers, Ray nodes), where a queue's order is a race."""
        with self._server.state.lock:
            self._server.state.responder = responder


@pytest.fixture
def fake_anthropic() -> Iterator[FakeAnthropic]:
    """A running server with an empty queue; tests ``add`` replies. Register via conftest."""
    with FakeAnthropic() as server:
        yield server


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--script", type=Path, help="JSON file: a list of reply dicts")
    parser.add_argument("--record", type=Path, help="on exit, write the requests here (JSONL)")
    args = parser.parse_args(argv)
    replies = json.loads(args.script.read_text()) if args.script else []
    server = FakeAnthropic(replies)
    signal.signal(signal.SIGTERM, _interrupt)  # terminate() ends it like ^C: requests recorded
    print(server.base_url, flush=True)
    try:
        server._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if args.record:
            with args.record.open("w") as fh:
                for r in server.all_requests:
                    fh.write(json.dumps({"path": r.path, "body": r.body}) + "\n")
        with contextlib.suppress(OSError):
            server._server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
