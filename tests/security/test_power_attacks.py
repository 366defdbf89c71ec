"""A sandbox with no power, whoever runs it (issue 28 item 1, issue 20 items 1 and 6).

A scripted agent goes for the sandbox itself through a real ``ralph-tui run --headless``: it
unmounts and remounts, reads the user's ``~/.ssh``, writes a host sysctl, forks and allocates
without end, fills its private ``/tmp``, ptraces and reads the engine's memory, and reads or
writes the supervisor's ``.ralph/`` (the main checkout's, from a worker: ``../../``) and another
run's ``serve.json``. As root (as in containers and CI) and as a normal user, with one worker and
with two, from a repository outside ``/tmp`` as a user's would be. Each attack writes what it saw
into a log in the workspace, which the run commits; the test reads the logs and the host.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ralph_tui.safety import seccomp
from tests.security.support import bash, requires_bwrap, run_as, run_cli, sandbox_config
from tests.support.engine import complete
from tests.support.repo import git, make_repo, story

pytestmark = requires_bwrap

ATTACK_USER = "ralph-attack"
FAKE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nfake-attack-key-" + "q" * 24
SYSCTL = Path("/proc/sys/kernel/printk_ratelimit")
LIMITS = {"max_processes": 128, "memory_mb": 256, "tmp_mb": 16}
FORKS = 600  # more than max_processes, few enough not to hurt the machine if unbounded
EPERM = 1
ENOSYS = 38


@pytest.fixture(scope="session")
def attack_user() -> str:
    """A normal user to run ralph-tui as; created once if missing (we are root in CI)."""
    if os.geteuid() != 0:
        pytest.skip("creating the normal user needs root")
    try:
        pwd.getpwnam(ATTACK_USER)
    except KeyError:
        made = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/bin/sh", ATTACK_USER],
            capture_output=True,
            text=True,
            check=False,
        )
        if made.returncode != 0:
            pytest.skip(f"cannot create a normal user: {made.stderr.strip()}")
    return ATTACK_USER


def _steps(main: Path, home: Path, other_run: Path, pwned: Path) -> list[dict[str, Any]]:
    log = 'attack-$(basename "$PWD").log'
    ralph = main / ".ralph"
    sysctl_value = int(SYSCTL.read_text()) + 1
    fork_bomb = (
        "import os, time\n"
        "children = []\n"
        "try:\n"
        f"    while len(children) < {FORKS}:\n"
        "        pid = os.fork()\n"
        "        if pid == 0:\n"
        "            time.sleep(20)\n"
        "            os._exit(0)\n"
        "        children.append(pid)\n"
        "except OSError as exc:\n"
        "    print('fork refused after', len(children), exc.errno)\n"
        "print('forked', len(children))\n"
        "for pid in children:\n"
        "    os.kill(pid, 9)\n"
        "    os.waitpid(pid, 0)\n"
    )
    ptrace = (
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "pid = int(os.environ['PYTHON_ATTACK_ENGINE_PID'])\n"
        "buf = ctypes.create_string_buffer(64)\n"
        "iov = (ctypes.c_void_p * 2)(ctypes.cast(buf, ctypes.c_void_p), 64)\n"
        "for name, nr, args in (\n"
        "    ('ptrace', 101, (16, pid, 0, 0)),\n"
        "    ('process_vm_readv', 310, (pid, iov, 1, iov, 1, 0)),\n"
        "):\n"
        "    ctypes.set_errno(0)\n"
        "    print(name, libc.syscall(nr, *args), ctypes.get_errno())\n"
    )
    return [
        bash(
            f"{{ umount -l /tmp; echo umount=$?; mount -o remount,bind,rw /; echo remount=$?;"
            f" touch {pwned}; echo touch=$?; }} >> {log} 2>&1; true"
        ),
        bash(f"{{ cat ~/.ssh/id_rsa {home}/.ssh/id_rsa; ls -A ~; }} >> {log} 2>&1; true"),
        bash(f"{{ echo {sysctl_value} > {SYSCTL}; echo sysctl=$?; }} >> {log} 2>&1; true"),
        bash(f"{{ python3 -c {_quote(fork_bomb)}; }} >> {log} 2>&1; true"),
        bash(
            f"{{ python3 -c 'bytearray(1024 * 1024 * 1024); print(\"allocated\")';"
            f" echo memory=$?; }} >> {log} 2>&1; true"
        ),
        bash(
            f"{{ head -c 64M /dev/zero > /tmp/fill; echo tmpfill=$?;"
            f" head -c 64M /dev/zero > ~/fill; echo homefill=$?; rm -f /tmp/fill ~/fill; }}"
            f" >> {log} 2>&1; true"
        ),
        bash(f"{{ python3 -c {_quote(ptrace)}; }} >> {log} 2>&1; true"),
        bash(
            f"{{ cat {other_run}/.ralph/serve.json; ls -A {other_run};"
            f" cat ../../serve.json ../../planted.txt {ralph}/planted.txt; ls -A {ralph};"
            f" ls -A {ralph}/worktrees; echo forged >> {ralph}/planted.txt;"
            f" echo forged > ../../forged.txt; echo forged > {ralph}/forged.txt;"
            f" echo end; }} >> {log} 2>&1; true"
        ),
        _editor("view", ralph / "planted.txt"),
        _editor("view", Path("../../planted.txt")),
        _editor("view", ralph),
        _editor("create", ralph / "forged-by-editor.txt", file_text="forged"),
        _editor("create", Path("../../forged-by-editor.txt"), file_text="forged"),
        complete("attacked"),
    ]


def _editor(command: str, path: Path, **extra: str) -> dict[str, Any]:
    return {
        "tool": "str_replace_based_edit_tool",
        "input": {"command": command, "path": str(path), **extra},
    }


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("who", ["root", "user"])
def test_the_sandbox_has_no_power(
    outside_tmp: Path, request: pytest.FixtureRequest, who: str, workers: int
) -> None:
    user = request.getfixturevalue("attack_user") if who == "user" else None
    if who == "root" and os.geteuid() != 0:
        pytest.skip("runs as root only when the suite does")
    home = outside_tmp / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text(FAKE_KEY)
    other_run = outside_tmp / "project-a"
    (other_run / ".ralph").mkdir(parents=True)
    other_token = "other-run-token-" + secrets.token_hex(8)
    (other_run / ".ralph" / "serve.json").write_text(
        json.dumps({"url": "http://127.0.0.1:1", "token": other_token})
    )
    root = outside_tmp / "ws"
    script = outside_tmp / "script.json"
    pwned = Path("/usr") / f"ralph-pwned-{secrets.token_hex(4)}"
    script.write_text(json.dumps({"default": _steps(root, home, other_run, pwned)}))
    stories = [story(f"US-00{i}", f"Story {i}") for i in range(1, workers + 1)]
    config = [f"script = {json.dumps(str(script))}", sandbox_config("bwrap", **LIMITS)]
    make_repo(root, stories, extra_config="\n".join(config))
    planted = "planted-journal-" + secrets.token_hex(8)
    (root / ".ralph").mkdir()
    (root / ".ralph" / "planted.txt").write_text(planted)
    if user is not None:
        subprocess.run(["chown", "-R", f"{user}:", str(outside_tmp)], check=True)
    before = SYSCTL.read_text()
    try:
        done = run_as(user, root, home, "--workers", str(workers), "--listen", "127.0.0.1:0")
    finally:
        after = SYSCTL.read_text()
        if after != before and os.geteuid() == 0:
            SYSCTL.write_text(before)  # never leave the host changed, even when the test fails
        written = pwned.exists()
        pwned.unlink(missing_ok=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert after == before, "a host sysctl was written"
    assert not written, f"{pwned} was written"
    logs = sorted(root.glob("attack-*.log"))
    assert len(logs) == workers, (sorted(p.name for p in root.iterdir()), done.stdout)
    racing = who == "user" and workers == 2
    for log in logs:
        text = log.read_text()

        def refused(step: str, evidence: bool, text: str = text, racing: bool = racing) -> bool:
            """The step's own sign that it was refused. With two workers as one user, the
            other worker's fork bomb may hold that user's process cap just when a step
            starts, so the step may not have run at all (no ``step`` line in its log; seen
            once in a whole-suite run under load): the attack still did not succeed, which
            the negative checks say."""
            return evidence or (racing and step not in text)

        assert "umount=0" not in text and "remount=0" not in text and "touch=0" not in text
        assert "fake-attack-key" not in text
        assert "sysctl=0" not in text
        # as a user RLIMIT_NPROC stops it; as root (exempt from it) the pids cgroup does
        assert f"forked {FORKS}" not in text, text
        assert refused("forked", "fork refused" in text), text
        assert "allocated" not in text, text  # the memory cap held
        memory_error = "MemoryError" in text or "Resource temporarily unavailable" in text
        assert refused("memory=", memory_error), text
        assert "tmpfill=0" not in text and "homefill=0" not in text, text
        assert refused("tmpfill=", "tmpfill=1" in text and "homefill=1" in text), text
        assert "ptrace 0 " not in text and "process_vm_readv 64 " not in text, text
        traced = f"ptrace -1 {EPERM}" in text and f"process_vm_readv -1 {EPERM}" in text
        assert refused("ptrace", traced), text
        assert other_token not in text and planted not in text
        assert '"token":' not in text  # this run's own serve.json (--listen) was not read
        # the main .ralph/ lists only the way down to the worker's own worktree
        lines = text.splitlines()
        assert "planted.txt" not in lines and "serve.json" not in lines
        others = {f"US-00{i}" for i in range(1, workers + 1)} - {log.stem.split("-", 1)[1]}
        assert not others & set(lines), text
    # nothing of the supervisor's was read (the transcripts hold every tool result) or written
    for path in (root / ".ralph").rglob("*"):
        if path.is_file() and path.name != "planted.txt":
            data = path.read_text(errors="replace")
            assert planted not in data and other_token not in data, path
            assert "fake-attack-key" not in data and '"token":' not in data, path
    assert (root / ".ralph" / "planted.txt").read_text() == planted
    assert not list((root / ".ralph").glob("forged*"))
    assert not (other_run / ".ralph" / "forged.txt").exists()
    history = git(root, "-c", "safe.directory=*", "log", "-p", "--all")  # the user's repo
    assert planted not in history and other_token not in history and "fake-attack" not in history


def test_the_seccomp_filter_refuses_each_listed_call() -> None:
    """The filter loaded on its own (no namespaces, all capabilities): each listed call fails
    with EPERM; without it a harmless sample of them fails otherwise (or works)."""
    program = seccomp.program()
    if program is None:
        pytest.skip(f"no syscall table for {seccomp.machine()}")
    numbers = {name: seccomp.number(name) for name in seccomp.DENIED}
    clone_nr, clone3_nr = {"x86_64": (56, 435), "aarch64": (220, 435)}[seccomp.machine()]
    probe = (
        "import ctypes, json, sys\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "program = bytes.fromhex(sys.argv[1])\n"
        "if program:\n"
        "    class Prog(ctypes.Structure):\n"
        "        _fields_ = [('len', ctypes.c_ushort), ('filter', ctypes.c_char_p)]\n"
        "    prog = Prog(len(program) // 8, program)\n"
        "    assert libc.prctl(38, 1, 0, 0, 0) == 0\n"  # PR_SET_NO_NEW_PRIVS
        "    assert libc.prctl(22, 2, ctypes.byref(prog), 0, 0) == 0\n"  # PR_SET_SECCOMP
        "result = {}\n"
        "for name, nr in json.loads(sys.argv[2]).items():\n"
        "    ctypes.set_errno(0)\n"
        "    ret = libc.syscall(nr, -1, 0, 0, 0, 0, 0)\n"
        "    result[name] = 0 if ret == 0 else ctypes.get_errno()\n"
        "ctypes.set_errno(0)\n"
        "result['getppid'] = libc.syscall(110) > 0\n"
        "ctypes.set_errno(0)\n"
        "ret = libc.unshare(0x10000000)\n"  # CLONE_NEWUSER, through unshare's own number
        "result['clone_newuser'] = 0 if ret == 0 else ctypes.get_errno()\n"
        # clone(CLONE_NEWUSER | SIGCHLD) by number: fork-like, so a child that got through exits
        "import os\n"
        "ctypes.set_errno(0)\n"
        f"ret = libc.syscall({clone_nr}, 0x10000000 | 17, 0, 0, 0, 0)\n"
        "if ret == 0:\n"
        "    os._exit(0)\n"
        "if ret > 0:\n"
        "    os.waitpid(ret, 0)\n"
        "result['clone_flag'] = 0 if ret >= 0 else ctypes.get_errno()\n"
        "ctypes.set_errno(0)\n"
        f"ret = libc.syscall({clone3_nr}, 0, 0)\n"
        "result['clone3'] = ctypes.get_errno()\n"
        "print(json.dumps(result))\n"
    )

    def run(filter_hex: str, calls: dict[str, int | None]) -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-c", probe, filter_hex, json.dumps(calls)],
            capture_output=True,
            text=True,
            check=True,
        )
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    filtered = run(program.hex(), numbers)
    assert filtered.pop("getppid") is True  # everything else still works
    expected = {"clone_newuser": EPERM, "clone_flag": EPERM, "clone3": ENOSYS}
    assert filtered == {**dict.fromkeys(numbers, EPERM), **expected}
    # harmless with -1 as first argument: none of them fails with EPERM unfiltered as root
    harmless = ["keyctl", "add_key", "bpf", "userfaultfd", "setns", "kcmp", "pidfd_getfd"]
    plain = run("", {name: numbers[name] for name in harmless})
    for name in ("getppid", "clone_newuser", "clone_flag", "clone3"):
        plain.pop(name)
    if os.geteuid() == 0:
        assert all(errno != EPERM for errno in plain.values()), plain


def test_workers_work_in_a_repository_under_tmp(tmp_path: Path) -> None:
    """Issue 20 item 6: the sandbox's private /tmp hid the main repository a worktree's ``.git``
    file points to, so git failed inside every worker's sandbox when the workspace was under
    /tmp; the worktree's git folders are now bound in read-only wherever they are."""
    assert Path("/tmp").resolve() in tmp_path.resolve().parents
    steps = [
        bash(
            'out=git-$(basename "$PWD").txt; git rev-parse --is-inside-work-tree > $out 2>&1;'
            " git log -1 --format=%s >> $out 2>&1; git status --short >> $out 2>&1; true"
        ),
        complete("looked"),
    ]
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"default": steps}))
    stories = [story("US-001", "One"), story("US-002", "Two")]
    config = [f"script = {json.dumps(str(script))}", sandbox_config("bwrap")]
    root = make_repo(tmp_path / "ws", stories, extra_config="\n".join(config))
    done = run_cli(root, {}, "--workers", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    for story_id in ("US-001", "US-002"):
        seen = (root / f"git-{story_id}.txt").read_text()
        assert seen.splitlines()[0] == "true" and "fatal" not in seen, seen
