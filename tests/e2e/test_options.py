"""The options a user can type that no other end-to-end test reaches, each through the
installed executable: ``run --model``/``--allow-dirty``, ``--role`` and ``--prd`` on ``import``,
``prd`` and ``doctor``, and ``web``'s ``--host``/``--public``/``--port``."""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.error
import urllib.request

from tests.e2e.support import RALPH_TUI, Site, assert_clean, assert_stories_landed, stories
from tests.e2e.test_commands import DRAFT
from tests.support.fake_anthropic import reply
from tests.support.repo import git, make_repo
from tests.test_import import MARKDOWN


def test_run_model_is_the_model_every_request_names(site: Site) -> None:
    root = site.repo(1)
    done = site.ralph(
        "run", "--headless", "--approve", "auto", "--agent", "anthropic",
        "--model", "claude-e2e-model-1",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    assert {r.body["model"] for r in site.api.requests} == {"claude-e2e-model-1"}
    assert_stories_landed(root, ["US-001"], ["Story 1"])


def test_run_allow_dirty_leaves_the_users_own_change_out_of_the_commit(site: Site) -> None:
    root = site.repo(1)
    (root / "notes.md").write_text("my own notes, not committed yet\n", encoding="utf-8")
    refused = site.ralph("run", "--headless", "--approve", "auto", "--agent", "anthropic")
    assert refused.returncode == 2
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--allow-dirty" in lines[0] and "notes.md" in lines[0], lines
    assert site.api.requests == []

    done = site.ralph(
        "run", "--headless", "--approve", "auto", "--agent", "anthropic", "--allow-dirty"
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    assert_stories_landed(root, ["US-001"], ["Story 1"])
    assert "notes.md" not in git(root, "ls-tree", "-r", "--name-only", "HEAD")
    assert (root / "notes.md").read_text(encoding="utf-8") == "my own notes, not committed yet\n"
    assert git(root, "status", "--porcelain") == "?? notes.md\n"


def test_role_and_prd_name_the_files_import_prd_and_doctor_use(site: Site) -> None:
    root = site.repo(1)
    source = site.base / "prd-task-priority.md"
    source.write_text(MARKDOWN, encoding="utf-8")
    imported = site.ralph("import", str(source), "--role", "frontend")
    assert imported.returncode == 0, imported.stderr
    assert "tasks/frontend_prd.json" in imported.stdout
    assert json.loads((root / "tasks/frontend_prd.json").read_text(encoding="utf-8"))

    site.api.add(reply("```json\n" + json.dumps(DRAFT) + "\n```"))
    drafted = site.ralph(
        "prd", "a REST API for an inventory", "--role", "api", "--prd", "plans/api.json",
        "--model", "claude-e2e-drafter",
    )  # fmt: skip
    assert drafted.returncode == 0, drafted.stdout + drafted.stderr
    assert "wrote plans/api.json" in drafted.stdout and "(claude-e2e-drafter)" in drafted.stdout
    assert [r.body["model"] for r in site.api.requests] == ["claude-e2e-drafter"]
    assert json.loads((root / "plans/api.json").read_text(encoding="utf-8"))["userStories"]

    doctor = site.ralph("doctor", "--role", "frontend")
    assert "tasks/frontend_prd.json" in doctor.stdout, doctor.stdout
    assert "tasks/backend_prd.json" not in doctor.stdout


def _open(url: str) -> int:
    request = urllib.request.Request(url)
    opener = urllib.request.build_opener(_NoRedirect())
    try:
        with opener.open(request, timeout=30) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as refused:
        return int(refused.code)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def test_web_host_public_and_port(site: Site) -> None:
    site.root.mkdir()  # web needs no repository: a folder to start it from
    token = site.base / "token"
    token.write_text("e2e-web-token\n", encoding="utf-8")
    run_url = "http://127.0.0.1:9"  # the page is served before any run is reached
    refused = site.ralph("web", run_url, "--token-file", str(token), "--host", "0.0.0.0")
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "ralph-tui: --host 0.0.0.0: not a loopback address; add --public to serve it"
    ]
    for extra in (["--port", "0"], ["--host", "0.0.0.0", "--public", "--port", "0"]):
        web = subprocess.Popen(
            [str(RALPH_TUI), "web", run_url, "--token-file", str(token), *extra],
            cwd=site.base,
            env=site.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert web.stdout is not None
            shown = web.stdout.readline().strip()
            assert shown.startswith("ralph-tui web: open http://"), shown
            url = shown.split("open ", 1)[1]
            port = int(url.split("/?", 1)[0].rsplit(":", 1)[1])
            assert port > 0, url  # the port the system chose, not 0
            local = f"http://127.0.0.1:{port}"
            assert _open(f"{local}/?token=e2e-web-token") == 302  # the cookie, then the page
            assert _open(f"{local}/") == 401  # no token
        finally:
            web.send_signal(signal.SIGTERM)
            try:
                _, errors = web.communicate(timeout=30)
            finally:
                if web.poll() is None:
                    web.kill()
                    web.wait()
        assert "Traceback" not in errors, errors  # stopped (SIGTERM), it ends cleanly
    assert_clean_temp(site)


def assert_clean_temp(site: Site) -> None:
    assert sorted(p.name for p in site.temp.iterdir()) == []


def test_role_and_workspace_on_validate_status_and_run(site: Site) -> None:
    """A repository whose ralph.toml names no role: ``--role`` picks the PRD, the progress log
    and the commit subject's role; ``--workspace`` runs it from another folder."""
    root = make_repo(site.root, stories(1), role="frontend")
    config = (root / "ralph.toml").read_text(encoding="utf-8")
    (root / "ralph.toml").write_text(config.replace('role = "frontend"\n', ""), encoding="utf-8")
    git(root, "commit", "-qam", "no role in ralph.toml")
    elsewhere = ["--workspace", str(root)]
    assert site.ralph("validate", *elsewhere).returncode == 2  # tasks/backend_prd.json
    valid = site.ralph("validate", "--role", "frontend", *elsewhere)
    assert valid.returncode == 0, valid.stdout + valid.stderr
    status = site.ralph("status", "--role", "frontend", *elsewhere)
    assert "US-001" in status.stdout and "0/1 passing" in status.stdout, status.stdout
    done = site.ralph(
        "run", "--headless", "--approve", "auto", "--agent", "anthropic", "--role", "frontend",
        *elsewhere,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    assert git(root, "log", "-1", "--format=%s") == "[frontend] Task #US-001: Story 1\n"
    progress = (root / "tasks/frontend_progress.txt").read_text(encoding="utf-8")
    assert "## Task #US-001: Story 1" in progress
    assert_clean(site)


def test_listen_public_attach_and_prd_from_another_folder(site: Site) -> None:
    root = site.repo(1)
    refused = site.ralph("run", "--headless", "--listen", "0.0.0.0:0")
    assert refused.returncode == 2
    assert [line for line in refused.stderr.splitlines() if line.strip()] == [
        "ralph-tui: --listen 0.0.0.0:0: not a loopback address; add --listen-public to serve "
        "the run to the network"
    ]
    served = site.ralph(
        "run", "--headless", "--approve", "auto", "--agent", "anthropic",
        "--listen", "0.0.0.0:0", "--listen-public",
    )  # fmt: skip
    assert served.returncode == 0, served.stdout[-3000:] + served.stderr
    assert "serving this run on" in served.stdout
    assert_stories_landed(root, ["US-001"], ["Story 1"])
    no_run = site.ralph("attach", "--workspace", str(root))
    assert no_run.returncode == 2 and len(no_run.stderr.strip().splitlines()) == 1
    assert ".ralph/serve.json" in no_run.stderr, no_run.stderr
    site.api.add(reply("```json\n" + json.dumps(DRAFT) + "\n```"))
    drafted = site.ralph("prd", "an inventory API", "--force", "--workspace", str(root))
    assert drafted.returncode == 0, drafted.stdout + drafted.stderr
    prd = json.loads((root / "tasks/backend_prd.json").read_text(encoding="utf-8"))
    assert [s["title"] for s in prd["userStories"]] == ["Item model"]


def test_init_prd_and_role_name_what_it_creates(site: Site) -> None:
    """``init --prd`` writes the path into ralph.toml (the commands typed after it, without
    ``--prd``, read that PRD); one outside the repository is refused before anything is
    written (it used to be created there, and then a traceback)."""
    root = site.new_repo()
    outside = site.base / "elsewhere" / "prd.json"
    refused = site.ralph("init", "--prd", str(outside))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert refused.stderr.strip().splitlines() == [
        f"ralph-tui: {outside}: outside the repository {root}; the PRD and its progress log "
        "are committed with each story, so they must live in it"
    ]
    assert not (site.base / "elsewhere").exists()  # nothing written, here or there
    assert git(root, "status", "--porcelain") == ""
    made = site.ralph("init", "--prd", "plans/sprint.json", "--role", "api")
    assert made.returncode == 0, made.stdout + made.stderr
    assert "created plans/sprint.json" in made.stdout and (root / "plans/sprint.json").is_file()
    config = (root / "ralph.toml").read_text(encoding="utf-8")
    assert 'prd = "plans/sprint.json"' in config and 'role = "api"' in config, config
    valid = site.ralph("validate")
    assert valid.returncode == 0, valid.stdout + valid.stderr


def test_import_and_prd_refuse_a_prd_outside_the_repository(site: Site) -> None:
    root = site.repo(1)
    source = site.base / "plan.md"
    source.write_text(MARKDOWN, encoding="utf-8")
    outside = site.base / "elsewhere" / "prd.json"
    for argv in (["import", str(source), "--force"], ["prd", "an idea", "--force"]):
        refused = site.ralph(*argv, "--prd", str(outside))
        assert refused.returncode == 2, refused.stdout + refused.stderr
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1 and "outside the repository" in lines[0], lines
    assert not (site.base / "elsewhere").exists()
    assert site.api.requests == []  # prd asked no model
    assert git(root, "status", "--porcelain") == ""
