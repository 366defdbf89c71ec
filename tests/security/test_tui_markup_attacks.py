"""Attack: markup in text the TUI shows (issue 8, section 5).

A story title, the agent's words and a gate's output are data, never Textual/Rich markup: a
title ``[/] x`` must not end the TUI with ``MarkupError`` (at every start, since the title stays
in the PRD), and ``[link=…]`` must not become a link. The run goes through the real engine with
the scripted agent and a real gate; the test reads what is on screen.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from textual.widgets._toast import Toast

from ralph_tui.tui.app import RalphApp
from tests.support.repo import git, make_repo, story
from tests.tui.support import build_app, complete, create, wait_for

LINK = "[link=https://evil.invalid]click[/link]"
TITLE = f"[/] x {LINK}"
AGENT_TEXT = f"[bold red]not bold[/] [/] {LINK} [link='https://evil.invalid']x[/link]"
GATE_LINE = f"[/gate] {LINK}"
QUESTION = f"[/] which? {LINK}"


def screen_text(app: RalphApp) -> str:
    """The characters on screen, as the terminal would show them (from the SVG export)."""
    svg = app.export_screenshot()
    rows = re.findall(r"<text[^>]*>(.*?)</text>", svg, flags=re.S)
    return html.unescape("".join(rows)).replace("\xa0", " ")


def shows(app: RalphApp, *texts: str) -> bool:
    shown = screen_text(app)
    return all(text in shown for text in texts)


def has_link(app: RalphApp) -> bool:
    """True if any cell on screen carries a hyperlink (what ``[link=…]`` markup would make)."""
    strips = app.screen._compositor.render_strips()
    return any(seg.style is not None and seg.style.link for strip in strips for seg in strip)


async def test_markup_in_prd_agent_and_gate_text_is_shown_as_text(tmp_path: Path) -> None:
    root = make_repo(
        tmp_path / "ws",
        [story("US-001", TITLE, 1)],
        gates={"echo": f"echo '{GATE_LINE}'"},
    )
    script = {
        "default": [
            {"text": AGENT_TEXT + "\n"},
            {"tool": "escalate", "input": {"question": QUESTION, "tried": LINK}},
            create("src/x.py", "X = 1\n"),
            {"tool": "bash", "input": {"command": f"echo '{LINK}'"}},
            complete(summary=f"[/] done {LINK}"),
        ]
    }
    app, _ = build_app(root, script)
    async with app.run_test(size=(200, 50), notifications=True) as pilot:
        await wait_for(pilot, lambda: app.supervisor.escalation is not None, what="escalation")
        # on the board as typed in the PRD, in the escalation bar, in the transcript
        await wait_for(pilot, lambda: shows(app, TITLE, QUESTION, AGENT_TEXT), what="text")
        assert not has_link(app)
        await pilot.press(*"go on", "enter")
        await wait_for(pilot, lambda: app.supervisor.approval is not None, what="approval")
        # the gate's summary in the Gates panel, the agent's summary in the approval bar
        await wait_for(pilot, lambda: shows(app, GATE_LINE, f"[/] done {LINK}"), what="text")
        assert not has_link(app)
        await pilot.press("a")
        await wait_for(pilot, lambda: app.exit_code is not None, what="run end")
    assert app.exit_code == 0
    assert git(root, "log", "-1", "--format=%s").strip().endswith(TITLE)


async def test_a_markup_title_does_not_stop_the_next_start(tmp_path: Path) -> None:
    """The title stays in the PRD: the board must draw it at every start."""
    root = make_repo(tmp_path / "ws", [story("US-001", "[/]", 1), story("US-002", "[b]", 2)])
    app, _ = build_app(root, {"default": []}, autostart=False)
    async with app.run_test(size=(120, 30), notifications=True) as pilot:
        await pilot.pause()
        # a toast built from PRD text is plain text too
        app.notify("Saved [/] x")
        app.notify(LINK)
        await wait_for(pilot, lambda: len(app.screen.query(Toast)) == 2, what="two toasts")
        shown = screen_text(app)
        assert "[/]" in shown and "[b]" in shown
        assert "Saved [/] x" in shown and LINK in shown
        assert not has_link(app)
