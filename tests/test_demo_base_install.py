"""``make demo`` installs only the base package: the demo's gates then need nothing else.

Without pytest or ruff on the path (``python -S``: no site-packages, as in a venv holding only
ralph-tui's run-time dependencies) the demo gates are the standard library's unittest and
compileall, and the demo's tests pass under them as the stories land them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ralph_tui import demo

ROOT = Path(__file__).resolve().parents[1]


def gates_without_site_packages() -> dict[str, str]:
    program = "import json; from ralph_tui.demo import _gates; print(json.dumps(_gates()))"
    done = subprocess.run(
        [sys.executable, "-S", "-c", program],
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    gates: dict[str, str] = json.loads(done.stdout)
    return gates


def test_without_pytest_the_demo_gates_are_the_standard_library() -> None:
    gates = gates_without_site_packages()
    assert "-m unittest discover" in gates["tests"] and "pytest" not in gates["tests"]
    assert "-m compileall" in gates["lint"]


def test_every_demo_story_passes_its_gates_under_unittest(tmp_path: Path) -> None:
    root = demo.create_demo_project(tmp_path / "demo")
    files = {
        "inventory/slug.py": demo._SLUG,
        "tests/test_slug.py": demo._TEST_SLUG,
        "inventory/price.py": demo._PRICE_FIXED,
        "tests/test_price.py": demo._TEST_PRICE,
        "inventory/stock.py": demo._STOCK,
        "tests/test_stock.py": demo._TEST_STOCK,
        "inventory/money.py": demo._MONEY,
        "tests/test_money.py": demo._TEST_MONEY,
    }
    for name, text in files.items():
        (root / name).write_text(text, encoding="utf-8")
    run = [sys.executable, "-S", "-m", "unittest", "discover", "-s", "tests", "-t", "."]
    done = subprocess.run(run, cwd=root, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "Ran 6 tests" in done.stderr

    (root / "inventory/price.py").write_text(demo._PRICE_BUGGY, encoding="utf-8")
    broken = subprocess.run(run, cwd=root, capture_output=True, text=True, timeout=60, check=False)
    assert broken.returncode == 1 and "FAILED (failures=" in broken.stderr  # US-002's first try
