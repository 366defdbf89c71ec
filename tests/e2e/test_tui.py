"""The TUI in a real terminal (tmux): ``ralph-tui run`` with the built-in agent approving with
a key, and ``ralph-tui demo`` as the README's first command opens it; with workers, an approval
and another story's question open together, in the TUI and at the terminal's prompts."""

from __future__ import annotations

import json
import re
import secrets
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.support import (
    _TASK,
    RALPH_TUI,
    Site,
    _first_user_text,
    _tool_results,
    agent_turn,
    assert_clean,
    assert_stories_landed,
    running,
)
from tests.support.fake_anthropic import reply, tool_use
from tests.support.repo import git
from tests.support.tools import requires_tmux
from tests.test_tmux import Tmux

pytestmark = requires_tmux


@pytest.fixture
def tmux(site: Site) -> Iterator[Tmux]:
    server = Tmux(f"ralph-e2e-{site.base.name}")
    yield server
    subprocess.run(["tmux", "-L", server.socket, "kill-server"], capture_output=True, check=False)


def _session(tmux: Tmux, site: Site, command: str) -> None:
    """``command`` in a 120x40 terminal, started in the repository (so that its command line,
    which stays alive after ralph-tui exits, does not name it)."""
    env = [f"-e{name}={value}" for name, value in site.env().items() if name.isidentifier()]
    tmux("new-session", "-d", "-s", "ralph", "-x", "120", "-y", "40", "-c", str(site.root),
         *env, "-e", "TERM=xterm-256color", command)  # fmt: skip


def _quit(tmux: Tmux) -> None:
    """q, and y when the run asks whether to stop; then wait for the shell's EXITED line."""
    tmux("send-keys", "-t", "ralph", "q")
    tmux.wait(
        lambda: "Stop and quit" in tmux.screen() or "EXITED" in tmux.screen(), "the quit dialog"
    )
    if "EXITED" not in tmux.screen():
        tmux("send-keys", "-t", "ralph", "y")
    tmux.wait(lambda: "EXITED" in tmux.screen(), "the demo to exit", 30.0)


def test_run_in_the_tui_approves_each_story_with_a_key(site: Site, tmux: Tmux) -> None:
    root = site.repo(2, config="workers = 2")
    _session(tmux, site, f"{RALPH_TUI} run --agent anthropic; echo EXITED $?; sleep 60")
    for _ in range(2):
        tmux.wait(lambda: "Approval needed" in tmux.screen(), "the approval bar", 60.0)
        landed = git(root, "rev-list", "--count", "HEAD")
        tmux("send-keys", "-t", "ralph", "a")
        tmux.wait(lambda n=landed: git(root, "rev-list", "--count", "HEAD") != n, "a commit", 30.0)
    tmux.wait(lambda: "every story passes" in tmux.screen(), "the run to finish", 30.0)
    tmux("send-keys", "-t", "ralph", "q")
    tmux.wait(lambda: "EXITED 0" in tmux.screen(), "the app to exit", 30.0)
    assert_stories_landed(root, ["US-001", "US-002"], ["Story 1", "Story 2"])
    assert_clean(site)


def test_demo_opens_the_board_offline_and_lands_the_first_story(site: Site, tmux: Tmux) -> None:
    demo = site.base / "demo"
    site.root.mkdir()
    _session(tmux, site, f"{RALPH_TUI} demo {shlex.quote(str(demo))}; echo EXITED $?; sleep 60")
    tmux.wait(lambda: "Approval needed" in tmux.screen(), "the first approval", 60.0)
    screen = tmux.screen()
    assert "Tasks" in screen and "Gates" in screen and "US-001" in screen
    tmux("send-keys", "-t", "ralph", "a")
    subject = "[backend] Task #US-001: Slugs for item names"
    tmux.wait(lambda: subject in git(demo, "log", "--format=%s"), "the demo's first commit")
    _quit(tmux)
    assert "EXITED 0" in tmux.screen()  # quitting is how a demo ends: `make demo` says no error
    assert site.api.requests == []  # offline: the demo never calls a model


def test_the_demo_without_a_folder_leaves_nothing_in_the_temp_folder(
    site: Site, tmux: Tmux
) -> None:
    site.root.mkdir()
    _session(tmux, site, f"{RALPH_TUI} demo; echo EXITED $?; sleep 60")
    tmux.wait(lambda: "Approval needed" in tmux.screen(), "the first approval", 60.0)
    assert list(site.temp.glob("ralph-*/inventory-service/.git"))  # it lives there meanwhile
    _quit(tmux)
    assert "EXITED 0" in tmux.screen()
    assert sorted(p.name for p in site.temp.iterdir()) == []


def test_a_second_ctrl_c_stops_the_tui_at_once_during_a_long_command(
    site: Site, tmux: Tmux
) -> None:
    marker = f"120.{secrets.randbelow(10**6):06d}"  # `sleep 120.xxxxxx`: this test's own

    def turn(body: dict[str, Any]) -> dict[str, Any]:
        if _tool_results(body) == 0:  # a change first, so there is something to keep
            return agent_turn(body)
        if _tool_results(body) == 1:
            return reply(tool_use("bash", {"command": f"sleep {marker}"}))
        return reply("Done.")

    site.api.respond_with(turn)
    root = site.repo(1)
    _session(tmux, site, f"{RALPH_TUI} run --agent anthropic; echo EXITED $?; sleep 60")
    tmux.wait(lambda: bool(running(f"sleep {marker}")), "the long command", 60.0)
    tmux("send-keys", "-t", "ralph", "C-c")
    tmux.wait(lambda: "stopping" in tmux.screen().lower(), "the first Ctrl-C to be taken")
    assert running(f"sleep {marker}")  # the first waits for the next safe point
    tmux("send-keys", "-t", "ralph", "C-c")
    tmux.wait(lambda: "EXITED 130" in tmux.screen(), "the app to stop at once", 30.0)
    assert running(f"sleep {marker}") == []
    assert git(root, "log", "--format=%s").splitlines() == ["initial"]
    (patch,) = (root / ".ralph" / "runs").glob("*/patches/*.patch")
    assert "US-001.txt" in patch.read_text(encoding="utf-8")
    assert_clean(site)


def test_after_two_approvals_the_transcript_shows_the_newest_iteration(
    site: Site, tmux: Tmux
) -> None:
    """The approval bar shrinks the transcript each time it opens; the transcript still
    follows the run (it once stuck at iteration 1 or 2 while 4 ran)."""
    root = site.repo(3)
    _session(tmux, site, f"{RALPH_TUI} run --agent anthropic; echo EXITED $?; sleep 60")
    for n in (1, 2):
        tmux.wait(lambda: "Approval needed" in tmux.screen(), f"approval {n}", 60.0)
        landed = git(root, "rev-list", "--count", "HEAD")
        tmux("send-keys", "-t", "ralph", "a")
        tmux.wait(lambda n=landed: git(root, "rev-list", "--count", "HEAD") != n, "a commit")
    tmux.wait(lambda: "Approval needed" in tmux.screen(), "the third approval", 60.0)
    tmux.wait(  # the transcript's last lines are the third iteration's (once painted)
        lambda: (
            "Created US-003.txt" in (screen := tmux.screen())
            and "approval needed for US-003" in screen
        ),
        "the third iteration at the transcript's end",
        20.0,
    )
    tmux("send-keys", "-t", "ralph", "a")
    tmux.wait(lambda: "every story passes" in tmux.screen(), "the run to finish", 30.0)
    tmux("send-keys", "-t", "ralph", "q")
    tmux.wait(lambda: "EXITED 0" in tmux.screen(), "the app to exit", 30.0)
    assert_clean(site)


def _us002_asks_first(body: dict[str, Any]) -> dict[str, Any]:
    """US-002's agent asks which port before it writes its file; US-001's just works."""
    found = _TASK.search(_first_user_text(body))
    if found is None or found.group(1) != "US-002":
        return agent_turn(body)
    done = _tool_results(body)
    if done == 0:
        return reply(tool_use("escalate", {"question": "Which port for US-002?", "tried": "docs"}))
    if done == 1:
        edit = {"command": "create", "path": "US-002.txt", "file_text": "US-002\n"}
        return reply(tool_use("str_replace_based_edit_tool", edit))
    if done == 2:
        return reply(tool_use("complete_task", {"summary": "US-002", "learnings": []}))
    return reply("Done.")


def _answers(root: Path) -> list[str]:
    (events,) = (root / ".ralph" / "runs").glob("*/events.jsonl")
    return [
        event["answer"]
        for event in map(json.loads, events.read_text(encoding="utf-8").splitlines())
        if event["kind"] == "escalation_answered"
    ]


def test_with_workers_answering_a_question_leaves_the_open_approval_on_screen(
    site: Site, tmux: Tmux
) -> None:
    """Answering US-002's question closed US-001's approval bar too, and ``a`` then approved a
    change no longer on screen."""
    site.api.respond_with(_us002_asks_first)
    root = site.repo(2, config="workers = 2\n")
    _session(tmux, site, f"{RALPH_TUI} run --agent anthropic; echo EXITED $?; sleep 60")
    both = ("Approve US-001", "Which port for US-002?")
    tmux.wait(lambda: all(t in tmux.screen() for t in both), "both bars", 60.0)
    tmux("send-keys", "-t", "ralph", "Use 8080.", "Enter")
    tmux.wait(lambda: "The agent needs you" not in tmux.screen(), "the question to settle")
    assert "Approve US-001" in tmux.screen()  # the approval and its bar stay
    tmux("send-keys", "-t", "ralph", "a")
    tmux.wait(lambda: "Task #US-001" in git(root, "log", "--format=%s"), "US-001 to land")
    tmux.wait(lambda: "Approve US-002" in tmux.screen(), "US-002's approval", 60.0)
    tmux("send-keys", "-t", "ralph", "a")
    tmux.wait(lambda: "every story passes" in tmux.screen(), "the run to finish", 60.0)
    tmux("send-keys", "-t", "ralph", "q")
    tmux.wait(lambda: "EXITED 0" in tmux.screen(), "the app to exit", 30.0)
    assert _answers(root) == ["Use 8080."]
    assert_stories_landed(root, ["US-001", "US-002"], ["Story 1", "Story 2"])
    assert_clean(site)


_PROMPT = re.compile(r"\[a\]pprove, |your answer ")


def test_with_workers_the_terminal_asks_one_question_at_a_time(site: Site, tmux: Tmux) -> None:
    """``run --headless --approve ask``: both prompts were printed at once and both read the
    terminal, so the "a" typed at the last prompt could become US-002's answer."""
    site.api.respond_with(_us002_asks_first)
    root = site.repo(2, config="workers = 2\n")
    command = f"{RALPH_TUI} run --headless --approve ask --agent anthropic"
    _session(tmux, site, f"{command}; echo EXITED $?; sleep 60")

    def history() -> str:
        return tmux("capture-pane", "-p", "-S", "-3000", "-t", "ralph")

    asked = ("? escalation (agent): Which port", "approval needed for Task #US-001")
    tmux.wait(lambda: all(a in history() for a in asked), "both questions open", 60.0)
    answered: list[str] = []
    while "EXITED" not in (text := history()):
        prompts = [line for line in text.splitlines() if _PROMPT.search(line)]
        if len(prompts) > len(answered):
            assert len(prompts) == len(answered) + 1, text  # one question on screen at a time
            typed = "Use 8080." if "your answer" in prompts[-1] else "a"
            tmux("send-keys", "-t", "ralph", typed, "Enter")
            answered.append(prompts[-1])
        seen = len(answered)
        tmux.wait(
            lambda n=seen: (
                "EXITED" in history()
                or len([ln for ln in history().splitlines() if _PROMPT.search(ln)]) > n
            ),
            "the next prompt or the end",
            60.0,
        )
    assert "EXITED 0" in history(), history()
    assert len(answered) == 3, answered  # the question, then each approval
    assert _answers(root) == ["Use 8080."]
    assert_stories_landed(root, ["US-001", "US-002"], ["Story 1", "Story 2"])
    assert_clean(site)
