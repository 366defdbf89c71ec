"""The built-in agent: a streaming Messages API tool loop on the official ``anthropic`` SDK.

One fresh conversation per iteration. Every call streams (text deltas reach the UI as they
arrive); the message is accumulated from the raw ``create(stream=True)`` events here, since the
SDK's ``messages.stream()`` helper re-snapshots the whole message on every event. Tool calls
go through ``ToolBox`` so confinement and events are the same as for every other backend. The
loop ends when the engine says so (``tools.finished``: committed, skipped, gave up) or when a
stop reason ends the conversation.

Prompt caching: breakpoints on the last tool definition and on the system prompt (the stable
prefix, shared by every call of the run) and one on the latest message, moved each turn, so each
call re-reads the whole previous conversation from cache and pays full price only for the new
tail.

Faults: the SDK retries 408/409/429/5xx/529 and connection errors itself (``max_retries``). It
cannot retry a stream that breaks off after it started (an ``event: error``, a dropped
connection), so the turn is retried here, a bounded number of times with backoff. A 401 is
reported at once.

Start-up: importing the SDK (and its HTTP stack) takes about a second, longer than setting up
the rest of the run. Nothing here imports it until the first request, and then on a worker
thread (``_load_sdk``), as is the client made, so the event loop (a TUI's painting, other
workers) never blocks on it.
``preload_sdk`` starts the import earlier, on a background thread: headless as soon as the run
knows its agent, the TUI once its first frame is painted; the first request then waits only for
what is left of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import email.utils
import functools
import importlib
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ralph_tui.checks import Check, api_key_check
from ralph_tui.config import RalphConfig
from ralph_tui.context import RALPH_TOOL_RULES
from ralph_tui.errors import AgentError, AgentRateLimited, UsageError
from ralph_tui.events import Event, Notice, TextDelta
from ralph_tui.iteration import AgentOutcome, IterationHandle, IterationRequest, Usage
from ralph_tui.safety import credentials
from ralph_tui.safety.text import encodable, encodable_data, one_line
from ralph_tui.tools import TOOL_DEFINITIONS, ToolBox

if TYPE_CHECKING:
    import anthropic
    from anthropic.types import RawMessageStreamEvent

log = logging.getLogger(__name__)

EPHEMERAL: dict[str, str] = {"type": "ephemeral"}
MAX_TOKENS_NOTE = (
    "[ralph-tui] Your reply was cut off at the max_tokens limit{dropped}. Continue; keep each "
    "tool input small (write a large file in several steps)."
)

Message = dict[str, Any]
# stream errors that mean "rate-limited" (a fallback agent may take over), not "broken"
LIMIT_ERRORS = ("overloaded_error", "rate_limit_error")


class _StreamBroke(Exception):
    """The response stream failed after it began: the SDK does not retry that, we do.
    ``limited``: the error was ``overloaded_error`` or ``rate_limit_error``."""

    def __init__(self, description: str, *, limited: bool = False) -> None:
        super().__init__(description)
        self.description = description
        self.limited = limited


class _Emits(Protocol):
    """What a turn needs from its caller: somewhere to send text deltas and notices."""

    def emit(self, event: Event) -> None: ...


class _Emitter:
    def __init__(self, emit: Callable[[Event], None]) -> None:
        self.emit = emit


_preload_lock = threading.Lock()
_preload_started = False


def preload_sdk() -> None:
    """Import the SDK on a daemon thread, once: the run's set-up (git, PRD, sandbox) goes on
    meanwhile. A later ``import anthropic`` waits on the module lock for what is left."""
    global _preload_started
    with _preload_lock:
        if _preload_started:
            return
        _preload_started = True
    threading.Thread(target=_import_sdk, name="anthropic-sdk-import", daemon=True).start()


async def _load_sdk() -> None:
    """The SDK imported without blocking the event loop: on a worker thread, which waits on the
    module lock while the preload thread (if any) finishes the import."""
    await asyncio.to_thread(importlib.import_module, "anthropic")


def _import_sdk() -> None:
    try:
        importlib.import_module("anthropic")
    except ImportError as exc:  # the first request reports it, in the run
        log.warning("could not preload the anthropic SDK: %s", exc)


class AnthropicAgent:
    name = "anthropic"

    def __init__(
        self,
        config: RalphConfig,
        *,
        client: anthropic.AsyncAnthropic | None = None,
        max_retries: int = 4,
        turn_retries: int = 3,
        retry_backoff_s: float = 2.0,
    ) -> None:
        self.config = config
        self.turn_retries = turn_retries
        self.retry_backoff_s = retry_backoff_s
        self.max_retries = max_retries
        self._owns_client = client is None
        self._key = ""
        self._base_url: str | None = None
        if client is None:
            # handed over by name: the key is no longer in os.environ (see credentials)
            self._key = (credentials.get("ANTHROPIC_API_KEY") or "").strip()
            if not self._key:
                raise UsageError(
                    "ANTHROPIC_API_KEY is not set: export it, or choose another agent "
                    "(--agent, or agent = ... in ralph.toml)"
                )
            # ANTHROPIC_BASE_URL (tests, proxies) is withheld with the key: passed on too
            self._base_url = credentials.get("ANTHROPIC_BASE_URL") or None
        self._client = client
        self._sdk_loaded = client is not None
        self.tool_params = _tool_params()

    @property
    def client(self) -> anthropic.AsyncAnthropic:
        """The SDK client, made at the first request (making it needs the SDK imported)."""
        if self._client is None:
            import anthropic

            self._client = anthropic.AsyncAnthropic(
                api_key=self._key, base_url=self._base_url, max_retries=self.max_retries
            )
        return self._client

    async def aclose(self) -> None:
        if self._owns_client and self._client is not None:
            await self._client.close()

    async def run_iteration(
        self, request: IterationRequest, tools: IterationHandle
    ) -> AgentOutcome:
        box = ToolBox(tools, self.config)
        prompt = f"{request.system_prompt.strip()}\n\n{RALPH_TOOL_RULES}"
        system = [{"type": "text", "text": prompt, "cache_control": EPHEMERAL}]
        messages: list[Message] = [
            {"role": "user", "content": [{"type": "text", "text": encodable(request.user_prompt)}]}
        ]
        last_text = ""
        while True:
            await tools.checkpoint()
            move_cache_breakpoint(messages)
            reply = await self._turn(system, messages, tools)
            tools.report_usage(_usage(reply.usage))
            last_text = _last_text(reply) or last_text
            stop = reply.stop_reason
            content = _assistant_content(reply)
            truncated: dict[str, Any] | None = None
            if stop == "max_tokens" and content and content[-1]["type"] == "tool_use":
                truncated = content.pop()  # its input JSON was cut off: never run it
            # sent back as sent, except lone surrogates (valid JSON, not encodable UTF-8)
            sent_back = encodable_data(content) or [_text("…")]
            messages.append({"role": "assistant", "content": sent_back})
            results = await self._run_tools(box, tools, content)
            if tools.finished:
                return AgentOutcome("finished")
            if stop == "max_tokens":
                dropped = f" (the {truncated['name']} call was incomplete)" if truncated else ""
                results.append(_text(MAX_TOKENS_NOTE.format(dropped=dropped)))
            if results:
                messages.append({"role": "user", "content": results})
                continue
            if stop == "pause_turn":
                continue  # a long turn paused by the API: send it back as is to resume
            if stop == "refusal":
                return AgentOutcome(
                    "refusal", "the model refused to continue (stop reason: refusal)"
                )
            if stop in ("end_turn", "stop_sequence"):
                return AgentOutcome("end_turn", one_line(last_text, 300))
            return AgentOutcome("end_turn", f"stop reason {stop}")

    async def _run_tools(
        self, box: ToolBox, tools: IterationHandle, content: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        for block in content:
            if block["type"] != "tool_use":
                continue
            if tools.finished:
                # the engine ended the iteration during an earlier call of this batch
                break
            outcome = await box.call(block["id"], block["name"], block.get("input") or {})
            result: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": block["id"],
                "content": outcome.content or "(no output)",
            }
            if outcome.is_error:
                result["is_error"] = True
            results.append(result)
            if outcome.ends_iteration:
                break
        return results

    async def ask(
        self, system: str, messages: list[Message], emit: Callable[[Event], None]
    ) -> tuple[str, Usage]:
        """One request without tools, with the same client and retries as an iteration's turns.

        Used by ``ralph-tui prd`` to draft a PRD; returns the reply's text and its usage.
        """
        system_blocks = [{"type": "text", "text": system}]
        reply = await self._turn(system_blocks, messages, _Emitter(emit), tool_params=[])
        text = "".join(b.text for b in reply.content if b.type == "text")
        return text, _usage(reply.usage)

    async def tool_turn(
        self,
        system: str,
        messages: list[Message],
        tool_params: list[dict[str, Any]],
        emit: Callable[[Event], None],
    ) -> tuple[list[dict[str, Any]], Usage]:
        """One turn with the caller's own tools (the PM's read-only set, ``ralph_tui.pm``), with
        the same client and retries: the reply's content as request params, and its usage."""
        system_blocks = [{"type": "text", "text": system}]
        reply = await self._turn(system_blocks, messages, _Emitter(emit), tool_params=tool_params)
        return _assistant_content(reply), _usage(reply.usage)

    async def _turn(
        self,
        system: list[dict[str, Any]],
        messages: list[Message],
        tools: _Emits,
        *,
        tool_params: list[dict[str, Any]] | None = None,
    ) -> anthropic.types.Message:
        attempt = 0
        while True:
            try:
                return await self._stream(system, messages, tools, tool_params)
            except _StreamBroke as exc:
                if attempt >= self.turn_retries:
                    message = f"Anthropic API: {exc.description} (after {attempt + 1} attempts)"
                    if exc.limited:  # a fallback agent can take over (agents/fallback.py)
                        raise AgentRateLimited(message) from exc
                    raise AgentError(message) from exc
                attempt += 1
                tools.emit(
                    Notice(
                        level="warning",
                        message=f"Anthropic API: {exc.description}; retrying the turn "
                        f"({attempt} of {self.turn_retries})",
                    )
                )
                await asyncio.sleep(self.retry_backoff_s * 2 ** (attempt - 1))

    async def _stream(
        self,
        system: list[dict[str, Any]],
        messages: list[Message],
        tools: _Emits,
        tool_params: list[dict[str, Any]] | None = None,
    ) -> anthropic.types.Message:
        params = self.tool_params if tool_params is None else tool_params
        tool_arg: dict[str, Any] = {"tools": params} if params else {}  # no tools: leave it out
        if not self._sdk_loaded:
            await _load_sdk()
            # making a client builds an SSL context (20-60 ms): off the loop too, where four
            # workers' first requests would otherwise wait on each other's
            await asyncio.to_thread(lambda: self.client)
            self._sdk_loaded = True
        import anthropic  # loaded by now (see the module docstring)

        started = False
        try:
            stream = await self.client.messages.create(
                model=self.config.model,
                max_tokens=self.config.max_tokens,
                system=system,  # type: ignore[arg-type]
                **tool_arg,
                messages=messages,  # type: ignore[arg-type]
                stream=True,
            )
            started = True
            # the params above are typed loosely, so mypy cannot pick the stream=True overload
            assert isinstance(stream, anthropic.AsyncStream)
            async with stream:
                reply = await _accumulate(stream, tools)
        except anthropic.AuthenticationError as exc:
            raise AgentError(f"{_describe(exc)}; check ANTHROPIC_API_KEY") from None
        except anthropic.APIStatusError as exc:
            if started:
                limited = _error_type(exc) in LIMIT_ERRORS
                raise _StreamBroke(_describe(exc, prefix=False), limited=limited) from exc
            if exc.status_code in (429, 529):  # the SDK's own retries are spent by now
                raise rate_limited(exc) from None
            raise AgentError(_describe(exc)) from None
        except anthropic.APIConnectionError as exc:
            if started:
                raise _StreamBroke(f"connection lost mid-stream: {exc}") from exc
            raise AgentError(f"Anthropic API: cannot connect: {exc}") from None
        except anthropic.APIError as exc:
            # anything else the SDK reports (a malformed stream, say) after it began streaming
            if started:
                raise _StreamBroke(f"stream failed: {exc}") from exc
            raise AgentError(f"Anthropic API: {exc}") from None
        except _transport_errors() as exc:
            # the SDK does not wrap errors of the HTTP library while reading an open stream
            if started:
                raise _StreamBroke(f"connection lost mid-stream: {exc}") from exc
            raise AgentError(f"Anthropic API: connection error: {exc}") from None
        if reply is None:  # the body ended cleanly but without message_stop
            raise _StreamBroke("the stream ended before the message was complete")
        return reply


async def _accumulate(
    stream: AsyncIterator[RawMessageStreamEvent], tools: _Emits
) -> anthropic.types.Message | None:
    """The message the raw events describe, text deltas emitted as they come; None if cut short.

    The SDK's ``messages.stream()`` helper rebuilds a full snapshot of the message on every
    event (quadratic in a long answer); here each block's pieces are kept in a list and joined
    once, at ``message_stop``.
    """
    message: dict[str, Any] | None = None
    blocks: list[dict[str, Any]] = []
    parts: list[list[str]] = []  # per block: text, thinking or input JSON pieces
    async for event in stream:
        match event.type:
            case "message_start":
                message = event.message.model_dump(mode="json")
            case "content_block_start":
                blocks.append(event.content_block.model_dump(mode="json", exclude_none=True))
                parts.append([])
            case "content_block_delta":
                delta = event.delta
                match delta.type:
                    case "text_delta":
                        if delta.text:
                            parts[event.index].append(delta.text)
                            tools.emit(TextDelta(text=encodable(delta.text)))
                    case "input_json_delta":
                        parts[event.index].append(delta.partial_json)
                    case "thinking_delta":
                        parts[event.index].append(delta.thinking)
                    case "signature_delta":
                        blocks[event.index]["signature"] = delta.signature
                    case "citations_delta":
                        citations = blocks[event.index].setdefault("citations", [])
                        citations.append(delta.citation.model_dump(mode="json"))
            case "message_delta":
                if message is not None:
                    message["stop_reason"] = event.delta.stop_reason
                    message["stop_sequence"] = event.delta.stop_sequence
                    usage = event.usage.model_dump(exclude_none=True)
                    message["usage"].update(usage)
            case "message_stop":
                if message is None:
                    return None
                cut_off = message.get("stop_reason") == "max_tokens"
                for block, pieces in zip(blocks, parts, strict=True):
                    if not _finish_block(block, pieces) and not cut_off:
                        raise _StreamBroke("the model sent tool input that is not valid JSON")
                message["content"] = blocks
                from anthropic.types import Message as SdkMessage

                return SdkMessage.model_validate(message)
    return None


def _finish_block(block: dict[str, Any], pieces: list[str]) -> bool:
    """Join a block's streamed pieces into the field its type keeps them in; False if a tool
    call's input is not valid JSON (cut off by max_tokens, where the caller drops the call)."""
    kind = block.get("type")
    if kind == "text":
        block["text"] = block.get("text", "") + "".join(pieces)
    elif kind == "thinking":
        block["thinking"] = block.get("thinking", "") + "".join(pieces)
    elif kind in ("tool_use", "server_tool_use") and pieces:
        raw = "".join(pieces)
        try:
            block["input"] = json.loads(raw) if raw.strip() else {}
        except ValueError:
            block["input"] = {}
            return False
    return True


@functools.cache
def _transport_errors() -> tuple[type[Exception], ...]:
    """The HTTP library's transport errors (``httpx2`` for SDK 2.x, ``httpx`` before)."""
    found: list[type[Exception]] = []
    for name in ("httpx2", "httpx"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        found.append(module.TransportError)
    return tuple(found)


def _tool_params() -> list[dict[str, Any]]:
    params = copy.deepcopy(TOOL_DEFINITIONS)
    params[-1]["cache_control"] = EPHEMERAL
    return params


def move_cache_breakpoint(messages: list[Message]) -> None:
    """Mark only the latest message's last block, so the next call reads all before it from cache.

    The API allows four breakpoints; two are on tools and system, and a breakpoint left behind
    on an older message would only waste one (the lookback finds those prefixes anyway).
    """
    for message in messages:
        content = message["content"]
        if isinstance(content, list):
            for block in content:
                block.pop("cache_control", None)
    last = messages[-1]
    if isinstance(last["content"], str):
        last["content"] = [_text(last["content"])]
    last["content"][-1]["cache_control"] = EPHEMERAL


def _text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def _assistant_content(reply: anthropic.types.Message) -> list[dict[str, Any]]:
    """The reply as request params: only the fields the API accepts back, no empty text."""
    content: list[dict[str, Any]] = []
    for block in reply.content:
        if block.type == "text":
            if block.text:
                content.append(_text(block.text))
        elif block.type == "tool_use":
            content.append(
                {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
            )
        else:  # thinking, server tool blocks: sent back as they came
            content.append(block.model_dump(mode="json", exclude_none=True))
    # the API refuses a final assistant text that ends in whitespace (when the turn continues)
    if content and content[-1]["type"] == "text":
        stripped = content[-1]["text"].rstrip()
        if stripped:
            content[-1]["text"] = stripped
        else:
            content.pop()
    return content


def _last_text(reply: anthropic.types.Message) -> str:
    texts = [b.text for b in reply.content if b.type == "text" and b.text.strip()]
    return texts[-1] if texts else ""


def _usage(usage: anthropic.types.Usage) -> Usage:
    return Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_creation_input_tokens=usage.cache_creation_input_tokens or 0,
        cache_read_input_tokens=usage.cache_read_input_tokens or 0,
    )


def rate_limited(exc: anthropic.APIStatusError) -> AgentRateLimited:
    """A 429 or 529 as ``AgentRateLimited``, with when to try again: ``retry-after`` (seconds
    or an HTTP date), else the latest ``anthropic-ratelimit-*-reset`` time (RFC 3339)."""
    headers = exc.response.headers
    retry_after: float | None = None
    reset_at: float | None = None
    raw = (headers.get("retry-after") or "").strip()
    if raw:
        try:
            retry_after = float(raw)
        except ValueError:
            with contextlib.suppress(TypeError, ValueError, IndexError):
                reset_at = email.utils.parsedate_to_datetime(raw).timestamp()
    resets: list[float] = []
    for name, value in headers.items():
        if name.lower().startswith("anthropic-ratelimit-") and name.lower().endswith("-reset"):
            with contextlib.suppress(ValueError):
                resets.append(datetime.fromisoformat(value.strip()).timestamp())
    if not retry_after and reset_at is None and resets:
        reset_at = max(resets)
    return AgentRateLimited(_describe(exc), reset_at=reset_at, retry_after_s=retry_after or None)


def _error_type(exc: anthropic.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error") if isinstance(body.get("error"), dict) else body
    return str((error or {}).get("type") or "error")


def _describe(exc: anthropic.APIStatusError, *, prefix: bool = True) -> str:
    """``Anthropic API: 429 rate_limit_error: <message>``; the status is 200 for stream errors."""
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error") if isinstance(body.get("error"), dict) else body
    kind = _error_type(exc)
    message = (error or {}).get("message") or exc.message
    status = "" if exc.status_code == 200 else f"{exc.status_code} "
    text = f"{status}{kind}: {one_line(str(message), 300)}"
    return f"Anthropic API: {text}" if prefix else text


# ---- registration (``agents.registry``) -------------------------------------------------------


def create(config: RalphConfig, workspace: Path) -> AnthropicAgent:
    return AnthropicAgent(config)


def doctor_checks(root: Path, config: RalphConfig) -> Iterator[Check]:
    yield api_key_check(required=True)
