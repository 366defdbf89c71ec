"""The PRD model (SPEC section 3) and the rule that picks the next story.

Real PRDs come in several shapes (``userStories`` or ``stories``, or a bare array of feature
items; criteria as strings or objects; priorities as any number or none at all). This module is
the one normalised view of all of them: ``Prd.userStories`` holds every story whatever the key
in the file. Models allow unknown fields so nothing a user or another tool put in the file is
dropped. Reading and writing the file lives in ``prd_store``; this module is pure.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

from ralph_tui.safety.names import branch_name_problem, safe_name
from ralph_tui.safety.text import escape_controls

StoryId = StrictStr | StrictInt
Priority = StrictInt | StrictFloat
#: dependency kinds (beads) that do not hold a story back; no kind means "blocks"
NON_BLOCKING_DEPENDENCY_TYPES = frozenset({"related", "discovered-from", "parent-child"})


class Criterion(BaseModel):
    """An acceptance criterion written as an object; ``testCommand`` makes it executable."""

    model_config = ConfigDict(extra="allow")

    id: StoryId | None = None
    text: StrictStr
    testCommand: StrictStr | None = None


class DependencyRef(BaseModel):
    """A dependency written as an object (beads: ``{"depends_on_id": "bd-1", "type": ...}``)."""

    model_config = ConfigDict(extra="allow")

    depends_on_id: StoryId
    type: StrictStr | None = None


Dependencies = list[StoryId | DependencyRef] | StoryId | None


@dataclass(frozen=True)
class StoryCommand:
    """A command from the story itself, run as an extra gate: what it runs and what it checks."""

    name: str
    command: str
    criterion: str


class Story(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: StoryId
    title: Annotated[StrictStr, Field(min_length=1, pattern=r"\S")]
    description: StrictStr = ""
    acceptanceCriteria: list[StrictStr | Criterion] = Field(default_factory=list)
    #: feature items (the long-running-harness pattern) list verification steps instead
    steps: list[StrictStr] = Field(default_factory=list)
    priority: Priority | None = None
    passes: StrictBool
    notes: StrictStr = ""
    dependsOn: Dependencies = None
    dependencies: Dependencies = None
    deps: Dependencies = None
    verificationCommand: StrictStr | None = None
    validation: list[StrictStr] | StrictStr | None = None

    @field_validator("priority")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    #: set by the Prd: the id as one printable line, with the position added where ids collide
    _key: str | None = PrivateAttr(default=None)

    @property
    def key(self) -> str:
        """How the run addresses this story (pick, commit subject, progress, ``passes`` write).

        The id as one printable line (``1`` and ``"1"`` are the same key). Where the file uses
        one id for several stories, each of them is ``<id>@<position>`` (1-based place in the
        file), so every write reaches the story that was worked on.
        """
        if self._key is not None:
            return self._key
        return escape_controls(str(self.id), multiline=False)

    @property
    def slug(self) -> str:
        """The key as a branch, folder and file name component (see ``safe_name``)."""
        return safe_name(self.key)

    @property
    def criteria(self) -> list[str]:
        """Every criterion as text: ``acceptanceCriteria`` (strings or objects), then ``steps``."""
        texts = [c if isinstance(c, str) else c.text for c in self.acceptanceCriteria]
        return texts + list(self.steps)

    @property
    def path_rules(self) -> tuple[list[str], list[str]]:
        """(paths the story may change, paths it must not) as feature lists write them
        (``allowed_paths``, ``forbidden``); shown to the agent with the task."""
        extra = self.model_extra or {}

        def paths(*names: str) -> list[str]:
            for name in names:
                value = extra.get(name)
                if isinstance(value, str):
                    value = [value]
                if isinstance(value, list):
                    return [v for v in value if isinstance(v, str) and v.strip()]
            return []

        allowed = paths("allowed_paths", "allowedPaths", "allowed_write")
        forbidden = paths("forbidden", "forbidden_paths", "forbiddenPaths", "forbidden_write")
        return allowed, forbidden

    @property
    def link(self) -> str | None:
        """Where the story lives on its tracker (``tracker.url``, set by a sync), if anywhere."""
        tracker = (self.model_extra or {}).get("tracker")
        url = tracker.get("url") if isinstance(tracker, dict) else None
        return url if isinstance(url, str) and url.startswith(("https://", "http://")) else None

    @property
    def depends_on(self) -> tuple[str, ...]:
        """The ids this story waits for, from ``dependsOn``, ``dependencies`` and ``deps``."""
        out: list[str] = []
        for field in (self.dependsOn, self.dependencies, self.deps):
            items = field if isinstance(field, list) else [] if field is None else [field]
            for item in items:
                if isinstance(item, DependencyRef):
                    if item.type in NON_BLOCKING_DEPENDENCY_TYPES:
                        continue
                    item = item.depends_on_id
                if str(item) not in out:
                    out.append(str(item))
        return tuple(out)

    def commands(self) -> list[StoryCommand]:
        """The story's executable checks, each named after what it checks."""
        out: list[StoryCommand] = []
        if self.verificationCommand and self.verificationCommand.strip():
            out.append(StoryCommand("verify", self.verificationCommand, "verificationCommand"))
        validation = [self.validation] if isinstance(self.validation, str) else self.validation
        for n, command in enumerate(validation or [], start=1):
            if command.strip():
                out.append(StoryCommand(f"validation {n}", command, f"validation[{n - 1}]"))
        for n, c in enumerate(self.acceptanceCriteria, start=1):
            if isinstance(c, Criterion) and c.testCommand and c.testCommand.strip():
                label = str(c.id) if c.id is not None else f"AC {n}"
                out.append(StoryCommand(label, c.testCommand, c.text))
        return out

    def sort_key(self, position: int) -> tuple[int, float, int]:
        """Priority first (lower is more urgent; none comes after every number), then file order."""
        if self.priority is None:
            return (1, 0.0, position)
        return (0, self.priority, position)


class Prd(BaseModel):
    model_config = ConfigDict(extra="allow")

    project: StrictStr = ""
    branchName: StrictStr | None = None
    description: StrictStr = ""
    #: the rest of what the PRD's author wrote for the agent (goals, functional requirements,
    #: non-goals, technical considerations, open questions...), Markdown; ``import`` fills it
    context: StrictStr = ""
    userStories: list[Story]
    #: stories by key, built on first lookup (the model is not changed after validation)
    _by_key: dict[str, Story] | None = PrivateAttr(default=None)

    @field_validator("branchName")
    @classmethod
    def _valid_branch(cls, value: str | None) -> str | None:
        """The run checks this branch out: a name git refuses is a validate error, not a crash."""
        problem = None if value is None else branch_name_problem(value)
        if problem is not None:
            raise ValueError(f"not a valid git branch name: {problem}")
        return value

    @model_validator(mode="after")
    def _address_stories(self) -> Prd:
        """Give every story a distinct key: real PRDs repeat an id now and then, and the run
        must still reach each story (see ``Story.key``)."""
        plain = [escape_controls(str(s.id), multiline=False) for s in self.userStories]
        counts = Counter(plain)
        taken = set(plain)
        for position, (story, key) in enumerate(zip(self.userStories, plain, strict=True), 1):
            if counts[key] > 1:
                key = f"{key}@{position}"
                while key in taken:
                    key += "@"
                taken.add(key)
            story._key = key
        self._by_key = None
        return self

    def duplicate_ids(self) -> list[list[int]]:
        """The positions (0-based) of the stories sharing an id, one list per repeated id."""
        groups: dict[str, list[int]] = {}
        for index, story in enumerate(self.userStories):
            groups.setdefault(escape_controls(str(story.id), multiline=False), []).append(index)
        return [places for places in groups.values() if len(places) > 1]

    def story(self, story_id: str) -> Story | None:
        """The story with this key; a repeated id on its own (a dependency, an API call that
        names the id) means the first story that uses it."""
        if self._by_key is None or len(self._by_key) != len(self.userStories):
            self._by_key = {s.key: s for s in self.userStories}
        found = self._by_key.get(str(story_id))
        if found is None:
            found = next((s for s in self.userStories if str(s.id) == str(story_id)), None)
        return found

    def index_of(self, story_id: str) -> int:
        """The story's place in the file (the model keeps the file's order); KeyError if none."""
        story = self.story(story_id)
        for index, candidate in enumerate(self.userStories):
            if candidate is story:
                return index
        raise KeyError(story_id)

    def ordered(self) -> list[Story]:
        """Every story in board order: open ones in pick order, then the passing ones."""
        indexed = list(enumerate(self.userStories))
        indexed.sort(key=lambda p: (p[1].passes, p[1].sort_key(p[0])))
        return [s for _, s in indexed]

    def waiting_on(self, story: Story) -> list[str]:
        """The ids of the story's dependencies that do not pass yet (unknown ids included)."""
        out = []
        for dep in story.depends_on:
            found = self.story(dep)
            if found is None or not found.passes:
                out.append(dep)
        return out

    def open_order(self, skip: Collection[str] = ()) -> list[Story]:
        """Open stories by priority, then file order, whether or not they can start yet."""
        return [s for s in self.ordered() if not s.passes and s.key not in skip]

    def pick_order(self, skip: Collection[str] = ()) -> list[Story]:
        """Open stories in the order the loop will take them; waiting ones are left out."""
        return [s for s in self.open_order(skip) if not self.waiting_on(s)]

    def next_story(self, skip: Collection[str] = ()) -> Story | None:
        order = self.pick_order(skip)
        return order[0] if order else None

    def next_priority(self) -> int | float:
        """A priority number after every numbered story (for a story added at the end)."""
        numbers = [s.priority for s in self.userStories if s.priority is not None]
        top = max(numbers, default=0)
        return math.floor(top) + 1

    def dependency_problem(self) -> tuple[int, str, str] | None:
        """The first unknown dependency id or cycle as (story index, field, message)."""
        for index, story in enumerate(self.userStories):
            for dep in story.depends_on:
                if self.story(dep) is None:
                    return index, _dep_field(story), f"unknown story id {dep!r}"
        cycle = self._cycle()
        if cycle is not None:
            index = next(i for i, s in enumerate(self.userStories) if s.key == cycle[0])
            story = self.userStories[index]
            return index, _dep_field(story), "dependency cycle: " + " -> ".join(cycle)
        return None

    def _cycle(self) -> list[str] | None:
        """A dependency cycle as a list of ids (first repeated at the end), found iteratively."""
        state: dict[str, int] = {}  # 1 = on the current path, 2 = done
        for start in self.userStories:
            if state.get(start.key):
                continue
            path: list[str] = []
            stack: list[tuple[str, list[str]]] = [(start.key, list(self._deps_of(start.key)))]
            state[start.key] = 1
            path.append(start.key)
            while stack:
                key, todo = stack[-1]
                if not todo:
                    stack.pop()
                    path.pop()
                    state[key] = 2
                    continue
                nxt = todo.pop()
                if state.get(nxt) == 1:
                    return [*path[path.index(nxt) :], nxt]
                if not state.get(nxt):
                    state[nxt] = 1
                    path.append(nxt)
                    stack.append((nxt, list(self._deps_of(nxt))))
        return None

    def _deps_of(self, key: str) -> tuple[str, ...]:
        story = self.story(key)
        return story.depends_on if story is not None else ()

    @property
    def all_pass(self) -> bool:
        return all(s.passes for s in self.userStories)


def _dep_field(story: Story) -> str:
    for name in ("dependsOn", "dependencies", "deps"):
        if getattr(story, name) is not None:
            return name
    return "dependsOn"


def title_from_description(item: dict[str, Any]) -> str | None:
    """A feature item's title: the first non-blank line of its description."""
    description = item.get("description")
    if not isinstance(description, str):
        return None
    return next((ln.strip() for ln in description.splitlines() if ln.strip()), None)
