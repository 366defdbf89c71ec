"""The wire format between a served run and its clients: JSON messages over one WebSocket.

Server to client, in order on one socket (each WebSocket frame is a JSON list of messages):
``hello`` (run info), ``events`` (serialised events, the history first), ``prd`` (the PRD and the
stories skipped this run), ``ask`` (a pending approval or escalation with its id), ``settled``
(that id was decided, by anyone). Client to server: ``decide`` / ``reply`` (for an ask id; a
decision may carry line ``comments`` and dropped hunks or files, ``drops``) and ``control``
(pause, resume, stop). PRD edits and the diff are plain HTTP requests.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from ralph_tui.events import GateFinished, event_from_dict
from ralph_tui.supervisor import (
    ApprovalDecision,
    ApprovalRequest,
    DroppedPart,
    EscalationAnswer,
    EscalationRequest,
    ReviewComment,
)

TOKEN_HEADER = "X-Ralph-Token"
TOKEN_QUERY = "token"
TOKEN_ENV = "RALPH_TOKEN"
PARENT_ENV = "RALPH_WEB_PID"  # tells a browser tab's process whose child it is


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
        "suggestion": request.suggestion,
        "pm_note": request.pm_note,
    }


def escalation_from_dict(data: dict[str, Any]) -> EscalationRequest:
    return EscalationRequest(
        story_id=str(data["story_id"]),
        title=str(data["title"]),
        question=str(data["question"]),
        tried=str(data["tried"]),
        automatic=bool(data.get("automatic", False)),
        suggestion=str(data.get("suggestion", "") or ""),
        pm_note=str(data.get("pm_note", "") or ""),
    )


# ---- frames from clients, validated (a token holder can still send anything) -------------

MAX_FRAME_BYTES = 1 << 20
# What the socket reads at all: a frame up to this size is read and answered with an error
# frame (the client stays connected); only a larger one closes the socket (1009), so that a
# token holder cannot make the server buffer without bound.
SOCKET_MAX_BYTES = 4 * MAX_FRAME_BYTES
_FEEDBACK_MAX = 64 * 1024


class FrameError(ValueError):
    """A client frame that does not fit the protocol: said to the client, never raised on."""


class _Frame(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


_PATH_MAX = 4096
_COMMENTS_MAX = 200  # line comments in one decision
_DROPS_MAX = 1000  # hunks and files dropped in one decision


class CommentBody(_Frame):
    """A line comment (``supervisor.ReviewComment``): the engine quotes the line itself."""

    path: str = Field(min_length=1, max_length=_PATH_MAX)
    line: int = Field(ge=1, le=2**31)
    side: Literal["new", "old"] = "new"
    text: str = Field(min_length=1, max_length=_FEEDBACK_MAX)


class DropBody(_Frame):
    """A dropped part (``supervisor.DroppedPart``): a hunk's index, or ``null`` for the file."""

    path: str = Field(min_length=1, max_length=_PATH_MAX)
    hunk: int | None = Field(None, ge=0, le=2**31)


class DecisionBody(_Frame):
    kind: Literal["approve", "reject", "discard"]
    feedback: str = Field("", max_length=_FEEDBACK_MAX)
    comments: list[CommentBody] = Field(default_factory=list, max_length=_COMMENTS_MAX)
    drops: list[DropBody] = Field(default_factory=list, max_length=_DROPS_MAX)

    def to_decision(self) -> ApprovalDecision:
        """Drops count only with an approve; a discard carries no review."""
        keep_comments = self.kind != "discard"
        return ApprovalDecision(
            self.kind,
            self.feedback if self.kind == "reject" else "",
            comments=tuple(
                ReviewComment(c.path, c.line, c.text, c.side)
                for c in (self.comments if keep_comments else [])
            ),
            drops=tuple(
                DroppedPart(d.path, d.hunk) for d in (self.drops if self.kind == "approve" else [])
            ),
        )


def decision_to_dict(decision: ApprovalDecision) -> dict[str, Any]:
    """What a client sends for ``decision`` (``DecisionBody`` reads it back)."""
    return {
        "kind": decision.kind,
        "feedback": decision.feedback,
        "comments": [
            {"path": c.path, "line": c.line, "side": c.side, "text": c.text}
            for c in decision.comments
        ],
        "drops": [{"path": d.path, "hunk": d.hunk} for d in decision.drops],
    }


class AnswerBody(_Frame):
    kind: Literal["answer", "skip", "stop"]
    text: str = Field("", max_length=_FEEDBACK_MAX)

    def to_answer(self) -> EscalationAnswer:
        return EscalationAnswer(self.kind, self.text)


class DecideFrame(_Frame):
    t: Literal["decide"]
    id: int = Field(ge=0, le=2**31)
    decision: DecisionBody


class ReplyFrame(_Frame):
    t: Literal["reply"]
    id: int = Field(ge=0, le=2**31)
    answer: AnswerBody


class ControlFrame(_Frame):
    t: Literal["control"]
    action: Literal["pause", "resume", "stop", "open_approval"]
    story: str = Field(default="", max_length=200)  # ``open_approval``: whose approval


T = TypeVar("T")

_FRAME: TypeAdapter[DecideFrame | ReplyFrame | ControlFrame] = TypeAdapter(
    Annotated[DecideFrame | ReplyFrame | ControlFrame, Field(discriminator="t")]
)


def parse_frame(raw: str) -> DecideFrame | ReplyFrame | ControlFrame:
    """One client frame, or ``FrameError`` with one line saying what is wrong with it."""
    return validate_frame(raw, _FRAME)


def validate_frame(raw: str, adapter: TypeAdapter[T]) -> T:
    """``raw`` read as JSON and validated by ``adapter``: size, syntax, nesting and shape
    problems all become one ``FrameError`` line (the client and browser faces share this)."""
    if len(raw) > MAX_FRAME_BYTES:
        raise FrameError(f"frame longer than {MAX_FRAME_BYTES} characters")
    try:
        data = json.loads(raw)
    except RecursionError:  # a deeply nested array: the parser's own limit
        raise FrameError("frame nested too deeply") from None
    except ValueError as exc:
        raise FrameError(f"not JSON: {exc}") from None
    try:
        return adapter.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "frame"
        raise FrameError(f"{where}: {first.get('msg', 'invalid')}") from None
    except RecursionError:
        raise FrameError("frame nested too deeply") from None


# ---- PRD edits (plain HTTP bodies), validated the same way ---------------------------------

_Key = Annotated[str, Field(min_length=1, max_length=200)]


class MoveEdit(_Frame):
    key: _Key
    direction: Literal["up", "down"]


class UpdateEdit(_Frame):
    key: _Key
    changes: dict[str, Any]


class AddEdit(_Frame):
    fields: dict[str, Any]


PrdEdit = MoveEdit | UpdateEdit | AddEdit
_EDITS: dict[str, type[MoveEdit] | type[UpdateEdit] | type[AddEdit]] = {
    "move": MoveEdit,
    "update": UpdateEdit,
    "add": AddEdit,
}


def parse_edit(op: str, body: object) -> PrdEdit:
    """The body of ``POST /api/prd/{op}``, or ``FrameError`` in one line (the values inside
    ``changes`` and ``fields`` are the PRD's, checked by the store when it validates the PRD)."""
    model = _EDITS.get(op)
    if model is None:
        raise FrameError(f"unknown PRD edit {op!r}")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "body"
        raise FrameError(f"{where}: {first.get('msg', 'invalid')}") from None
