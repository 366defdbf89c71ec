"""The README's Ray recipe, as a user follows it (issue 19).

A cluster started with ``ray start`` in subprocesses (a head with no story slots and two worker
nodes; this test process never calls ``ray.init``), then the installed ``ralph-tui run
--headless`` with ``executor = "ray"`` and ``workers = 2`` on four stories, its built-in agent
talking to the fake Messages API. Two stories are placed at once, so both reach the cluster
connect together: before the fix the second one's ``ray.init`` raised and the run ended in a
traceback before the first story.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("ray", reason="needs the ray extra (pip install -e '.[ray]')")

from tests.e2e.support import Site, assert_clean, assert_stories_landed
from tests.support.ray_cluster import LocalRayCluster

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalRayCluster]:
    nodes = LocalRayCluster(cpus_per_node=1, driver=False)
    try:
        nodes.start()
        yield nodes
    finally:
        left = nodes.stop()
        assert left == [], f"ray processes left running: {left}"


def test_the_readme_recipe_runs_four_stories_on_two_nodes(
    cluster: LocalRayCluster, site: Site
) -> None:
    config = f'executor = "ray"\nworkers = 2\nray = {{ address = "{cluster.address}" }}'
    root = site.repo(4, config=config)
    done = site.ralph("run", "--headless", "--approve", "auto", "--agent", "anthropic", timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert "SIGTERM handler" not in done.stderr  # Ray's warning about our thread is dropped
    keys = [f"US-00{i}" for i in range(1, 5)]
    assert_stories_landed(root, keys, [f"Story {i}" for i in range(1, 5)])
    assert_clean(site)


def test_an_unreachable_cluster_is_one_line_naming_the_address(site: Site) -> None:
    """The executor and the workers from the command line (``run --executor ray``, as the
    README offers beside the two lines of ralph.toml), the address from ralph.toml."""
    address = "127.0.0.2:9"  # nothing listens there
    site.repo(4, config=f'ray = {{ address = "{address}" }}')
    done = site.ralph(
        "run", "--headless", "--approve", "auto", "--agent", "anthropic",
        "--executor", "ray", "--workers", "2",
    )  # fmt: skip
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and address in lines[0], done.stderr
    assert site.api.requests == []  # no story started
