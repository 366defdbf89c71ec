"""The wire format between a served run and its clients: JSON messages over one WebSocket.

Server to client, in order on one socket (each WebSocket frame is a JSON list of messages):
``hello`` (run info), ``events`` (serialised events, the history first), ``prd`` (the PRD and the
stories skipped this run), ``ask`` (a pending approval or escalation with its id), ``settled``
(that id was decided, by anyone). Client to server: ``decide`` / ``reply`` (for an ask id) and
``control`` (pause, resume, stop). PRD edits and the diff are plain HTTP requests.
"""

from __future__ import annotations

from typing import Any

from ralph_tui.events import GateFinished, event_from_dict
from ralph_tui.supervisor import (
    ApprovalDecision,
    ApprovalRequest,
    EscalationAnswer,
    EscalationRequest,
)

TOKEN_HEADER = "X-Ralph-Token"
TOKEN_QUERY = "token"
TOKEN_ENV = "RALPH_TOKEN"


def approval_to_dict(request: ApprovalRequest) -> dict[str, Any]:
    return {
        "story_id": request.story_id,
        "title": request.title,
        "commit_message": request.commit_message,
        "diffstat": request.diffstat,
        "summary": request.summary,
        "gates": [gate.to_dict() for gate in request.gates],
        "flags": list(request.flags),
    }


def approval_from_dict(data: dict[str, Any]) -> ApprovalRequest:
    gates = tuple(
        gate
        for gate in (event_from_dict(g) for g in data.get("gates", []))
        if isinstance(gate, GateFinished)
    )
    return ApprovalRequest(
        story_id=str(data["story_id"]),
        title=str(data["title"]),
        commit_message=str(data["commit_message"]),
        diffstat=str(data["diffstat"]),
        summary=str(data["summary"]),
        gates=gates,
        flags=tuple(str(flag) for flag in data.get("flags", []) or []),
    )


def escalation_to_dict(request: EscalationRequest) -> dict[str, Any]:
    return {
        "story_id": request.story_id,
        "title": request.title,
        "question": request.question,
        "tried": request.tried,
        "automatic": request.automatic,
    }


def escalation_from_dict(data: dict[str, Any]) -> EscalationRequest:
    return EscalationRequest(
        story_id=str(data["story_id"]),
        title=str(data["title"]),
        question=str(data["question"]),
        tried=str(data["tried"]),
        automatic=bool(data.get("automatic", False)),
    )


def decision_from_dict(data: dict[str, Any]) -> ApprovalDecision | None:
    kind = data.get("kind")
    feedback = str(data.get("feedback", ""))
    if kind == "approve":
        return ApprovalDecision.approve()
    if kind == "reject":
        return ApprovalDecision.reject(feedback)
    if kind == "discard":
        return ApprovalDecision.discard()
    return None


def answer_from_dict(data: dict[str, Any]) -> EscalationAnswer | None:
    kind = data.get("kind")
    if kind in ("answer", "skip", "stop"):
        return EscalationAnswer(kind, str(data.get("text", "")))
    return None
