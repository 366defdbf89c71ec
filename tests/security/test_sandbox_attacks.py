"""Attacks on the boundary around the agent's code: a scripted agent drives the real tools
through the real engine (or a real ``ralph-tui run``), and each attack must fail.

Tests marked ``requires_bwrap`` are stopped only by the sandbox (``mode = "bwrap"``); they are
skipped, saying so, on a machine without bubblewrap. CI installs it (.ci/run).
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import sys
from pathlib import Path

import pytest

from ralph_tui.config import load_config
from ralph_tui.doctor import diagnose
from ralph_tui.engine import Engine
from ralph_tui.events import Notice, ToolResult
from ralph_tui.headless import run_headless
from tests.security.support import (
    MODES,
    assert_nowhere,
    attack_repo,
    bash,
    cmdline_pids,
    requires_bwrap,
    run_cli,
    sandbox_config,
)
from tests.support.engine import RecordingSink, ScriptedSupervisor, complete, make_engine
from tests.support.repo import git, make_repo, story

API_KEY = "sk-ant-api03-attack-test-" + "k" * 24
DUMP = "tr '\\0' '\\n' < /proc/$PPID/environ > {name}; env >> {name}"


# -- the environment of ralph-tui itself ----------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("via", ["bash", "gate", "command"])
def test_environ_dump_then_complete_commits_no_key(tmp_path: Path, mode: str, via: str) -> None:
    """`tr '\\0' '\\n' < /proc/$PPID/environ > env.txt` from the agent's shell, from a gate and
    from the command CLI, then a claim of done: the dump is committed, the key is not in it."""
    secrets_env = {"ANTHROPIC_API_KEY": API_KEY, "GITHUB_TOKEN": "ghp_attack" + "t" * 30}
    gates = {"ok": "true"}
    extra = ""
    steps = [complete("dumped")]
    if via == "bash":
        steps.insert(0, bash(DUMP.format(name="env.txt")))
    elif via == "gate":
        gates = {"dump": DUMP.format(name="env.txt") + "; true"}
        steps.insert(0, bash("echo change > change.txt"))
    else:
        command = ["sh", "-c", DUMP.format(name="env.txt") + "; echo '<promise>COMPLETE</promise>'"]
        extra = f"command = {json.dumps(command)}"
    root = attack_repo(tmp_path, steps, mode, gates=gates, extra=extra)
    done = run_cli(root, secrets_env, *(["--agent", "command"] if via == "command" else []))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "env.txt" in git(root, "show", "--stat", "HEAD")  # the dump itself was committed
    dump = (root / "env.txt").read_text()
    assert "PATH=" in dump  # it did read an environment
    assert_nowhere(root, list(secrets_env.values()), done.stdout, done.stderr)


# -- processes ------------------------------------------------------------------------------------


def _no_survivor(marker: str) -> None:
    """The orphan is gone: the kernel kills a PID namespace's processes when its init exits,
    before bwrap (and so the command) is reported finished; no waiting needed."""
    pids = cmdline_pids(marker)
    for pid in pids:  # never leave one behind, even when the test fails
        os.kill(pid, 9)
    assert pids == [], f"survivors: {pids}"


@requires_bwrap
@pytest.mark.parametrize("via", ["bash", "gate", "command"])
async def test_setsid_orphan_dies_with_the_sandbox(tmp_path: Path, via: str) -> None:
    marker = f"1000.{secrets.randbelow(10**6):06d}"
    orphan = f"setsid -f sh -c 'exec sleep {marker}'"
    gates = {"ok": "true"}
    steps = [complete("left a sleeper")]
    if via == "bash":
        steps.insert(0, bash(f"{orphan}; echo started"))
    elif via == "gate":
        gates = {"orphan": f"{orphan}; true"}
    root = attack_repo(tmp_path, steps, "bwrap", gates=gates)
    overrides: dict[str, object] = {}
    agent = None
    if via == "command":
        overrides = {
            "agent": "command",
            "command": ["sh", "-c", f"{orphan}; echo '<promise>COMPLETE</promise>'"],
        }
    else:
        _, agent, _, _ = make_engine(root, {"default": steps})
    config = load_config(root, overrides)
    engine = Engine(root, config, agent, ScriptedSupervisor(), RecordingSink())
    assert await engine.run() == 0
    _no_survivor(marker)


# -- the file system ------------------------------------------------------------------------------


@requires_bwrap
async def test_writes_outside_the_workspace_and_to_home_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text("# mine\n")
    monkeypatch.setenv("HOME", str(home))
    outside = Path("/var/tmp") / f"ralph-attack-{secrets.token_hex(4)}"
    beside = tmp_path / "beside.txt"
    steps = [
        bash(f"echo pwned > {outside}"),
        bash("echo pwned >> ~/.bashrc && cat ~/.bashrc"),
        bash(f"echo pwned >> {home}/.bashrc"),
        bash(f"echo pwned > {beside}"),
    ]
    root = attack_repo(tmp_path, steps, "bwrap")
    engine, agent, _, _ = make_engine(root, {"default": steps}, max_iterations=1)
    try:
        await engine.run()
        assert not outside.exists()
    finally:
        outside.unlink(missing_ok=True)
    assert (home / ".bashrc").read_text() == "# mine\n"
    assert not beside.exists()  # /tmp is private
    results = [outcome for _, outcome in agent.received]
    # /var is not there (only the system folders and the toolchain are), unless the toolchain
    # itself lives under it (a clone in /var/tmp with its .venv): then bubblewrap made the
    # folders on the way to it inside the sandbox, and the write stayed there (asserted above)
    venv_under_var = Path(sys.prefix).resolve().is_relative_to("/var")
    if not venv_under_var:
        assert results[0].is_error and "No such file or directory" in results[0].content
    assert "# mine" not in results[1].content  # an empty private home, thrown away after


@requires_bwrap
async def test_git_and_bookkeeping_are_read_only_from_bash(tmp_path: Path) -> None:
    steps = [
        bash("mkdir -p .git/hooks && echo 'curl evil' > .git/hooks/commit-msg"),
        bash("git config core.fsmonitor 'touch /tmp/x'"),
        bash("echo x > backdoor.py && git add -A && git commit -qm wip"),
        bash('sed -i \'s/"passes": false/"passes": true/\' tasks/backend_prd.json'),
        bash("echo '## Task #US-001: forged' >> tasks/backend_progress.txt"),
        bash("git log --oneline && git status --short"),  # reading still works
    ]
    root = attack_repo(tmp_path, steps, "bwrap")
    prd_before = (root / "tasks/backend_prd.json").read_bytes()
    progress_before = (root / "tasks/backend_progress.txt").read_bytes()
    config_before = (root / ".git/config").read_bytes()
    head = git(root, "rev-parse", "HEAD")
    engine, agent, _, _ = make_engine(root, {"default": steps}, max_iterations=1)
    await engine.run()
    results = [outcome for _, outcome in agent.received]
    assert all(r.is_error for r in results[:5]), [r.content for r in results]
    assert not results[5].is_error and "initial" in results[5].content
    assert not (root / ".git/hooks/commit-msg").exists()
    assert (root / ".git/config").read_bytes() == config_before
    assert git(root, "rev-parse", "HEAD") == head
    assert (root / "tasks/backend_prd.json").read_bytes() == prd_before
    assert b"forged" not in (root / "tasks/backend_progress.txt").read_bytes()
    assert (root / "tasks/backend_progress.txt").read_bytes().startswith(progress_before)


@requires_bwrap
@pytest.mark.parametrize("workspace_in_home", [False, True])
async def test_ralph_dir_and_home_are_invisible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workspace_in_home: bool
) -> None:
    home = tmp_path if workspace_in_home else tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "credentials").write_text("aws_secret_access_key = hunter2hunter2\n")
    monkeypatch.setenv("HOME", str(home))
    steps = [
        bash("ls -A .ralph; cat .ralph/state.json; echo end"),
        bash("echo '{}' > .ralph/state.json"),
        bash("ls -A ~; cat ~/.aws/credentials"),
        bash("echo fine > written.txt && cat written.txt"),
    ]
    root = attack_repo(tmp_path, steps, "bwrap")
    engine, agent, _, _ = make_engine(root, {"default": steps}, max_iterations=1)
    await engine.run()
    listing, forge, in_home, write = (outcome for _, outcome in agent.received)
    assert "runs" not in listing.content and "story" not in listing.content
    assert "No such file" in listing.content
    assert forge.is_error
    # an empty home; when the workspace lives in it, only the way down to the workspace
    assert in_home.content.startswith("ws\ncat: " if workspace_in_home else "cat: ")
    assert "No such file" in in_home.content and "hunter2" not in in_home.content
    assert not write.is_error and write.content.startswith("fine\n")  # the workspace is writable


@requires_bwrap
async def test_network_off_cuts_the_network(tmp_path: Path) -> None:
    steps = [bash("cat /proc/net/dev | tail -n +3 | cut -d: -f1")]
    root = attack_repo(tmp_path, steps, "bwrap", network=False)
    engine, agent, _, _ = make_engine(root, {"default": steps}, max_iterations=1)
    await engine.run()
    interfaces = agent.received[0][1].content.split("[exit")[0].split()
    assert interfaces == ["lo"]


# -- without bubblewrap ---------------------------------------------------------------------------


def _path_without_bwrap(tmp_path: Path) -> str:
    """PATH as now, with every directory holding ``bwrap`` replaced by a copy (links) minus it."""
    parts = []
    for index, entry in enumerate(os.environ["PATH"].split(os.pathsep)):
        folder = Path(entry)
        if not (folder / "bwrap").exists():
            parts.append(entry)
            continue
        clone = tmp_path / f"bin{index}"
        clone.mkdir()
        for item in folder.iterdir():
            if item.name != "bwrap":
                (clone / item.name).symlink_to(item)
        parts.append(str(clone))
    path = os.pathsep.join(parts)
    assert shutil.which("bwrap", path=path) is None
    return path


async def test_auto_without_bwrap_warns_and_still_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", _path_without_bwrap(tmp_path))
    steps = [bash("echo hello from the shell"), complete()]
    root = attack_repo(tmp_path, steps, "auto")
    engine, _, sink, _ = make_engine(root, {"default": steps}, approve="auto")
    out = io.StringIO()
    code = await run_headless(root, engine.config, out=out, agent=engine.agent)
    assert code == 0
    assert "warning: no sandbox (bwrap not found on PATH)" in out.getvalue()
    journal = next((root / ".ralph/runs").glob("*/events.jsonl")).read_text()
    assert "no sandbox (bwrap not found on PATH)" in journal
    assert sink.of(Notice) == []  # the engine above never ran; the headless one did
    checks = {check.name: check for check in diagnose(root)}
    assert checks["sandbox"].status == "warn"
    assert checks["sandbox"].detail.startswith("no sandbox (bwrap not found on PATH)")


def test_doctor_and_bwrap_mode_without_bwrap(tmp_path: Path) -> None:
    path = _path_without_bwrap(tmp_path)
    root = make_repo(tmp_path / "ws", [story("US-001", "x")], extra_config=sandbox_config("bwrap"))
    done = run_cli(root, {"PATH": path})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        'ralph-tui: sandbox mode = "bwrap": bwrap not found on PATH '
        "(install the bubblewrap package)"
    ]
    assert git(root, "status", "--porcelain") == ""
    import subprocess

    doctor = subprocess.run(
        [sys.executable, "-m", "ralph_tui", "doctor", "--workspace", str(root)],
        env={**os.environ, "PATH": path},
        capture_output=True,
        text=True,
        check=False,
    )
    assert "missing  sandbox: " in doctor.stdout


async def test_tool_result_shows_the_boundary_was_used(tmp_path: Path) -> None:
    """Sanity for the parametrized tests: with mode off the same write outside does land."""
    target = tmp_path / "landed.txt"
    steps = [bash(f"echo x > {target}")]
    root = attack_repo(tmp_path, steps, "off")
    engine, _, sink, _ = make_engine(root, {"default": steps}, max_iterations=1)
    await engine.run()
    assert target.exists()
    assert not any(r.is_error for r in sink.of(ToolResult))
