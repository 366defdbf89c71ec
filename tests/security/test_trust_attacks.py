"""What the engine trusts (issue 28 items 2, 3 and 6): a hostile scripted agent through a real
``ralph-tui run --headless`` from a repository outside ``/tmp``.

- A nested repository whose own ``.git/config`` names an fsmonitor and a filter: the engine's
  git never steps into it (so never runs them), the change never carries it as a gitlink, and
  the agent is told why (single worker and parallel, sandbox on and off).
- The engine's memory: the agent's bash reads ``/proc/<engine pid>/mem`` and ``environ`` of
  every ancestor, looking for the withheld key (as a normal user; root outside a sandbox keeps
  ``CAP_SYS_PTRACE``, so there only the sandbox protects).
- Tokens never on a command line; redaction of encoded forms of a secret.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ralph_tui.safety.credentials import Redactor
from tests.security.support import MODES, bash, run_as, run_cli, sandbox_config
from tests.support.engine import complete, create
from tests.support.repo import git, make_repo, story
from tests.support.tools import requires_bwrap

API_KEY = "sk-ant-api03-trust-attack-" + "k7" * 16


def _repo(base: Path, steps: list[dict[str, object]], mode: str, stories: int = 2) -> Path:
    script = base / "script.json"
    script.write_text(json.dumps({"default": steps}), encoding="utf-8")
    extra = f"script = {json.dumps(str(script))}\n{sandbox_config(mode)}"
    return make_repo(
        base / "ws",
        [story(f"US-00{n}", f"Thing {n}", priority=n) for n in range(1, stories + 1)],
        gates={"ok": "true"},
        extra_config=extra,
    )


# -- item 2: a nested repository ---------------------------------------------------------------


def _nested_repo_steps(pwned: Path) -> list[dict[str, object]]:
    """Make ``sub/`` a repository whose config runs a program for the next git that looks in,
    leave its file dirty (so a status in there would run the clean filter), and claim done."""
    hook = f'#!/bin/sh\necho "$0 $*" > "{pwned}/ran-$$"\ncat\n'
    make = (
        "set -e; if [ ! -d sub/.git ]; then mkdir -p sub && cd sub && git init -q && "
        f"printf '%s' {json.dumps(hook)} > hook.sh && chmod +x hook.sh && "
        'git config core.fsmonitor "$PWD/hook.sh" && '
        'git config filter.evil.clean "$PWD/hook.sh" && git config filter.evil.required true && '
        "echo '* filter=evil' > .gitattributes && echo one > f && "
        "git add -A && git -c user.email=a@b -c user.name=a commit -qm sub && cd ..; fi; "
        "echo changed-$RANDOM >> sub/f; echo done"
    )
    return [bash(make), bash("echo work > work-$RANDOM.txt"), complete("made sub/")]


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("mode", MODES)
def test_a_nested_repository_never_runs_and_never_lands(
    outside_tmp: Path, mode: str, workers: int
) -> None:
    pwned = outside_tmp / "pwned"
    pwned.mkdir(mode=0o777)
    root = _repo(outside_tmp, _nested_repo_steps(pwned), mode)
    done = run_cli(root, {"ANTHROPIC_API_KEY": API_KEY}, "--workers", str(workers), timeout=180)
    output = done.stdout + done.stderr
    assert not list(pwned.iterdir()), f"the nested repo's program ran: {output}"
    tree = git(root, "log", "--all", "--format=", "--raw", "--no-abbrev")
    assert " 160000 " not in tree, "a gitlink was committed"
    assert "nested git repository in the change: sub/" in output


# -- item 6: the engine's memory -----------------------------------------------------------------

# Every ancestor of the agent's shell (the engine among them): environ, then every readable
# mapping of its memory, searched for the key; what was found goes to a file the run commits.
READ_ANCESTORS = r"""
import os, sys
key = sys.argv[1].encode()
found, tried = [], []
ancestors, pid = [], os.getppid()
while pid > 1:
    ancestors.append(pid)
    pid = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
engine = int(os.environ.get("PYTHON_ATTACK_ENGINE_PID", "0"))
for pid in ancestors + [engine] * (engine > 1):
    for what in ("environ", "mem"):
        try:
            if what == "environ":
                data = open(f"/proc/{pid}/environ", "rb").read()
                tried.append(f"{pid}:environ:ok")
                if key in data:
                    found.append(f"{pid}:environ")
                continue
            with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
                tried.append(f"{pid}:mem:ok")
                for line in maps:
                    span, perms = line.split()[:2]
                    if not perms.startswith("r"):
                        continue
                    lo, hi = (int(x, 16) for x in span.split("-"))
                    try:
                        mem.seek(lo)
                        if key in mem.read(hi - lo):
                            found.append(f"{pid}:mem")
                            break
                    except (OSError, OverflowError, ValueError):
                        continue
        except OSError as exc:
            tried.append(f"{pid}:{what}:{exc.errno}")
with open("memory-attack.txt", "w") as out:
    out.write(f"engine {engine}\ntried {' '.join(tried)}\nfound{''.join(' ' + f for f in found)}\n")
"""


MEMORY_CASES = [
    # root outside a sandbox keeps CAP_SYS_PTRACE: there only the sandbox protects, so the
    # case is not claimed (and not run) rather than skipped
    pytest.param("bwrap", "root", marks=requires_bwrap),
    pytest.param("bwrap", "user", marks=requires_bwrap),
    pytest.param("off", "user"),
]


@pytest.mark.parametrize(("mode", "who"), MEMORY_CASES)
def test_the_agent_cannot_read_the_engines_memory(
    outside_tmp: Path, request: pytest.FixtureRequest, mode: str, who: str
) -> None:
    user = request.getfixturevalue("attack_user") if who == "user" else None
    if user is None and os.geteuid() != 0:
        pytest.skip("runs as root only when the suite does")
    # the agent knows the key only reversed, so the transcript the engine keeps never holds it
    steps = [
        create("attack.py", READ_ANCESTORS),
        bash(f'K=$(echo {API_KEY[::-1]} | rev); python3 attack.py "$K"'),
        complete("looked around"),
    ]
    root = _repo(outside_tmp, steps, mode, stories=1)
    home = outside_tmp / "home"
    home.mkdir()
    if user is not None:
        subprocess.run(["chown", "-R", f"{user}:", str(outside_tmp)], check=True)
    done = run_as(user, root, home, extra_env={"ANTHROPIC_API_KEY": API_KEY})
    report = root / "memory-attack.txt"
    assert report.exists(), done.stdout + done.stderr
    text = report.read_text()
    assert text.splitlines()[-1] == "found", text
    engine = int(text.split()[1])
    assert engine > 1 and f"{engine}:mem:" in text  # it did try the engine's memory


@pytest.fixture(scope="session")
def attack_user() -> str:
    from tests.security.test_power_attacks import attack_user as make_user

    return make_user.__wrapped__()  # type: ignore[attr-defined,no-any-return]


# -- item 6: tokens and redaction ------------------------------------------------------------


@pytest.mark.parametrize("command", ["attach", "web"])
def test_a_token_on_the_command_line_is_refused(tmp_path: Path, command: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ralph_tui", command, "http://127.0.0.1:9", "--token", "t" * 40],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "--token: a token on the command line is visible" in done.stderr
    assert "--token-file" in done.stderr


@pytest.mark.parametrize(
    ("content", "error"),
    [(None, "cannot read"), ("", "the file is empty"), ("x" * 5000, "larger than 4096 bytes")],
)
def test_a_bad_token_file_is_one_line_naming_it(
    tmp_path: Path, content: str | None, error: str
) -> None:
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content)
    done = subprocess.run(
        [sys.executable, "-m", "ralph_tui", "attach", "http://127.0.0.1:9", "--token-file", path],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert f"--token-file {path}: {error}" in done.stderr


def test_encoded_forms_of_a_secret_are_redacted() -> None:
    secret = "ghp_attack_0123456789abcdefghij"
    redact = Redactor(env={"GITHUB_TOKEN": secret})
    raw = secret.encode()
    leaks = [
        base64.b64encode(raw).decode(),
        *(base64.b64encode(b"x" * pad + raw + b"\n").decode() for pad in range(3)),
        base64.urlsafe_b64encode(b"?" + raw).decode(),
        raw.hex(),
        raw.hex().upper(),
        secret[::-1],
        "\u200b".join(secret),
        secret[:5] + "\u2060\u00ad" + secret[5:],
    ]
    for leak in leaks:
        out = redact(f"before {leak} after")
        assert Redactor.MARKER in out, leak
        for n in range(0, len(secret) - 12, 4):  # no long run of the secret survives
            assert secret[n : n + 12] not in out.replace("\u200b", "").replace("\u2060", "")
