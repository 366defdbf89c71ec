"""The README's "Use it on your repository", from the package a user installs.

The wheel is built from this checkout (``pip wheel``, the hatchling backend) and installed into
a fresh virtual environment, then the installed ``ralph-tui`` is followed through the section's
steps on a new repository outside ``/tmp``: ``init``, a PRD of one story, commit, ``validate``,
``doctor``, ``run --headless`` with the human approving at the prompt, and the approved commit
checked in git. The fresh environment gets its run-time dependencies from this interpreter's
site-packages (a plain path in a ``.pth`` file: no download, and no ``.pth`` of this checkout's
editable install is processed), so what it runs of ralph-tui is the wheel's copy only.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from tests.e2e.support import Site, assert_clean
from tests.support.repo import git

ROOT = Path(__file__).resolve().parents[2]


def _fresh_install(base: Path) -> Path:
    """The wheel in a new venv; returns its ``ralph-tui``."""
    wheels = base / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--quiet", "-w", str(wheels), str(ROOT)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("ralph_supervisor-*.whl")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--quiet", str(wheel)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    (Path(purelib) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv / "bin" / "ralph-tui"


def test_the_installed_wheel_takes_a_new_repository_to_its_first_approved_commit(
    site: Site,
) -> None:
    ralph_tui = _fresh_install(site.base)
    root = site.root
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "README.md").write_text("# my service\n", encoding="utf-8")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")

    def ralph(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(ralph_tui), *args],
            cwd=root, env=site.env(), input=stdin, capture_output=True, text=True,
            timeout=180, check=False,
        )  # fmt: skip

    where = subprocess.run(
        [str(ralph_tui.parent / "python"), "-c", "import ralph_tui; print(ralph_tui.__file__)"],
        capture_output=True, text=True, check=True, cwd=root,
    ).stdout  # fmt: skip
    assert where.startswith(str(ralph_tui.parents[1])), where  # the wheel's copy, not ours

    init = ralph("init")
    assert init.returncode == 0, init.stderr
    assert "next:" in init.stdout
    prd = root / "tasks" / "backend_prd.json"
    doc = json.loads(prd.read_text(encoding="utf-8"))
    doc["branchName"] = "ralph/first"
    doc["userStories"] = [
        {
            "id": "US-001",
            "title": "Say hello",
            "description": "A hello file.",
            "acceptanceCriteria": ["US-001.txt exists"],
            "priority": 1,
            "passes": False,
        }
    ]
    prd.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    config = root / "ralph.toml"
    text = config.read_text(encoding="utf-8")
    gates = text[text.index("[gates]") : text.index("[gate_options]")]
    # the project's own gate instead of the template's pytest/mypy/ruff
    config.write_text(text.replace(gates, '[gates]\nhello = "test -f US-001.txt"\n\n'))
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "ralph-tui: PRD")

    validate = ralph("validate")
    assert validate.returncode == 0, validate.stdout + validate.stderr
    doctor = ralph("doctor")
    assert "Traceback" not in doctor.stdout + doctor.stderr
    assert "ANTHROPIC_API_KEY" in doctor.stdout, doctor.stdout

    done = ralph("run", "--headless", "--agent", "anthropic", stdin="a\n")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "approval needed for Task #US-001" in done.stdout
    assert git(root, "branch", "--show-current").strip() == "ralph/first"
    assert git(root, "log", "-1", "--format=%s") == "[backend] Task #US-001: Say hello\n"
    assert git(root, "show", "HEAD:US-001.txt") == "US-001\n"
    assert json.loads(prd.read_text(encoding="utf-8"))["userStories"][0]["passes"] is True
    assert_clean(site)
    shutil.rmtree(ralph_tui.parents[1])
