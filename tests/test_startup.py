"""Start-up and exit paths that cost time (issue 24): what is imported when, and the exit.

Each check runs in a fresh interpreter (``sys.modules`` and the heap are per process). The
figures themselves are measured in benchmarks/bench_startup.py, not asserted here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.repo import make_repo


def _python(code: str, cwd: Path | None = None, **env: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parents[1]), **env},
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


_RECORD_SDK_IMPORTER = """
import sys, threading
importers = []
class Recorder:
    def find_spec(self, name, path=None, target=None):
        if name == "anthropic":
            importers.append(threading.current_thread().name)
        return None
sys.meta_path.insert(0, Recorder())
"""


def test_the_built_in_agent_loads_the_sdk_at_its_first_request_off_the_event_loop() -> None:
    """Made without the SDK; the first request imports it on a worker thread, so the event
    loop (the TUI's painting, the other workers) never blocks on the import."""
    code = (
        _RECORD_SDK_IMPORTER
        + """
import asyncio, json
from pathlib import Path
from ralph_tui.config import RalphConfig
from ralph_tui.agents import create_agent
from tests.support.fake_anthropic import FakeAnthropic, reply
with FakeAnthropic([reply("hello")]) as api:
    import os
    os.environ["ANTHROPIC_BASE_URL"] = api.base_url
    agent = create_agent(RalphConfig(agent="anthropic"), Path("."))
    made_without = "anthropic" not in sys.modules
    makers = []
    def record_maker(module):
        made = module.AsyncAnthropic.__init__
        def init(self, *args, **kwargs):
            makers.append(threading.current_thread().name)
            made(self, *args, **kwargs)
        module.AsyncAnthropic.__init__ = init
    import ralph_tui.agents.anthropic_agent as agent_module
    load = agent_module._load_sdk
    async def load_and_record():
        await load()
        record_maker(sys.modules["anthropic"])
    agent_module._load_sdk = load_and_record
    text, _ = asyncio.run(agent.ask("be brief", [{"role": "user", "content": "hi"}], print))
print(json.dumps(
    {"made_without": made_without, "importers": importers, "makers": makers, "text": text}
))
"""
    )
    result = _python(code, ANTHROPIC_API_KEY="sk-ant-test-0000")
    assert result["made_without"] is True and result["text"] == "hello"
    importers = result["importers"]
    assert isinstance(importers, list) and len(importers) == 1
    assert importers[0] != "MainThread", importers
    # the client too: it builds an SSL context, 20-60 ms four workers would wait on in turn
    assert result["makers"] and "MainThread" not in result["makers"], result["makers"]


def test_importing_the_agent_module_leaves_the_sdk_unloaded() -> None:
    code = """
import json, sys
import ralph_tui.agents.anthropic_agent
print(json.dumps({"sdk": "anthropic" in sys.modules}))
"""
    assert _python(code) == {"sdk": False}


def test_warm_up_starts_the_sdk_import_only_for_the_built_in_agent() -> None:
    code = (
        _RECORD_SDK_IMPORTER
        + """
import json
from ralph_tui.config import RalphConfig
from ralph_tui.agents import warm_up
warm_up(RalphConfig(agent="scripted", script="s.json"))
scripted = [t.name for t in threading.enumerate() if t.name == "anthropic-sdk-import"]
sdk_after_scripted = "anthropic" in sys.modules
warm_up(RalphConfig(agent="anthropic"))
warm_up(RalphConfig(agent="anthropic"))  # once per process
for thread in threading.enumerate():
    if thread.name == "anthropic-sdk-import":
        thread.join()
print(json.dumps({"scripted": scripted, "sdk_after_scripted": sdk_after_scripted,
                  "importers": importers, "sdk": "anthropic" in sys.modules}))
"""
    )
    result = _python(code)
    assert result["scripted"] == [] and result["sdk_after_scripted"] is False
    assert result["importers"] == ["anthropic-sdk-import"] and result["sdk"] is True


def test_the_program_freezes_its_heap_before_the_interpreter_exits(tmp_path: Path) -> None:
    """The interpreter's final collection is skipped for what the run left alive; tests that
    call ``main(argv)`` in-process keep their heap as it was."""
    root = make_repo(tmp_path / "repo")
    code = """
import gc, json, sys
from ralph_tui.cli import main
main(["validate"])
in_process = gc.get_freeze_count()
sys.argv = ["ralph-tui", "validate"]
code = main()
print(json.dumps({"in_process": in_process, "program": gc.get_freeze_count(), "code": code}))
"""
    result = _python(code, cwd=root)
    assert result["code"] == 0
    assert result["in_process"] == 0
    assert isinstance(result["program"], int) and result["program"] > 0


def test_a_run_without_listen_or_webhook_never_loads_the_http_server() -> None:
    """aiohttp (0.15 s) is for ``--listen`` and webhooks only: the run path leaves it alone."""
    code = """
import json, sys
from pathlib import Path
import ralph_tui.cli, ralph_tui.headless, ralph_tui.parallel
from ralph_tui.config import RalphConfig
from ralph_tui.runs import make_run_factory
make_run_factory(Path("."), RalphConfig(agent="scripted", script="s.json"))
print(json.dumps({"aiohttp": "aiohttp" in sys.modules}))
"""
    assert _python(code) == {"aiohttp": False}
