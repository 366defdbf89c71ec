"""The pick rule (SPEC section 1, step 2) and the model's validation."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from ralph_tui.prd.model import Prd
from tests.support.repo import story


def prd(*stories: dict[str, Any]) -> Prd:
    return Prd.model_validate({"project": "p", "userStories": list(stories)})


def keys(p: Prd, skip: tuple[str, ...] = ()) -> list[str]:
    return [s.key for s in p.pick_order(skip)]


def test_lowest_priority_number_first() -> None:
    p = prd(story("A", "a", 3), story("B", "b", 1), story("C", "c", 2))
    assert keys(p) == ["B", "C", "A"]
    next_story = p.next_story()
    assert next_story is not None and next_story.key == "B"


def test_file_order_breaks_ties() -> None:
    p = prd(story("C", "c", 2), story("A", "a", 1), story("B", "b", 2), story("D", "d", 1))
    assert keys(p) == ["A", "D", "C", "B"]


def test_passing_stories_are_passed_over() -> None:
    p = prd(story("A", "a", 1, passes=True), story("B", "b", 2), story("C", "c", 1, passes=True))
    assert keys(p) == ["B"]
    assert not p.all_pass


def test_skip_set_is_honoured() -> None:
    p = prd(story("A", "a", 1), story("B", "b", 1), story("C", "c", 2))
    assert keys(p, ("A",)) == ["B", "C"]
    next_story = p.next_story({"A", "B"})
    assert next_story is not None and next_story.key == "C"
    assert p.next_story({"A", "B", "C"}) is None


def test_int_and_string_ids_match_by_text() -> None:
    p = prd(story(7, "int id", 2), story("8", "string id", 1))
    assert keys(p) == ["8", "7"]
    assert keys(p, ("7",)) == ["8"]
    found = p.story("7")
    assert found is not None and found.id == 7


def test_all_passing_means_no_next_story() -> None:
    p = prd(story("A", "a", passes=True))
    assert p.next_story() is None
    assert p.all_pass


@pytest.mark.parametrize(
    "bad",
    [
        {"priority": [1]},
        {"priority": "1"},
        {"priority": float("nan")},
        {"priority": True},
        {"passes": "no"},
        {"title": ""},
        {"title": "   "},
        {"id": 1.5},
    ],
)
def test_invalid_story_fields_are_rejected(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        prd({**story("A", "a"), **bad})


def test_repeated_ids_are_addressed_by_position_even_across_int_and_string() -> None:
    p = prd(story(1, "a", passes=True), story("B", "b"), story("1", "c", 0), story("D", "d"))
    assert [s.key for s in p.userStories] == ["1@1", "B", "1@3", "D"]
    assert p.duplicate_ids() == [[0, 2]]
    assert keys(p) == ["1@3", "B", "D"]  # the open copy is picked, by its own key
    assert p.index_of("1@3") == 2 and p.index_of("1@1") == 0
    found = p.story("1")  # the bare id (a dependency, an API call) is the first copy
    assert found is not None and found.title == "a"


def test_a_key_made_for_a_repeat_does_not_collide_with_a_real_id() -> None:
    p = prd(story("A", "a"), story("A@2", "b"), story("A", "c"))
    assert [s.key for s in p.userStories] == ["A@1", "A@2", "A@3"]
    p = prd(story("A@3", "x"), story("A", "a"), story("A", "c"))
    assert [s.key for s in p.userStories] == ["A@3", "A@2", "A@3@"]


def test_unknown_fields_are_kept() -> None:
    p = Prd.model_validate(
        {"userStories": [story("A", "a", estimate=3)], "owner": "me", "branchName": "x"}
    )
    assert p.model_extra == {"owner": "me"}
    assert p.userStories[0].model_extra == {"estimate": 3}
