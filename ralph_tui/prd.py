"""The PRD model (SPEC section 3) and the rule that picks the next story.

Models allow unknown fields so nothing a user or another tool put in the file is dropped.
Reading and writing the file lives in ``prd_store``; this module is pure.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, model_validator

StoryId = StrictStr | StrictInt


class Story(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: StoryId
    title: Annotated[StrictStr, Field(min_length=1, pattern=r"\S")]
    description: StrictStr = ""
    acceptanceCriteria: list[StrictStr] = Field(default_factory=list)
    priority: Annotated[StrictInt, Field(ge=1)]
    passes: StrictBool
    notes: StrictStr = ""

    @property
    def key(self) -> str:
        """The id as text: ids may be strings or integers in the file, never both for one story."""
        return str(self.id)


class Prd(BaseModel):
    model_config = ConfigDict(extra="allow")

    project: StrictStr = ""
    branchName: StrictStr | None = None
    description: StrictStr = ""
    userStories: list[Story]

    @model_validator(mode="after")
    def _unique_ids(self) -> Prd:
        seen: set[str] = set()
        for story in self.userStories:
            if story.key in seen:
                raise ValueError(f"duplicate story id {story.id!r}")
            seen.add(story.key)
        return self

    def story(self, story_id: str) -> Story | None:
        return next((s for s in self.userStories if s.key == str(story_id)), None)

    def pick_order(self, skip: Collection[str] = ()) -> list[Story]:
        """Open stories in the order the loop will take them: priority, then file order."""
        open_stories = [s for s in self.userStories if not s.passes and s.key not in skip]
        return sorted(open_stories, key=lambda s: s.priority)  # sorted() is stable: file order

    def next_story(self, skip: Collection[str] = ()) -> Story | None:
        order = self.pick_order(skip)
        return order[0] if order else None

    @property
    def all_pass(self) -> bool:
        return all(s.passes for s in self.userStories)
