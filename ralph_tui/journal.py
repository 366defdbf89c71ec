"""The run folder's record: ``events.jsonl`` (every event, replayable) and ``transcript.md``.

Both are written through a ``Redactor`` so secret values never reach disk: an event's decoded
values are redacted before it is JSON-encoded. Streamed text is
joined before it is redacted (a secret split across two deltas is still caught) and written as
one coalesced ``text_delta`` line per stretch of text, so a fast stream costs few syscalls and
the journal replays the same text. A kill loses at most the text since the last tool call.
The transcript is for people and their terminals (``cat``, ``less -R``), so control characters
in it are escaped (``escape_controls``); events.jsonl keeps the text as it was, JSON-escaped.
Both are written with ``backslashreplace``: a lone surrogate from a hostile model is spelled
out, never a crash.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO

from ralph_tui.events import (
    AgentSwitched,
    ApprovalDecided,
    Committed,
    Escalated,
    EscalationAnswered,
    Event,
    GateFinished,
    IterationFinished,
    IterationStarted,
    Notice,
    PmAnswered,
    PmProposal,
    PmToolUsed,
    ReviewRecorded,
    RunFinished,
    TextDelta,
    ToolCall,
    ToolResult,
)
from ralph_tui.safety.text import cap_strings, escape_controls
from ralph_tui.safety.workspace import Redactor

TEXT_CHUNK = 16_384  # characters of streamed text buffered before a write
TEXT_PER_ITERATION = 1 << 20  # the agent's streamed text kept per iteration
FIELD_MAX = 64 * 1024  # any one string of an event (a tool's input, a gate's output)


class Journal:
    """An ``EventSink`` that appends to the run folder; call ``close()`` at the end of a run."""

    def __init__(self, run_dir: Path, redact: Redactor) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self.events_path = run_dir / "events.jsonl"
        self.transcript_path = run_dir / "transcript.md"
        self._redact = redact
        self._events: IO[str] = self.events_path.open(
            "a", encoding="utf-8", errors="backslashreplace"
        )
        self._transcript: IO[str] = self.transcript_path.open(
            "a", encoding="utf-8", errors="backslashreplace"
        )
        self._text: list[str] = []
        self._text_len = 0
        self._text_ts = 0.0
        self._iteration_text = 0  # streamed characters kept this iteration

    def __call__(self, event: Event) -> None:
        if isinstance(event, IterationStarted):
            self._iteration_text = 0
        if isinstance(event, TextDelta):
            room = TEXT_PER_ITERATION - self._iteration_text
            if room <= 0:
                return
            if len(event.text) > room:
                cut = len(event.text) - room
                event = TextDelta(
                    text=event.text[:room] + f"\n[... agent text over {TEXT_PER_ITERATION} "
                    f"characters this iteration not kept; {cut} cut here]\n",
                    ts=event.ts,
                )
                self._iteration_text = TEXT_PER_ITERATION
            else:
                self._iteration_text += len(event.text)
            if not self._text:
                self._text_ts = event.ts
            self._text.append(event.text)
            self._text_len += len(event.text)
            if self._text_len >= TEXT_CHUNK:
                self._write_text(hold_back=self._redact.longest)
            return
        self._write_text(hold_back=0)
        self._write_event(event)
        text = _transcript_text(event)
        if text:
            self._transcript.write(escape_controls(self._redact(text)))
        self._events.flush()
        self._transcript.flush()

    def _write_event(self, event: Event) -> None:
        # redact the decoded values first (a secret with quotes, backslashes or newlines changes
        # form once encoded), then the line, for anything an encoder produced (``default=str``)
        data = cap_strings(self._redact.data(event.to_dict()), FIELD_MAX)  # redacted, then cut
        line = json.dumps(data, ensure_ascii=False, default=str)
        self._events.write(self._redact(line) + "\n")

    def _write_text(self, hold_back: int) -> None:
        """Write the buffered text, keeping back a tail that could be the start of a secret."""
        joined = "".join(self._text)
        cut = len(joined) - hold_back if hold_back else len(joined)
        if cut <= 0:
            return
        # redact with the held-back tail attached, then write only the part before the cut
        redacted = self._redact(joined)
        if redacted != joined:  # a secret was found: flush everything, nothing to hold back
            cut = len(joined)
            head, rest = redacted, ""
        else:
            head, rest = joined[:cut], joined[cut:]
        self._write_event(TextDelta(text=head, ts=self._text_ts))
        self._transcript.write(escape_controls(head))
        self._text = [rest] if rest else []
        self._text_len = len(rest)

    def close(self) -> None:
        self._write_text(hold_back=0)
        self._events.close()
        self._transcript.close()


def _transcript_text(event: Event) -> str:
    match event:
        case IterationStarted(iteration=n, story_id=sid, title=title):
            return f"\n\n## Iteration {n}: Task #{sid}: {title}\n\n"
        case ToolCall(name=name, input=tool_input):
            body = json.dumps(tool_input, indent=2, ensure_ascii=False)
            return f"\n\n**tool call** `{name}`\n```json\n{body}\n```\n"
        case ToolResult(name=name, content=content, is_error=is_error):
            label = "tool error" if is_error else "tool result"
            return f"**{label}** `{name}`\n```\n{content}\n```\n"
        case GateFinished(name=name, state=state, summary=summary, duration_s=d):
            return f"- gate `{name}`: {state} ({d:.1f}s) {summary}\n"
        case ApprovalDecided(decision=decision, feedback=feedback):
            extra = f": {feedback}" if feedback else ""
            return f"\n**human**: {decision}{extra}\n"
        case ReviewRecorded(dropped=dropped, comments=comments):
            return "".join(f"- review: {line}\n" for line in [*dropped, *comments])
        case Committed(sha=sha, message=message):
            return f"\n**committed** {sha[:10]} {message.splitlines()[0]}\n"
        case Escalated(question=question, tried=tried):
            return f"\n**escalation**\nTried: {tried}\nQuestion: {question}\n"
        case EscalationAnswered(answer=answer, skipped=skipped, by=by, correction=correction):
            whose = "" if by == "human" else " (the PM, not a human)" if by == "pm" else f" ({by})"
            label = "correction" if correction else "answer"
            return f"\n**{label}**: skipped\n" if skipped else f"\n**{label}{whose}**: {answer}\n"
        case PmAnswered(answer=answer, known=known):
            said = answer if known else f"cannot answer: {answer}"
            return f"\n**PM (product-manager agent)**: {said}\n"
        case PmToolUsed(name=name, detail=detail, refused=refused):
            return f"- PM tool `{name}`{' (refused)' if refused else ''}: {detail}\n"
        case PmProposal(proposal=proposal, decision=decision):
            return f"\n**PM proposes a PRD change** ({decision}): {proposal}\n"
        case IterationFinished(outcome=outcome, message=message):
            return f"\n_iteration {outcome}_ {message}\n"
        case AgentSwitched(agent=agent, previous=previous, reason=reason):
            if previous:  # why: the notice just before it
                return f"\n**agent** {agent} takes over from {previous}\n"
            return f"\n**agent** {agent}" + (f" ({reason})" if reason else "") + "\n"
        case Notice(level=level, message=message):
            return f"\n> {level}: {message}\n"
        case RunFinished(exit_code=code, reason=reason):
            return f"\n\n# Run finished (exit {code}): {reason}\n"
    return ""
