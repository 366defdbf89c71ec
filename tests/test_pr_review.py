"""Reviewing like a pull request through the real engine: line comments go back to the agent
anchored and quoted, dropped hunks and files never land, the gates run again on what remains
and the human is asked again; the review goes into the journal and the progress entry."""

from __future__ import annotations

import json
from pathlib import Path

from ralph_tui.agents.scripted import ScriptedAgent
from ralph_tui.config import load_config
from ralph_tui.events import ApprovalDecided, GateFinished, ReviewRecorded
from ralph_tui.git.repo import FileDiff
from ralph_tui.pr_review import anchor_comments, feedback_for_agent, patch_lines
from ralph_tui.supervisor import ApprovalDecision, ApprovalRequest, DroppedPart, ReviewComment
from tests.support.engine import ScriptedSupervisor, complete, create, make_engine
from tests.support.repo import git, make_repo, story

BIG = "".join(f"line {n}\n" for n in range(1, 31))
CHANGED = BIG.replace("line 2\n", "changed 2\n").replace("line 29\n", "changed 29\n")


def _repo_with_big_file(tmp_path: Path, gates: dict[str, str] | None = None) -> Path:
    root = make_repo(tmp_path / "ws", gates=gates)
    (root / "big.txt").write_text(BIG)
    git(root, "add", "big.txt")
    git(root, "commit", "-qm", "big")
    return root


def test_patch_lines_number_both_sides() -> None:
    patch = (
        "! mode changed\n"
        "diff --git a/f b/f\n--- a/f\n+++ b/f\n"
        "@@ -3,3 +3,3 @@ def x():\n ctx\n-old\n+new\n ctx2\n"
        "@@ -20,2 +20,3 @@\n a\n+b\n c\n"
    )
    lines = patch_lines(patch)
    anchors = [(ln.text, ln.hunk, ln.anchor) for ln in lines if ln.anchor]
    assert anchors == [
        (" ctx", 0, ("new", 3)),
        ("-old", 0, ("old", 4)),
        ("+new", 0, ("new", 4)),
        (" ctx2", 0, ("new", 5)),
        (" a", 1, ("new", 20)),
        ("+b", 1, ("new", 21)),
        (" c", 1, ("new", 22)),
    ]
    assert [ln.hunk for ln in lines[:5]] == [None, None, None, None, 0]


def test_comments_are_quoted_from_the_diff_not_from_the_face() -> None:
    diff = FileDiff("a.py", None, "modified", 1, 1, False, "@@ -1 +1 @@\n-x = 1\n+x = 2\n")
    said = ReviewComment("a.py", 1, "why two?", quote="something else")
    gone = ReviewComment("a.py", 99, "and this?")
    anchored = anchor_comments([diff], [said, gone])
    assert anchored[0].quote == "+x = 2"
    assert "not in the diff" in anchored[1].quote
    text = feedback_for_agent("Needs work.", anchored[:1])
    assert text == "Needs work.\n\nReview comments on your diff:\n- a.py:1\n  > +x = 2\n  why two?"


async def test_reject_sends_comments_anchored_and_quoted(tmp_path: Path) -> None:
    root = _repo_with_big_file(tmp_path)
    comment = ReviewComment("big.txt", 29, "keep line 29 as it was")
    removed = ReviewComment("big.txt", 2, "why remove this?", side="old")
    sup = ScriptedSupervisor([ApprovalDecision.reject("", [comment, removed])])
    script = {
        "default": [
            create("big.txt", CHANGED),
            complete(),
            create("big.txt", BIG.replace("line 2\n", "changed 2\n")),
            complete(),
        ]
    }
    engine, agent, sink, _ = make_engine(root, script, sup)

    assert await engine.run() == 0
    first = next(o for name, o in agent.received if name == "complete_task")
    assert first.is_error
    assert (
        "Review comments on your diff:\n"
        "- big.txt:29\n  > +changed 29\n  keep line 29 as it was\n"
        "- big.txt:2 (removed line)\n  > -line 2\n  why remove this?"
    ) in first.content
    recorded = sink.of(ReviewRecorded)
    assert recorded[0].decision == "reject" and recorded[0].comments == (
        "big.txt:29: keep line 29 as it was",
        "big.txt:2 (removed line): why remove this?",
    )
    log = (root / "tasks/backend_progress.txt").read_text()
    assert "Review:\n- big.txt:29: keep line 29 as it was\n" in log
    journal = next((root / ".ralph" / "runs").glob("*/events.jsonl")).read_text()
    assert '"kind": "review_recorded"' in journal and "keep line 29 as it was" in journal
    transcript = next((root / ".ralph" / "runs").glob("*/transcript.md")).read_text()
    assert "- review: big.txt:29: keep line 29 as it was\n" in transcript


def test_the_console_prints_the_review() -> None:
    import io

    from ralph_tui.headless import ConsoleSink

    out = io.StringIO()
    ConsoleSink(out)(ReviewRecorded("US-1", "approve", ("dropped a.py (the whole file)",), ()))
    assert "review: dropped a.py (the whole file)" in out.getvalue()


async def test_a_dropped_hunk_is_not_committed_and_the_gates_run_again(tmp_path: Path) -> None:
    root = _repo_with_big_file(tmp_path)
    sup = ScriptedSupervisor(
        [ApprovalDecision.approve([DroppedPart("big.txt", 1)]), ApprovalDecision.approve()]
    )
    script = {"default": [create("big.txt", CHANGED), create("new.py", "x = 1\n"), complete()]}
    engine, _, sink, _ = make_engine(root, script, sup)

    assert await engine.run() == 0
    committed = git(root, "show", "HEAD:big.txt")
    assert "changed 2\n" in committed and "changed 29" not in committed
    assert "line 29\n" in committed
    assert git(root, "show", "HEAD:new.py") == "x = 1\n"
    assert git(root, "status", "--porcelain") == ""
    # asked twice: the second approval shows the tree without the hunk, gated again
    assert len(sup.approval_requests) == 2
    assert "big.txt | 4 ++--" in sup.approval_requests[0].diffstat
    assert "big.txt | 2 +-" in sup.approval_requests[1].diffstat
    assert len(sink.of(GateFinished)) == 2
    assert [d.decision for d in sink.of(ApprovalDecided)] == ["approve", "approve"]
    recorded = sink.of(ReviewRecorded)
    assert recorded[0].dropped == ("dropped big.txt hunk 2 (@@ -26,5 +26,5 @@ line 25)",)
    log = (root / "tasks/backend_progress.txt").read_text()
    assert "Review:\n- dropped big.txt hunk 2 (@@ -26,5 +26,5 @@ line 25)\n" in log


async def test_a_dropped_file_is_not_committed(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    sup = ScriptedSupervisor([ApprovalDecision.approve([DroppedPart("sneaky.py")])])
    script = {
        "default": [create("a.py", "x = 1\n"), create("sneaky.py", "import os\n"), complete()]
    }
    engine, _, _, _ = make_engine(root, script, sup)

    assert await engine.run() == 0
    files = git(root, "show", "--name-only", "--format=", "HEAD").split()
    assert "a.py" in files and "sneaky.py" not in files
    assert not (root / "sneaky.py").exists()


async def test_gates_failing_after_a_drop_go_back_to_the_agent(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws", gates={"check": "grep -q good ok.txt"})
    sup = ScriptedSupervisor([ApprovalDecision.approve([DroppedPart("ok.txt")])])
    script = {
        "default": [
            create("ok.txt", "good\n"),
            create("a.py", "x = 1\n"),
            complete(),
            create("ok.txt", "good\n"),
            complete(),
        ]
    }
    engine, agent, _, _ = make_engine(root, script, sup)

    assert await engine.run() == 0
    outcomes = [o for name, o in agent.received if name == "complete_task"]
    assert outcomes[0].is_error
    assert "dropped ok.txt from your change" in outcomes[0].content
    assert "check" in outcomes[0].content
    assert len(sup.approval_requests) == 2  # the human approves the fixed change again


async def test_a_drop_of_a_path_not_shown_is_said_and_asked_again(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "ws")
    sup = ScriptedSupervisor(
        [ApprovalDecision.approve([DroppedPart("no/such/file.py")]), ApprovalDecision.approve()]
    )
    script = {"default": [create("a.py", "x = 1\n"), complete()]}
    engine, _, sink, _ = make_engine(root, script, sup)

    assert await engine.run() == 0
    assert len(sup.approval_requests) == 2  # the bad drop is said, and the human asked again
    notices = [json.dumps(e.to_dict()) for e in sink.events if e.kind == "notice"]
    assert any("no/such/file.py: not in the change shown" in n for n in notices)
    assert git(root, "show", "HEAD:a.py") == "x = 1\n"


class PerStory(ScriptedSupervisor):
    """Decisions per story (parallel workers ask in any order); an empty list approves."""

    def __init__(self, decisions: dict[str, list[ApprovalDecision]]) -> None:
        super().__init__()
        self.per_story = decisions

    async def approve(self, request: ApprovalRequest) -> ApprovalDecision:
        self.approval_requests.append(request)
        queue = self.per_story.get(request.story_id, [])
        return queue.pop(0) if queue else ApprovalDecision.approve()


async def test_a_worker_drops_a_hunk_and_a_file_and_the_merge_lands_the_rest(
    tmp_path: Path,
) -> None:
    from ralph_tui.parallel import ParallelEngine
    from tests.support.engine import RecordingSink, write_script

    root = make_repo(tmp_path / "ws", [story("US-001", "One"), story("US-002", "Two")])
    (root / "big.txt").write_text(BIG)
    git(root, "add", "big.txt")
    git(root, "commit", "-qm", "big")
    sup = PerStory(
        {
            "US-001": [
                ApprovalDecision.approve(
                    [DroppedPart("big.txt", 1), DroppedPart("debug.py")],
                    [ReviewComment("big.txt", 2, "fine")],
                )
            ]
        }
    )
    script = {
        "stories": {
            "US-001": [create("big.txt", CHANGED), create("debug.py", "import pdb\n"), complete()],
            "US-002": [create("two.txt", "2\n"), complete()],
        }
    }
    path = write_script(root, script)
    config = load_config(root, {"script": str(path), "workers": 2})
    sink = RecordingSink()
    engine = ParallelEngine(root, config, ScriptedAgent.from_file(path, config), sup, sink)

    assert await engine.run() == 0
    committed = git(root, "show", "HEAD:big.txt")
    assert "changed 2\n" in committed and "changed 29" not in committed
    assert "debug.py" not in git(root, "ls-files")
    assert (root / "two.txt").read_text() == "2\n"
    asked = [r for r in sup.approval_requests if r.story_id == "US-001"]
    assert len(asked) == 2 and "debug.py" not in asked[1].diffstat
    log = (root / "tasks/backend_progress.txt").read_text()
    entry = log[log.index("## Task #US-001") :]
    assert "- dropped debug.py (the whole file)\n" in entry
    assert "- big.txt:2: fine\n" in entry


async def test_a_hunk_of_a_file_with_an_awkward_name_can_be_dropped(tmp_path: Path) -> None:
    """Names git quotes in a patch header (a space, a quote, a backslash, a tab, bytes that are
    not ASCII) used to be refused ("drop the whole file")."""
    names = ["my file.txt", 'say "hi"\\now.txt', "tab\there.txt", "größe.txt"]
    root = make_repo(tmp_path / "ws")
    for name in names:
        (root / name).write_text(BIG)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "awkward names")
    drops = [DroppedPart(name, 1) for name in names]
    sup = ScriptedSupervisor([ApprovalDecision.approve(drops), ApprovalDecision.approve()])
    script = {"default": [*(create(name, CHANGED) for name in names), complete()]}
    engine, _, sink, _ = make_engine(root, script, sup)

    assert await engine.run() == 0
    for name in names:
        committed = git(root, "show", f"HEAD:{name}")
        assert "changed 2\n" in committed and "changed 29" not in committed, name
    assert git(root, "status", "--porcelain") == ""
    assert len(sup.approval_requests) == 2
    assert all("hunk 2" in line for line in sink.of(ReviewRecorded)[0].dropped)
