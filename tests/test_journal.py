"""The run folder's journal: replayable events, readable transcript, secrets never on disk."""

from __future__ import annotations

import json
from pathlib import Path

from ralph_tui.events import IterationStarted, TextDelta, ToolCall, event_from_dict
from ralph_tui.journal import TEXT_CHUNK, Journal
from ralph_tui.safety.workspace import Redactor

SECRET = "sk-ant-api03-very-secret-value"


def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "run", Redactor(env={"ANTHROPIC_API_KEY": SECRET}))


def test_secret_split_across_deltas_is_redacted(tmp_path: Path) -> None:
    j = journal(tmp_path)
    j(IterationStarted(iteration=1, story_id="1", title="t"))
    for piece in ("the key is sk-an", "t-api03-very-se", "cret-value, done"):
        j(TextDelta(text=piece))
    j(ToolCall(call_id="c", name="bash", input={"command": f"echo {SECRET}"}))
    j.close()
    for path in (j.events_path, j.transcript_path):
        text = path.read_text()
        assert SECRET not in text and "[REDACTED]" in text


def test_secret_across_a_chunk_boundary_is_redacted(tmp_path: Path) -> None:
    j = journal(tmp_path)
    filler = "x" * (TEXT_CHUNK - 10)
    j(TextDelta(text=filler + SECRET[:12]))  # crosses the write threshold mid-secret
    j(TextDelta(text=SECRET[12:] + " tail"))
    j.close()
    transcript = j.transcript_path.read_text()
    assert SECRET not in transcript and transcript.endswith("[REDACTED] tail")
    events = [json.loads(line) for line in j.events_path.read_text().splitlines()]
    joined = "".join(e["text"] for e in events if e["kind"] == "text_delta")
    assert SECRET not in joined and joined == filler + "[REDACTED] tail"


def test_events_replay_as_the_same_events(tmp_path: Path) -> None:
    j = journal(tmp_path)
    call = ToolCall(call_id="c1", name="bash", input={"command": "ls"})
    j(TextDelta(text="Hello "))
    j(TextDelta(text="world"))
    j(call)
    j.close()
    events = [event_from_dict(json.loads(x)) for x in j.events_path.read_text().splitlines()]
    assert events == [TextDelta(text="Hello world", ts=events[0].ts), call]
