"""Configuration: defaults, then ``ralph.toml`` (or ``[tool.ralph]``), then command-line flags.

Unknown keys are errors, so a typo in ``ralph.toml`` is reported rather than silently ignored.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)

from ralph_tui.agents.registry import agent_names
from ralph_tui.errors import UsageError
from ralph_tui.executors import executor_names

ApproveMode = Literal["ask", "auto"]

DEFAULT_GATES: dict[str, str] = {
    "tests": "pytest -q",
    "types": "mypy .",
    "lint": "ruff check .",
}


def refuse_own_credentials(names: list[str]) -> list[str]:
    """A list of variables handed to commands never names ralph-tui's own model credentials."""
    for name in names:
        if name.upper().startswith("ANTHROPIC_") or name.upper() == "CLAUDE_CODE_OAUTH_TOKEN":
            raise ValueError(f"{name} is ralph-tui's own credential; it never goes to commands")
    return names


_MODEL_ID = re.compile(r"[!-~]+")


def model_id(value: str) -> str:
    """A model id as the API takes it: printable ASCII without spaces. An empty one ran until
    the first request failed; it is also printed in the run's header."""
    if not _MODEL_ID.fullmatch(value):
        raise ValueError(f"{value!r} is not a model id (printable characters, no spaces)")
    return value


def _gate_command(command: str) -> str:
    """A blank command would run ``sh -c ""``, which exits 0: a gate that always passes."""
    if not command.strip():
        raise ValueError("an empty command, which would always pass (remove the gate instead)")
    return command


def fallback_entry(entry: str) -> tuple[str, str | None]:
    """A ``fallback`` entry as (agent, model): ``"claude-code"``, ``"anthropic:claude-haiku-4-5"``
    (a model after the colon; none: the run's ``model``). A ValueError names a bad entry."""
    name, colon, model = entry.strip().partition(":")
    if name not in (names := agent_names()):
        raise ValueError(
            f"unknown agent {entry!r} (an agent is one of {', '.join(names)}, optionally "
            'followed by ":MODEL", e.g. "anthropic:claude-haiku-4-5")'
        )
    if colon and not model.strip():
        raise ValueError(f"{entry!r}: no model after the colon")
    return name, model_id(model.strip()) if colon else None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GateOptions(_Strict):
    timeout_s: float = Field(600.0, gt=0)
    #: run each story's own commands (verificationCommand, validation, testCommand) as gates
    story_commands: bool = True


class Price(_Strict):
    """US dollars per million tokens."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cache_write: float | None = Field(None, ge=0)
    cache_read: float | None = Field(None, ge=0)


class ClaudeCodeOptions(_Strict):
    """Policy for tools Claude Code asks to use, besides the workspace confinement of file tools."""

    allow: list[str] = Field(
        default_factory=lambda: ["Read", "Write", "Edit", "MultiEdit", "Glob", "Grep", "LS", "Bash"]
    )
    deny: list[str] = Field(default_factory=lambda: ["WebFetch", "WebSearch"])
    max_turns: int | None = Field(None, ge=1)


class RayOptions(_Strict):
    """``executor = "ray"``: where the cluster is and what one story slot takes on a node."""

    address: str = "auto"  # "auto", "host:port" (a node of the cluster), "ray://host:10001"
    num_cpus: float = Field(1.0, ge=0)
    resources: dict[str, float] = Field(default_factory=dict)  # custom resources per story
    namespace: str = "ralph-tui"
    # the agent's commands and the gates on a node get no network unless this is set: with
    # it they could reach the cluster's own APIs (the Jobs API runs code outside any sandbox)
    sandbox_network: bool = False


class NotifyOptions(_Strict):
    """``[notify]``: how a human is told they are needed (approval, escalation, run end)."""

    bell: bool = True  # the terminal bell
    osc: bool = True  # desktop notification through the terminal (OSC 777 and OSC 9)
    desktop: bool = True  # notify-send, where it is installed
    command: list[str] | None = None  # any command: the message on stdin, RALPH_* in its env
    # secret-looking variables the command needs (e.g. SLACK_TOKEN); others are withheld
    command_env: list[str] = Field(default_factory=list)
    webhook: str | None = Field(None, pattern=r"^https?://")  # JSON POST
    url: str | None = None  # the link put in messages (default: the served run's URL)

    @field_validator("command_env")
    @classmethod
    def _not_our_credentials(cls, names: list[str]) -> list[str]:
        return refuse_own_credentials(names)


class SandboxOptions(_Strict):
    """Where the agent's commands, the gates and the command CLI run (see ``sandbox.py``)."""

    # auto: bwrap (Linux) / sandbox-exec (macOS) when available, else unsandboxed with a warning;
    # bwrap / sandbox-exec: that one or refuse to start; off: unsandboxed, no warning
    mode: Literal["auto", "bwrap", "sandbox-exec", "off"] = "auto"
    network: bool = True
    # extra variables (secret-looking ones included) the agent's commands and the gates get
    pass_env: list[str] = Field(default_factory=list)
    # visible read-only inside the sandbox, which otherwise shows only the system folders,
    # the toolchain and the workspace (a package cache under $HOME)
    read_only_paths: list[str] = Field(default_factory=list)
    # caps on every sandboxed command (bwrap): processes of the user (not applied to root by
    # the kernel), address space per process, largest file written, private /tmp and $HOME
    max_processes: int = Field(1024, ge=16)
    memory_mb: int = Field(8192, ge=64)
    file_mb: int = Field(4096, ge=1)
    tmp_mb: int = Field(1024, ge=1)

    @field_validator("pass_env")
    @classmethod
    def _not_our_credentials(cls, names: list[str]) -> list[str]:
        return refuse_own_credentials(names)


class TrackerOptions(_Strict):
    """``[tracker]``: the issue tracker the PRD is synced from, and where landed stories are
    reported (see ``ralph_tui/trackers``). The JSON PRD stays what the engine works on."""

    kind: Literal["github", "linear"]
    # github: OWNER/REPO the issues come from; linear: OWNER/REPO pull requests go to (optional)
    repository: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
    label: str | None = None  # only issues with this label (github, linear)
    milestone: str | None = None  # github: only issues of this milestone (its title)
    team: str | None = None  # linear: the team's key (ENG)
    project: str | None = None  # linear: only issues of this project (its name)
    view: str | None = None  # linear: a custom view's id; its issues, in its order
    # the tracker's API; default: https://api.github.com or https://api.linear.app/graphql
    api_url: str | None = Field(None, pattern=r"^https?://")
    github_api_url: str | None = Field(None, pattern=r"^https?://")  # linear: for pull requests
    # the variable holding the credential (default GITHUB_TOKEN, else `gh auth token`;
    # LINEAR_API_KEY); read by ralph-tui only, withheld from the agent like every secret
    token_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    close: bool = True  # close the issue when its story lands (else only the comment)
    done_state: str | None = None  # linear: the workflow state to move to (default: Done)
    comment_escalations: bool = True  # post an escalation's question on the issue
    pull_request: bool = False  # at the end of a run where every story passes (``--pr``)
    remote: str = "origin"  # where the branch is pushed for the pull request
    base: str | None = None  # the pull request's base branch (default: the repository's)
    # longest wait for a rate limit's reset before the call fails
    rate_limit_wait_s: float = Field(300.0, ge=0)

    @model_validator(mode="after")
    def _complete(self) -> TrackerOptions:
        if self.kind == "github" and not self.repository:
            raise ValueError('kind = "github" needs repository = "OWNER/REPO"')
        if self.kind == "linear" and not self.team:
            raise ValueError('kind = "linear" needs team = "KEY" (the team\'s issue prefix)')
        return self


# Where ralph-tui looks for a PRD when none is configured: a change that adds one chooses
# the next run's stories (``RalphConfig._prd_choice`` refuses two, never picks silently).
PRD_PLACES = ["tasks/*_prd.json", "prd.json", "scripts/ralph/prd.json"]

# ``[review]`` (ralph_tui.review): the files and markers that count as changing what checks
# the code
DEFAULT_CHECK_FILES = [
    "ralph.toml",
    ".gitattributes", "**/.gitattributes", ".gitignore", "**/.gitignore",
    "conftest.py", "**/conftest.py", "pytest.ini", "tox.ini", "setup.cfg", "noxfile.py",
    "mypy.ini", ".mypy.ini", "ruff.toml", ".ruff.toml", ".coveragerc", ".flake8", ".pylintrc",
    "pyrightconfig.json", ".pre-commit-config.yaml", "Makefile",
    ".github/**", ".gitlab-ci.yml", ".ci/**", ".circleci/**", "Jenkinsfile", "azure-pipelines.yml",
    "jest.config.*", "vitest.config.*", "karma.conf.*", ".mocharc*", "tsconfig*.json",
    ".eslintrc*", "eslint.config.*", "package.json",
    *PRD_PLACES,
]  # fmt: skip
# pyproject.toml tables that configure a checker: a change inside one is flagged.
DEFAULT_CHECK_TABLES = [
    "tool.pytest", "tool.mypy", "tool.ruff", "tool.coverage", "tool.pyright", "tool.pylint",
    "tool.black", "tool.isort", "tool.hatch.envs", "tool.tox",
]  # fmt: skip
# Where tests live: deleting or renaming one is flagged.
DEFAULT_TEST_FILES = [
    "test/**", "tests/**", "**/test_*.py", "**/*_test.py", "**/*_test.go", "**/__tests__/**",
    "**/*.test.*", "**/*.spec.*", "spec/**",
]  # fmt: skip
# An added line matching one of these switches a check off where it stands.
DEFAULT_MARKERS = [
    r"pytest\.mark\.(skip|skipif|xfail)\b", r"pytest\.(skip|xfail|importorskip)\s*\(",
    r"unittest\.(skip|skipIf|skipUnless|expectedFailure)\b", r"@skip\b",
    r"\b(it|test|describe)\.(skip|todo)\s*\(", r"\b(xit|xdescribe|xtest)\s*\(",
    r"#\s*type:\s*ignore", r"#\s*noqa\b", r"#\s*pyright:\s*ignore", r"pragma:\s*no\s*cover",
    r"eslint-disable", r"@ts-(ignore|nocheck|expect-error)", r"//\s*nolint\b",
    r"\bcollect_ignore(_glob)?\b", r"\bpytest_collection_modifyitems\b",
    r"\bpytest_runtest_(setup|call|makereport)\b", r"\b__test__\s*=\s*False\b",
]  # fmt: skip
# Files that run by themselves at the next start of an interpreter or a shell.
DEFAULT_STARTUP_HOOKS = [
    "**/*.pth", "*.pth", "**/sitecustomize.py", "sitecustomize.py", "**/usercustomize.py",
    "usercustomize.py", ".envrc", "**/.envrc", ".bashrc", ".bash_profile", ".profile", ".zshrc",
    ".zshenv", ".npmrc", ".yarnrc*", ".pythonrc*", ".python-version", ".tool-versions",
]  # fmt: skip


class ReviewOptions(BaseModel):
    """``[review]`` in ralph.toml: what counts as weakening the checks (each list replaces
    its default; ``extra_*`` adds to it)."""

    model_config = ConfigDict(extra="forbid")

    check_files: list[str] = Field(default_factory=lambda: list(DEFAULT_CHECK_FILES))
    check_tables: list[str] = Field(default_factory=lambda: list(DEFAULT_CHECK_TABLES))
    test_files: list[str] = Field(default_factory=lambda: list(DEFAULT_TEST_FILES))
    markers: list[str] = Field(default_factory=lambda: list(DEFAULT_MARKERS))
    startup_hooks: list[str] = Field(default_factory=lambda: list(DEFAULT_STARTUP_HOOKS))
    extra_check_files: list[str] = Field(default_factory=list)
    # compare the test gates' counts with the base tree's (ralph_tui.baseline)
    baseline: bool = True
    extra_markers: list[str] = Field(default_factory=list)


def _known_executor(name: str) -> str:
    if name not in (names := executor_names()):
        raise ValueError(f"should be one of {', '.join(repr(n) for n in names)}")
    return name


def _known_agent(name: str) -> str:
    if name not in (names := agent_names()):
        raise ValueError(f"should be one of {', '.join(repr(n) for n in names)}")
    return name


class PmOptions(_Strict):
    """``[pm]``: a second model that answers the agent's escalations (``ralph_tui.pm``).

    Absent: every escalation waits for the human, as before."""

    agent: Literal["anthropic"] = "anthropic"
    model: Annotated[str, AfterValidator(model_id)] | None = None  # None: the run's own model
    # "suggest": the human sees the PM's answer and sends it, edits it or writes their own;
    # "answer": the PM's answer goes to the agent when no human answered within answer_after
    mode: Literal["suggest", "answer"] = "suggest"
    answer_after: float = Field(300.0, ge=0)
    max_turns: int = Field(12, ge=1, le=50)  # the PM's tool turns for one escalation


class RalphConfig(_Strict):
    role: str = Field("backend", pattern=r"^[A-Za-z0-9_.-]+$")
    agent: Annotated[str, AfterValidator(_known_agent)] = "anthropic"  # agents.registry
    model: Annotated[str, AfterValidator(model_id)] = "claude-sonnet-4-5"
    max_iterations: int = Field(10, ge=1)
    max_fix_attempts: int = Field(3, ge=1)
    # stories run at once, each in its own git worktree (1: one story after another)
    workers: int = Field(1, ge=1, le=32)
    # where workers run: "local" (git worktrees here) or "ray" (actors on a Ray cluster, [ray])
    executor: Annotated[str, AfterValidator(_known_executor)] = "local"  # executors.EXECUTORS
    ray: RayOptions = RayOptions()
    max_cost_usd: float | None = Field(None, gt=0)
    max_tokens: int = Field(8192, ge=256)
    persona: str | None = None
    approve: ApproveMode = "ask"
    gates: dict[str, Annotated[str, AfterValidator(_gate_command)]] = Field(
        default_factory=lambda: dict(DEFAULT_GATES)
    )
    gate_options: GateOptions = GateOptions()
    pricing: dict[str, Price] = Field(default_factory=dict)
    bash_timeout_s: float = Field(120.0, gt=0)
    # agent = "command": argv with an optional {prompt_file} placeholder; else prompt on stdin
    command: list[str] | None = None
    # secret-looking variables the command agent's CLI still needs (e.g. OPENAI_API_KEY);
    # everything else matching the secret patterns is withheld from agents and gates
    command_env: list[str] = Field(default_factory=list)
    agent_timeout_s: float = Field(1800.0, gt=0)
    # agents the iteration continues on when the agent is rate-limited past its retries, in
    # order: "claude-code", "anthropic:claude-haiku-4-5" (agents/fallback.py)
    fallback: list[str] = Field(default_factory=list)
    # agent = "scripted": path of a JSON script (see agents/scripted.py)
    script: str | None = None
    claude_code: ClaudeCodeOptions = ClaudeCodeOptions()
    notify: NotifyOptions = NotifyOptions()
    # serve the run to `ralph-tui attach` / `web`: HOST:PORT; non-loopback needs listen_public
    listen: str | None = None
    listen_public: bool = False
    sandbox: SandboxOptions = SandboxOptions()
    review: ReviewOptions = ReviewOptions()
    pm: PmOptions | None = None  # [pm]: a product-manager agent answers escalations
    # the branch the run works on: true = the PRD's branchName, false = stay on the current
    # branch, "name" = that branch (``--branch``); see branching.py
    branch: StrictBool | str = True
    # the PRD file, relative to the workspace (``--prd``); unset: tasks/<role>_prd.json, or
    # where snarktank's loop keeps it (``prd.json``, ``scripts/ralph/prd.json``) when that is
    # absent. A PRD other than tasks/<role>_prd.json keeps its log beside it, in progress.txt
    prd: str | None = Field(None, min_length=1)
    # the issue tracker the PRD is synced from (None: the PRD file alone)
    tracker: TrackerOptions | None = None
    _prd_found: str | None = PrivateAttr(None)  # set by ``pinned`` when prd.json was found
    # where ``prd`` was set ("/repo/ralph.toml", "--prd"), for errors about that file
    _prd_origin: str | None = PrivateAttr(None)

    @field_validator("gates")
    @classmethod
    def _named_gates(cls, gates: dict[str, str]) -> dict[str, str]:
        if any(not name.strip() for name in gates):
            raise ValueError('a gate with an empty name (name it, as in tests = "pytest")')
        return gates

    @field_validator("fallback")
    @classmethod
    def _known_agents(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            fallback_entry(entry)
        return entries

    @property
    def agents_used(self) -> tuple[str, ...]:
        """The backends a run may use: the agent, then each ``fallback`` backend, each once
        (their credentials, SDK warm-ups and checks are all needed)."""
        names = [self.agent, *(fallback_entry(entry)[0] for entry in self.fallback)]
        return tuple(dict.fromkeys(names))

    def prd_path(self, workspace: Path) -> Path:
        return self._prd_choice(workspace)[0]

    def progress_path(self, workspace: Path) -> Path:
        path, _ = self._prd_choice(workspace)
        default = workspace / "tasks" / f"{self.role}_prd.json"
        if path == default:
            return workspace / "tasks" / f"{self.role}_progress.txt"
        return path.parent / "progress.txt"  # snarktank's loop keeps it beside prd.json

    def new_prd_path(self, workspace: Path) -> Path:
        """Where ``import`` and ``prd`` write a PRD: ``prd`` when set, else tasks/<role>_prd.json
        (a prd.json found elsewhere is something to import, not the place to write to)."""
        if self.prd:
            return self._set_path(workspace)
        return workspace / "tasks" / f"{self.role}_prd.json"

    def pinned(self, workspace: Path) -> RalphConfig:
        """This configuration with its PRD chosen once, now: a file that appears later (an
        agent that writes tasks/<role>_prd.json) must not change which PRD a run reads."""
        path, how = self._prd_choice(workspace)
        if how == "set" and not path.is_relative_to(workspace):
            return self  # outside the repository: the run refuses it, validate still reads it
        relative = path.relative_to(workspace).as_posix()  # the same on every Ray node
        pinned = self.model_copy(update={"prd": relative})
        if how == "found":
            progress = pinned.progress_path(workspace).relative_to(workspace).as_posix()
            pinned._prd_found = (
                f"PRD: {relative} (tasks/{self.role}_prd.json does not exist; progress log: "
                f"{progress}; choose another with --prd or prd = ... in ralph.toml)"
            )
        return pinned

    @property
    def prd_note(self) -> str | None:
        """Which PRD is used, when ``pinned`` found it rather than it being configured."""
        return self._prd_found

    @property
    def prd_origin(self) -> str | None:
        """Where ``prd`` was set: the configuration file's path or ``--prd`` (None: not set)."""
        return self._prd_origin if self.prd else None

    def _set_path(self, workspace: Path) -> Path:
        """``prd`` as an absolute path, ``..`` resolved lexically: "../x.json" is outside the
        repository, said as such, not a path under it whose folder leads out."""
        assert self.prd
        return Path(os.path.normpath(workspace / Path(self.prd).expanduser()))

    def _prd_choice(self, workspace: Path) -> tuple[Path, Literal["set", "default", "found"]]:
        if self.prd:
            return self._set_path(workspace), "set"
        default = workspace / "tasks" / f"{self.role}_prd.json"
        found = [workspace / p for p in SNARKTANK_PRD_PLACES if (workspace / p).is_file()]
        if default.exists() or default.is_symlink():
            found.insert(0, default)
        if len(found) > 1:  # never a silent pick: a file an agent committed must not choose
            listed = ", ".join(p.relative_to(workspace).as_posix() for p in found)
            raise UsageError(
                f"{workspace}: more than one PRD ({listed}): name the one to use with --prd "
                "or prd = ... in ralph.toml"
            )
        if found and found[0] == default:
            return default, "default"
        return (found[0], "found") if found else (default, "default")


# where snarktank's Ralph loop keeps its PRD, looked for when tasks/<role>_prd.json is absent
SNARKTANK_PRD_PLACES = ("prd.json", "scripts/ralph/prd.json")


def find_config_file(workspace: Path) -> tuple[Path, dict[str, Any]] | None:
    """The config source and its raw table: ``ralph.toml`` wins over ``[tool.ralph]``."""
    toml_path = workspace / "ralph.toml"
    if toml_path.is_file():
        return toml_path, _read_toml(toml_path)
    pyproject = workspace / "pyproject.toml"
    if pyproject.is_file():
        data = _read_toml(pyproject)
        table = data.get("tool", {}).get("ralph")
        if isinstance(table, dict):
            return pyproject, table
    return None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: {exc}") from exc
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}") from exc


def load_config(workspace: Path, overrides: Mapping[str, Any] | None = None) -> RalphConfig:
    """Defaults < file < flags. ``overrides`` holds only the flags the user actually gave."""
    found = find_config_file(workspace)
    source = found[0] if found else None
    raw: dict[str, Any] = dict(found[1]) if found else {}
    try:
        base = RalphConfig.model_validate(raw)
    except ValidationError as exc:
        raise UsageError(_describe(source, exc)) from exc
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    config = base
    if given:
        try:
            config = RalphConfig.model_validate({**base.model_dump(exclude_unset=True), **given})
        except ValidationError as exc:
            raise UsageError(_describe(None, exc)) from exc
    if "prd" in given:
        config._prd_origin = "--prd"
    elif config.prd and source is not None:
        config._prd_origin = str(source)
    return config


def _describe(source: Path | None, exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    what = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        what = "unknown key"
    prefix = f"{source}: " if source else "command line: "
    return f"{prefix}{where}: {what}"
