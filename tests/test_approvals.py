"""The approval queue: one request shown at a time, the human's pick first, stop discards."""

from __future__ import annotations

import asyncio

from ralph_tui.approvals import ApprovalQueue
from ralph_tui.supervisor import (
    ApprovalDecision,
    ApprovalRequest,
    EscalationAnswer,
    EscalationRequest,
)


def request(story_id: str) -> ApprovalRequest:
    return ApprovalRequest(story_id, story_id, "msg", "", "", ())


class Human:
    """Shows one request at a time; the test answers it (or it is taken off screen)."""

    def __init__(self) -> None:
        self.shown: list[tuple[str, int]] = []
        self.pending: asyncio.Future[ApprovalDecision] | None = None
        self.on_screen = asyncio.Event()

    async def approve(self, req: ApprovalRequest) -> ApprovalDecision:
        self.shown.append((req.story_id, req.waiting))
        self.pending = asyncio.get_running_loop().create_future()
        self.on_screen.set()
        try:
            return await self.pending
        finally:
            self.on_screen.clear()

    async def answer(self, req: EscalationRequest) -> EscalationAnswer:  # pragma: no cover
        return EscalationAnswer("skip")

    async def next_shown(self) -> str:
        await self.on_screen.wait()
        return self.shown[-1][0]

    def decide(self, decision: ApprovalDecision) -> None:
        assert self.pending is not None
        self.pending.set_result(decision)


async def test_one_at_a_time_with_the_count_and_the_humans_pick_first() -> None:
    human = Human()
    queue = ApprovalQueue(human)
    a = asyncio.create_task(queue.approve(request("A")))
    assert await human.next_shown() == "A"
    b = asyncio.create_task(queue.approve(request("B")))
    c = asyncio.create_task(queue.approve(request("C")))
    await asyncio.sleep(0)
    assert queue.waiting == 3 and queue.waiting_ids() == ["A", "B", "C"]
    assert queue.select("C") and not queue.select("nope")
    while human.shown[-1][0] != "C":  # A is taken off screen, C shown in its place
        await asyncio.sleep(0)
        await human.next_shown()
    assert human.shown[-1] == ("C", 2)
    human.decide(ApprovalDecision.reject("more tests"))
    assert (await c).kind == "reject"
    assert await human.next_shown() == "A"  # back, ahead of B
    human.decide(ApprovalDecision.approve())
    assert (await a).kind == "approve"
    assert await human.next_shown() == "B"
    assert human.shown[-1] == ("B", 0)
    human.decide(ApprovalDecision.approve())
    assert (await b).kind == "approve"
    assert queue.waiting == 0
    await queue.aclose()


async def test_stop_discards_the_queued_ones_and_later_ones_but_not_the_one_shown() -> None:
    human = Human()
    queue = ApprovalQueue(human)
    a = asyncio.create_task(queue.approve(request("A")))
    assert await human.next_shown() == "A"
    b = asyncio.create_task(queue.approve(request("B")))
    await asyncio.sleep(0)
    queue.stop()
    assert (await b).kind == "discard"
    assert (await queue.approve(request("C"))).kind == "discard"
    assert not a.done()  # the human still answers the one on screen
    human.decide(ApprovalDecision.approve())
    assert (await a).kind == "approve"
    await queue.aclose()
