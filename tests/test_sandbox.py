"""The sandbox adapter on its own: what it decides, and the commands it builds."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ralph_tui.config import SandboxOptions
from ralph_tui.doctor import diagnose
from ralph_tui.errors import UsageError
from ralph_tui.safety import credentials
from ralph_tui.safety.procgroup import LineSplitter
from ralph_tui.safety.sandbox import Sandbox, resolve_sandbox
from tests.support.repo import make_repo, story
from tests.support.tools import requires_bwrap


def _fake_bwrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``bwrap`` on PATH that fails the way it does where user namespaces are off."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return fake


def test_a_bwrap_that_does_not_work_is_a_warning_in_auto_and_an_error_in_bwrap_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _fake_bwrap(tmp_path, monkeypatch)
    auto = resolve_sandbox(SandboxOptions(), tmp_path, platform="linux")
    assert not auto.confined
    assert auto.warning is not None
    assert auto.warning.startswith(
        f"no sandbox ({fake} does not work: bwrap: No permissions to create new namespace)"
    )
    with pytest.raises(UsageError) as caught:
        resolve_sandbox(SandboxOptions(mode="bwrap"), tmp_path, platform="linux")
    assert str(caught.value) == (
        f'sandbox mode = "bwrap": {fake} does not work: '
        "bwrap: No permissions to create new namespace"
    )
    assert caught.value.exit_code == 2


def test_off_is_quiet_and_keeps_pass_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://u:pw-0123456789@h/db")
    credentials.withhold()
    sandbox = resolve_sandbox(SandboxOptions(mode="off", pass_env=["DATABASE_URL"]), tmp_path)
    assert sandbox.warning is None and not sandbox.confined
    assert sandbox.wrap(["true"]) == ["true"]
    env = sandbox.env()
    assert env["DATABASE_URL"] == "postgres://u:pw-0123456789@h/db"
    assert "DATABASE_URL" not in Sandbox.unconfined(tmp_path).env()


def test_bwrap_arguments(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    (root / ".git").mkdir(parents=True)
    (root / ".ralph").mkdir()
    prd = root / "tasks" / "backend_prd.json"
    prd.parent.mkdir()
    prd.write_text("{}")
    sandbox = Sandbox(
        "bwrap",
        root,
        read_only=(prd, root / "tasks" / "missing.txt"),
        hidden=(root / ".ralph",),
        network=False,
        program="/usr/bin/bwrap",
    )
    argv = sandbox.wrap(["bash", "-c", "true"], visible=(tmp_path / "prompt.md",))
    joined = " ".join(argv)
    # a launcher (limits, the seccomp program's fd) starts bwrap
    assert argv[:2] == ["/bin/sh", "-c"] and argv[-4:] == ["--", "bash", "-c", "true"]
    assert "/usr/bin/bwrap" in argv
    for flag in ("--die-with-parent", "--new-session", "--unshare-pid", "--unshare-net"):
        assert flag in argv
    for flag in ("--unshare-user", "--disable-userns", "--cap-drop ALL", "--proc /proc"):
        assert flag in joined
    assert "--ro-bind / /" not in joined  # only the system folders and the toolchain
    assert "--ro-bind /proc/sys /proc/sys" in joined
    # root's uid reads root-only files even without capabilities: the well-known ones masked
    if Path("/etc/shadow").is_file():
        assert "--ro-bind /dev/null /etc/shadow" in joined
    if Path("/etc/ssl/private").is_dir():
        assert "--tmpfs /etc/ssl/private --remount-ro /etc/ssl/private" in joined
    assert f"--bind {root} {root}" in joined
    # later mounts win: .git and the PRD come after the workspace, read-only
    assert joined.index(f"--ro-bind {root / '.git'}") > joined.index(f"--bind {root} ")
    assert f"--ro-bind {prd} {prd}" in joined and "missing.txt" not in joined
    assert f"--tmpfs {root / '.ralph'} --remount-ro {root / '.ralph'}" in joined
    assert f"--ro-bind-try {tmp_path / 'prompt.md'}" in joined
    assert "--unshare-net" not in Sandbox("bwrap", root, program="bwrap").wrap(["true"])


def test_sandbox_exec_profile_has_the_same_rules(tmp_path: Path) -> None:
    """macOS cannot run here; the profile text at least carries every rule (untested on macOS)."""
    root = tmp_path / "ws"
    prd = root / "tasks" / "backend_prd.json"
    sandbox = Sandbox(
        "sandbox-exec",
        root,
        read_only=(prd,),
        hidden=(root / ".ralph",),
        network=False,
        program="/usr/bin/sandbox-exec",
        private_dir=tmp_path / "private",
    )
    argv = sandbox.wrap(["true"])
    assert argv[:2] == ["/usr/bin/sandbox-exec", "-p"] and argv[-2:] == ["--", "true"]
    profile = argv[2]
    assert "(deny file-write*)" in profile
    assert f'(allow file-write* (subpath "{root}")' in profile
    assert f'(deny file-write* (subpath "{root / ".git"}"))' in profile
    assert f'(deny file-write* (literal "{prd}"))' in profile
    assert f'(deny file-read* file-write* (subpath "{root / ".ralph"}"))' in profile
    assert "(deny network*)" in profile
    env = sandbox.env()
    assert env["HOME"] == str(tmp_path / "private" / "home")


def test_sandboxed_environment_is_an_allow_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RALPH_RANDOM_VARIABLE", "x")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    monkeypatch.setenv("VIRTUAL_ENV", sys.prefix)
    monkeypatch.setenv("TMPDIR", "/var/somewhere")
    env = Sandbox("bwrap", tmp_path, program="bwrap", pass_env=("RALPH_RANDOM_VARIABLE",)).env()
    assert env["LC_ALL"] == "C.UTF-8" and env["VIRTUAL_ENV"] == sys.prefix
    assert env["TMPDIR"] == "/tmp"  # the private one
    assert env["RALPH_RANDOM_VARIABLE"] == "x"  # only because it is passed
    assert "RALPH_RANDOM_VARIABLE" not in Sandbox("bwrap", tmp_path, program="bwrap").env()


def test_line_splitter_streams_lines_across_chunks() -> None:
    lines = LineSplitter(max_line=8)
    assert lines.feed(b"h\xc3") == ("h", [])  # half a character waits for its other half
    assert lines.feed(b"\xa9llo\nwor") == ("\u00e9llo\nwor", ["h\u00e9llo\n"])
    assert lines.feed(b"ld and more") == ("ld and more", ["world an"])
    assert lines.feed(b"\xff", final=True) == ("\ufffd", [])
    assert lines.flush() == "d more\ufffd"
    assert lines.flush() == ""


@requires_bwrap
def test_a_virtualenv_under_tmp_stays_usable_inside_the_private_tmp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CI clones the project under /tmp: its .venv (the gates' python) must survive the
    sandbox's private /tmp, read-only, while the rest of the host's /tmp stays hidden."""
    assert Path("/tmp").resolve() in tmp_path.resolve().parents  # pytest's tmp is under /tmp
    venv = tmp_path / "checkout" / ".venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text(f"home = {Path(sys.base_prefix) / 'bin'}\n")
    tool = venv / "bin" / "tool"
    tool.write_text("#!/bin/sh\necho toolchain ok\n")
    tool.chmod(0o755)
    secret = tmp_path / "host-tmp-file.txt"
    secret.write_text("not for the agent\n")
    monkeypatch.setenv("VIRTUAL_ENV", str(venv))
    root = tmp_path / "ws"
    root.mkdir()
    sandbox = resolve_sandbox(SandboxOptions(mode="bwrap"), root, platform="linux")
    script = f"{tool}; cat {secret} || echo hidden; touch {venv}/x || echo read-only"
    done = subprocess.run(
        sandbox.wrap(["sh", "-c", script]), env=sandbox.env(), capture_output=True, text=True
    )
    assert done.stdout.splitlines() == ["toolchain ok", "hidden", "read-only"], done.stderr


@requires_bwrap
def test_doctor_reports_the_sandbox_strength_and_what_the_machine_cannot_give(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real bwrap: a user namespace, no capabilities, the seccomp filter, the limits. A
    bwrap that cannot make a user namespace (a container without them): ``auto`` still runs
    sandboxed but says what is missing, and ``doctor`` shows it as a warning."""
    root = make_repo(
        tmp_path / "ws", [story("US-001", "x")], extra_config='sandbox = { mode = "auto" }'
    )
    strong = {check.name: check for check in diagnose(root)}["sandbox"]
    assert "user namespace, no capabilities, seccomp filter, limits: 1024 processes" in (
        strong.detail
    )
    real = shutil.which("bwrap")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "bwrap"
    fake.write_text(
        '#!/bin/sh\nfor a in "$@"; do if [ "$a" = --unshare-user ]; then\n'
        "  echo 'bwrap: No permissions to create new namespace' >&2; exit 1; fi; done\n"
        f'exec {real} "$@"\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    weak = resolve_sandbox(SandboxOptions(), root, platform="linux")
    assert weak.confined and not weak.user_namespace
    assert "--unshare-user" not in weak.wrap(["true"])
    assert weak.warning is not None and weak.warning.startswith(
        "sandbox weaker than it should be: no user namespace (bwrap: No permissions"
    )
    check = {check.name: check for check in diagnose(root)}["sandbox"]
    assert check.status == "warn" and "NO user namespace" in check.detail
    done = subprocess.run(weak.wrap(["sh", "-c", "echo ran"]), env=weak.env(), capture_output=True)
    assert done.stdout == b"ran\n", done.stderr  # still sandboxed, still working


def test_a_workers_main_checkout_ralph_dir_is_emptied_even_in_a_visible_folder(
    tmp_path: Path,
) -> None:
    """A main checkout in a folder the sandbox shows (``/usr/src/app``, ``/opt/app`` in
    containers) would show its ``.ralph/`` (serve token, journals, other worktrees) to a
    worker: it gets an empty tmpfs before the worker's own worktree is bound into it."""
    main = tmp_path / "main"
    root = main / ".ralph" / "worktrees" / "US-001"
    root.mkdir(parents=True)
    joined = " ".join(Sandbox("bwrap", root, program="/usr/bin/bwrap").wrap(["true"]))
    emptied = f"--tmpfs {main / '.ralph'} "
    assert emptied in joined
    assert joined.index(emptied) < joined.index(f"--bind {root} {root}")


def test_pids_cgroups_never_clash_with_leftovers_and_dead_runs_ones_are_swept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A killed run leaves its (empty) pids cgroup behind, named after its pid. When the kernel
    gave that pid to a later run, the later run's group had the same name: mkdir failed and its
    commands ran as root without any process cap (a fork bomb forked 600 in a whole-suite run).
    """
    from ralph_tui.safety import sandbox

    if os.geteuid() != 0:
        pytest.skip("pids cgroups are made as root only (a user has RLIMIT_NPROC)")
    first = sandbox._pids_cgroup(64)
    assert first is not None, "no writable pids cgroup on this machine"
    base = first.parent
    dead = subprocess.Popen(["true"])  # a pid that is dead now
    dead.wait()
    leftover = base / f"ralph-sandbox-{dead.pid}-1"
    leftover.mkdir()
    # the name the old scheme gave this process's next group
    monkeypatch.setattr(sandbox, "_CGROUP_NUMBERS", iter(range(1, 10)))
    clash = base / f"ralph-sandbox-{os.getpid()}-1"
    clash.mkdir()
    monkeypatch.setattr(sandbox, "_swept", set())
    try:
        group = sandbox._pids_cgroup(64)
        assert group is not None and group != clash
        assert (group / "pids.max").read_text().strip() == "64"
        assert not leftover.exists()  # its run is gone: swept
        assert clash.exists()  # this process is alive: its groups stay
    finally:
        for path in (leftover, clash):
            if path.exists():
                path.rmdir()
