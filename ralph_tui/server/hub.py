"""The run's state for remote faces: the event history, the open questions, the clients.

``RunHub`` is an ``EventSink`` (cheap: it serialises each event once, redacted, and queues the
line for every client) and the remote half of the supervisor (``open_ask`` / ``resolve``). A
client that connects gets, atomically and in order, the run info, the history so far, the PRD and
every open question, then everything live on the same queue, so it can never miss or reorder an
event. Streamed text is redacted with a held-back tail (a secret split across two deltas is still
caught) and merged in the history, so a reconnect replays one text event per stretch of text.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Protocol

from ralph_tui.errors import RalphError
from ralph_tui.events import (
    Committed,
    EscalationAnswered,
    Event,
    PrdChanged,
    RunFinished,
    TextDelta,
)
from ralph_tui.prd.model import Prd
from ralph_tui.safety.workspace import Redactor
from ralph_tui.supervisor import ApprovalDecision, EscalationAnswer, QuestionKind

log = logging.getLogger(__name__)

MAX_QUEUE = 100_000  # messages waiting for one client before it is dropped (it can reconnect)


class RunControl(Protocol):
    """What a client may do to the run besides answering: the engine satisfies this."""

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def request_stop(self) -> None: ...

    def open_approval(self, story_id: str) -> bool: ...


def _dumps(data: object) -> str:
    return json.dumps(data, ensure_ascii=False, default=str)


class TextGuard:
    """Redacts streamed text, holding back a tail that could be the start of a secret."""

    def __init__(self, redact: Redactor) -> None:
        self._redact = redact
        self._held = ""

    def feed(self, text: str) -> str:
        joined = self._held + text
        redacted = self._redact(joined)
        if redacted != joined:  # a secret was found whole: nothing left to hold back
            self._held = ""
            return redacted
        cut = max(0, len(joined) - self._redact.longest)
        self._held = joined[cut:]
        return joined[:cut]

    def flush(self) -> str:
        held, self._held = self._held, ""
        return self._redact(held)


class Client:
    """One attached face: an ordered queue of serialised messages and the task sending them."""

    def __init__(self, peer: str) -> None:
        self.peer = peer
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.dropped = False

    def put(self, message: str) -> None:
        if self.dropped:
            return
        if self.queue.qsize() >= MAX_QUEUE:
            log.warning("client %s is too slow; dropping it (it may reconnect)", self.peer)
            self.dropped = True
            self.queue.put_nowait(None)
            return
        self.queue.put_nowait(message)

    async def pump(self, send: Callable[[str], Any]) -> None:
        """Send queued messages as JSON lists, as many per frame as are waiting."""
        while True:
            first = await self.queue.get()
            if first is None:
                return
            batch = [first]
            closing = False
            while not self.queue.empty():
                item = self.queue.get_nowait()
                if item is None:
                    closing = True
                    break
                batch.append(item)
            await send("[" + ",".join(batch) + "]")
            if closing:
                return


@dataclass
class _Ask:
    id: int
    kind: QuestionKind
    message: str  # the serialised ``ask`` message, replayed to clients that connect later
    future: asyncio.Future[Any]


class RunHub:
    def __init__(
        self,
        info: dict[str, Any],
        *,
        redact: Redactor,
        load_prd: Callable[[], Prd],
        skipped: Callable[[], Collection[str]],
        control: RunControl | None = None,
    ) -> None:
        self.info = info
        self.control = control
        self._redact = redact
        self._guard = TextGuard(redact)
        self._load_prd = load_prd
        self._skipped = skipped
        self._history: list[str | list[str]] = []  # event JSON, or pieces of one stretch of text
        self._text_ts = 0.0
        self._clients: set[Client] = set()
        # every question open at once, oldest first: with workers an approval and another
        # worker's escalation are open together, and each client decision names its own
        self._asks: dict[int, _Ask] = {}
        self._ids = itertools.count(1)
        self._prd_message: str | None = None
        self._prd_task: asyncio.Task[None] | None = None
        self._prd_dirty = False
        self.finished = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop the clients live on; events from other threads are handed over to it."""
        self._loop = loop
        self._thread = threading.get_ident()

    # ------------------------------------------------------------------ the sink

    def __call__(self, event: Event) -> None:
        if self._loop is not None and threading.get_ident() != self._thread:
            self._loop.call_soon_threadsafe(self._take, event)
            return
        self._take(event)

    def _take(self, event: Event) -> None:
        if isinstance(event, TextDelta):
            text = self._guard.feed(event.text)
            if text:
                self._publish_text(text, event.ts)
            return
        tail = self._guard.flush()
        if tail:
            self._publish_text(tail, event.ts)
        line = self._redact(_dumps(event.to_dict()))
        self._history.append(line)
        self._broadcast('{"t":"event","event":' + line + "}")
        if isinstance(event, PrdChanged | Committed | EscalationAnswered):
            self.refresh_prd()
        if isinstance(event, RunFinished):
            self.finished = True

    def _publish_text(self, text: str, ts: float) -> None:
        last = self._history[-1] if self._history else None
        if isinstance(last, list):
            last.append(text)
        else:
            self._history.append([text])
            self._text_ts = ts
        event = TextDelta(text=text, ts=ts)
        self._broadcast('{"t":"event","event":' + _dumps(event.to_dict()) + "}")

    def _history_lines(self) -> list[str]:
        lines: list[str] = []
        for entry in self._history:
            if isinstance(entry, list):
                lines.append(_dumps(TextDelta(text="".join(entry), ts=self._text_ts).to_dict()))
            else:
                lines.append(entry)
        return lines

    def _broadcast(self, message: str) -> None:
        for client in list(self._clients):
            client.put(message)

    # ------------------------------------------------------------------ clients

    def connect(self, peer: str) -> Client:
        """A new client with the whole state so far queued, in order, before anything live."""
        client = Client(peer)
        client.put(_dumps({"t": "hello", "run": self.info}))
        client.put('{"t":"events","events":[' + ",".join(self._history_lines()) + "]}")
        client.put(self._prd_message or self._make_prd_message())
        for ask in self._asks.values():
            client.put(ask.message)
        self._clients.add(client)
        log.info("client %s attached (%d attached)", peer, len(self._clients))
        return client

    def disconnect(self, client: Client) -> None:
        self._clients.discard(client)
        log.info("client %s detached (%d attached)", client.peer, len(self._clients))

    def close_all(self) -> None:
        """Every client's queue ends after what is already queued (the run is over)."""
        for client in list(self._clients):
            client.queue.put_nowait(None)

    @property
    def client_count(self) -> int:
        return len(self._clients)

    # ------------------------------------------------------------------ the PRD

    def _make_prd_message(self) -> str:
        try:
            prd: dict[str, Any] | None = self._load_prd().model_dump(mode="json")
            error = ""
        except (RalphError, OSError) as exc:  # mid-edit or invalid: clients show the error
            log.info("PRD unreadable for clients: %s", exc)
            prd, error = None, str(exc)
        message = _dumps(
            {"t": "prd", "prd": prd, "error": error, "skipped": sorted(self._skipped())}
        )
        self._prd_message = self._redact(message)
        return self._prd_message

    def refresh_prd(self) -> None:
        """Re-read the PRD off the loop and send it to every client (coalesced)."""
        if self._loop is None:
            self._make_prd_message()
            return
        if self._prd_task is not None and not self._prd_task.done():
            self._prd_dirty = True
            return
        self._prd_task = self._loop.create_task(self._send_prd(), name="hub-prd")

    async def _send_prd(self) -> None:
        while True:
            self._prd_dirty = False
            message = await asyncio.to_thread(self._make_prd_message)
            self._broadcast(message)
            if not self._prd_dirty:
                return

    # ------------------------------------------------------------------ questions

    def open_ask(
        self, kind: QuestionKind, payload: dict[str, Any]
    ) -> tuple[int, asyncio.Future[Any]]:
        """Publish a question; the future resolves with the first client's decision."""
        ask_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        message = self._redact(_dumps({"t": "ask", "id": ask_id, "kind": kind, "request": payload}))
        self._asks[ask_id] = _Ask(ask_id, kind, message, future)
        self._broadcast(message)
        return ask_id, future

    def close_ask(self, ask_id: int) -> None:
        """The question was decided (by anyone): every client closes its bar."""
        self._asks.pop(ask_id, None)
        self._broadcast(_dumps({"t": "settled", "id": ask_id}))

    def resolve(self, ask_id: int, kind: QuestionKind, value: object) -> bool:
        """A client's decision; False when stale (another decision won, or the id is old)."""
        ask = self._asks.get(ask_id)
        if ask is None or ask.kind != kind or ask.future.done():
            return False
        ask.future.set_result(value)
        return True

    def settle_safest(self) -> None:
        """The run is stopping: every pending approval is discarded, every escalation
        answered stop."""
        for ask in list(self._asks.values()):
            value = (
                ApprovalDecision.discard() if ask.kind == "approval" else EscalationAnswer("stop")
            )
            self.resolve(ask.id, ask.kind, value)

    @property
    def pending(self) -> tuple[int, QuestionKind] | None:
        """The oldest open question, if any."""
        oldest = next(iter(self._asks.values()), None)
        return (oldest.id, oldest.kind) if oldest is not None else None
