"""``ralph-tui run --headless``: the built-in agent, one worker and four, to the last commit."""

from __future__ import annotations

import pytest

from tests.e2e.support import Site, assert_clean, assert_stories_landed
from tests.support.repo import git


@pytest.mark.parametrize("workers", [1, 4])
def test_headless_run_lands_every_story(site: Site, workers: int) -> None:
    root = site.repo(4, config=f"workers = {workers}")
    done = site.ralph("run", "--headless", "--approve", "auto", "--agent", "anthropic")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert "every story passes" in done.stdout
    keys = [f"US-00{i}" for i in range(1, 5)]
    assert_stories_landed(root, keys, [f"Story {i}" for i in range(1, 5)])
    assert len(site.api.requests) == 4 * 2  # create, then complete: per story, no retries
    assert_clean(site)


def test_a_story_that_fails_its_gate_is_not_committed_and_the_run_says_so(site: Site) -> None:
    root = site.repo(1, gates={"tests": "false"}, config="max_iterations = 1")
    done = site.ralph("run", "--headless", "--approve", "auto", "--agent", "anthropic")
    assert done.returncode == 3, done.stdout[-3000:] + done.stderr[-3000:]
    assert "reached max_iterations" in done.stdout
    assert git(root, "log", "--format=%s").splitlines() == ["initial"]
    assert list((root / ".ralph" / "runs").glob("*/patches/*.patch"))  # the attempt is kept
    assert_clean(site)
