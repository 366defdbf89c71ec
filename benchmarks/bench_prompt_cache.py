"""What prompt caching saves in one multi-turn iteration of the Anthropic agent.

Setup: the real ``AnthropicAgent`` and the real SDK against the fake Messages API server, a
scripted 10-turn iteration (view files, create, run commands, edit, run the gates, complete) in a
small workspace, the default persona and loop rules, a typical story prompt.

For each request: the bytes sent, and the share of the request that is an unchanged prefix of the
previous request ending at one of that request's cache breakpoints (so the API can read it back
from cache rather than process it again). The fake server also simulates the API's cache
accounting (tokens ~ bytes/4), which gives the input cost with and without caching.

Run: .venv/bin/python benchmarks/bench_prompt_cache.py
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import anthropic  # noqa: E402

from ralph_tui.agents.anthropic_agent import AnthropicAgent  # noqa: E402
from ralph_tui.config import RalphConfig  # noqa: E402
from ralph_tui.context import StoryContext, build_system_prompt, build_user_prompt  # noqa: E402
from ralph_tui.iteration import IterationRequest  # noqa: E402
from ralph_tui.persona import DEFAULT_PERSONA  # noqa: E402
from ralph_tui.prd.model import Story  # noqa: E402
from ralph_tui.pricing import price_for  # noqa: E402
from tests.support.fake_anthropic import FakeAnthropic, prompt_blocks, reply, tool_use  # noqa: E402
from tests.support.fake_tools import FakeIterationHandle  # noqa: E402

MODULE = "".join(
    f"def handler_{i}(request: dict[str, str]) -> dict[str, str]:\n"
    f'    """Handle request kind {i}."""\n'
    f'    return {{"status": "ok", "kind": "{i}", "echo": request.get("q", "")}}\n\n\n'
    for i in range(12)
)


def editor(**tool_input: Any) -> dict[str, Any]:
    return tool_use("str_replace_based_edit_tool", tool_input)


SCRIPT = [
    reply("Let me look at the layout first.", editor(command="view", path=".")),
    reply(editor(command="view", path="src/app/handlers.py")),
    reply(tool_use("bash", {"command": "grep -rn 'handler_3' src tests | head -20"})),
    reply(
        "I'll add the health endpoint next to the handlers.",
        editor(
            command="create",
            path="src/app/health.py",
            file_text='def health() -> dict[str, str]:\n    return {"status": "ok"}\n',
        ),
    ),
    reply(
        editor(
            command="create",
            path="tests/test_health.py",
            file_text="from app.health import health\n\n\ndef test_health() -> None:\n"
            '    assert health() == {"status": "ok"}\n',
        )
    ),
    reply(tool_use("bash", {"command": "ls -la src/app tests"})),
    reply(
        editor(
            command="str_replace",
            path="src/app/handlers.py",
            old_str='    """Handle request kind 0."""',
            new_str='    """Handle request kind 0 (health aware)."""',
        )
    ),
    reply(editor(command="view", path="src/app/handlers.py", view_range=[1, 12])),
    reply("Running the gates.", tool_use("run_quality_gates", {})),
    reply(
        "All green.",
        tool_use(
            "complete_task",
            {"summary": "Added /health", "learnings": ["handlers live in src/app/handlers.py"]},
        ),
    ),
]

GATES = (
    "gate tests: passed (1.2s) 41 passed\n"
    + "".join(f"tests/test_handlers.py::test_handler_{i} PASSED\n" for i in range(40))
    + "gate types: passed (3.4s) Success: no issues found in 18 source files\n"
    "gate lint: passed (0.2s) All checks passed!"
)


def build_workspace(root: Path) -> None:
    (root / "src/app").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "src/app/__init__.py").write_text("")
    (root / "src/app/handlers.py").write_text(MODULE)
    for i in range(6):
        (root / f"tests/test_handlers_{i}.py").write_text(f"# tests for handler {i}\n")
    (root / "README.md").write_text("# service\n")


def request_for(root: Path, config: RalphConfig) -> IterationRequest:
    story = Story(
        id="US-007",
        title="Health endpoint",
        description="As an operator I want GET /health so the load balancer can probe the service.",
        acceptanceCriteria=[
            "GET /health returns 200 and {'status': 'ok'}",
            "A test covers it",
            "Typecheck passes",
        ],
        priority=3,
        passes=False,
    )
    ctx = StoryContext(
        git_log="\n".join(f"abc{i:04d} [backend] Task #US-00{i}: story {i}" for i in range(1, 7)),
        progress_tail=(
            "## 2026-01-01 - US-006\n- Implemented story 6\n- Learnings:\n  - use pytest -q"
        ),
    )
    return IterationRequest(
        iteration=7,
        story=story,
        system_prompt=build_system_prompt(DEFAULT_PERSONA),
        user_prompt=build_user_prompt(story, ctx),
        workspace=root,
        config=config,
    )


def cached_prefix(prev: list[tuple[bytes, bool]], cur: list[tuple[bytes, bool]]) -> int:
    """Bytes of ``cur`` that equal ``prev`` up to a block ``prev`` marked as a cache breakpoint."""
    best, size = 0, 0
    for (a, marked), (b, _) in zip(prev, cur, strict=False):
        if a != b:
            break
        size += len(b)
        if marked:
            best = size
    return best


async def main() -> None:
    from ralph_tui.iteration import ToolOutcome

    config = RalphConfig(model="claude-sonnet-4-5")
    with tempfile.TemporaryDirectory() as tmp, FakeAnthropic(SCRIPT) as api:
        root = Path(tmp)
        build_workspace(root)
        tools = FakeIterationHandle(root, gate_results=[ToolOutcome(GATES)])
        client = anthropic.AsyncAnthropic(api_key="bench", base_url=api.base_url)
        agent = AnthropicAgent(config, client=client)
        outcome = await agent.run_iteration(request_for(root, config), tools)
        await agent.aclose()
        requests = api.requests
    assert outcome.reason == "finished", outcome
    assert len(requests) == 10, len(requests)

    print("One iteration, 10 turns (the Anthropic agent, real SDK, fake API server)\n")
    header = (
        f"{'turn':>4} {'bytes sent':>10} {'prompt B':>9} {'cached prefix B':>15} "
        f"{'share':>6} {'new B':>7} | {'sim. read tok':>13} {'write tok':>9} {'input tok':>9}"
    )
    print(header)
    print("-" * len(header))
    prev: list[tuple[bytes, bool]] = []
    total_sent = total_prompt = total_cached = 0
    for turn, (req, usage) in enumerate(zip(requests, tools.usages, strict=True), start=1):
        blocks = prompt_blocks(req.body)
        prompt = sum(len(b) for b, _ in blocks)
        cached = cached_prefix(prev, blocks) if prev else 0
        total_sent += req.raw_len
        total_prompt += prompt
        total_cached += cached
        print(
            f"{turn:>4} {req.raw_len:>10,} {prompt:>9,} {cached:>15,} "
            f"{cached / prompt:>6.0%} {prompt - cached:>7,} | "
            f"{usage.cache_read_input_tokens:>13,} {usage.cache_creation_input_tokens:>9,} "
            f"{usage.input_tokens:>9,}"
        )
        prev = blocks
    print("-" * len(header))
    print(
        f"{'all':>4} {total_sent:>10,} {total_prompt:>9,} {total_cached:>15,} "
        f"{total_cached / total_prompt:>6.0%} {total_prompt - total_cached:>7,}"
    )

    price = price_for(config.model)
    read = sum(u.cache_read_input_tokens for u in tools.usages)
    write = sum(u.cache_creation_input_tokens for u in tools.usages)
    fresh = sum(u.input_tokens for u in tools.usages)
    with_cache = (fresh * price.input + write * price.input * 1.25 + read * price.input * 0.1) / 1e6
    without = (read + write + fresh) * price.input / 1e6
    print(
        f"\nInput tokens (simulated, ~bytes/4): {read + write + fresh:,} "
        f"(read from cache {read:,}, written {write:,}, uncached {fresh:,})"
    )
    print(
        f"Input cost at {config.model} list prices: ${with_cache:.4f} with caching, "
        f"${without:.4f} without ({1 - with_cache / without:.0%} less)"
    )
    stable = sum(
        len(b) for b, _ in prompt_blocks({k: requests[0].body[k] for k in ("tools", "system")})
    )
    print(f"Stable prefix (tools + system): {stable:,} bytes, the same in every request")


if __name__ == "__main__":
    asyncio.run(main())
