"""Secrets stay with ralph-tui: not in the agent's shell, and never in what ralph-tui writes or
shows (console, events.jsonl, transcript, progress log, commits), in any form.

A scripted agent drives the real tools through the real engine with the real headless console.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from ralph_tui.agents.claude_code import claude_credentials, claude_sandbox_settings
from ralph_tui.config import load_config
from ralph_tui.errors import UsageError
from ralph_tui.headless import run_headless
from ralph_tui.safety import credentials
from ralph_tui.safety.credentials import Redactor, is_secret
from ralph_tui.safety.sandbox import Sandbox
from tests.security.support import MODES, assert_nowhere, attack_repo, bash
from tests.support.engine import complete, create, make_engine
from tests.support.repo import git

OTHER_NAMES = {
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "OPENAI_KEY": "sk-proj-openai-attack-0123456789abcdef",
    "DATABASE_URL": "postgres://app:s3cr3t-db-pass@db.internal:5432/app",
    "my_token": "lowercase-token-value-0123456789",
    "GITHUB_TOKEN": "ghp_attack_0123456789abcdefghij",
}
QUOTED = 'qu"ot\\ed-secret-\\n-value'  # a `"`, backslashes, and a literal backslash-n
PEM = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "QyNTUxOQAAACDn8vXdJpKZkU7wR1c9Zp0mZlY3Vb5cQw9pG7nHqk2sPAAAAJgq7YkXKu2J\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)
PEM_BODY = [line for line in PEM.splitlines() if not line.startswith("-----")]


def forms(value: str) -> list[str]:
    """Every way a value could be written: raw, per line, JSON-escaped once and twice."""
    pieces = [value, *(line for line in value.splitlines() if len(line) >= 8)]
    out = []
    for piece in pieces:
        once = json.dumps(piece)[1:-1]
        out += [piece, once, json.dumps(once)[1:-1]]
    return sorted(set(out))


async def _run(
    root: Path, steps: list[dict[str, object]], **overrides: object
) -> tuple[str, str, str]:
    """Run headless with the real console; returns console, events.jsonl, transcript."""
    engine, agent, _, _ = make_engine(
        root, {"default": steps}, approve="auto", max_iterations=1, **overrides
    )
    out = io.StringIO()
    code = await run_headless(root, engine.config, out=out, agent=agent)
    assert code == 0, out.getvalue()
    run_dir = next((root / ".ralph" / "runs").iterdir())
    events = (run_dir / "events.jsonl").read_text(encoding="utf-8")
    transcript = (run_dir / "transcript.md").read_text(encoding="utf-8")
    return out.getvalue(), events, transcript


@pytest.mark.parametrize("mode", MODES)
async def test_secrets_under_other_names_stay_out_of_the_shell_and_the_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    for name, value in OTHER_NAMES.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("RALPH_PLAIN", "plain-visible-value")
    values = list(OTHER_NAMES.values())
    steps = [
        bash("env; echo plain=$RALPH_PLAIN"),
        # the agent got hold of them some other way and repeats them
        {"text": "I found these: " + " | ".join(values)},
        bash("printf '%s\\n' " + " ".join(f"'{v}'" for v in values)),
        create("notes.md", "ok\n"),
        complete("done", [f"the db is {OTHER_NAMES['DATABASE_URL']}"]),
    ]
    root = attack_repo(tmp_path, steps, mode, pass_env=["RALPH_PLAIN"])
    console, events, transcript = await _run(root, steps)
    env_result = json.loads(next(ln for ln in events.splitlines() if '"tool_result"' in ln))
    assert "plain=plain-visible-value" in env_result["content"]  # the shell did run `env`
    for name in OTHER_NAMES:
        assert f"{name}=" not in env_result["content"]
    for value in values:
        for text in (console, events, transcript):
            assert value not in text
    assert "[REDACTED]" in console and "[REDACTED]" in events and "[REDACTED]" in transcript
    assert_nowhere(root, values, console)


@pytest.mark.parametrize("mode", MODES)
async def test_quoted_and_pem_secrets_echoed_by_bash_appear_in_no_form(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    monkeypatch.setenv("SERVICE_SECRET", QUOTED)
    monkeypatch.setenv("DEPLOY_PRIVATE_KEY", PEM)
    steps = [
        bash('printf "%s\\n" "$SERVICE_SECRET"; printf "%s" "$DEPLOY_PRIVATE_KEY"'),
        bash('echo "{\\"k\\": \\"$SERVICE_SECRET\\"}"; echo "$DEPLOY_PRIVATE_KEY" | tr "\\n" " "'),
        {"text": f"the key is {PEM} and {QUOTED}"},
        complete("done", [f"secret {QUOTED}", PEM]),
    ]
    # the commands get them only because the user passed them on
    root = attack_repo(tmp_path, steps, mode, pass_env=["SERVICE_SECRET", "DEPLOY_PRIVATE_KEY"])
    console, events, transcript = await _run(root, steps)
    results = [json.loads(ln) for ln in events.splitlines() if '"tool_result"' in ln]
    assert all("[exit code 0]" in r["content"] for r in results[:2])  # both commands ran
    assert "[REDACTED]" in results[0]["content"] and "[REDACTED]" in results[1]["content"]
    needles = forms(QUOTED) + [f for f in forms(PEM) if "-----" not in f] + PEM_BODY
    for needle in needles:
        for where, text in (("console", console), ("events", events), ("transcript", transcript)):
            assert needle not in text, f"{needle!r} in the {where}"
    assert_nowhere(root, needles, console)


def test_withhold_takes_keys_out_of_the_environment_and_hands_them_out_by_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-withheld-0123456789")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("CLAUDE_CODE_OAUTH_TOKEN", "oauth-withheld-0123456789")
    monkeypatch.setenv("REDIS_URL", "redis://:pw-in-url-123@cache:6379")
    monkeypatch.setenv("SSH_AUTH_SOCK", "/run/agent.sock")
    withheld = credentials.withhold()
    assert set(withheld) == {
        "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "CLAUDE_CODE_OAUTH_TOKEN", "REDIS_URL"
    }  # fmt: skip
    assert all(name not in os.environ for name in withheld)
    assert os.environ["SSH_AUTH_SOCK"] == "/run/agent.sock"  # commit signing still works
    assert credentials.get("ANTHROPIC_API_KEY") == "sk-ant-withheld-0123456789"
    assert claude_credentials() == {
        "ANTHROPIC_API_KEY": "sk-ant-withheld-0123456789",
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",
        "CLAUDE_CODE_OAUTH_TOKEN": "oauth-withheld-0123456789",
    }
    redact = Redactor()
    assert redact("key sk-ant-withheld-0123456789 url pw-in-url-123") == (
        "key [REDACTED] url [REDACTED]"
    ) or "pw-in-url-123" not in redact("redis://:pw-in-url-123@cache:6379")


@pytest.mark.parametrize(
    ("name", "value", "secret"),
    [
        ("AWS_SECRET_ACCESS_KEY", "x", True),
        ("OPENAI_KEY", "x", True),
        ("github_token", "x", True),
        ("DB_PASSWORD", "x", True),
        ("GITHUB_PAT", "x", True),
        ("APIKEY", "x", True),
        ("DATABASE_URL", "postgres://u:pw@h/db", True),
        ("DATABASE_URL", "postgres://h/db", False),
        ("SOME_CERT", "-----BEGIN RSA PRIVATE KEY-----\nabc", True),
        ("PATH", "/usr/bin", False),
        ("PWD", "/work", False),
        ("SSH_AUTH_SOCK", "/tmp/agent", False),
        ("KEYBOARD", "us", False),
    ],
)
def test_the_secret_rule(name: str, value: str, secret: bool) -> None:
    assert is_secret(name, value) is secret


def test_claude_code_gets_its_own_sandbox_without_escape(tmp_path: Path) -> None:
    settings = claude_sandbox_settings(Sandbox("bwrap", tmp_path, program="/usr/bin/bwrap"))
    assert settings is not None
    assert settings["enabled"] is True
    assert settings["allowUnsandboxedCommands"] is False
    assert claude_sandbox_settings(Sandbox.unconfined(tmp_path)) is None


@pytest.mark.parametrize("workers", [1, 2])  # the single loop's commit and a worker's merge
async def test_a_secret_in_a_title_or_a_file_name_stays_out_of_progress_and_commit_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    value = OTHER_NAMES["OPENAI_KEY"]
    monkeypatch.setenv("OPENAI_KEY", value)
    steps = [create(f"leak-{value}.txt", "x\n"), complete("done")]
    root = attack_repo(tmp_path, steps, "off")
    prd = root / "tasks" / "backend_prd.json"
    prd.write_text(prd.read_text().replace("Do the thing", f"Do the thing {value}"))
    git(root, "commit", "-qam", "title")
    await _run(root, steps, workers=workers)
    progress = (root / "tasks" / "backend_progress.txt").read_text()
    assert "leak-[REDACTED].txt" in progress and "Do the thing [REDACTED]" in progress
    assert value not in progress
    assert value not in git(root, "log", "-1", "--format=%B")


def test_pass_env_cannot_hand_ralph_tuis_own_key_to_commands(tmp_path: Path) -> None:
    (tmp_path / "ralph.toml").write_text('[sandbox]\npass_env = ["ANTHROPIC_API_KEY"]\n')
    with pytest.raises(UsageError) as caught:
        load_config(tmp_path)
    assert str(caught.value) == (
        f"{tmp_path / 'ralph.toml'}: sandbox.pass_env: ANTHROPIC_API_KEY is "
        "ralph-tui's own credential; it never goes to commands"
    )
