"""Where agent-controlled code runs: the bash tool, the quality gates and the command agent's CLI.

One adapter, so every caller gets the same boundary: ``Sandbox.wrap(argv)`` is the command to
spawn and ``Sandbox.env()`` its environment. On Linux the boundary is bubblewrap:

- a new PID namespace (``--unshare-pid``) with ``--die-with-parent`` and ``--new-session``: the
  command sees its own ``/proc`` only, cannot push keys into ralph-tui's terminal, and when it
  ends (or ralph-tui kills it) the namespace dies with everything it started, ``setsid`` or not;
- ``/`` read-only, the workspace read-write except ``.git/`` and the bookkeeping files (PRD,
  progress log: read-only binds) and ``.ralph/`` (an empty read-only tmpfs over it);
- ``$HOME`` an empty tmpfs, except read-only binds of what the toolchain needs from it (the
  directories on ``PATH``, the virtualenvs and the Python installs behind them) and the user's
  ``read_only_paths``; ``/tmp`` private; no network with ``network = false``;
- an environment from an allow-list plus ``pass_env`` (secrets are never in ralph-tui's own
  environment to begin with: see ``credentials``).

On macOS ``sandbox-exec`` gets a profile with the same file rules (untested: no macOS here).
Without either, ``mode = "auto"`` runs commands unconfined and says so (``warning``).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ralph_tui import credentials
from ralph_tui.config import SandboxOptions
from ralph_tui.errors import UsageError

SandboxKind = Literal["bwrap", "sandbox-exec", "none"]
_PROBE_TIMEOUT_S = 10.0

# What the sandboxed environment keeps of ralph-tui's own (already secret-free) environment.
ALLOWED_ENV = frozenset(
    {
        "PATH", "LANG", "LANGUAGE", "TERM", "COLORTERM", "TZ", "HOME", "USER", "LOGNAME",
        "SHELL", "TMPDIR", "VIRTUAL_ENV", "CONDA_DEFAULT_ENV", "CI", "COLUMNS", "LINES",
        "NO_COLOR", "FORCE_COLOR", "CLICOLOR", "LD_LIBRARY_PATH", "PKG_CONFIG_PATH",
        "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
        "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY",
        "http_proxy", "https_proxy", "no_proxy", "all_proxy",
        "JAVA_HOME", "GOPATH", "GOROOT", "GOFLAGS", "CARGO_HOME", "RUSTUP_HOME",
        "NODE_PATH", "NVM_DIR", "PYENV_ROOT", "PYENV_VERSION",
    }
)  # fmt: skip
ALLOWED_PREFIXES = (
    "LC_", "XDG_", "PYTHON", "PIP_", "UV_", "POETRY_", "CONDA_", "PYTEST_", "MYPY_",
    "RUFF_", "COVERAGE_", "GIT_AUTHOR_", "GIT_COMMITTER_", "NPM_CONFIG_CACHE",
)  # fmt: skip


@dataclass(frozen=True)
class Sandbox:
    """How to run agent-controlled code in one workspace; ``kind == "none"``: unconfined."""

    kind: SandboxKind
    root: Path
    read_only: tuple[Path, ...] = ()  # files or dirs inside the workspace bound read-only
    hidden: tuple[Path, ...] = ()  # dirs inside the workspace replaced by an empty one
    network: bool = True
    pass_env: tuple[str, ...] = ()
    read_only_paths: tuple[Path, ...] = ()  # user-listed, visible under the private $HOME
    program: str = ""  # the bwrap / sandbox-exec executable
    warning: str | None = None  # why commands run unconfined although a sandbox was wanted
    private_dir: Path | None = field(default=None, compare=False)  # macOS: $HOME and $TMPDIR

    @classmethod
    def unconfined(cls, root: Path, warning: str | None = None) -> Sandbox:
        return cls("none", root, warning=warning)

    @property
    def confined(self) -> bool:
        return self.kind != "none"

    def describe(self) -> str:
        """One line for ``doctor`` and the run header."""
        if self.kind == "none":
            return self.warning or "off: commands run unconfined"
        net = "network on" if self.network else "network off"
        return f"{self.kind} ({self.program}): {net}, workspace read-write except .git/ and PRD"

    def wrap(
        self, argv: Sequence[str], cwd: Path | None = None, *, visible: Sequence[Path] = ()
    ) -> list[str]:
        """The argv that runs ``argv`` (in ``cwd``, default the root) inside the sandbox.

        ``visible``: files outside the workspace the command must read (a prompt file in the
        private ``/tmp``)."""
        where = cwd or self.root
        if self.kind == "bwrap":
            return [*self._bwrap_args(where, visible), "--", *argv]
        if self.kind == "sandbox-exec":
            return [self.program, "-p", self._seatbelt_profile(visible), "--", *argv]
        return list(argv)

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment for a sandboxed command: allow-listed variables, ``pass_env``, then
        ``extra``. Unconfined it is ralph-tui's own (secret-free) environment."""
        base = credentials.clean_env()
        if self.kind == "none":
            env = base
        else:
            env = {
                k: v for k, v in base.items() if k in ALLOWED_ENV or k.startswith(ALLOWED_PREFIXES)
            }
            if self.kind == "bwrap":
                env["TMPDIR"] = "/tmp"
            elif self.private_dir is not None:
                env["HOME"] = str(self.private_dir / "home")
                env["TMPDIR"] = str(self.private_dir / "tmp")
        for name in self.pass_env:
            value = credentials.get(name)
            if value is not None:
                env[name] = value
        if extra:
            env.update(extra)
        return env

    # ---- bubblewrap --------------------------------------------------------------------------

    def _bwrap_args(self, cwd: Path, visible: Sequence[Path]) -> list[str]:
        args = [self.program, "--die-with-parent", "--new-session", "--unshare-pid"]
        args += ["--unshare-ipc", "--unshare-uts"]
        if not self.network:
            args.append("--unshare-net")
        args += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
        # a private /tmp must not hide the toolchain: a checkout (and its .venv) under /tmp
        for keep in _toolchain_keeps(_TMP, self.root):
            args += ["--ro-bind-try", str(keep), str(keep)]
        home = _home()
        if home is not None and not _is_within(home, self.root):
            args += ["--tmpfs", str(home)]
            for keep in _toolchain_keeps(home, self.root):
                args += ["--ro-bind-try", str(keep), str(keep)]
        for path in (*self.read_only_paths, *visible):
            args += ["--ro-bind-try", str(path), str(path)]
        args += ["--bind", str(self.root), str(self.root)]
        git = self.root / ".git"
        if git.exists():
            args += ["--ro-bind", str(git), str(git)]
        for path in self.read_only:
            if path.exists():
                args += ["--ro-bind", str(path), str(path)]
        for path in self.hidden:
            if path.is_dir():
                args += ["--tmpfs", str(path), "--remount-ro", str(path)]
        args += ["--chdir", str(cwd)]
        return args

    # ---- sandbox-exec (macOS; untested) ------------------------------------------------------

    def _seatbelt_profile(self, visible: Sequence[Path]) -> str:
        def q(path: Path) -> str:
            return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'

        private = self.private_dir or Path(tempfile.gettempdir())
        rules = [
            "(version 1)",
            "(allow default)",
            "(deny file-write*)",
            f"(allow file-write* (subpath {q(self.root)}) (subpath {q(private)})"
            ' (literal "/dev/null") (literal "/dev/tty") (subpath "/dev/fd"))',
            f"(deny file-write* (subpath {q(self.root / '.git')}))",
        ]
        rules += [f"(deny file-write* (literal {q(p)}))" for p in self.read_only]
        rules += [f"(deny file-read* file-write* (subpath {q(p)}))" for p in self.hidden]
        home = _home()
        if home is not None and not _is_within(home, self.root):
            rules.append(f"(deny file-read* (subpath {q(home)}))")
            keeps = [*_toolchain_keeps(home, self.root), *self.read_only_paths, *visible, self.root]
            rules += [f"(allow file-read* (subpath {q(k)}))" for k in keeps]
        if not self.network:
            rules.append("(deny network*)")
        return "\n".join(rules)


def resolve_sandbox(
    options: SandboxOptions,
    root: Path,
    *,
    read_only: Iterable[Path] = (),
    hidden: Iterable[Path] = (),
    platform: str = sys.platform,
) -> Sandbox:
    """The sandbox ``options`` ask for, as far as this machine allows.

    Raises ``UsageError`` (exit 2) when a mode names a sandbox that is missing or broken.
    """
    root = root.resolve()
    pass_env = tuple(options.pass_env)
    if options.mode == "off":
        return Sandbox("none", root, pass_env=pass_env)
    wanted: SandboxKind = "sandbox-exec" if platform == "darwin" else "bwrap"
    if options.mode in ("bwrap", "sandbox-exec"):
        wanted = options.mode
    program = shutil.which(wanted)
    problem = f"{wanted} not found on PATH" if program is None else _probe(wanted, program)
    if problem is not None:
        if options.mode != "auto":
            install = (
                " (install the bubblewrap package)" if program is None and wanted == "bwrap" else ""
            )
            raise UsageError(f'sandbox mode = "{options.mode}": {problem}{install}')
        return Sandbox(
            "none",
            root,
            pass_env=pass_env,
            warning=f"no sandbox ({problem}): the agent's commands and the gates run "
            'unconfined, as you; install bubblewrap or set [sandbox] mode = "off"',
        )
    assert program is not None
    private = Path(tempfile.mkdtemp(prefix="ralph-sandbox-")) if wanted == "sandbox-exec" else None
    if private is not None:
        (private / "home").mkdir()
        (private / "tmp").mkdir()
    return Sandbox(
        wanted,
        root,
        read_only=tuple(Path(p).absolute() for p in read_only),
        hidden=tuple(Path(p).absolute() for p in hidden),
        network=options.network,
        pass_env=pass_env,
        read_only_paths=tuple(Path(p).expanduser().resolve() for p in options.read_only_paths),
        program=program,
        private_dir=private,
    )


@functools.cache
def _probe(kind: str, program: str) -> str | None:
    """None if ``program`` can run a trivial command with the options we use, else why not
    (user namespaces off, a container without the privileges); once per process."""
    if kind == "bwrap":
        argv = [program, "--die-with-parent", "--new-session", "--unshare-pid"]
        argv += ["--unshare-ipc", "--unshare-uts"]
        argv += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--", "true"]
    else:
        argv = [program, "-p", "(version 1)(allow default)", "--", "true"]
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_PROBE_TIMEOUT_S,
            env=credentials.clean_env(),
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{program} does not work: {exc}"
    if done.returncode != 0:
        why = done.stderr.decode("utf-8", "replace").strip().splitlines()
        return f"{program} does not work: {why[-1] if why else f'exit {done.returncode}'}"
    return None


_TMP = Path("/tmp").resolve()


def _home() -> Path | None:
    raw = os.environ.get("HOME")
    if not raw:
        return None
    home = Path(raw).resolve()
    return home if home.is_dir() and home != Path("/") else None


def _is_within(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


def _toolchain_keeps(home: Path, root: Path) -> list[Path]:
    """What under ``home`` (a folder the sandbox replaces with an empty one: the home, /tmp)
    the toolchain needs: the installs behind PATH, the virtualenv(s) and the Python they were
    made from (a pyenv or uv Python usually lives in the home; a CI checkout's .venv may live
    under /tmp)."""
    found: set[Path] = set()

    def add(path: Path) -> None:
        for candidate in {path, path.resolve()}:
            if _is_within(candidate, home) and candidate != home:
                # ~/.local/bin -> ~/.local (its lib/ holds the packages), but ~/bin stays ~/bin
                parent = candidate.parent
                found.add(parent if parent != home else candidate)

    def add_venv(venv: Path) -> None:
        cfg = venv / "pyvenv.cfg"
        if not cfg.is_file():
            return
        add(venv / "bin")
        try:
            lines = cfg.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return
        for line in lines:
            key, _, value = line.partition("=")
            if key.strip() == "home" and value.strip():
                add(Path(value.strip()))

    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if entry:
            add(Path(entry))
            add_venv(Path(entry).parent)
    for venv in (os.environ.get("VIRTUAL_ENV"), sys.prefix, root / ".venv", root / "venv"):
        if venv:
            add_venv(Path(venv))
    for prefix in (sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix):
        add(Path(prefix) / "bin")
    kept = sorted(p for p in found if p.exists())
    # drop what an already kept directory contains
    return [p for p in kept if not any(other in p.parents for other in kept)]
