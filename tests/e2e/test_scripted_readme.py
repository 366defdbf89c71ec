"""The README's scripted-agent example works as printed, through the installed CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.e2e.support import Site, assert_clean
from tests.support.repo import git

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_script() -> dict[str, object]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Rehearse without a model: the scripted agent") :]
    found = re.search(r"```json\n(.*?)```", section, re.DOTALL)
    assert found is not None
    script: dict[str, object] = json.loads(found.group(1))
    return script


def test_the_readme_script_lands_its_story_and_escalates_the_others(site: Site) -> None:
    root = site.repo(2, config='script = "ralph-script.json"')
    (root / "app").mkdir()
    (root / "app" / "__init__.py").write_text("", encoding="utf-8")
    script = readme_script()
    script["step_delay_s"] = 0  # the example's latency is for watching it, not for tests
    (root / "ralph-script.json").write_text(json.dumps(script), encoding="utf-8")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "the script")
    done = site.ralph("run", "--headless", "--approve", "auto", "--agent", "scripted", input="\n")
    assert "[backend] Task #US-001: Story 1" in git(root, "log", "--format=%s")
    assert git(root, "show", "HEAD~0:app/health.py").startswith("def health() -> str:")
    assert "No script for this story" in done.stdout  # US-002: the default escalates
    assert "Traceback" not in done.stderr
    assert_clean(site)


def test_scripted_without_a_script_says_where_the_format_is(site: Site) -> None:
    site.repo(1)
    done = site.ralph("run", "--headless", "--agent", "scripted")
    assert done.returncode == 2
    assert "'Rehearse without a model: the scripted agent' in the README" in done.stderr


def test_a_bad_step_late_in_a_script_stops_the_run_before_it_starts(site: Site) -> None:
    root = site.repo(2, config='script = "ralph-script.json"')
    script = {"stories": {"US-001": [{"text": "fine"}]}, "default": [{"text": "x"}, 5]}
    (root / "ralph-script.json").write_text(json.dumps(script), encoding="utf-8")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "the script")
    head = git(root, "rev-parse", "HEAD")
    done = site.ralph("run", "--headless", "--approve", "auto", "--agent", "scripted")
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert done.stderr.splitlines() == [
        f"ralph-tui: {root}/ralph-script.json: default step 1: a step is an object "
        '({"text": ...}, {"tool": ...}, ...)'
    ]
    assert "[iteration" not in done.stdout
    assert git(root, "rev-parse", "HEAD") == head
    assert_clean(site)


def test_doctor_checks_the_script_as_a_run_would(site: Site) -> None:
    root = site.repo(1, config='script = "ralph-script.json"')
    (root / "ralph-script.json").write_text('{"default": [{"tool": 1}]}', encoding="utf-8")
    done = site.ralph("doctor", "--agent", "scripted")
    assert done.returncode == 1, done.stdout
    assert (
        f"missing  script: {root}/ralph-script.json: default step 0: 'tool' takes a string"
        in done.stdout
    )


def _asked_twice(site: Site, second_text: str, second_summary: str) -> Path:
    """One story whose agent writes app.txt, is asked, hears the answer (``{feedback}`` in its
    text) and writes app.txt again: the script committed in the repository."""
    root = site.repo(1, config='script = "ralph-script.json"')
    edit = {"command": "create", "path": "app.txt", "file_text": "first\n"}
    again = {"command": "create", "path": "app.txt", "file_text": second_text}
    script = {
        "stories": {
            "US-001": [
                {"tool": "str_replace_based_edit_tool", "input": edit},
                {"tool": "complete_task", "input": {"summary": "first try"}},
                {"text": "I heard: {feedback}"},
                {"tool": "str_replace_based_edit_tool", "input": again},
                {"tool": "complete_task", "input": {"summary": second_summary}},
            ]
        }
    }
    (root / "ralph-script.json").write_text(json.dumps(script), encoding="utf-8")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "the script")
    return root


def test_feedback_in_a_step_is_the_humans_words_after_a_rejection(site: Site) -> None:
    """``{feedback}`` in a scripted step, as the README says: the installed CLI, a rejection
    typed at the headless prompt, and the agent's next steps carry the words into its text and
    its change."""
    root = _asked_twice(site, "second: {feedback}\n", "did {feedback}")
    done = site.ralph(
        "run", "--headless", "--approve", "ask", "--agent", "scripted", input="r\nuse tabs\na\n"
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "I heard: use tabs" in done.stdout
    assert git(root, "show", "HEAD:app.txt").strip() == "second: use tabs"
    assert "[backend] Task #US-001: Story 1" in git(root, "log", "--format=%s")
    assert_clean(site)


def test_a_line_comment_typed_at_the_headless_prompt_reaches_the_agent(site: Site) -> None:
    """``c`` at the ``--approve ask`` prompt, ``path:line text``: the agent's next turn has
    the comment anchored and the line quoted by the engine, then the run lands the fix."""
    root = _asked_twice(site, "second\n", "fixed")
    typed = "c\napp.txt:1 say second here\n\nplease\na\n"
    done = site.ralph("run", "--headless", "--approve", "ask", "--agent", "scripted", input=typed)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    heard = done.stdout[done.stdout.index("I heard:") :]
    assert "app.txt:1" in heard and "> +first" in heard and "say second here" in heard, heard
    assert "please" in heard
    assert git(root, "show", "HEAD:app.txt").strip() == "second"
    assert_clean(site)
