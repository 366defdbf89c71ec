"""``ralph-tui demo``: a small offline project the scripted agent works through in the TUI.

Everything is real except the model: files are edited through the agent tools, the gates run
pytest (and ruff when installed) with the current interpreter, commits go through git. Story
US-002 fails its tests once and gets fixed; US-004 asks the human a question.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from ralph_tui.errors import UsageError

SCRIPT_PATH = ".ralph-demo/script.json"
STREAM_DELAY_S = 0.012

_PACKAGE_INIT = '''"""A tiny inventory service: items, prices and stock."""
'''

_ITEMS = '''"""Items in stock."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Item:
    sku: str
    name: str
    price_cents: int
    quantity: int = 0
'''

_TEST_ITEMS = """import unittest

from inventory.items import Item


class ItemTest(unittest.TestCase):
    def test_item_defaults_to_no_stock(self) -> None:
        self.assertEqual(Item("A1", "Widget", 250).quantity, 0)
"""

_SLUG = '''"""Turn item names into URL-safe slugs."""

from __future__ import annotations

import re


def slugify(name: str) -> str:
    """Lower-case words joined by dashes; anything else is dropped."""
    words = re.findall(r"[a-z0-9]+", name.lower())
    return "-".join(words)
'''

_TEST_SLUG = """import unittest

from inventory.slug import slugify


class SlugifyTest(unittest.TestCase):
    def test_slugify_joins_words(self) -> None:
        self.assertEqual(slugify("Blue Widget, Large"), "blue-widget-large")

    def test_slugify_empty(self) -> None:
        self.assertEqual(slugify("!!!"), "")
"""

_PRICE_BUGGY = '''"""Parse prices typed by humans into cents."""

from __future__ import annotations


def parse_price(text: str) -> int:
    """'12.50', '$3', '0.5' -> cents."""
    cleaned = text.strip().lstrip("$")
    whole, _, frac = cleaned.partition(".")
    return int(whole) * 100 + int(frac or 0)
'''

_PRICE_FIXED = '''"""Parse prices typed by humans into cents."""

from __future__ import annotations


def parse_price(text: str) -> int:
    """'12.50', '$3', '0.5' -> cents."""
    cleaned = text.strip().lstrip("$")
    whole, _, frac = cleaned.partition(".")
    return int(whole or 0) * 100 + int((frac + "00")[:2])
'''

_TEST_PRICE = """import unittest

from inventory.price import parse_price

CASES = [("12.50", 1250), ("$3", 300), ("0.5", 50), (" 7.05 ", 705)]


class ParsePriceTest(unittest.TestCase):
    def test_parse_price(self) -> None:
        for text, cents in CASES:
            with self.subTest(text=text):
                self.assertEqual(parse_price(text), cents)
"""

_STOCK = '''"""Stock valuation."""

from __future__ import annotations

from collections.abc import Iterable

from inventory.items import Item


def total_value_cents(items: Iterable[Item]) -> int:
    """What the stock is worth: price times quantity, summed."""
    return sum(item.price_cents * item.quantity for item in items)
'''

_TEST_STOCK = """import unittest

from inventory.items import Item
from inventory.stock import total_value_cents


class StockTest(unittest.TestCase):
    def test_total_value(self) -> None:
        items = [Item("A", "a", 250, 4), Item("B", "b", 100, 0), Item("C", "c", 5, 3)]
        self.assertEqual(total_value_cents(items), 1015)
"""

_MONEY = '''"""Show amounts to humans."""

from __future__ import annotations


def format_cents(cents: int, symbol: str = "€") -> str:
    """1250 -> '€12.50'; the symbol follows the team's answer in the progress log."""
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{symbol}{cents // 100}.{cents % 100:02d}"
'''

_TEST_MONEY = """import unittest

from inventory.money import format_cents


class FormatCentsTest(unittest.TestCase):
    def test_format_cents(self) -> None:
        self.assertEqual(format_cents(1250), "€12.50")
        self.assertEqual(format_cents(-5), "-€0.05")
"""


def _story(
    story_id: str, title: str, description: str, criteria: list[str], priority: int
) -> dict[str, Any]:
    return {
        "id": story_id,
        "title": title,
        "description": description,
        "acceptanceCriteria": criteria,
        "priority": priority,
        "passes": False,
        "notes": "",
    }


def demo_prd() -> dict[str, Any]:
    return {
        "project": "Inventory service",
        "branchName": "ralph/inventory-demo",
        "description": "A tiny inventory service, built story by story by a scripted agent.",
        "userStories": [
            _story(
                "US-001",
                "Slugs for item names",
                "As a shop owner I want URL-safe slugs for item names.",
                ["slugify('Blue Widget, Large') == 'blue-widget-large'", "Tests pass"],
                1,
            ),
            _story(
                "US-002",
                "Parse prices typed by humans",
                "As a clerk I want to type prices like '$3' or '12.5' and get cents.",
                ["'12.50' -> 1250, '$3' -> 300, '0.5' -> 50", "Tests pass"],
                2,
            ),
            _story(
                "US-003",
                "Value of the stock",
                "As an accountant I want the total value of the stock in cents.",
                ["price times quantity, summed", "Tests pass"],
                3,
            ),
            _story(
                "US-004",
                "Show amounts to humans",
                "As a clerk I want amounts shown with a currency symbol.",
                ["format_cents(1250) shows the amount with two decimals", "Tests pass"],
                4,
            ),
        ],
    }


def _edit(command: str, path: str, **fields: Any) -> dict[str, Any]:
    return {
        "tool": "str_replace_based_edit_tool",
        "input": {"command": command, "path": path, **fields},
    }


def _complete(summary: str, learnings: list[str]) -> dict[str, Any]:
    return {"tool": "complete_task", "input": {"summary": summary, "learnings": learnings}}


def _after_reject(path: str) -> list[dict[str, Any]]:
    """What the agent does when the human rejects its change: says what it heard and changes
    the code for it (``{feedback}`` is the human's words), so the next approval shows a new
    diff rather than the one just rejected."""
    return [
        {"text": 'You said: "{feedback}". Reworking the change to address it.'},
        _edit("insert", path, insert_line=1, new_str="# Review: {feedback}"),
        {"text": f"Recorded the review in {path} and asking for the checks again."},
        _complete("Addressed the review: {feedback}", ["ask what the reviewer wants changed"]),
    ]


def demo_script() -> dict[str, Any]:
    """What the scripted agent says and does, story by story."""
    return {
        "stream_delay_s": STREAM_DELAY_S,
        "stories": {
            "US-001": [
                {"text": "I'll start by reading the package layout to see where a helper fits."},
                {"tool": "bash", "input": {"command": "ls inventory tests"}},
                {
                    "text": "A small module with one regular expression will do. Writing it and "
                    "its tests now."
                },
                _edit("create", "inventory/slug.py", file_text=_SLUG),
                _edit("create", "tests/test_slug.py", file_text=_TEST_SLUG),
                {"text": "Both cases covered: words joined by dashes, punctuation dropped."},
                _complete(
                    "Added inventory.slug.slugify with tests.",
                    ["re.findall on [a-z0-9]+ keeps slugs ASCII-only"],
                ),
                *_after_reject("inventory/slug.py"),
            ],
            "US-002": [
                {
                    "text": "Prices arrive as text like '$3' or '12.50'. I'll split on the dot "
                    "and convert each part to an integer."
                },
                _edit("create", "inventory/price.py", file_text=_PRICE_BUGGY),
                _edit("create", "tests/test_price.py", file_text=_TEST_PRICE),
                {"text": "Done, asking ralph-tui to check."},
                _complete("Added parse_price.", []),
                {
                    "text": "The tests caught it: '12.50' gave 1250 by luck but '0.5' gave 5, "
                    "not 50. The fraction must be padded to two digits. Fixing."
                },
                _edit(
                    "str_replace",
                    "inventory/price.py",
                    old_str="    return int(whole) * 100 + int(frac or 0)\n",
                    new_str='    return int(whole or 0) * 100 + int((frac + "00")[:2])\n',
                ),
                {"text": "Padded the fraction; '0.5' is now 50 cents."},
                _complete(
                    "Added parse_price; fractions are padded to cents.",
                    ["pad the fractional part to two digits before int()"],
                ),
                *_after_reject("inventory/price.py"),
            ],
            "US-003": [
                {"text": "Stock value is price times quantity, summed. One function."},
                _edit("create", "inventory/stock.py", file_text=_STOCK),
                _edit("create", "tests/test_stock.py", file_text=_TEST_STOCK),
                {"tool": "run_quality_gates", "input": {}},
                {"text": "Gates are green."},
                _complete("Added total_value_cents.", ["a generator in sum() keeps it lazy"]),
                *_after_reject("inventory/stock.py"),
            ],
            "US-004": [
                {"text": "The story does not say which currency symbol to show."},
                {
                    "tool": "escalate",
                    "input": {
                        "question": "Which currency symbol should amounts use: € or $?",
                        "tried": "Read the PRD, README and existing code: no currency is named.",
                    },
                },
                {"text": "Thanks. Writing format_cents with the symbol as a parameter."},
                _edit("create", "inventory/money.py", file_text=_MONEY),
                _edit("create", "tests/test_money.py", file_text=_TEST_MONEY),
                _complete("Added format_cents.", ["keep the symbol a parameter"]),
                *_after_reject("inventory/money.py"),
            ],
        },
        "default": [
            {"text": "This story is not in the demo script; nothing to do."},
            {
                "tool": "escalate",
                "input": {"question": "This story is not scripted. Skip it?", "tried": "Nothing."},
            },
        ],
    }


def _gates() -> dict[str, str]:
    """pytest and ruff where installed (``make test``'s venv), else the standard library's
    unittest and compileall: ``make demo`` installs only the base package."""
    python = json.dumps(sys.executable)[1:-1]
    if importlib.util.find_spec("pytest") is not None:
        gates = {"tests": f'"{python}" -m pytest -q -p no:cacheprovider'}
    else:
        gates = {"tests": f'"{python}" -m unittest discover -q -s tests -t .'}
    if importlib.util.find_spec("ruff") is not None:
        gates["lint"] = f'"{python}" -m ruff check --no-cache .'
    else:
        gates["lint"] = f'"{python}" -m compileall -q inventory tests'
    return gates


def _config(gates: dict[str, str]) -> str:
    lines = [
        "# ralph-tui demo: the scripted agent replays .ralph-demo/script.json offline.",
        'role = "backend"',
        'agent = "scripted"',
        f'script = "{SCRIPT_PATH}"',
        'model = "claude-sonnet-4-5"',
        "max_iterations = 8",
        "",
        "[gates]",
        *(f"{name} = {json.dumps(command)}" for name, command in gates.items()),
        "",
        "[gate_options]",
        "timeout_s = 120",
        "",
    ]
    return "\n".join(lines)


def create_demo_project(target: Path) -> Path:
    """Build the demo workspace in ``target`` (new or empty) and return it."""
    if target.exists() and not target.is_dir():
        raise UsageError(f"{target}: not a folder; give a new folder for the demo")
    if target.exists() and any(target.iterdir()):
        raise UsageError(f"{target}: folder is not empty; give a new folder for the demo")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{target}: cannot create the demo folder: {exc.strerror}") from None
    files = {
        "README.md": "# Inventory service\n\nA demo project for ralph-tui.\n",
        ".gitignore": "__pycache__/\n.pytest_cache/\n.ruff_cache/\n.ralph-demo/\n",
        "pyproject.toml": (
            '[project]\nname = "inventory"\nversion = "0.1.0"\n\n'
            '[tool.pytest.ini_options]\npythonpath = ["."]\ntestpaths = ["tests"]\n\n'
            "[tool.ruff]\nline-length = 100\n"
        ),
        "inventory/__init__.py": _PACKAGE_INIT,
        "inventory/items.py": _ITEMS,
        "tests/__init__.py": "",
        "tests/test_items.py": _TEST_ITEMS,
        "tasks/backend_prd.json": json.dumps(demo_prd(), indent=2) + "\n",
        "tasks/backend_progress.txt": "# Progress log\n\n",
        "AGENTS.md": "Keep modules small; every function gets a test.\n",
        "ralph.toml": _config(_gates()),
        SCRIPT_PATH: json.dumps(demo_script(), indent=2) + "\n",
    }
    for name, text in files.items():
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    _git(target, "init", "-q", "-b", "main")
    if not _git(target, "config", "user.email", check=False):
        # a machine without a git identity can still run the demo (commits are local to it)
        _git(target, "config", "user.name", "ralph-tui demo")
        _git(target, "config", "user.email", "demo@ralph-tui.invalid")
    _git(target, "add", "-A")
    _git(target, "commit", "-q", "-m", "Inventory service: items")
    return target


def _git(root: Path, *args: str, check: bool = True) -> str:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise UsageError(f"{root}: git {args[0]} failed: {done.stderr.strip()}")
    return done.stdout.strip()
