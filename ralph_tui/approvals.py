"""One approval queue for parallel workers.

Workers whose gates passed wait here. The supervisor (the TUI, the terminal, a policy) is shown
one request at a time, with ``waiting`` = how many others are queued; ``select`` lets the human
open any waiting request instead (the one shown goes back to the queue, right behind it), so
approvals happen in the order the human picks. With one request at a time the supervisor
implementations stay as they are for a single worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass

from ralph_tui.config import RalphConfig
from ralph_tui.supervisor import ApprovalDecision, ApprovalRequest, Supervisor, reaches_human

log = logging.getLogger(__name__)


def approvals_automatic(config: RalphConfig) -> bool:
    """``--approve auto``: the gates' verdict commits a change nobody flagged."""
    return config.approve == "auto"


def approvals_unattended(config: RalphConfig, supervisor: Supervisor) -> bool:
    """Nobody can be asked at all: ``--approve auto`` and a supervisor with no person behind
    it (headless without a terminal), so a flagged change cannot be shown to anyone."""
    return approvals_automatic(config) and not reaches_human(supervisor)


@dataclass
class _Pending:
    request: ApprovalRequest
    future: asyncio.Future[ApprovalDecision]


class ApprovalQueue:
    def __init__(self, supervisor: Supervisor, on_change: Callable[[], None] | None = None):
        self._supervisor = supervisor
        self._on_change = on_change or (lambda: None)
        self._pending: list[_Pending] = []
        self._shown: _Pending | None = None
        self._presenter: asyncio.Task[None] | None = None
        self._stopped = False

    @property
    def waiting(self) -> int:
        """Requests not yet decided, the one on screen included."""
        return len(self._pending)

    def waiting_ids(self) -> list[str]:
        return [p.request.story_id for p in self._pending]

    @property
    def shown(self) -> ApprovalRequest | None:
        return self._shown.request if self._shown is not None else None

    def stop(self) -> None:
        """The run is stopping: the request on screen stays the supervisor's to answer (as with
        one worker); those queued behind it, and any that come later, are discarded (their
        changes are kept as patches)."""
        self._stopped = True
        for entry in [p for p in self._pending if p is not self._shown]:
            self._pending.remove(entry)
            if not entry.future.done():
                entry.future.set_result(ApprovalDecision.discard())
        self._on_change()

    async def approve(self, request: ApprovalRequest) -> ApprovalDecision:
        if self._stopped:
            return ApprovalDecision.discard()
        entry = _Pending(request, asyncio.get_running_loop().create_future())
        self._pending.append(entry)
        self._changed()
        try:
            return await entry.future
        finally:
            if entry in self._pending:  # the worker was cancelled while waiting
                self._pending.remove(entry)
                if self._shown is entry and self._presenter is not None:
                    self._presenter.cancel()
                self._changed()

    def select(self, story_id: str) -> bool:
        """Show the waiting request of ``story_id`` next (now, if another one is on screen)."""
        entry = next((p for p in self._pending if p.request.story_id == story_id), None)
        if entry is None:
            return False
        if entry is self._shown:
            return True
        self._pending.remove(entry)
        self._pending.insert(0, entry)
        if self._presenter is not None and not self._presenter.done():
            self._presenter.cancel()  # the one on screen goes back behind the chosen one
        else:
            self._changed()
        return True

    def _changed(self) -> None:
        self._on_change()
        if self._pending and (self._presenter is None or self._presenter.done()):
            self._presenter = asyncio.get_running_loop().create_task(
                self._present(), name="approval-queue"
            )

    async def _present(self) -> None:
        entry = self._pending[0]
        self._shown = entry
        request = dataclasses.replace(entry.request, waiting=len(self._pending) - 1)
        try:
            decision = await self._supervisor.approve(request)
        except asyncio.CancelledError:
            self._shown = None
            # pre-empted by ``select`` (or its worker went away): show the next one
            asyncio.get_running_loop().call_soon(self._changed)
            return
        except Exception as exc:  # the supervisor failed: the waiting worker gets the error
            log.warning("the supervisor failed on an approval", exc_info=True)
            self._shown = None
            self._pending.remove(entry)
            if not entry.future.done():
                entry.future.set_exception(exc)
            asyncio.get_running_loop().call_soon(self._changed)
            return
        self._shown = None
        if entry in self._pending:
            self._pending.remove(entry)
        if not entry.future.done():
            entry.future.set_result(decision)
        asyncio.get_running_loop().call_soon(self._changed)

    async def aclose(self) -> None:
        if self._presenter is not None:
            self._presenter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._presenter
