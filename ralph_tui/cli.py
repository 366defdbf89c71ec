"""Command line (SPEC section 7). Every failure is one line on stderr and an exit code."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ralph_tui import __version__
from ralph_tui.agents.registry import agent_names
from ralph_tui.config import RalphConfig, load_config
from ralph_tui.errors import RalphError, UsageError
from ralph_tui.executors import executor_names
from ralph_tui.exit_codes import ExitCode
from ralph_tui.prd.store import PrdStore, prd_json_schema
from ralph_tui.safety import credentials, tempdirs
from ralph_tui.safety.text import counted, escape_controls

log = logging.getLogger("ralph_tui")


def _workspace_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--role", help="PRD role: tasks/<role>_prd.json (default: backend)")
    parser.add_argument(
        "--prd", metavar="PATH", help="the PRD file (default: tasks/<role>_prd.json, else prd.json)"
    )
    parser.add_argument(
        "--workspace", type=Path, default=Path.cwd(), help="the git repository (default: .)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ralph-tui", description="Run and supervise an autonomous coding agent over a PRD."
    )
    parser.add_argument("--version", action="version", version=f"ralph-tui {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    init = sub.add_parser("init", help="scaffold the PRD, progress log and ralph.toml")
    _workspace_args(init)

    run = sub.add_parser("run", help="run the loop (the TUI unless --headless)")
    _workspace_args(run)
    run.add_argument("--agent", choices=agent_names())
    run.add_argument("--model")
    run.add_argument("--max-iterations", type=int)
    run.add_argument("--workers", type=int, help="stories run at once, each in a git worktree")
    run.add_argument(
        "--executor", choices=executor_names(), help="where workers run (ray: [ray] in ralph.toml)"
    )
    run.add_argument("--headless", action="store_true", help="no TUI: a line-oriented log")
    run.add_argument(
        "--approve",
        choices=["ask", "auto"],
        help="who approves commits: ask (a human, the default) or auto (when the gates pass)",
    )
    run.add_argument("--allow-dirty", action="store_true", help="start on a dirty working tree")
    run.add_argument("--listen", metavar="HOST:PORT", help="serve the run to attach/web clients")
    run.add_argument(
        "--listen-public", action="store_true", help="allow --listen on a non-loopback address"
    )
    run.add_argument("--branch", metavar="NAME", help="work on this branch (default: the PRD's)")
    run.add_argument(
        "--pr",
        action="store_true",
        help="[tracker]: when every story passes, push the branch and open a pull request",
    )

    attach = sub.add_parser("attach", help="open the TUI on a run served with run --listen")
    attach.add_argument("url", nargs="?", help="the run's URL (default: .ralph/serve.json)")
    attach.add_argument(
        "--token-file", type=Path, help="file holding the run's token (default: $RALPH_TOKEN)"
    )
    attach.add_argument("--token", help=argparse.SUPPRESS)  # refused: see _remote_target
    attach.add_argument("--workspace", type=Path, default=Path.cwd(), help="(default: .)")

    web = sub.add_parser("web", help="serve the attached TUI to a browser (textual-serve)")
    web.add_argument("url", nargs="?", help="the run's URL (default: .ralph/serve.json)")
    web.add_argument(
        "--token-file", type=Path, help="file holding the run's token (default: $RALPH_TOKEN)"
    )
    web.add_argument("--token", help=argparse.SUPPRESS)  # refused: see _remote_target
    web.add_argument("--workspace", type=Path, default=Path.cwd(), help="(default: .)")
    web.add_argument("--host", default="127.0.0.1", help="address to serve on")
    web.add_argument("--port", type=_port, default=8000, help="0 picks a free one")
    web.add_argument("--public", action="store_true", help="allow a non-loopback --host")

    demo = sub.add_parser("demo", help="offline demo project and scripted agent, in the TUI")
    demo.add_argument(
        "dir", nargs="?", type=Path, help="where to build it (default: a temp folder)"
    )

    validate = sub.add_parser("validate", help="check the PRD and the configuration")
    _workspace_args(validate)

    status = sub.add_parser("status", help="the board as a table")
    _workspace_args(status)

    sub.add_parser("schema", help="print the PRD's JSON Schema")

    imp = sub.add_parser(
        "import", help="write the PRD from another tool's backlog (see --list-formats)"
    )
    imp.add_argument(
        "file",
        type=Path,
        nargs="?",
        help="the backlog file (or a folder of *.code-task.md), or github:OWNER/REPO or "
        "linear:TEAM/PROJECT (the open issues)",
    )
    imp.add_argument("--label", help="github:/linear: only the issues with this label")
    imp.add_argument("--api-url", help="github:/linear: the API's base URL (default: public)")
    imp.add_argument("--list-formats", action="store_true", help="name every format it reads")
    _workspace_args(imp)
    imp.add_argument("--force", action="store_true", help="replace an existing PRD")

    draft = sub.add_parser("prd", help="draft a PRD from an idea with the configured model")
    draft.add_argument("idea", help='what to build, e.g. "a REST API for an inventory"')
    _workspace_args(draft)
    draft.add_argument("--model")
    draft.add_argument("--force", action="store_true", help="replace an existing PRD")

    doctor = sub.add_parser("doctor", help="check the workspace, gates and agent setup")
    _workspace_args(doctor)
    doctor.add_argument("--agent", choices=agent_names())
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="ralph-tui: %(levelname)s: %(message)s")
    args = build_parser().parse_args(argv)
    # before anything is spawned: the API keys leave os.environ (see credentials)
    credentials.withhold()
    tempdirs.sweep()  # what a killed ralph-tui left in the temp folder
    try:
        return _dispatch(args)
    except RalphError as exc:
        print(f"ralph-tui: {escape_controls(str(exc))}", file=sys.stderr)  # may quote the PRD
        return exc.exit_code
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    finally:
        if argv is None:  # the program, about to exit (tests pass argv and go on)
            _quick_exit()


def _quick_exit() -> None:
    """Keep the interpreter's last garbage collection from walking the whole heap.

    After the ``anthropic`` SDK's import (thousands of pydantic types) that collection alone
    took 0.4-0.6 s between the run's last commit and the shell prompt. Everything the run owns
    is closed by now (journal, worktrees, agent, server); the heap is frozen out of that
    collection, and atexit handlers and stream flushes still run as before.
    """
    gc.freeze()


def _dispatch(args: argparse.Namespace) -> int:
    handlers = {
        "init": _cmd_init,
        "run": _cmd_run,
        "demo": _cmd_demo,
        "validate": _cmd_validate,
        "status": _cmd_status,
        "schema": _cmd_schema,
        "doctor": _cmd_doctor,
        "attach": _cmd_attach,
        "web": _cmd_web,
        "import": _cmd_import,
        "prd": _cmd_prd,
    }
    return handlers[str(args.command)](args)


def _workspace(args: argparse.Namespace) -> Path:
    path: Path = args.workspace.expanduser().resolve()
    if not path.is_dir():
        raise UsageError(f"{path}: no such directory")
    return path


def _config(
    args: argparse.Namespace,
    workspace: Path,
    *,
    pin: bool = True,
    need_prd: bool = True,
    **flags: Any,
) -> RalphConfig:
    """The configuration; ``pin``: with its PRD chosen now (see ``RalphConfig.pinned``);
    ``need_prd`` (with ``pin``): a ``prd`` the configuration file names must exist (init
    creates it; import and prd, which do not pin, write it)."""
    overrides = {"role": getattr(args, "role", None), "prd": _prd_flag(args)}
    config = load_config(workspace, {**overrides, **flags})
    if pin and need_prd:
        _require_configured_prd(config, workspace)
    return config.pinned(workspace) if pin else config


def _port(value: str) -> int:
    """A TCP port for argparse: its own one-line error, not a traceback from ``bind``."""
    if not value.isdigit() or int(value) > 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port (0-65535)")
    return int(value)


def _inside_repository(workspace: Path, *paths: Path) -> None:
    """Before anything is written: a PRD (and its log) outside the repository is refused, as a
    run would refuse it, instead of being created there."""
    for path in paths:
        if not path.resolve().is_relative_to(workspace.resolve()):
            raise UsageError(
                f"{path}: outside the repository {workspace}; the PRD and its progress log are "
                "committed with each story, so they must live in it"
            )


def _prd_flag(args: argparse.Namespace) -> str | None:
    """``--prd`` as an absolute path: a path typed on the command line is from the cwd."""
    given = getattr(args, "prd", None)
    return str(Path.cwd().resolve() / Path(given).expanduser()) if given else None


def _require_configured_prd(config: RalphConfig, workspace: Path) -> None:
    """A ``prd = ...`` in ralph.toml naming no file is said with the file and the key that
    named it: the path alone sends the user looking for a flag they never typed."""
    origin = config.prd_origin
    if origin is None or origin == "--prd" or config.prd is None:
        return  # --prd: the path the user typed is in the error already
    path = config.prd_path(workspace)
    if path.exists() or path.is_symlink():
        return  # anything else wrong with it is the PRD reader's to say
    raise UsageError(
        f"{origin}: prd = {json.dumps(config.prd)}: {escape_controls(str(path), multiline=False)}"
        ": file not found (create it with "
        "`ralph-tui init` or `import`, or fix prd there)"
    )


def _cmd_run(args: argparse.Namespace) -> int:
    workspace = _workspace(args)
    config = _config(
        args,
        workspace,
        agent=args.agent,
        model=args.model,
        max_iterations=args.max_iterations,
        approve=args.approve,
        workers=args.workers,
        executor=args.executor,
        listen=args.listen,
        listen_public=args.listen_public or None,
        branch=args.branch,
    )
    if args.pr:
        if config.tracker is None:
            raise UsageError("--pr: needs a [tracker] table in ralph.toml (github or linear)")
        config = config.model_copy(
            update={"tracker": config.tracker.model_copy(update={"pull_request": True})}
        )
    from ralph_tui.approvals import approvals_automatic
    from ralph_tui.runs import make_run_factory

    if args.headless:
        from ralph_tui.agents import warm_up
        from ralph_tui.headless import run_headless

        warm_up(config)  # the TUI does it once its first frame is painted

        _print_prd_warnings(config.prd_path(workspace))

        # with --listen and --approve ask, clients decide; the console too when it is a terminal
        ask_local = approvals_automatic(config) or not config.listen or sys.stdin.isatty()
        factory = make_run_factory(
            workspace,
            config,
            allow_dirty=args.allow_dirty,
            ask_local=ask_local,
            terminal=_terminal_writer(),
        )
        return asyncio.run(
            run_headless(workspace, config, allow_dirty=args.allow_dirty, run_factory=factory)
        )
    from ralph_tui.tui.app import run_tui

    # the TUI rings its own bell; the notifier adds the command, webhook and notify-send
    factory = make_run_factory(workspace, config, allow_dirty=args.allow_dirty)
    return run_tui(workspace, config, allow_dirty=args.allow_dirty, run_factory=factory)


def _print_prd_warnings(path: Path) -> None:
    """What `validate` would warn about, said before a headless run starts (a repeated id)."""
    from ralph_tui.prd.store import PrdError

    try:
        warnings = PrdStore(path).check()[1]
    except PrdError:
        return  # the run itself reports an unreadable PRD, in its usual order
    for warning in warnings:
        print(escape_controls(warning, multiline=False), file=sys.stderr)


def _terminal_writer() -> Callable[[str], None] | None:
    """The headless console's terminal, for the bell and OSC notifications (None: not a tty)."""
    if not sys.stdout.isatty():
        return None

    def write(data: str) -> None:
        sys.stdout.write(data)
        sys.stdout.flush()

    return write


TOKEN_FILE_MAX = 4096


def _read_token_file(path: Path) -> str:
    """The token in ``path`` (surrounding whitespace dropped), with a one-line error naming the
    file when it cannot be read, is empty or is too big to be a token."""
    try:
        with path.open("rb") as handle:
            data = handle.read(TOKEN_FILE_MAX + 1)
    except OSError as exc:
        raise UsageError(f"--token-file {path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > TOKEN_FILE_MAX:
        raise UsageError(f"--token-file {path}: larger than {TOKEN_FILE_MAX} bytes, not a token")
    token = data.decode("utf-8", errors="replace").strip()
    if not token:
        raise UsageError(f"--token-file {path}: the file is empty")
    return token


def _remote_target(args: argparse.Namespace) -> tuple[str, str]:
    """URL and token: the arguments, then $RALPH_TOKEN, then the workspace's serve.json."""
    from ralph_tui.server.http import read_serve_file
    from ralph_tui.server.protocol import TOKEN_ENV

    if args.token is not None:
        # argv is world-readable (/proc/<pid>/cmdline, ps): any local user could take the run
        raise UsageError(
            "--token: a token on the command line is visible to every local user in the "
            f"process list; use --token-file FILE or ${TOKEN_ENV}"
        )
    # RALPH_TOKEN looks like a secret, so credentials.withhold() has moved it to the vault
    token = _read_token_file(args.token_file) if args.token_file else None
    url, token = args.url, token or credentials.get(TOKEN_ENV)
    if url and token:
        return str(url), str(token)
    served_url, served_token = read_serve_file(_workspace(args))
    return str(url or served_url), str(token or served_token)


def _cmd_attach(args: argparse.Namespace) -> int:
    from ralph_tui.tui.remote import run_attach

    url, token = _remote_target(args)
    return run_attach(url, token)


def _cmd_web(args: argparse.Namespace) -> int:
    from ralph_tui.server.web import serve_web

    url, token = _remote_target(args)

    def started(address: str) -> None:
        print(f"ralph-tui web: open {address}", flush=True)

    async def serve() -> None:
        # SIGTERM and SIGHUP end it like Ctrl-C: every tab's process is stopped on the way out
        task = asyncio.current_task()
        assert task is not None
        for sig in (signal.SIGTERM, signal.SIGHUP):
            asyncio.get_running_loop().add_signal_handler(sig, task.cancel)
        await serve_web(
            url, token, host=args.host, port=args.port, public=args.public, started=started
        )

    try:
        asyncio.run(serve())
    except asyncio.CancelledError:
        return 0
    except OSError as exc:
        raise UsageError(f"--port {args.port}: cannot serve: {exc.strerror}") from exc
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from ralph_tui.demo import create_demo_project
    from ralph_tui.safety.tempdirs import process_dir
    from ralph_tui.tui.app import run_tui

    # without a folder of its own the demo lives in this process's temp folder, removed at exit
    target = args.dir or process_dir() / "inventory-service"
    workspace = create_demo_project(target.expanduser().resolve())
    kept = "" if args.dir else " (removed when you quit; `ralph-tui demo DIR` keeps it)"
    print(f"ralph-tui demo project: {workspace}{kept}", file=sys.stderr)
    code = run_tui(workspace, load_config(workspace))
    # quitting is how a demo ends: not an error for `make demo` to report ("Error 130")
    return 0 if code == ExitCode.INTERRUPTED else code


def _say_prd(config: RalphConfig, workspace: Path) -> None:
    """Which PRD a command reads, when it was found (prd.json) rather than configured."""
    note = config.prd_note
    if note:
        print(f"ralph-tui: {escape_controls(note, multiline=False)}", file=sys.stderr)


def _cmd_validate(args: argparse.Namespace) -> int:
    workspace = _workspace(args)
    config = _config(args, workspace)
    _say_prd(config, workspace)
    path = config.prd_path(workspace)
    from ralph_tui.prd.format import PrdError, require_stories

    try:
        prd, warnings = PrdStore(path).check()
    except PrdError as exc:  # every problem, one line each (other commands name the first)
        for line in [str(exc), *exc.more]:
            print(f"ralph-tui: {escape_controls(line, multiline=False)}", file=sys.stderr)
        return exc.exit_code
    for warning in warnings:  # ids and keys come from the file: no terminal escapes
        print(escape_controls(warning, multiline=False), file=sys.stderr)
    require_stories(prd, path, tracker=config.tracker is not None)  # as `run` does
    done = sum(1 for s in prd.userStories if s.passes)
    if any(s.title == PLACEHOLDER_TITLE for s in prd.userStories):
        untouched = (
            f"{path}: still holds the example story from `ralph-tui init` "
            f"({PLACEHOLDER_TITLE!r}): write your stories or `ralph-tui import` a PRD"
        )
        warnings = [*warnings, untouched]
        print(escape_controls(untouched, multiline=False), file=sys.stderr)
    noted = f", {counted(len(warnings), 'warning')}" if warnings else ""
    print(f"{path}: ok ({counted(len(prd.userStories), 'story')}, {done} passing{noted})")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    workspace = _workspace(args)
    config = _config(args, workspace)
    _say_prd(config, workspace)
    prd, warnings = PrdStore(config.prd_path(workspace)).check()
    for warning in warnings:
        print(escape_controls(warning, multiline=False), file=sys.stderr)
    order = {s.key: i for i, s in enumerate(prd.pick_order(), start=1)}
    rows = [("ID", "PRIORITY", "STATUS", "NEXT", "TITLE")]
    for s in prd.userStories:
        waiting = prd.waiting_on(s)
        status = "passed" if s.passes else f"waiting on {', '.join(waiting)}" if waiting else "open"
        pick = str(order[s.key]) if s.key in order else ""
        priority = "" if s.priority is None else str(s.priority)
        title = f"{s.title}  {s.link}" if s.link else s.title  # the tracker's issue
        rows.append((s.key, priority, status, pick, title))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        cells = [row[i].ljust(widths[i]) for i in range(4)]
        print(escape_controls("  ".join([*cells, row[4]]).rstrip(), multiline=False))
    done = sum(1 for s in prd.userStories if s.passes)
    name = escape_controls(prd.project or config.prd_path(workspace).name, multiline=False)
    print(f"\n{name}: {done}/{len(prd.userStories)} passing")
    print(escape_controls(_branch_line(workspace, config, prd.branchName), multiline=False))
    return 0


def _branch_line(workspace: Path, config: RalphConfig, prd_branch: str | None) -> str:
    from ralph_tui.git.branching import wanted_branch
    from ralph_tui.git.repo import GitRepo

    try:
        ref = GitRepo.open(workspace).head_branch()
    except RalphError:
        return "branch: (not a git repository with commits)"
    current = ref.removeprefix("refs/heads/") if ref else "(detached HEAD)"
    wanted = wanted_branch(config.branch, prd_branch)
    if wanted is None or wanted == current:
        return f"branch: {current}"
    return f"branch: {current} (the run will work on {wanted})"


def _cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(prd_json_schema(), indent=2))
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from ralph_tui.prd.importers import FORMATS, import_prd

    if args.list_formats:
        width = max(len(f.name) for f in FORMATS)
        for f in FORMATS:
            print(f"{f.name.ljust(width)}  {f.files}: {f.what}")
        return 0
    if args.file is None:
        raise UsageError("import: name the backlog file to read (or --list-formats)")
    workspace = _workspace(args)
    config = _config(args, workspace, pin=False)
    target = config.new_prd_path(workspace)
    _inside_repository(workspace, target)
    if str(args.file).startswith(("github:", "linear:")):
        return _import_tracker(str(args.file), args, workspace, target)
    if args.label or args.api_url:
        raise UsageError("import: --label and --api-url are for github:/linear: sources")
    source = args.file.expanduser()
    if source.exists() and target.exists() and source.samefile(target):
        # --force would replace the file being read (a Markdown PRD) with its conversion
        raise UsageError(
            f"import: {source} is the file the PRD would be written to (--prd or prd = ... "
            f"names it): write the PRD elsewhere, e.g. --prd tasks/{config.role}_prd.json"
        )
    imported = import_prd(source, target, force=args.force)
    print(f"imported {source} ({imported.source_kind}) -> {target.relative_to(workspace)}")
    for line in imported.mapped:  # titles come from the file: no terminal escapes
        print(f"  {escape_controls(line, multiline=False)}")
    for note in imported.notes:
        print(f"  note: {escape_controls(note, multiline=False)}")
    for gone in imported.dropped:
        print(f"  dropped: {escape_controls(gone, multiline=False)}")
    if not imported.dropped:
        print("  dropped: nothing")
    try:
        config.pinned(workspace)
    except UsageError as exc:  # e.g. the snarktank prd.json it came from is still there
        print(f"  next: {escape_controls(str(exc), multiline=False)}")
    return 0


def _import_tracker(source: str, args: argparse.Namespace, workspace: Path, target: Path) -> int:
    """``import github:OWNER/REPO`` / ``linear:TEAM/PROJECT``: the open issues, once, as a
    PRD file (a run with ``[tracker]`` syncs them itself)."""
    from ralph_tui.prd.format import validate_prd, write_new
    from ralph_tui.prd.importers import write_atomic
    from ralph_tui.trackers import TrackerIssue, build_tracker, options_from_source
    from ralph_tui.trackers.sync import new_document, sync_document

    if target.exists() and not args.force:
        raise UsageError(f"{target}: a PRD is already there (use --force to replace it)")
    options = options_from_source(source, args.label, args.api_url)

    async def read() -> list[TrackerIssue]:
        tracker = build_tracker(options)
        try:
            return list(await tracker.open_issues())
        finally:
            await tracker.aclose()

    issues = asyncio.run(read())
    if not issues:  # an empty PRD would be refused by validate and run
        labelled = f" labelled {args.label}" if args.label else ""
        raise UsageError(f"{source}: no open issues{labelled}; {target} not written")
    kind, _, name = source.partition(":")
    doc, added, _, _ = sync_document(new_document(source, kind, name), issues, kind)
    validate_prd(doc, target)
    write_atomic(target, write_new(doc))
    where = target.relative_to(workspace)
    print(f"imported {source} ({counted(len(added), 'open issue')}) -> {where}")
    for issue in issues:  # titles come from the tracker: no terminal escapes
        print(f"  {escape_controls(f'{issue.story_id}: {issue.title}', multiline=False)}")
    return 0


def _cmd_prd(args: argparse.Namespace) -> int:
    from ralph_tui.draft import draft_prd

    workspace = _workspace(args)
    config = _config(args, workspace, pin=False, model=args.model)
    target = config.new_prd_path(workspace)
    _inside_repository(workspace, target)
    drafted = asyncio.run(draft_prd(args.idea, config, target, force=args.force))
    tries = "" if drafted.attempts == 1 else f" after {drafted.attempts} tries"
    print(
        f"wrote {target.relative_to(workspace)}: {len(drafted.prd.userStories)} stories{tries}, "
        f"cost ${drafted.cost_usd:.4f} ({config.model})"
    )
    for story in drafted.prd.userStories:  # the model's text: no terminal escapes
        print(escape_controls(f"  {story.key}: {story.title}", multiline=False))
    print("review it (ralph-tui status), then: ralph-tui run")
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from ralph_tui.doctor import run_doctor

    overrides = {"role": args.role, "agent": args.agent, "prd": _prd_flag(args)}
    return run_doctor(_workspace(args), overrides, sys.stdout)


INIT_CONFIG = """\
# ralph-tui configuration. Command-line flags override these values.
{prd_line}role = "{role}"
agent = "anthropic"            # {agents}
model = "claude-sonnet-4-5"
# fallback = ["anthropic:claude-haiku-4-5"]  # continue on these when the agent is rate-limited
max_iterations = 10
max_fix_attempts = 3
# max_cost_usd = 5.0
# persona = "agents/backend.md"  # Markdown with YAML front matter

[gates]                        # name = command, run in the workspace, concurrently
tests = "pytest -q"
types = "mypy ."
lint = "ruff check ."

[gate_options]
timeout_s = 600

# [pm]                         # a product-manager agent answers the agent's questions
# mode = "suggest"             # or "answer": it answers when nobody did within answer_after
# answer_after = 300
"""


PLACEHOLDER_TITLE = "Describe the first story"


def _cmd_init(args: argparse.Namespace) -> int:
    from ralph_tui.safety.names import branch_for

    workspace = _workspace(args)
    if not (workspace / ".git").exists():
        raise UsageError(
            f"{workspace}: not a git repository (ralph-tui commits each story): run `git init` "
            "there first, or pass --workspace"
        )
    config = _config(args, workspace, need_prd=False)  # a prd.json already there is kept
    role = config.role
    created: list[Path] = []
    prd_path = config.prd_path(workspace)
    _inside_repository(workspace, prd_path, config.progress_path(workspace))
    if not prd_path.exists():
        prd_path.parent.mkdir(parents=True, exist_ok=True)
        example = {
            "project": workspace.name,
            "branchName": branch_for(workspace.name) or "ralph/work",
            "description": "What this PRD is for.",
            "userStories": [
                {
                    "id": "US-001",
                    "title": PLACEHOLDER_TITLE,
                    "description": "As a <user>, I want <capability> so that <benefit>.",
                    "acceptanceCriteria": ["A behaviour a test can check", "Typecheck passes"],
                    "priority": 1,
                    "passes": False,
                    "notes": "",
                }
            ],
        }
        prd_path.write_text(json.dumps(example, indent=2) + "\n", encoding="utf-8")
        created.append(prd_path)
    progress = config.progress_path(workspace)
    if not progress.exists():
        progress.write_text(f"# {role} progress log\n\n", encoding="utf-8")
        created.append(progress)
    toml_path = workspace / "ralph.toml"
    if not toml_path.exists():
        prd_line = ""
        # a found prd.json, named: a tasks/ PRD added later changes nothing; one --prd named:
        # the later commands, typed without --prd, read the PRD init made
        if config.prd_note or _prd_flag(args):
            found = json.dumps(prd_path.relative_to(workspace).as_posix())
            why = "where snarktank's loop keeps it" if config.prd_note else "named by init --prd"
            prd_line = f"prd = {found.ljust(24)} # {why}\n"
        toml_path.write_text(
            INIT_CONFIG.format(role=role, prd_line=prd_line, agents=" | ".join(agent_names())),
            encoding="utf-8",
        )
        created.append(toml_path)
    exclude = workspace / ".git" / "info" / "exclude"
    if (workspace / ".git").is_dir():
        exclude.parent.mkdir(parents=True, exist_ok=True)
        current = exclude.read_text(encoding="utf-8") if exclude.exists() else ""
        if ".ralph/" not in current.splitlines():
            sep = "" if not current or current.endswith("\n") else "\n"
            exclude.write_text(f"{current}{sep}.ralph/\n", encoding="utf-8")
    _say_prd(config, workspace)
    for path in created:
        print(f"created {path.relative_to(workspace)}")
    if not created:
        print("nothing to do: the PRD, progress log and ralph.toml already exist")
        return 0
    prd_rel = prd_path.relative_to(workspace)
    listed = " ".join(str(p.relative_to(workspace)) for p in created)
    first = (
        f"your stories are in {prd_rel}, as snarktank's loop keeps them"
        if config.prd_note
        else f"write your stories in {prd_rel}, or bring a PRD you have: "
        "ralph-tui import FILE --force"
    )
    print(
        "next:\n"
        f"  1. {first}\n"
        f"  2. commit them (a run starts from a clean tree): git add {listed} && "
        'git commit -m "ralph-tui: PRD"\n'
        "  3. ralph-tui validate, then ralph-tui run"
    )
    return 0
