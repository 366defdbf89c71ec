"""The product manager: a second model that answers the agent's escalations (``[pm]``).

In the loop this project started from, a blocked agent "escalates to the PM", and the PM was
always the human: a question the PRD, the progress log or the history could answer stopped the
story until someone came. Here a PM model reads those (read-only tools: ``view_file``,
``search``, ``git log``/``git show``, run inside the run's sandbox) and answers, while the human
stays in charge:

- ``mode = "suggest"``: the human sees the PM's answer with the question and sends it as is,
  edits it, or writes their own.
- ``mode = "answer"``: the PM's answer goes to the agent when no human answered within
  ``answer_after`` seconds (at once under ``--approve auto`` or when nobody can be asked). A
  human's later answer still reaches the agent, as a correction (its next iteration's
  feedback).
- "I don't know" (``i_dont_know``): the escalation waits for the human as without a PM, and the
  notification says the PM could not answer.
- PRD changes the PM proposes (split, add, priority, dependency) are put to the human as an
  approval; nothing is applied without one.

Everything the PM says is its own event (``PmAnswered``, ``PmToolUsed``, ``PmProposal``), its
answers are marked ``by="pm"`` in the journal and ``the PM`` in the progress log, and its
model calls are ``UsageReported(by="pm")`` at its own model's price. The PM never edits files,
commits, or marks a story: its tools cannot, and a call to any other tool is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ralph_tui.agents.anthropic_agent import AnthropicAgent
from ralph_tui.config import PmOptions, RalphConfig
from ralph_tui.errors import AgentError, RalphError, UsageError
from ralph_tui.events import (
    Escalated,
    EscalationAnswered,
    Event,
    Notice,
    PmAnswered,
    PmProposal,
    PmToolUsed,
)
from ralph_tui.prd.model import Story
from ralph_tui.prd.store import PrdError
from ralph_tui.safety.text import encodable_data, one_line
from ralph_tui.supervisor import (
    ApprovalRequest,
    EscalationAnswer,
    EscalationRequest,
    reaches_human,
)
from ralph_tui.tools.editor import run_editor
from ralph_tui.tools.shell import run_bash
from ralph_tui.tools.toolbox import input_problem

if TYPE_CHECKING:
    import anthropic

    from ralph_tui.run_core import RunCore


log = logging.getLogger(__name__)

PM = "pm"
AS_IS = "human (the PM's suggestion as is)"
PRD_CHARS = 20_000  # the PRD given to the PM, like AGENTS.md to the agent
GIT_TIMEOUT_S = 60.0
GIT_SUBCOMMANDS = ("log", "show")
# options of git log/show that write a file or run a program of the repository's choosing
_REFUSED_OPTIONS = (
    "--output",
    "-o",
    "--ext-diff",
    "--textconv",
    "-O",
    "--no-index",
    "--show-signature",  # runs gpg.program
)

PM_SYSTEM = """\
You are the product manager of a software project. An engineering agent working on one story \
of the project's PRD is blocked and asks you a question. Answer it from what the project \
already says: the PRD, the story, the progress log (earlier questions, answers and learnings) \
and the code's git history. Your tools only read: view_file, search, git (log or show).

Finish with exactly one of:
- answer: a short, direct answer the engineer can act on;
- i_dont_know: when the project does not settle the question (a product decision only a \
person can make, or facts you cannot find). Never guess a person's intentions.
If the PRD itself should change (split this story, add a missing one, change a priority or a \
dependency), call propose_prd_change before you finish; a human accepts or rejects it.
You never edit files, commit, or mark stories done."""

VIEW_FILE, SEARCH, GIT = "view_file", "search", "git"
ANSWER, DONT_KNOW, PROPOSE = "answer", "i_dont_know", "propose_prd_change"
PM_TOOL_NAMES = (VIEW_FILE, SEARCH, GIT, PROPOSE, ANSWER, DONT_KNOW)

_NEW_STORY = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "description": {"type": "string"},
        "acceptanceCriteria": {"type": "array", "items": {"type": "string"}},
        "priority": {"type": "integer"},
    },
    "required": ["title"],
}

PM_TOOLS: list[dict[str, Any]] = [
    {
        "name": VIEW_FILE,
        "description": "A file of the repository with line numbers, or a directory listing.",
        "input_schema": {
            "type": "object",
            "properties": {
                "path": {"type": "string"},
                "view_range": {"type": "array", "items": {"type": "integer"}},
            },
            "required": ["path"],
        },
    },
    {
        "name": SEARCH,
        "description": "git grep: tracked files' lines matching a regular expression.",
        "input_schema": {
            "type": "object",
            "properties": {"pattern": {"type": "string"}, "path": {"type": "string"}},
            "required": ["pattern"],
        },
    },
    {
        "name": GIT,
        "description": 'git log or git show with these arguments, e.g. ["log", "-5", "-p"].',
        "input_schema": {
            "type": "object",
            "properties": {"args": {"type": "array", "items": {"type": "string"}}},
            "required": ["args"],
        },
    },
    {
        "name": PROPOSE,
        "description": (
            "Propose a PRD change for a human to accept or reject. kind: split (story_id into "
            "stories; it then waits on them), add (one story in stories), priority "
            "(story_id, priority), dependency (story_id waits on depends_on)."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "kind": {"type": "string", "enum": ["split", "add", "priority", "dependency"]},
                "story_id": {"type": "string"},
                "reason": {"type": "string"},
                "priority": {"type": "integer"},
                "depends_on": {"type": "array", "items": {"type": "string"}},
                "stories": {"type": "array", "items": _NEW_STORY},
            },
            "required": ["kind", "reason"],
        },
    },
    {
        "name": ANSWER,
        "description": "Your answer to the engineer's question. Ends your turn.",
        "input_schema": {
            "type": "object",
            "properties": {"answer": {"type": "string"}},
            "required": ["answer"],
        },
    },
    {
        "name": DONT_KNOW,
        "description": "The project does not settle the question; a human must. Ends your turn.",
        "input_schema": {
            "type": "object",
            "properties": {"reason": {"type": "string"}},
            "required": ["reason"],
        },
    },
]


class Clock(Protocol):
    """How the PM waits ``answer_after`` (tests inject one that a test releases)."""

    async def sleep(self, seconds: float) -> None: ...


class RealClock:
    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass(frozen=True)
class NewStory:
    title: str
    description: str = ""
    acceptanceCriteria: tuple[str, ...] = ()
    priority: int | None = None

    def fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "title": self.title,
            "description": self.description,
            "acceptanceCriteria": list(self.acceptanceCriteria),
        }
        if self.priority is not None:
            out["priority"] = self.priority
        return out


@dataclass(frozen=True)
class PrdProposal:
    """A PRD change the PM proposed; ``apply`` only after a human accepted it."""

    kind: Literal["split", "add", "priority", "dependency"]
    reason: str
    story_id: str = ""
    priority: int | None = None
    depends_on: tuple[str, ...] = ()
    stories: tuple[NewStory, ...] = ()

    def describe(self) -> str:
        match self.kind:
            case "priority":
                what = f"set the priority of Task #{self.story_id} to {self.priority}"
            case "dependency":
                what = f"Task #{self.story_id} waits on {', '.join(self.depends_on)}"
            case "add":
                what = f"add a story: {self.stories[0].title}"
            case _:
                titles = "; ".join(s.title for s in self.stories)
                what = f"split Task #{self.story_id} into: {titles} (it then waits on them)"
        return f"{what} — {self.reason}" if self.reason else what

    def apply(self, engine: RunCore[Any]) -> str:
        """Change the PRD through the engine's own store (only ``passes`` is guarded there; a
        new story never passes)."""
        store = engine.store
        if self.kind == "priority":
            store.update_story(self.story_id, {"priority": self.priority})
        elif self.kind == "dependency":
            story = store.load().story(self.story_id)
            known = list(story.depends_on) if story is not None else []
            merged = known + [d for d in self.depends_on if d not in known]
            store.update_story(self.story_id, {"dependsOn": merged})
        else:
            added = [store.add_story({**s.fields(), "passes": False}) for s in self.stories]
            if self.kind == "split":
                story = store.load().story(self.story_id)
                known = list(story.depends_on) if story is not None else []
                store.update_story(self.story_id, {"dependsOn": known + [a.key for a in added]})
        return self.describe()

    @classmethod
    def parse(cls, tool_input: Mapping[str, Any], prd_ids: Sequence[str]) -> PrdProposal:
        """The tool's input as a proposal; ``ValueError`` (said to the PM) when it is not one."""
        kind = tool_input.get("kind")
        reason = _string(tool_input.get("reason"))
        story_id = _string(tool_input.get("story_id"))
        if kind in ("split", "priority", "dependency") and story_id not in prd_ids:
            raise ValueError(f"{kind}: story_id {story_id!r} is not a story of the PRD")
        if kind == "priority":
            priority = tool_input.get("priority")
            if not isinstance(priority, int) or isinstance(priority, bool):
                raise ValueError("priority: 'priority' must be an integer")
            return cls("priority", reason, story_id, priority=priority)
        if kind == "dependency":
            deps = tuple(_string(d) for d in tool_input.get("depends_on") or [])
            unknown = [d for d in deps if d not in prd_ids]
            if not deps or unknown:
                raise ValueError(f"dependency: depends_on must name stories of the PRD {unknown}")
            return cls("dependency", reason, story_id, depends_on=deps)
        if kind in ("add", "split"):
            stories = tuple(_new_story(s) for s in tool_input.get("stories") or [])
            if kind == "add" and len(stories) != 1:
                raise ValueError("add: 'stories' must hold exactly one story")
            if kind == "split" and len(stories) < 2:
                raise ValueError("split: 'stories' must hold two stories or more")
            return cls(kind, reason, story_id, stories=stories)
        raise ValueError("kind must be split, add, priority or dependency")


def _string(value: object) -> str:
    return value.strip() if isinstance(value, str) else str(value) if value is not None else ""


def _new_story(value: object) -> NewStory:
    if not isinstance(value, Mapping) or not _string(value.get("title")):
        raise ValueError("each story needs a 'title'")
    criteria = value.get("acceptanceCriteria") or []
    priority = value.get("priority")
    return NewStory(
        title=_string(value.get("title")),
        description=_string(value.get("description")),
        acceptanceCriteria=tuple(_string(c) for c in criteria if _string(c)),
        priority=priority if isinstance(priority, int) and not isinstance(priority, bool) else None,
    )


@dataclass(frozen=True)
class PmReply:
    """``answer`` None: the PM does not know (``why`` says what it lacked)."""

    answer: str | None
    why: str = ""
    proposals: tuple[PrdProposal, ...] = ()


@dataclass
class _Consultation:
    proposals: list[PrdProposal] = field(default_factory=list)
    reply: PmReply | None = None


class ProductManager:
    """The PM of one run: its model, its clock, and a human's pending correction, if any."""

    def __init__(
        self,
        options: PmOptions,
        config: RalphConfig,
        *,
        client: anthropic.AsyncAnthropic | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.options = options
        self.model = options.model or config.model
        try:
            self.agent = AnthropicAgent(
                config.model_copy(update={"model": self.model}), client=client
            )
        except UsageError as exc:  # a missing key: said before the run starts, as the PM's
            raise UsageError(f"[pm] (the product-manager agent): {exc}") from None
        self.clock: Clock = clock or RealClock()
        # answer mode, after the PM answered: the human's answer still to come (a correction)
        self._correction: asyncio.Task[None] | None = None

    async def aclose(self) -> None:
        await self.drop_correction()
        await self.agent.aclose()

    async def drop_correction(self) -> None:
        """One question at a time: a new escalation (or the run's end) closes the old one."""
        task, self._correction = self._correction, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # ------------------------------------------------------------------ the escalation

    async def escalate(
        self, engine: RunCore[Any], story: Story, request: EscalationRequest
    ) -> tuple[EscalationAnswer, str]:
        """The escalation with the PM in it: the answer for the agent and whose it is."""
        await self.drop_correction()
        reply = await self.consult(engine, story, request)
        if reply.answer is None:
            note = (
                f"The PM could not answer: {reply.why}" if reply.why else "The PM could not answer"
            )
            await asyncio.to_thread(engine.progress.append_pm_note, note)
            answer = await engine.ask_supervisor(replace(request, pm_note=note), pm="unknown")
            await self._propose(engine, story, reply.proposals)
            return answer, "human"
        said = engine.redactor(reply.answer)
        await asyncio.to_thread(engine.progress.append_pm_note, f"The PM's answer: {said}")
        if self.options.mode == "suggest":
            answer = await engine.ask_supervisor(
                replace(request, suggestion=reply.answer), pm="suggested"
            )
            await self._propose(engine, story, reply.proposals)
            return answer, _whose(answer, reply.answer)
        return await self._answer(engine, story, request, reply)

    async def _answer(
        self, engine: RunCore[Any], story: Story, request: EscalationRequest, reply: PmReply
    ) -> tuple[EscalationAnswer, str]:
        """``mode = "answer"``: the human first if they answer within ``answer_after``."""
        assert reply.answer is not None
        pm_answer = EscalationAnswer("answer", reply.answer)
        human_there = reaches_human(engine.supervisor)
        at_once = engine.config.approve == "auto" or self.options.answer_after <= 0
        if not human_there:
            engine.emit(_escalated(request, "answered"))
            self._not_asked(engine, story, reply.proposals, "nobody to ask")
            return pm_answer, PM
        note = (
            "The PM answered the agent (--approve auto); an answer of yours reaches the agent "
            "as a correction"
            if at_once
            else f"The PM's answer goes to the agent in {self.options.answer_after:g}s unless "
            "you answer first; a later answer of yours reaches the agent as a correction"
        )
        shown = replace(request, suggestion=reply.answer, pm_note=note)
        engine.emit(_escalated(request, "answered" if at_once else "answers_later"))
        human = asyncio.ensure_future(engine.supervisor.answer(shown))
        if not at_once:
            timer = asyncio.ensure_future(self.clock.sleep(self.options.answer_after))
            engine.set_waiting(True)
            try:
                await asyncio.wait({human, timer}, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                human.cancel()
                raise
            finally:
                timer.cancel()
                engine.set_waiting(False)
            if human.done():
                answer = human.result()
                await self._propose(engine, story, reply.proposals)
                return answer, _whose(answer, reply.answer)
        self._correction = asyncio.create_task(
            self._await_correction(engine, story, shown, human), name="pm-correction"
        )
        self._not_asked(engine, story, reply.proposals, "the PM answered alone")
        return pm_answer, PM

    async def _await_correction(
        self,
        engine: RunCore[Any],
        story: Story,
        request: EscalationRequest,
        human: asyncio.Future[EscalationAnswer],
    ) -> None:
        """The human answers after the PM did: their answer reaches the agent as a correction
        (feedback for the story's next iteration), recorded as theirs."""
        try:
            answer = await human
        except asyncio.CancelledError:
            human.cancel()
            raise
        if answer.kind == "skip":
            engine.skipped.add(story.key)
        if answer.kind != "answer" or not answer.text.strip():
            return  # a stop comes from quitting: the run is ending anyway
        if _whose(answer, request.suggestion) == AS_IS:
            return  # the human sent the PM's answer: nothing to correct
        text = engine.redactor(answer.text.strip())
        engine.add_feedback(
            story,
            f"Correction from the human supervisor to the PM's answer to "
            f"'{request.question}': {text}",
        )
        try:
            await asyncio.to_thread(engine.progress.append_answer, text, by="correction by a human")
        except (OSError, RalphError) as exc:  # the agent still gets it; the log says why not
            engine.notice(f"the correction is not in the progress log: {exc}", "warning")
        engine.emit(
            EscalationAnswered(story_id=story.key, answer=text, by="human", correction=True)
        )

    # ------------------------------------------------------------------ PRD proposals

    async def _propose(
        self, engine: RunCore[Any], story: Story, proposals: Sequence[PrdProposal]
    ) -> None:
        """Each proposal to the human as an approval; accepted ones are applied, by the engine."""
        for proposal in proposals:
            line = proposal.describe()
            request = ApprovalRequest(
                story_id=story.key,
                title=f"PRD change proposed by the PM ({proposal.kind})",
                commit_message="",
                diffstat=line,
                summary=f"The PM proposes: {line}",
                gates=(),
                flags=("a PRD change proposed by the PM: a = accept, d = reject",),
            )
            decision = await engine.ask_supervisor_approval(request)
            accepted = decision.kind == "approve"
            if accepted:
                try:
                    await asyncio.to_thread(proposal.apply, engine)
                except (PrdError, OSError, RalphError) as exc:
                    engine.notice(f"the PM's PRD change could not be applied: {exc}", "warning")
                    accepted = False
            engine.emit(
                PmProposal(
                    story_id=story.key,
                    proposal=line,
                    decision="accepted" if accepted else "rejected",
                )
            )

    def _not_asked(
        self, engine: RunCore[Any], story: Story, proposals: Sequence[PrdProposal], why: str
    ) -> None:
        for proposal in proposals:
            engine.emit(
                PmProposal(story_id=story.key, proposal=proposal.describe(), decision="not asked")
            )
            engine.notice(
                f"the PM proposed a PRD change, not applied ({why}): {proposal.describe()}"
            )

    # ------------------------------------------------------------------ the model

    async def consult(
        self, engine: RunCore[Any], story: Story, request: EscalationRequest
    ) -> PmReply:
        """The PM's reply; a failing API is an "I don't know" (the human is asked as before)."""
        try:
            reply = await self._consult(engine, story, request)
        except AgentError as exc:
            engine.notice(f"the PM could not answer: {exc}", "warning")
            reply = PmReply(None, f"its model failed ({one_line(str(exc), 200)})")
        text = reply.answer if reply.answer is not None else reply.why
        engine.emit(
            PmAnswered(
                story_id=story.key, answer=engine.redactor(text), known=reply.answer is not None
            )
        )
        for proposal in reply.proposals:
            engine.emit(PmProposal(story_id=story.key, proposal=proposal.describe()))
        return reply

    async def _consult(
        self, engine: RunCore[Any], story: Story, request: EscalationRequest
    ) -> PmReply:
        messages: list[dict[str, Any]] = [
            {"role": "user", "content": [{"type": "text", "text": _prompt(engine, story, request)}]}
        ]
        state = _Consultation()

        def emit(event: Event) -> None:  # the PM's streamed text is not the agent's
            if isinstance(event, Notice):
                engine.emit(event)

        for _ in range(self.options.max_turns):
            content, usage = await self.agent.tool_turn(PM_SYSTEM, messages, PM_TOOLS, emit)
            engine.add_usage(story, usage, by=PM, model=self.model)
            messages.append(
                {
                    "role": "assistant",
                    "content": encodable_data(content) or [{"type": "text", "text": "…"}],
                }
            )
            results: list[dict[str, Any]] = []
            for block in content:
                if block["type"] != "tool_use":
                    continue
                text, is_error = await self._tool(engine, story, block, state)
                results.append(
                    {
                        "type": "tool_result",
                        "tool_use_id": block["id"],
                        "content": text or "(no output)",
                        **({"is_error": True} if is_error else {}),
                    }
                )
                if state.reply is not None:
                    return replace(state.reply, proposals=tuple(state.proposals))
            if not results:
                said = " ".join(
                    b["text"] for b in content if b["type"] == "text" and b["text"].strip()
                ).strip()
                return PmReply(said or None, "it ended without an answer", tuple(state.proposals))
            messages.append({"role": "user", "content": results})
        return PmReply(
            None, f"no answer within {self.options.max_turns} turns", tuple(state.proposals)
        )

    async def _tool(
        self, engine: RunCore[Any], story: Story, block: Mapping[str, Any], state: _Consultation
    ) -> tuple[str, bool]:
        name = str(block.get("name"))
        tool_input = block.get("input") or {}
        problem = input_problem(tool_input)
        detail = problem if problem else one_line(json.dumps(tool_input, ensure_ascii=False), 300)
        refused = name not in PM_TOOL_NAMES
        engine.emit(PmToolUsed(story_id=story.key, name=name, detail=detail, refused=refused))
        if refused:
            return (
                f"refused: the PM's tools only read ({', '.join(PM_TOOL_NAMES)}); it never edits "
                "files, runs commands or commits",
                True,
            )
        if problem:
            return f"{name}: {problem}", True
        assert isinstance(tool_input, Mapping)
        if name == ANSWER:
            text = _string(tool_input.get("answer"))
            if not text:
                return "answer: 'answer' must be a non-empty string", True
            state.reply = PmReply(text)
            return "sent", False
        if name == DONT_KNOW:
            state.reply = PmReply(None, _string(tool_input.get("reason")))
            return "the human will be asked", False
        if name == PROPOSE:
            ids = [s.key for s in (await asyncio.to_thread(engine.store.load)).userStories]
            try:
                state.proposals.append(PrdProposal.parse(tool_input, ids))
            except ValueError as exc:
                return f"{PROPOSE}: {exc}", True
            return "proposed; a human accepts or rejects it", False
        if name == VIEW_FILE:
            extra = sorted(set(tool_input) - {"path", "view_range"})
            if extra:
                return (
                    f"refused: view_file only reads a file ({', '.join(extra)} not accepted)",
                    True,
                )
            outcome = await run_editor(engine.workspace, {"command": "view", **tool_input})
            return outcome.content, outcome.is_error
        if name == SEARCH:
            pattern = _string(tool_input.get("pattern"))
            if not pattern:
                return "search: 'pattern' must be a non-empty string", True
            path = _string(tool_input.get("path"))
            argv = [
                "grep",
                "-n",
                "-I",
                "--no-color",
                "-e",
                pattern,
                *(["--", path] if path else []),
            ]
            return await self._git(engine, argv)
        args = tool_input.get("args")
        if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
            return 'git: \'args\' must be a list of strings, e.g. ["log", "-5"]', True
        refusal = _git_refusal(args)
        if refusal is not None:
            return refusal, True
        return await self._git(
            engine, [args[0], "--no-ext-diff", "--no-textconv", "--no-color", *args[1:]]
        )

    async def _git(self, engine: RunCore[Any], argv: list[str]) -> tuple[str, bool]:
        """``git`` with hardened settings, inside the run's sandbox (as the agent's commands)."""
        sandbox = engine.workspace.sandbox
        command = shlex.join(
            [
                "git",
                "--no-pager",
                "-c",
                "core.fsmonitor=false",
                "-c",
                "diff.external=",
                "-c",
                "log.showSignature=false",
                *argv,
            ]
        )
        outcome = await run_bash(
            command, cwd=engine.root, env=sandbox.env(), timeout_s=GIT_TIMEOUT_S, sandbox=sandbox
        )
        return outcome.content, outcome.is_error


def _git_refusal(args: Sequence[str]) -> str | None:
    """Why a ``git`` call is refused: only ``log`` and ``show``, nothing that writes."""
    if args[0] not in GIT_SUBCOMMANDS:
        return (
            f"refused: git {one_line(args[0], 40)}: the PM's git only reads "
            f"({' and '.join(GIT_SUBCOMMANDS)})"
        )
    for arg in args[1:]:
        if _writes_or_runs(arg):
            return f"refused: git {args[0]} {one_line(arg, 60)}: it writes a file or runs a program"
    return None


def _writes_or_runs(arg: str) -> bool:
    """``--output=f`` and its abbreviations (a git that accepts ``--outp``), ``-o``/``-O`` in
    a cluster of short options, external diff and textconv programs, signature checks."""
    if arg.startswith(_REFUSED_OPTIONS):
        return True
    if arg.startswith("--"):
        name = arg[2:].split("=", 1)[0]
        return len(name) >= 2 and any(
            option[2:].startswith(name) for option in _REFUSED_OPTIONS if option.startswith("--")
        )
    if arg.startswith("-") and len(arg) > 1 and arg[1] not in "SG":  # -S/-G take a string
        return "o" in arg[1:] or "O" in arg[1:]
    return False


def _whose(answer: EscalationAnswer, suggestion: str) -> str:
    same = answer.kind == "answer" and suggestion and answer.text.strip() == suggestion.strip()
    return AS_IS if same else "human"


def _escalated(request: EscalationRequest, pm: str) -> Escalated:
    return Escalated(
        story_id=request.story_id,
        question=request.question,
        tried=request.tried,
        automatic=request.automatic,
        pm=pm,
    )


def _prompt(engine: RunCore[Any], story: Story, request: EscalationRequest) -> str:
    prd = engine.store.path.read_bytes().decode("utf-8", errors="replace")
    if len(prd) > PRD_CHARS:
        prd = prd[:PRD_CHARS] + f"\n[... the PRD cut at {PRD_CHARS} characters]"
    story_json = json.dumps(story.model_dump(mode="json", exclude_none=True), indent=2)
    return (
        f"# The PRD ({engine.workspace.relative(engine.store.path)})\n\n{prd}\n\n"
        f"# The story in question\n\n{story_json}\n\n"
        f"# The progress log (latest entries)\n\n{engine.progress.tail()}\n\n"
        f"# Recent commits\n\n{engine.git.recent_log(10)}\n\n"
        f"# The engineer's escalation\n\nTried:\n{request.tried}\n\nQuestion:\n{request.question}\n"
    )
