"""Where agent-controlled code runs: the bash tool, the quality gates and the command agent's CLI.

One adapter, so every caller gets the same boundary: ``Sandbox.wrap(argv)`` is the command to
spawn and ``Sandbox.env()`` its environment. On Linux the boundary is bubblewrap, with no power
whoever starts it (root included, as in containers and CI):

- its own user namespace (``--unshare-user``, no further ones: ``--disable-userns``) and every
  capability dropped (``--cap-drop ALL``), under a seccomp filter (``seccomp.py``) that refuses
  mount, ptrace, keyctl, bpf, module loading, new namespaces and the like;
- a new PID namespace with ``--die-with-parent`` and ``--new-session``: the command sees its own
  ``/proc`` only (``/proc/sys`` read-only, ``/sys`` not mounted), cannot push keys into
  ralph-tui's terminal, and dies with everything it started;
- limits on processes, memory (address space per process) and file size, set by a small
  launcher before bwrap starts, and size caps on the private ``/tmp`` and ``$HOME``;
- of the file system only the system folders (``/usr``, ``/etc``, ...) and the toolchain (the
  installs behind ``PATH``, the virtualenvs and their Pythons, ``PYTHONPATH``) read-only, the
  user's ``read_only_paths``, the git folders the workspace needs read-only, and the workspace
  read-write except ``.git/``, the bookkeeping files (read-only binds) and ``.ralph/`` (an empty
  read-only tmpfs). Nothing else: not ``$HOME`` (an empty tmpfs), not other repositories, not
  the main checkout of a worker's worktree (its ``.ralph/``: journals, serve token, the other
  worktrees), not ``/tmp`` (private); no network with ``network = false``;
- an environment from an allow-list plus ``pass_env`` (secrets are never in ralph-tui's own
  environment to begin with: see ``credentials``).

Where the machine cannot give a part (no user namespaces, an architecture without a syscall
table, root's process count, which ``RLIMIT_NPROC`` does not bound), ``Sandbox.weaknesses`` says
so: ``doctor`` and the run header show it, and ``mode = "auto"`` warns.

On macOS ``sandbox-exec`` gets a profile with the same file rules (untested: no macOS here).
Without either, ``mode = "auto"`` runs commands unconfined and says so (``warning``).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import itertools
import os
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ralph_tui.config import SandboxOptions
from ralph_tui.errors import UsageError
from ralph_tui.safety import credentials, seccomp
from ralph_tui.safety.tempdirs import process_dir

SandboxKind = Literal["bwrap", "sandbox-exec", "none"]
_PROBE_TIMEOUT_S = 10.0
_MIB = 1024 * 1024

# what of the host's file system every bwrap sandbox sees, read-only: the system's programs,
# libraries and configuration; never /home, /root, /srv, /mnt, /tmp, /var or /run
SYSTEM_DIRS = (
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt", "/nix",
    "/gnu", "/snap",
)  # fmt: skip
# readable by root's uid even without capabilities, so covered with an empty file
MASKED_FILES = ("/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-")
MASKED_GLOBS = (("/etc/ssh", "ssh_host_*key"),)
MASKED_DIRS = ("/etc/ssl/private",)  # TLS private keys: an empty folder instead
_SECCOMP_FD = "9"  # the launcher opens the seccomp program on this fd for bwrap
# run as `sh -c _LAUNCHER sh cgroup.procs filter-file [prlimit ...] bwrap ...`: joins the pids
# cgroup (as root), opens the filter for --seccomp, then execs; a shell, as a Python here costs
# tens of milliseconds per command
_LAUNCHER = (
    'procs=$1 filter=$2; shift 2; if [ -n "$procs" ]; then echo $$ > "$procs" || exit 125; fi; '
    f'if [ -n "$filter" ]; then exec "$@" {_SECCOMP_FD}<"$filter"; fi; exec "$@"'
)

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
class Limits:
    """Resource caps for every sandboxed command (0: none). ``processes`` is ``RLIMIT_NPROC``
    (counted per user); the kernel does not apply it to uid 0, so as root it is a pids cgroup
    per sandbox instead, where one can be made (else ``Sandbox.weaknesses`` says so)."""

    processes: int = 0
    memory_mb: int = 0  # address space of each process (RLIMIT_AS)
    file_mb: int = 0  # largest file a command may write (RLIMIT_FSIZE)
    tmp_mb: int = 0  # size of the private /tmp and $HOME (tmpfs)


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
    # why commands run unconfined although a sandbox was wanted, or what it lacks (weaknesses)
    warning: str | None = None
    private_dir: Path | None = field(default=None, compare=False)  # macOS: $HOME and $TMPDIR
    limits: Limits = Limits()
    user_namespace: bool = True  # bwrap: own user namespace (off where the machine has none)
    disable_userns: bool = True  # bwrap >= 0.8: no nested user namespace (seccomp refuses too)
    sized_tmpfs: bool = True  # bwrap >= 0.7: --size caps the private /tmp and $HOME
    filter: bytes | None = field(default=None, repr=False)  # bwrap: the seccomp program
    weaknesses: tuple[str, ...] = ()  # what this machine could not give (doctor shows it)
    # as root, where RLIMIT_NPROC does not apply: a pids cgroup every command joins
    pids_cgroup: Path | None = None

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
        line = f"{self.kind} ({self.program}): {net}, workspace read-write except .git/ and PRD"
        if self.kind == "bwrap":
            parts = [
                "user namespace" if self.user_namespace else "NO user namespace",
                "no capabilities",
                "seccomp filter" if self.filter is not None else "NO seccomp filter",
            ]
            limits = self.limits
            caps = [
                f"{limits.processes} processes" if limits.processes else "",
                f"{limits.memory_mb} MiB memory" if limits.memory_mb else "",
                f"{limits.tmp_mb} MiB /tmp" if limits.tmp_mb else "",
            ]
            parts.append("limits: " + (", ".join(c for c in caps if c) or "none"))
            line += "; " + ", ".join(parts)
            if self.weaknesses:
                line += "; weaker: " + "; ".join(self.weaknesses)
        return line

    def wrap(
        self, argv: Sequence[str], cwd: Path | None = None, *, visible: Sequence[Path] = ()
    ) -> list[str]:
        """The argv that runs ``argv`` (in ``cwd``, default the root) inside the sandbox.

        ``visible``: files outside the workspace the command must read (a prompt file in the
        private ``/tmp``)."""
        where = cwd or self.root
        if self.kind == "bwrap":
            return [*self._launcher(), *self._bwrap_args(where, visible), "--", *argv]
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

    def _launcher(self) -> list[str]:
        """What starts bwrap: a shell that joins the pids cgroup and opens the seccomp program
        (``--seccomp FD``), then ``prlimit`` lowering the limits (inherited by bwrap and all it
        runs)."""
        procs = str(self.pids_cgroup / "cgroup.procs") if self.pids_cgroup is not None else ""
        filter_file = str(_filter_file(self.filter)) if self.filter is not None else ""
        argv = ["/bin/sh", "-c", _LAUNCHER, "sh", procs, filter_file]
        prlimit = shutil.which("prlimit")
        limits = self.limits
        wanted = (
            (resource.RLIMIT_NPROC, "--nproc", limits.processes),
            (resource.RLIMIT_AS, "--as", limits.memory_mb * _MIB),
            (resource.RLIMIT_FSIZE, "--fsize", limits.file_mb * _MIB),
        )
        options = [f"{flag}={_lowered(kind, value)}" for kind, flag, value in wanted if value]
        if prlimit is not None and options:
            argv += [prlimit, *options, "--"]
        return argv

    def _bwrap_args(self, cwd: Path, visible: Sequence[Path]) -> list[str]:
        args = [self.program, "--die-with-parent", "--new-session", "--unshare-pid"]
        args += ["--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
        if self.user_namespace:
            args += ["--unshare-user", *(["--disable-userns"] if self.disable_userns else [])]
        args += ["--cap-drop", "ALL"]
        if not self.network:
            args.append("--unshare-net")
        args += _system_binds()
        args += ["--dev", "/dev", "--proc", "/proc", "--ro-bind", "/proc/sys", "/proc/sys"]
        args += ["--ro-bind-try", "/proc/sysrq-trigger", "/proc/sysrq-trigger"]
        args += [*self._tmpfs_size(), "--tmpfs", "/tmp"]
        # a worker's main checkout may sit in a visible folder (/usr/src/app, /opt/app): its
        # .ralph/ (journals, serve token, other worktrees) empty; the worktree is bound below
        for ancestor in self.root.parents:
            if (ancestor / ".ralph").is_dir() and ancestor != Path("/"):
                args += [*self._tmpfs_size(), "--tmpfs", str(ancestor / ".ralph")]
        home = _home()
        if home is not None and not _is_within(home, self.root):
            args += [*self._tmpfs_size(), "--tmpfs", str(home)]
        for keep in _toolchain_paths(self.root):
            args += ["--ro-bind-try", str(keep), str(keep)]
        for path in (*self.read_only_paths, *visible):
            args += ["--ro-bind-try", str(path), str(path)]
        for git_dir in _git_dirs(self.root):
            args += ["--ro-bind", str(git_dir), str(git_dir)]
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
        if self.filter is not None:
            args += ["--seccomp", _SECCOMP_FD]
        args += ["--chdir", str(cwd)]
        return args

    def _tmpfs_size(self) -> list[str]:
        if not (self.limits.tmp_mb and self.sized_tmpfs):
            return []
        return ["--size", str(self.limits.tmp_mb * _MIB)]

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
            toolchain = [p for p in _toolchain_paths(self.root) if _is_within(p, home)]
            keeps = [*toolchain, *self.read_only_paths, *visible, self.root]
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
    limits = Limits(
        processes=options.max_processes,
        memory_mb=options.memory_mb,
        file_mb=options.file_mb,
        tmp_mb=options.tmp_mb,
    )
    strength = _Strength()
    weaknesses: tuple[str, ...] = ()
    if wanted == "bwrap":
        strength, weaknesses = _bwrap_strength(program, limits)
    pids_cgroup = None
    if wanted == "bwrap" and limits.processes and os.geteuid() == 0:
        pids_cgroup = _pids_cgroup(limits.processes)
        if pids_cgroup is None:
            weaknesses += (
                "running as root without a pids cgroup: the kernel does not apply the process "
                "limit to uid 0 (a fork bomb is stopped only when the command ends)",
            )
    warning = None
    if weaknesses:
        warning = "sandbox weaker than it should be: " + "; ".join(weaknesses)
    private = (
        Path(tempfile.mkdtemp(dir=process_dir(), prefix="ralph-sandbox-"))
        if wanted == "sandbox-exec"
        else None
    )
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
        limits=limits,
        user_namespace=strength.user_namespace,
        disable_userns=strength.disable_userns,
        sized_tmpfs=strength.sized_tmpfs,
        filter=strength.filter,
        weaknesses=weaknesses,
        warning=warning,
        pids_cgroup=pids_cgroup,
    )


@dataclass(frozen=True)
class _Strength:
    """What this machine's bwrap supports beyond the basics (see ``Sandbox``'s fields)."""

    user_namespace: bool = True
    disable_userns: bool = True
    sized_tmpfs: bool = True
    filter: bytes | None = None


@functools.cache
def _bwrap_strength(program: str, limits: Limits) -> tuple[_Strength, tuple[str, ...]]:
    """What this machine's bwrap can give beyond the basics ``_probe`` checked: its own user
    namespace, the seccomp filter, prlimit; what it cannot give is a weakness. Once per process."""
    weaknesses: list[str] = []
    base = [program, "--unshare-pid", "--ro-bind", "/", "/", "--proc", "/proc"]
    userns = _runs([*base, "--unshare-user", "--cap-drop", "ALL", "true"])
    if userns is not None:
        weaknesses.append(f"no user namespace ({userns})")
    disable_userns = userns is None and (
        _runs([*base, "--unshare-user", "--disable-userns", "true"]) is None
    )
    filter_program = seccomp.program()
    if filter_program is None:
        weaknesses.append(f"no seccomp filter (no syscall table for {seccomp.machine()})")
    else:
        probe = Sandbox("bwrap", Path("/"), program=program, filter=filter_program)
        failed = _runs([*probe._launcher(), *base, "--seccomp", _SECCOMP_FD, "true"])
        if failed is not None:
            filter_program = None
            weaknesses.append(f"no seccomp filter ({failed})")
    sized = _runs([*base, "--size", str(_MIB), "--tmpfs", "/tmp", "true"])
    if sized is not None and limits.tmp_mb:
        weaknesses.append(f"no size cap on /tmp and $HOME ({sized})")
    if (limits.processes or limits.memory_mb or limits.file_mb) and not shutil.which("prlimit"):
        weaknesses.append("no prlimit (util-linux): no process, memory or file size limits")
    strength = _Strength(userns is None, disable_userns, sized is None, filter_program)
    return strength, tuple(weaknesses)


def _pids_cgroup(max_processes: int) -> Path | None:
    """As root the kernel does not apply ``RLIMIT_NPROC``: a pids cgroup per sandbox (per
    workspace: one worker's fork bomb does not starve another's gates; removed at exit) caps the
    processes of all the commands run in it together instead.
    None where there is no pids controller we may write to (then ``weaknesses`` says so)."""
    try:
        own = Path("/proc/self/cgroup").read_text(encoding="utf-8").splitlines()
        mounts = Path("/proc/self/mountinfo").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    base: Path | None = None
    for line in own:
        ident, controllers, path = line.split(":", 2)
        if "pids" in controllers.split(","):
            base = _cgroup_mount(mounts, "cgroup", "pids")
        elif ident == "0" and base is None:
            v2 = _cgroup_mount(mounts, "cgroup2", "")
            base = v2 if v2 is not None and _v2_has_pids(v2 / path.lstrip("/")) else None
        if base is not None:
            base = base / path.lstrip("/")
            break
    if base is None:
        return None
    _sweep_cgroups(base)
    # the name is this process's and a random part: a group a dead process left behind (its
    # commands outlived it, or it was killed) may carry a pid the kernel has given to us since,
    # and reusing that name failed with EEXIST, leaving the commands without any pids cap
    group = base / f"{_CGROUP_PREFIX}{os.getpid()}-{next(_CGROUP_NUMBERS)}-{secrets.token_hex(3)}"
    try:
        group.mkdir()
        (group / "pids.max").write_text(str(max_processes), encoding="utf-8")
    except OSError:
        return None
    atexit.register(_remove_cgroup, group)
    return group


_CGROUP_PREFIX = "ralph-sandbox-"
_CGROUP_NUMBERS = itertools.count(1)
_swept: set[Path] = set()


def _sweep_cgroups(base: Path) -> None:
    """Remove the empty groups of ralph-tui processes that are gone (once per process): a
    killed run leaves its group behind, and the kernel never removes a cgroup by itself."""
    if base in _swept:
        return
    _swept.add(base)
    try:
        groups = [g for g in base.iterdir() if g.name.startswith(_CGROUP_PREFIX)]
    except OSError:
        return
    for group in groups:
        owner = group.name[len(_CGROUP_PREFIX) :].split("-", 1)[0]
        if owner.isdigit() and int(owner) != os.getpid() and not Path(f"/proc/{owner}").exists():
            _remove_cgroup(group)  # a group still holding a process stays (rmdir refuses)


def _cgroup_mount(mounts: list[str], fstype: str, option: str) -> Path | None:
    for line in mounts:
        left, _, right = line.partition(" - ")
        fields, extra = left.split(), right.split()
        if len(fields) < 5 or len(extra) < 3 or extra[0] != fstype:
            continue
        if not option or option in extra[2].split(","):
            return Path(fields[4])
    return None


def _v2_has_pids(group: Path) -> bool:
    try:
        return "pids" in (group / "cgroup.controllers").read_text(encoding="utf-8").split()
    except OSError:
        return False


def _remove_cgroup(group: Path) -> None:
    # still in use by a command that outlived us: it stays until emptied (harmless, empty)
    with contextlib.suppress(OSError):
        group.rmdir()


def _runs(argv: Sequence[str]) -> str | None:
    """None if ``argv`` exits 0, else the last line it printed on stderr."""
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
        return str(exc)
    if done.returncode != 0:
        why = done.stderr.decode("utf-8", "replace").strip().splitlines()
        return why[-1] if why else f"exit {done.returncode}"
    return None


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


def _home() -> Path | None:
    raw = os.environ.get("HOME")
    if not raw:
        return None
    home = Path(raw).resolve()
    return home if home.is_dir() and home != Path("/") else None


def _is_within(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


def _toolchain_paths(root: Path) -> list[Path]:
    """What outside the system folders the toolchain needs: the installs behind PATH, the
    virtualenv(s) and the Python they were made from (a pyenv or uv Python usually lives in the
    home; a CI checkout's .venv may live under /tmp), and the PYTHONPATH entries. Never a
    top-level folder, the home itself or a folder holding the workspace (that would show other
    repositories and the main checkout's ``.ralph/``)."""
    found: set[Path] = set()
    home = _home()

    def too_wide(path: Path) -> bool:
        return len(path.parts) < 3 or path == home or _is_within(root, path)

    def add(path: Path, *, with_parent: bool = True) -> None:
        if not path.is_absolute():
            return
        for candidate in {path, path.resolve()}:
            if _is_within(candidate, root) or _is_system(candidate):
                continue
            # ~/.local/bin -> ~/.local (its lib/ holds the packages), but ~/bin stays ~/bin
            parent = candidate.parent
            keep = parent if with_parent and not too_wide(parent) else candidate
            if not too_wide(keep):
                found.add(keep)

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
    for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep):
        if entry:
            add(Path(entry), with_parent=False)
    kept = sorted(p for p in found if p.exists())
    # drop what an already kept directory contains
    return [p for p in kept if not any(other in p.parents for other in kept)]


def _is_system(path: Path) -> bool:
    return any(_is_within(path, Path(top)) for top in SYSTEM_DIRS)


def _system_binds() -> list[str]:
    """The system folders, read-only (a merged-/usr link stays a link), secrets masked."""
    args: list[str] = []
    for top in SYSTEM_DIRS:
        path = Path(top)
        if path.is_symlink():
            args += ["--symlink", str(path.readlink()), top]
        elif path.is_dir():
            args += ["--ro-bind", top, top]
    masked = [Path(f) for f in MASKED_FILES]
    for folder, pattern in MASKED_GLOBS:
        try:
            masked += sorted(Path(folder).glob(pattern))
        except OSError:
            continue  # unreadable: nothing of it to mask
    for path in masked:
        if path.is_file():
            args += ["--ro-bind", "/dev/null", str(path)]
    for folder in MASKED_DIRS:
        if Path(folder).is_dir():
            args += ["--tmpfs", folder, "--remount-ro", folder]
    # /etc/resolv.conf is often a link into /run: keep name resolution working
    resolv = Path("/etc/resolv.conf").resolve()
    if resolv.is_file() and not _is_system(resolv):
        args += ["--ro-bind", str(resolv), str(resolv)]
    return args


def _git_dirs(root: Path) -> list[Path]:
    """The git folders outside ``root`` that git inside the sandbox needs, read-only: for a
    worktree, its admin folder and the main repository's ``.git`` (its objects and refs), wherever
    they are (under /tmp too). Only those, never the main checkout they live in."""
    marker = root / ".git"
    if not marker.is_file():
        return []
    try:
        text = marker.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return []
    if not text.startswith("gitdir:"):
        return []
    admin = Path(text.removeprefix("gitdir:").strip())
    admin = (admin if admin.is_absolute() else root / admin).resolve()
    found = [admin]
    try:
        common = (admin / "commondir").read_text(encoding="utf-8").strip()
    except OSError:
        common = ""
    if common:
        found.append((Path(common) if Path(common).is_absolute() else admin / common).resolve())
    kept = [p for p in found if p.is_dir() and not _is_within(p, root)]
    # the common dir holds the admin folder: one bind is enough
    return [p for p in kept if not any(other in p.parents for other in kept)]


def _lowered(kind: int, value: int) -> int:
    """``value``, or the current hard limit where that is lower (only root may raise it)."""
    hard = resource.getrlimit(kind)[1]
    return value if hard == resource.RLIM_INFINITY else min(value, hard)


@functools.cache
def _filter_file(program: bytes) -> Path:
    """The seccomp program in a private file, written once per process, removed at exit."""
    folder = Path(tempfile.mkdtemp(dir=process_dir(), prefix="ralph-seccomp-"))
    path = folder / "filter.bpf"
    path.write_bytes(program)
    atexit.register(shutil.rmtree, folder, True)
    return path
