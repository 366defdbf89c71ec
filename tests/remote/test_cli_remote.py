"""The remote commands' bad input: one line naming the problem, nothing started."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import pytest

from ralph_tui.cli import main
from ralph_tui.server.client import RemoteRun
from ralph_tui.server.http import read_serve_file
from ralph_tui.supervisor import ApprovalDecision, EscalationAnswer
from tests.remote.test_web import RALPH, start_run
from tests.support.engine import ScriptedSupervisor, complete, create, write_script
from tests.support.repo import git, make_repo, story


def test_listen_on_a_public_address_needs_listen_public(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_repo(tmp_path / "ws")
    code = main(["run", "--headless", "--listen", "0.0.0.0:0", "--workspace", str(root)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "0.0.0.0:0: not a loopback address; add --listen-public" in err[0]
    assert not (root / ".ralph" / "serve.json").exists()


def test_listen_needs_host_and_port(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_repo(tmp_path / "ws")
    assert main(["run", "--headless", "--listen", "8765", "--workspace", str(root)]) == 2
    assert "expected HOST:PORT" in capsys.readouterr().err


def test_attach_without_a_served_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_repo(tmp_path / "ws")
    assert main(["attach", "--workspace", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"ralph-tui: {root}/.ralph/serve.json: no served run here")


async def test_ctrl_c_stops_a_headless_run_waiting_on_clients(tmp_path: Path) -> None:
    """The first ^C stops at the next safe point: the question waiting on clients is settled
    with the safest answer (discard) instead of waiting for ever."""
    _, run = await start_run(tmp_path)
    run.send_signal(signal.SIGINT)
    code = await asyncio.wait_for(run.wait(), 30)
    assert run.stdout is not None
    rest = (await run.stdout.read()).decode()
    assert "supervisor: discard" in rest, rest
    assert code != 0


async def _served_workers_run(
    tmp_path: Path, client: ScriptedSupervisor, stdin: bytes
) -> tuple[Path, int, str]:
    """``run --headless --approve ask --workers 2 --listen`` with ``stdin`` piped in, and a
    client attached over the real protocol until the run ends: (workspace, exit code, output)."""
    ask = {"tool": "escalate", "input": {"question": "Which port?", "tried": "read the docs"}}
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps(
            {
                "stories": {
                    "US-001": [create("a.txt", "a\n"), complete("a")],
                    "US-002": [ask, create("b.txt", "b\n"), complete("b")],
                }
            }
        ),
        encoding="utf-8",
    )
    root = make_repo(
        tmp_path / "ws",
        [story("US-001", "A", 1), story("US-002", "B", 2)],
        extra_config=f"script = {json.dumps(str(script))}",
    )
    run = await asyncio.create_subprocess_exec(
        str(RALPH), "run", "--headless", "--approve", "ask", "--workers", "2",
        "--listen", "127.0.0.1:0", "--workspace", str(root),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert run.stdin is not None and run.stdout is not None
    seen: list[bytes] = []

    async def drive() -> int:
        assert run.stdin is not None and run.stdout is not None
        run.stdin.write(stdin)
        await run.stdin.drain()
        run.stdin.close()
        while b"serving this run on" not in (line := await run.stdout.readline()):
            assert line, "the run ended before serving"
            seen.append(line)
        url, token = read_serve_file(root)
        await RemoteRun(url, token, client, lambda event: None).run()
        return await run.wait()

    try:
        # within pytest's own timeout, so that a hang shows what the run and the client did
        code = await asyncio.wait_for(drive(), 90)
    except TimeoutError:
        run.kill()
        said = b"".join(seen) + await run.stdout.read()
        journals = sorted((root / ".ralph" / "runs").glob("*/events.jsonl"))
        events = journals[-1].read_text(encoding="utf-8").splitlines() if journals else []
        kinds = [json.loads(e).get("kind", "?") for e in events if '"text_delta"' not in e]
        pytest.fail(
            f"the served run did not end within 90 s; client asked "
            f"{[r.story_id for r in client.approval_requests]} and "
            f"{len(client.escalations)} questions\nrun output:\n{said.decode()[-6000:]}\n"
            f"journal kinds: {kinds[-80:]}"
        )
    finally:
        if run.returncode is None:
            run.kill()
            await run.wait()
    rest = (await run.stdout.read()).decode()
    return root, code, rest


async def test_with_workers_the_served_run_asks_its_clients(tmp_path: Path) -> None:
    """``--workers 2 --listen --approve ask`` with stdin at end-of-file: every approval and the
    worker's escalation reach the attached client (they used to go to the terminal alone, whose
    EOF discarded each change)."""
    client = ScriptedSupervisor(answers=[EscalationAnswer("answer", "Use 8080.")])
    root, code, rest = await _served_workers_run(tmp_path, client, b"")
    assert sorted(r.story_id for r in client.approval_requests) == ["US-001", "US-002"], rest
    assert [(e.story_id, e.question) for e in client.escalations] == [("US-002", "Which port?")]
    assert code == 0, rest
    assert "supervisor: discard" not in rest
    log = git(root, "log", "--format=%s")
    assert "Task #US-001" in log and "Task #US-002" in log
    assert "Use 8080." in (root / "tasks/backend_progress.txt").read_text(encoding="utf-8")


async def test_with_workers_piped_stdin_approves_nothing(tmp_path: Path) -> None:
    """stdin that is not a terminal is not a face of a served run (README: the headless run
    asks its own prompt only when stdin is a terminal): ``yes a`` piped in approves nothing,
    the client's discards decide."""
    client = ScriptedSupervisor(
        decisions=[ApprovalDecision.discard()] * 20,
        answers=[EscalationAnswer("answer", "Use 8080.")] * 20,
    )
    root, code, rest = await _served_workers_run(tmp_path, client, b"a\n" * 200)
    assert {r.story_id for r in client.approval_requests} == {"US-001", "US-002"}, rest
    log = git(root, "log", "--format=%s")
    assert "Task #US-001" not in log and "Task #US-002" not in log, rest
    assert "supervisor: approve" not in rest
    assert code != 0


@pytest.mark.parametrize(
    "overrides",
    [{}, {"workers": 2}, {"executor": "ray", "workers": 2}],
    ids=["one worker", "two workers", "ray"],
)
def test_every_engine_is_built_with_the_shared_supervisor(
    tmp_path: Path, overrides: dict[str, object]
) -> None:
    """Whatever the engine, the served run's shared supervisor is the one it was built with,
    and so the one a parallel run's approval queue asks (nothing is swapped in afterwards)."""
    from ralph_tui.config import load_config
    from ralph_tui.parallel import ParallelEngine
    from ralph_tui.runs import make_run_factory
    from ralph_tui.server.supervisor import SharedSupervisor

    root = make_repo(tmp_path / "ws")
    script = write_script(root, {"default": [complete()]})
    config = load_config(root, {"listen": "127.0.0.1:0", "script": str(script), **overrides})
    served = make_run_factory(root, config, ask_local=False)(ScriptedSupervisor(), print)
    engine = served.engine
    assert isinstance(engine.supervisor, SharedSupervisor)
    assert served.server is not None and engine.supervisor.hub is served.server.hub
    if isinstance(engine, ParallelEngine):
        assert engine.loop.approvals._supervisor is engine.supervisor
    else:
        assert not overrides
