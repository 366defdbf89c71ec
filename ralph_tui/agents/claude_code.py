"""``agent = "claude-code"``: the Claude Code CLI, through ``claude-agent-sdk``, under supervision.

Each iteration is a fresh Claude Code session in the workspace with the prompts every backend
gets. ralph-tui's own tools reach Claude Code as an in-process MCP server named ``ralph``
(``mcp__ralph__complete_task``, ``mcp__ralph__escalate``, ``mcp__ralph__run_quality_gates``), and
they go through the same ``ToolBox`` and engine path as the Anthropic backend's tools.

Every tool call passes a ``PreToolUse`` hook (and, should Claude Code still want to prompt, the
``can_use_tool`` callback) that applies one policy: file tools stay inside the workspace and out
of ``.git/`` and ``.ralph/``; other tools follow ``[claude_code] allow`` / ``deny``. A denial is
shown in the transcript as an error tool result. Claude Code's Bash tool runs shell commands in
its own subprocesses: whenever ralph-tui's sandbox is in force, Claude Code's own bash sandbox is
turned on with unsandboxed commands disallowed (``claude_sandbox_settings``); ``Bash`` stays a
policy entry the user can remove. ralph-tui's credentials reach the CLI only through the SDK's
``env`` option (they are no longer in ``os.environ``), so Claude Code's commands inherit them.

The SDK is an optional extra (``ralph-supervisor[claude]``) and is imported only here, lazily.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import importlib.util
import logging
import time
from collections import defaultdict, deque
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ralph_tui.agents.fallback import usage_limit
from ralph_tui.checks import Check, api_key_check, first_line, run_program
from ralph_tui.config import ClaudeCodeOptions, RalphConfig
from ralph_tui.errors import AgentError, AgentRateLimited, UsageError
from ralph_tui.events import Notice, TextDelta, ToolCall, ToolResult
from ralph_tui.iteration import AgentOutcome, IterationHandle, IterationRequest, Usage
from ralph_tui.safety import credentials
from ralph_tui.safety.sandbox import Sandbox
from ralph_tui.safety.text import encodable, encodable_data, one_line
from ralph_tui.safety.workspace import ConfinementError, Workspace
from ralph_tui.tools.definitions import COMPLETE_TASK, ESCALATE, RUN_QUALITY_GATES, TOOL_DEFINITIONS
from ralph_tui.tools.shell import clip
from ralph_tui.tools.toolbox import ToolBox

if TYPE_CHECKING:
    from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient, Message
    from claude_agent_sdk.types import (
        HookContext,
        HookInput,
        HookJSONOutput,
        PermissionResultAllow,
        PermissionResultDeny,
        SandboxSettings,
        ToolPermissionContext,
    )

log = logging.getLogger(__name__)

SERVER_NAME = "ralph"
MCP_PREFIX = f"mcp__{SERVER_NAME}__"
RALPH_TOOLS = (RUN_QUALITY_GATES, ESCALATE, COMPLETE_TASK)
INSTALL_HINT = (
    "agent claude-code needs `pip install ralph-supervisor[claude]` (the claude-agent-sdk package)"
)

# Claude Code's file tools and the input keys that hold their paths.
FILE_TOOLS: dict[str, tuple[str, ...]] = {
    "Read": ("file_path",),
    "Write": ("file_path",),
    "Edit": ("file_path",),
    "MultiEdit": ("file_path",),
    "NotebookEdit": ("notebook_path",),
    "NotebookRead": ("notebook_path",),
    "Glob": ("path",),
    "Grep": ("path",),
    "LS": ("path",),
}
WRITE_TOOLS = frozenset({"Write", "Edit", "MultiEdit", "NotebookEdit"})  # not the PRD or the log
_MAX_RESULT_BYTES = 16_000
HOOK_TIMEOUT_S = 7 * 24 * 3600.0
# After the iteration ended (the story committed, say) the model gets this long to finish its
# turn, so Claude Code's result message, and with it the session's cost, still arrives.
WRAP_UP_S = 20.0

SESSION_NOTES = f"""\
# Tools in this session
You run inside Claude Code. Use its own tools (Read, Write, Edit, Bash, ...) for files and
commands, in the repository root; writes outside it, or into .git/ or .ralph/, are refused.
ralph-tui's tools are {MCP_PREFIX}{RUN_QUALITY_GATES}, {MCP_PREFIX}{ESCALATE} and \
{MCP_PREFIX}{COMPLETE_TASK}: call {MCP_PREFIX}{COMPLETE_TASK} when the story is done."""

NUDGE = (
    f"You ended your turn without calling {MCP_PREFIX}{COMPLETE_TASK}. If the story is done, "
    f"call it now with a summary and your learnings; if you are blocked, call "
    f"{MCP_PREFIX}{ESCALATE}."
)


def sdk_available() -> bool:
    return importlib.util.find_spec("claude_agent_sdk") is not None


def require_sdk() -> None:
    if not sdk_available():
        raise UsageError(INSTALL_HINT)


def bundled_cli_path() -> Path | None:
    """The ``claude`` executable shipped inside the SDK's wheel, if present."""
    spec = importlib.util.find_spec("claude_agent_sdk")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "_bundled" / "claude"
    return path if path.is_file() else None


def policy_decision(
    tool_name: str, tool_input: Mapping[str, Any], workspace: Workspace, options: ClaudeCodeOptions
) -> str | None:
    """Why ``tool_name`` may not run with this input, or None when it may.

    ralph-tui's own tools always may. ``deny`` wins over ``allow``; a tool in neither is refused
    (there is no human at Claude Code's permission prompt). Entries are tool names or
    shell-style patterns (``mcp__github__*``).
    """
    if tool_name.startswith(MCP_PREFIX):
        return None
    if any(fnmatch.fnmatchcase(tool_name, pattern) for pattern in options.deny):
        return f"{tool_name} is denied by [claude_code] deny in ralph.toml"
    if not any(fnmatch.fnmatchcase(tool_name, pattern) for pattern in options.allow):
        return f"{tool_name} is not in [claude_code] allow in ralph.toml"
    for key in FILE_TOOLS.get(tool_name, ()):
        value = tool_input.get(key)
        if value is None or (key == "path" and not str(value).strip()):
            continue  # Glob/Grep/LS without a path search the workspace root
        try:
            workspace.resolve(str(value), write=tool_name in WRITE_TOOLS)
        except ConfinementError as exc:
            return str(exc)
    return None


def offered_tools(options: ClaudeCodeOptions) -> list[str] | None:
    """Claude Code's built-in tools to offer: those ``allow`` names, when it names them all.

    Not offering a tool beats refusing it after the model planned around it. A pattern among
    the built-in entries (``Notebook*``) cannot be enumerated, so then all are offered and the
    policy refuses per call. MCP tools are not built-ins and are unaffected.
    """
    builtins = [p for p in options.allow if not p.startswith("mcp__")]
    if any(_is_pattern(p) for p in builtins):
        return None
    return builtins


def _is_pattern(entry: str) -> bool:
    return any(c in entry for c in "*?[")


class ClaudeCodeAgent:
    name = "claude-code"
    wrap_up_s = WRAP_UP_S

    def __init__(self, config: RalphConfig) -> None:
        require_sdk()
        self.config = config

    async def run_iteration(
        self, request: IterationRequest, tools: IterationHandle
    ) -> AgentOutcome:
        session = _Session(self.config, request, tools)
        session.wrap_up_s = self.wrap_up_s
        return await session.run()

    async def aclose(self) -> None:
        """Nothing outlives an iteration: each session's CLI process ends with it."""


_Wake = Literal["wake", "eof"]


class _Session:
    """One Claude Code session: options, the message pump, the hook and the MCP handlers."""

    def __init__(self, config: RalphConfig, request: IterationRequest, tools: IterationHandle):
        self.config = config
        self.request = request
        self.tools = tools
        self.toolbox = ToolBox(tools, config)
        self.queue: asyncio.Queue[Message | BaseException | _Wake] = asyncio.Queue()
        self.wrap_up_s = WRAP_UP_S
        self.called: set[str] = set()  # tool_use ids whose ToolCall was emitted
        self.resulted: set[str] = set()  # ... and whose ToolResult was emitted
        self.names: dict[str, str] = {}  # tool_use id -> tool name
        self.pending: defaultdict[str, deque[str]] = defaultdict(deque)  # ralph tool -> ids
        self.streamed: set[str] = set()  # message ids whose text arrived as stream events
        self.text_open = False
        self.in_tool = 0
        self.stopping = False
        self.error: BaseException | None = None
        self.stderr: deque[str] = deque(maxlen=20)
        self.reported_cost = 0.0
        self.calls = 0

    # ---- the session -----------------------------------------------------------------------

    def options(self) -> ClaudeAgentOptions:
        from claude_agent_sdk import ClaudeAgentOptions, HookMatcher, create_sdk_mcp_server, tool

        definitions = {d["name"]: d for d in TOOL_DEFINITIONS}
        server = create_sdk_mcp_server(
            SERVER_NAME,
            tools=[
                tool(name, definitions[name]["description"], definitions[name]["input_schema"])(
                    self._handler(name)
                )
                for name in RALPH_TOOLS
            ],
        )
        cc = self.config.claude_code
        return ClaudeAgentOptions(
            cwd=str(self.request.workspace),
            system_prompt=f"{self.request.system_prompt.strip()}\n\n{SESSION_NOTES}",
            model=self.config.model,
            max_turns=cc.max_turns,
            mcp_servers={SERVER_NAME: server},
            strict_mcp_config=True,
            tools=offered_tools(cc),
            # Tools denied by name are not even offered to the model.
            disallowed_tools=[p for p in cc.deny if not _is_pattern(p)],
            permission_mode="default",
            hooks={
                "PreToolUse": [
                    # the hook waits while the run is paused: no 60 s default timeout
                    HookMatcher(matcher=None, hooks=[self._pre_tool_use], timeout=HOOK_TIMEOUT_S)
                ]
            },
            can_use_tool=self._can_use_tool,
            # Only what ralph-tui passes: no user or project settings (their hooks, their
            # permission rules) and no CLAUDE.md loading; the prompt already carries it.
            setting_sources=[],
            include_partial_messages=True,
            stderr=self.stderr.append,
            env={"ENABLE_TOOL_SEARCH": "false", **claude_credentials()},
            sandbox=claude_sandbox_settings(self.tools.workspace.sandbox),
        )

    async def run(self) -> AgentOutcome:
        from claude_agent_sdk import ClaudeSDKClient, ClaudeSDKError

        client = ClaudeSDKClient(self.options())
        try:
            await client.connect()
        except ClaudeSDKError as exc:
            raise AgentError(
                f"Claude Code did not start: {one_line(str(exc), 300)}{self._why()}"
            ) from exc
        pump = asyncio.create_task(self._pump(client))
        try:
            await client.query(self.request.user_prompt)
            outcome = await self._converse(client)
        finally:
            await self._close(client, pump)
        if self.error is not None:
            raise self.error
        return outcome

    async def _pump(self, client: ClaudeSDKClient) -> None:
        try:
            async for message in client.receive_messages():
                self.queue.put_nowait(message)
        except Exception as exc:  # noqa: BLE001 - re-raised by the conversation loop
            self.queue.put_nowait(exc)
        else:
            self.queue.put_nowait("eof")

    async def _converse(self, client: ClaudeSDKClient) -> AgentOutcome:
        from claude_agent_sdk import ClaudeSDKError, ResultMessage

        nudged = False
        while True:
            if self.stopping or self.tools.finished:
                # a stop or a run-ending error: interrupt at once; else let the turn end
                await self._wrap_up(client, interrupt_now=self.error is not None)
                return AgentOutcome("finished")
            # Time waiting on the human (approval, escalation) is not Claude Code's time.
            timeout = None if self.in_tool else self.config.agent_timeout_s
            try:
                item = await asyncio.wait_for(self.queue.get(), timeout)
            except TimeoutError:
                if self.in_tool:
                    continue
                message = f"Claude Code was silent for agent_timeout_s = {timeout:g}s"
                self.tools.emit(Notice(level="error", message=message))
                return AgentOutcome("timeout", message)
            if item == "wake":
                continue
            if item == "eof":
                limited = usage_limit(list(self.stderr), time.time())
                if limited is not None:
                    raise AgentRateLimited(
                        f"Claude Code exited: {limited}",
                        reset_at=limited.reset_at,
                        retry_after_s=limited.retry_after_s,
                    )
                return AgentOutcome("crashed", f"Claude Code exited{self._why()}")
            if isinstance(item, ClaudeSDKError):
                raise AgentError(f"Claude Code failed: {one_line(str(item), 300)}{self._why()}")
            if isinstance(item, BaseException):
                raise item
            self._on_message(item)
            if not isinstance(item, ResultMessage) or self.stopping or self.tools.finished:
                continue
            ended = self._result_outcome(item)
            if ended is not None:
                return ended
            if nudged:
                return AgentOutcome("end_turn", one_line(item.result or "", 300))
            nudged = True
            self.tools.emit(
                Notice(
                    level="info",
                    message="Claude Code stopped without claiming done; nudging it once",
                )
            )
            await self.tools.checkpoint()
            await client.query(NUDGE)

    async def _wrap_up(self, client: ClaudeSDKClient, *, interrupt_now: bool = False) -> None:
        """Lets the turn end (so the result and its cost arrive), interrupting it if it drags."""
        from claude_agent_sdk import ResultMessage

        loop = asyncio.get_running_loop()
        deadline = loop.time() + (0.0 if interrupt_now else self.wrap_up_s)
        interrupted = False
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                if interrupted:
                    return
                interrupted = True
                with contextlib.suppress(Exception):  # the CLI may already be gone; we close next
                    await client.interrupt()
                deadline = loop.time() + 5.0
                continue
            try:
                item = await asyncio.wait_for(self.queue.get(), remaining)
            except TimeoutError:
                continue
            if isinstance(item, BaseException) or item == "eof":
                return
            if item == "wake":
                continue
            self._on_message(item)
            if isinstance(item, ResultMessage):
                return

    async def _close(self, client: ClaudeSDKClient, pump: asyncio.Task[None]) -> None:
        try:
            await client.disconnect()
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump

    def _why(self) -> str:
        lines = [ln.strip() for ln in self.stderr if ln.strip()]
        return f" ({one_line(lines[-1], 300)})" if lines else ""

    def _stop(self) -> None:
        self.stopping = True
        self.queue.put_nowait("wake")

    # ---- messages -> events ----------------------------------------------------------------

    def _on_message(self, message: Message) -> None:
        from claude_agent_sdk import (
            AssistantMessage,
            ResultMessage,
            StreamEvent,
            SystemMessage,
            TextBlock,
            ToolResultBlock,
            ToolUseBlock,
            UserMessage,
        )

        if isinstance(message, StreamEvent):
            if message.parent_tool_use_id is None:
                self._on_stream_event(message.event, message.session_id)
            return
        if isinstance(message, AssistantMessage):
            for block in message.content:
                if isinstance(block, TextBlock):
                    if (
                        message.message_id not in self.streamed
                        and message.parent_tool_use_id is None
                    ):
                        self._text(block.text)
                        self._end_text()
                elif isinstance(block, ToolUseBlock):
                    self.names[block.id] = block.name
                    if not block.name.startswith(MCP_PREFIX):
                        self._emit_call(block.id, block.name, block.input)
        elif isinstance(message, UserMessage) and isinstance(message.content, list):
            for block in message.content:
                if isinstance(block, ToolResultBlock):
                    self._emit_result(
                        block.tool_use_id, _result_text(block.content), bool(block.is_error)
                    )
        elif isinstance(message, ResultMessage):
            self._report(message)
        elif isinstance(message, SystemMessage) and message.subtype == "api_retry":
            data = message.data
            self.tools.emit(
                Notice(
                    level="warning",
                    message=(
                        f"Claude Code: API error {data.get('error_status')} "
                        f"({data.get('error')}), retry {data.get('attempt')} of "
                        f"{data.get('max_retries')}"
                    ),
                )
            )

    def _on_stream_event(self, event: Mapping[str, Any], session_id: str) -> None:
        kind = event.get("type")
        if kind == "message_start":
            message_id = event.get("message", {}).get("id")
            if isinstance(message_id, str):
                self.streamed.add(message_id)
        elif kind == "content_block_delta":
            delta = event.get("delta", {})
            if delta.get("type") == "text_delta" and delta.get("text"):
                self._text(delta["text"])
        elif kind == "content_block_stop":
            self._end_text()

    def _text(self, text: str) -> None:
        if text:
            self.tools.emit(TextDelta(text=encodable(text)))  # a lone surrogate is valid JSON
            self.text_open = not text.endswith("\n")

    def _end_text(self) -> None:
        if self.text_open:
            self.tools.emit(TextDelta(text="\n"))
            self.text_open = False

    def _emit_call(self, call_id: str, name: str, tool_input: Mapping[str, Any]) -> None:
        if call_id in self.called:
            return
        self.called.add(call_id)
        self.names.setdefault(call_id, name)
        self._end_text()
        self.tools.emit(
            ToolCall(call_id=call_id, name=name, input=encodable_data(dict(tool_input)))
        )

    def _emit_result(self, call_id: str, content: str, is_error: bool) -> None:
        name = self.names.get(call_id, "")
        if call_id in self.resulted or name.startswith(MCP_PREFIX):
            return
        self.resulted.add(call_id)
        content = encodable(content)  # Claude Code's own tools: a file name may not be UTF-8
        self.tools.emit(ToolResult(call_id=call_id, name=name, content=content, is_error=is_error))

    def _report(self, result: Any) -> None:
        usage = result.usage or {}
        total = result.total_cost_usd
        cost = None
        if isinstance(total, int | float):
            # the result's cost is the session's running total
            cost = max(0.0, float(total) - self.reported_cost)
            self.reported_cost = max(self.reported_cost, float(total))
        self.tools.report_usage(
            Usage(
                input_tokens=int(usage.get("input_tokens") or 0),
                output_tokens=int(usage.get("output_tokens") or 0),
                cache_creation_input_tokens=int(usage.get("cache_creation_input_tokens") or 0),
                cache_read_input_tokens=int(usage.get("cache_read_input_tokens") or 0),
                cost_usd=cost,
            )
        )
        cost_text = f"${total:.4f}" if isinstance(total, int | float) else "cost unknown"
        self.tools.emit(
            Notice(
                level="info",
                message=(
                    f"Claude Code {result.subtype}: {result.num_turns} turns, {cost_text}, "
                    f"session {result.session_id}"
                ),
            )
        )

    def _result_outcome(self, result: Any) -> AgentOutcome | None:
        """How a finished turn ends the iteration; None when a nudge may still help."""
        subtype: str = result.subtype
        detail = one_line("; ".join(result.errors or []) or (result.result or ""), 300)
        # a rate limit or usage cap: the next fallback agent can take over (agents/fallback.py)
        limited = usage_limit([*(result.errors or []), result.result or ""], time.time())
        if result.api_error_status in (429, 529) or (result.is_error and limited is not None):
            status = f"API error {result.api_error_status}: " if result.api_error_status else ""
            raise AgentRateLimited(
                f"Claude Code: {status}{detail}",
                reset_at=limited.reset_at if limited else None,
                retry_after_s=limited.retry_after_s if limited else None,
            )
        if result.api_error_status:
            raise AgentError(f"Claude Code: API error {result.api_error_status}: {detail}")
        if subtype in ("error_max_turns", "error_max_budget_usd"):
            return AgentOutcome("stopped", f"Claude Code {subtype}: {detail}".rstrip(": "))
        if result.is_error:
            return AgentOutcome("crashed", f"Claude Code {subtype}: {detail}".rstrip(": "))
        return None

    # ---- permissions -------------------------------------------------------------------------

    def _decide(self, call_id: str | None, name: str, tool_input: Mapping[str, Any]) -> str | None:
        if self.stopping or self.tools.finished:
            reason: str | None = "the iteration has ended"
        else:
            reason = policy_decision(
                name, tool_input, self.tools.workspace, self.config.claude_code
            )
        if call_id:
            self.names.setdefault(call_id, name)
            if reason is None and name.startswith(MCP_PREFIX):
                self.pending[name.removeprefix(MCP_PREFIX)].append(call_id)
        if reason is not None:
            self._report_denial(call_id, name, tool_input, reason)
        return reason

    def _report_denial(
        self, call_id: str | None, name: str, tool_input: Mapping[str, Any], reason: str
    ) -> None:
        call_id = call_id or f"denied-{len(self.resulted) + 1}"
        self.names.setdefault(call_id, name)
        self._emit_call(call_id, name, tool_input)
        self.resulted.add(call_id)
        self.tools.emit(
            ToolResult(
                call_id=call_id, name=name, content=f"denied by ralph-tui: {reason}", is_error=True
            )
        )

    async def _safe_point(self) -> str | None:
        """Before each tool call: wait while paused; a stop or a spent budget ends the session.

        Returns why the call may not run, or None. The engine's signal (``StopRequested``, or
        its run-ending error) is kept and re-raised by ``run`` once the CLI is closed.
        """
        if self.error is not None:
            return "ralph-tui is stopping"
        self.in_tool += 1
        try:
            await self.tools.checkpoint()
        except Exception as exc:  # noqa: BLE001 - re-raised by run() after the session closes
            self.error = exc
            self._stop()
            return "ralph-tui is stopping"
        finally:
            self.in_tool -= 1
            self.queue.put_nowait("wake")
        return None

    async def _pre_tool_use(
        self, hook_input: HookInput, tool_use_id: str | None, context: HookContext
    ) -> HookJSONOutput:
        if hook_input["hook_event_name"] != "PreToolUse":
            return {}
        name = hook_input["tool_name"]
        call_id = tool_use_id or hook_input.get("tool_use_id")
        reason = await self._safe_point()
        if reason is None:
            reason = self._decide(call_id, name, hook_input["tool_input"])
        else:
            self._report_denial(call_id, name, hook_input["tool_input"], reason)
        if reason is None:
            return {
                "hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "allow"}
            }
        return {
            "hookSpecificOutput": {
                "hookEventName": "PreToolUse",
                "permissionDecision": "deny",
                "permissionDecisionReason": f"ralph-tui: {reason}",
            }
        }

    async def _can_use_tool(
        self, name: str, tool_input: dict[str, Any], context: ToolPermissionContext
    ) -> PermissionResultAllow | PermissionResultDeny:
        from claude_agent_sdk import PermissionResultAllow, PermissionResultDeny

        call_id = context.tool_use_id
        if call_id in self.resulted:  # the hook already refused and reported it
            return PermissionResultDeny(message="refused by ralph-tui")
        reason = self._decide(None if call_id in self.names else call_id, name, tool_input)
        if reason is None:
            return PermissionResultAllow()
        return PermissionResultDeny(message=f"ralph-tui: {reason}")

    # ---- ralph-tui's tools -------------------------------------------------------------------

    def _handler(self, name: str) -> Any:
        async def handle(args: dict[str, Any]) -> dict[str, Any]:
            queue = self.pending[name]
            self.calls += 1
            call_id = queue.popleft() if queue else f"ralph-{self.request.iteration}-{self.calls}"
            self.called.add(call_id)
            self.resulted.add(call_id)
            self.in_tool += 1
            try:
                outcome = await self.toolbox.call(call_id, name, args)
            except Exception as exc:  # noqa: BLE001 - re-raised by run() after the session closes
                # The SDK would turn this into an error result the model reads; StopRequested
                # and the engine's run-ending signals must reach the engine instead.
                self.error = exc
                self._stop()
                return {
                    "content": [{"type": "text", "text": "ralph-tui stopped"}],
                    "is_error": True,
                }
            finally:
                self.in_tool -= 1
                self.queue.put_nowait("wake")
            if outcome.ends_iteration or self.tools.finished:
                self._stop()
            return {
                "content": [{"type": "text", "text": outcome.content}],
                "is_error": outcome.is_error,
            }

        return handle


def _result_text(content: str | list[dict[str, Any]] | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        text = content
    else:
        text = "\n".join(
            str(part.get("text", "")) if part.get("type") == "text" else f"[{part.get('type')}]"
            for part in content
        )
    return clip(text.encode("utf-8"), _MAX_RESULT_BYTES)


def claude_credentials() -> dict[str, str]:
    """The credentials the Claude Code CLI needs, handed over explicitly (see ``credentials``)."""
    return {
        name: value
        for name, value in credentials.withheld().items()
        if name.upper().startswith("ANTHROPIC_") or name == "CLAUDE_CODE_OAUTH_TOKEN"
    }


def claude_sandbox_settings(sandbox: Sandbox) -> SandboxSettings | None:
    """Claude Code's own bash sandbox, with no way around it, whenever ralph-tui's own sandbox
    is in force (Claude Code builds on the same bubblewrap / sandbox-exec; without them its
    sandboxed commands could not run at all, and the run already warns)."""
    if not sandbox.confined:
        return None
    return {
        "enabled": True,
        "allowUnsandboxedCommands": False,
        "autoAllowBashIfSandboxed": False,  # every command still passes our PreToolUse policy
        "excludedCommands": [],
    }


# ---- registration (``agents.registry``) -------------------------------------------------------


def create(config: RalphConfig, workspace: Path) -> ClaudeCodeAgent:
    return ClaudeCodeAgent(config)


def doctor_checks(root: Path, config: RalphConfig) -> Iterator[Check]:
    if not sdk_available():
        yield Check("missing", "claude-code", "claude-agent-sdk is not installed", INSTALL_HINT)
        return
    cli = bundled_cli_path()
    if cli is None:
        yield Check(
            "missing",
            "claude-code",
            "claude-agent-sdk has no bundled CLI",
            "reinstall: pip install --force-reinstall 'ralph-supervisor[claude]'",
        )
        return
    code, output = run_program([str(cli), "--version"])
    if code != 0:
        yield Check(
            "missing",
            "claude-code",
            f"{cli} --version failed: {first_line(output) or f'exit status {code}'}",
            "reinstall: pip install --force-reinstall 'ralph-supervisor[claude]'",
        )
        return
    yield Check("ok", "claude-code", first_line(output))
    yield api_key_check(required=False)
