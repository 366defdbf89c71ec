"""Notifications: a sink that tells a human when they are needed, and when the run ends.

Triggers: ``ApprovalNeeded``, ``Escalated`` (by the agent or automatically after failures) and
``RunFinished``. Channels, each switched in ``[notify]``: the terminal bell and a desktop
notification through the terminal (OSC 777 and OSC 9, written to the terminal the face owns),
``notify-send`` where installed, any ``command`` (the message on stdin, ``RALPH_EVENT``,
``RALPH_STORY``, ``RALPH_URL`` and the secrets named in ``command_env`` in its environment,
nothing else secret-looking) and a JSON ``webhook``. The slow channels run in one background task
each (in order, never blocking the engine's loop); a channel that fails
is reported once as a ``Notice``. Every text passes through the run's ``Redactor``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import shutil
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from ralph_tui.config import NotifyOptions
from ralph_tui.events import (
    ApprovalNeeded,
    Escalated,
    Event,
    IterationStarted,
    Notice,
    RunFinished,
    RunStarted,
)
from ralph_tui.safety import credentials
from ralph_tui.safety.workspace import Redactor

log = logging.getLogger(__name__)

WEBHOOK_TIMEOUT_S = 5.0
WEBHOOK_RETRIES = 2
RETRY_DELAY_S = 0.5
COMMAND_TIMEOUT_S = 30.0
CLOSE_TIMEOUT_S = 20.0  # how long the end of a run waits for the last notifications


@dataclass(frozen=True)
class Notification:
    event: str  # approval_needed | escalated | run_finished | run_failed
    story_id: str
    title: str
    run_id: str
    message: str
    url: str

    def payload(self) -> dict[str, str]:
        return {
            "event": self.event,
            "story_id": self.story_id,
            "title": self.title,
            "run_id": self.run_id,
            "message": self.message,
            "url": self.url,
        }


def _clean(text: str) -> str:
    """One line without control characters: safe inside an escape sequence."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())


# what the PM ([pm]) did with an escalation, said in its notification
PM_NOTES = {
    "unknown": "; the PM could not answer",
    "suggested": "; the PM suggests an answer",
    "answers_later": "; the PM answers unless you do",
}


class Notifier:
    def __init__(
        self,
        options: NotifyOptions,
        *,
        redact: Redactor,
        run_id: str = "",
        url: str = "",
        terminal: Callable[[str], None] | None = None,
        emit: Callable[[Event], None] | None = None,
        approvals_automatic: bool = False,
    ) -> None:
        self.options = options
        # --approve auto: the gates' verdict commits, nobody is waited for: no "approval needed"
        self.approvals_automatic = approvals_automatic
        self.redact = redact
        self.run_id = run_id
        self.url = options.url or url
        self.terminal = terminal  # writes to the terminal the face owns; None: no terminal
        self.emit = emit
        self._titles: dict[str, str] = {}
        self._notify_send = shutil.which("notify-send") if options.desktop else None
        self._queues: dict[str, asyncio.Queue[Notification | None]] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._reported: set[str] = set()
        self.sent: list[Notification] = []

    # ------------------------------------------------------------------ the sink

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.run_id = event.run_id
        elif isinstance(event, IterationStarted):
            self._titles[event.story_id] = event.title
        note = self._notification(event)
        if note is not None:
            self.send(note)

    def _notification(self, event: Event) -> Notification | None:
        match event:
            case ApprovalNeeded(story_id=sid, title=title) if not self.approvals_automatic:
                return self._make("approval_needed", sid, title, f"Approval needed: {sid} {title}")
            case Escalated(pm="answered"):
                return None  # the PM answered at once ([pm]): nobody is waited for
            case Escalated(story_id=sid, question=question, automatic=automatic, pm=pm):
                who = "after repeated failures" if automatic else "the agent asks"
                who += PM_NOTES.get(pm, "")
                title = self._titles.get(sid, "")
                return self._make(
                    "escalated", sid, title, f"{sid} needs an answer ({who}): {question}"
                )
            case RunFinished(exit_code=code, reason=reason):
                kind = "run_finished" if code == 0 else "run_failed"
                return self._make(kind, "", "", f"ralph-tui run finished (exit {code}): {reason}")
        return None

    def _make(self, kind: str, story_id: str, title: str, message: str) -> Notification:
        r = self.redact
        return Notification(kind, story_id, r(title), self.run_id, r(message), self.url)

    def send(self, note: Notification) -> None:
        self.sent.append(note)
        opts = self.options
        if self.terminal is not None and (opts.bell or opts.osc):
            text = _clean(note.message)[:200]
            data = "\a" if opts.bell else ""
            if opts.osc:
                data += f"\x1b]777;notify;ralph-tui;{text}\x1b\\\x1b]9;{text}\x1b\\"
            try:
                self.terminal(data)
            except OSError as exc:  # a closed terminal must not stop the run
                log.info("terminal notification failed: %s", exc)
        for channel in CHANNELS:
            if channel.enabled(self):
                self._enqueue(channel, note)

    # ------------------------------------------------------------------ background channels

    def _enqueue(self, channel: Channel, note: Notification) -> None:
        queue = self._queues.get(channel.name)
        if queue is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                log.warning("no event loop: %s notification dropped", channel.name)
                return
            queue = asyncio.Queue()
            self._queues[channel.name] = queue
            deliver = functools.partial(channel.deliver, self)
            self._workers.append(
                loop.create_task(
                    self._work(channel.name, queue, deliver), name=f"notify-{channel.name}"
                )
            )
        queue.put_nowait(note)

    async def _work(
        self,
        channel: str,
        queue: asyncio.Queue[Notification | None],
        deliver: Callable[[Notification], Awaitable[None]],
    ) -> None:
        while (note := await queue.get()) is not None:
            try:
                await deliver(note)
            except _delivery_errors() as exc:
                log.warning("%s notification failed: %s", channel, exc)
                if channel not in self._reported:
                    self._reported.add(channel)
                    if self.emit is not None:
                        self.emit(
                            Notice(
                                level="warning",
                                message=self.redact(
                                    f"{channel} notifications failed ({exc}); "
                                    "later failures are not shown"
                                ),
                            )
                        )

    async def _desktop(self, note: Notification) -> None:
        assert self._notify_send is not None
        await self._run([self._notify_send, "ralph-tui", note.message], note, stdin=None)

    async def _command(self, note: Notification) -> None:
        assert self.options.command
        passed = {name: credentials.get(name) for name in self.options.command_env}
        await self._run(
            list(self.options.command),
            note,
            stdin=note.message + "\n",
            secrets={name: value for name, value in passed.items() if value is not None},
        )

    async def _run(
        self,
        argv: list[str],
        note: Notification,
        stdin: str | None,
        secrets: Mapping[str, str] | None = None,
    ) -> None:
        # like every child ralph-tui starts: nothing secret-looking but what was named for it
        env = {
            **credentials.clean_env(),
            **(secrets or {}),
            "RALPH_EVENT": note.event,
            "RALPH_STORY": note.story_id,
            "RALPH_URL": note.url,
        }
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        try:
            _, err = await asyncio.wait_for(
                proc.communicate(stdin.encode() if stdin is not None else None),
                COMMAND_TIMEOUT_S,
            )
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise RuntimeError(f"{argv[0]} took longer than {COMMAND_TIMEOUT_S:.0f}s") from None
        if proc.returncode != 0:
            tail = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
            raise RuntimeError(f"{argv[0]} exited {proc.returncode} {tail[0]}".strip())

    async def _webhook(self, note: Notification) -> None:
        import aiohttp  # only runs with a webhook: 0.15 s off every other run's start

        assert self.options.webhook
        timeout = aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT_S)
        last: Exception | None = None
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for attempt in range(WEBHOOK_RETRIES + 1):
                if attempt:
                    await asyncio.sleep(RETRY_DELAY_S * attempt)
                try:
                    async with session.post(self.options.webhook, json=note.payload()) as resp:
                        if resp.status < 400:
                            return
                        last = RuntimeError(f"HTTP {resp.status} from the webhook")
                except (aiohttp.ClientError, TimeoutError) as exc:
                    last = exc
        raise RuntimeError(f"{last} (after {WEBHOOK_RETRIES + 1} attempts)")

    async def aclose(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Deliver what is queued (the run's end notification), within ``timeout``."""
        for queue in self._queues.values():
            queue.put_nowait(None)
        if not self._workers:
            return
        _, pending = await asyncio.wait(self._workers, timeout=timeout)
        for task in pending:
            task.cancel()
        self._workers.clear()
        self._queues.clear()


def _delivery_errors() -> tuple[type[BaseException], ...]:
    """What a failed delivery raises; aiohttp's errors only once a webhook has loaded it."""
    aiohttp = sys.modules.get("aiohttp")
    client_error: tuple[type[BaseException], ...] = (aiohttp.ClientError,) if aiohttp else ()
    return (OSError, TimeoutError, RuntimeError, *client_error)


@dataclass(frozen=True)
class Channel:
    """A notification channel that delivers in the background (one task and queue each, so a
    slow webhook never delays the run or another channel). Adding a channel is its delivery
    function, its switch in ``[notify]`` (``config.NotifyOptions``) and one entry here."""

    name: str
    enabled: Callable[[Notifier], bool]
    deliver: Callable[[Notifier, Notification], Awaitable[None]]


CHANNELS: tuple[Channel, ...] = (
    Channel("desktop", lambda n: n._notify_send is not None, Notifier._desktop),
    Channel("command", lambda n: bool(n.options.command), Notifier._command),
    Channel("webhook", lambda n: bool(n.options.webhook), Notifier._webhook),
)
