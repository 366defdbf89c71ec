"""A stand-in for a coding CLI (codex, amp, aider), driven by ``agent = "command"`` in tests.

    fake_cli.py MODE LOGDIR [--prompt PATH]

The prompt comes from ``--prompt`` (the ``{prompt_file}`` placeholder) or, without it, from stdin
read to EOF. Every run saves the prompt it got as ``LOGDIR/prompt-<n>.md`` so tests can check
what reached the CLI. Modes:

- ``stream``: prints a line, then waits (up to 20 s) for ``LOGDIR/go`` before printing more and
  writing ``hello.py``, so a test can prove the first line arrived while the process ran.
- ``marker``: writes ``hello.py``, prints the done marker, then keeps running (a CLI that does
  not exit by itself).
- ``escalate``: prints an escalation marker, reads one line of stdin (the answer) and writes it
  to ``answer.txt``.
- ``ask-once``: escalates and exits on the first run; later runs (whose prompt holds the answer)
  write ``answer.txt`` from it.
- ``hang``: starts a child ``sleep``, saves its pid to ``LOGDIR/child.pid``, and sleeps.
- ``fail``: prints an error and exits with status 2.
- ``usage-cap``: writes ``hello.py`` half done (no function yet), then prints a usage-limit
  message whose reset is ``LOGDIR/resets-in`` (e.g. "2 hours 5 minutes"; default "5 minutes")
  and exits with status 1, as a CLI whose plan ran out mid-story.
- ``work``: writes ``hello.py`` (a passing module) and exits 0; with ``FIXME`` in the prompt
  ("gates failed" feedback) writes the fixed version.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

DONE = "<promise>COMPLETE</promise>"


def say(text: str) -> None:
    print(text, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode")
    parser.add_argument("logdir", type=Path)
    parser.add_argument("--prompt", type=Path)
    args = parser.parse_args()
    logdir: Path = args.logdir
    logdir.mkdir(parents=True, exist_ok=True)
    prompt = args.prompt.read_text(encoding="utf-8") if args.prompt else sys.stdin.read()
    run = len(list(logdir.glob("prompt-*.md"))) + 1
    (logdir / f"prompt-{run}.md").write_text(prompt, encoding="utf-8")
    mode: str = args.mode

    if mode == "stream":
        say("reading the story")
        deadline = time.monotonic() + 20
        while not (logdir / "go").exists():
            if time.monotonic() > deadline:
                say("nobody saw my first line")
                return 3
            time.sleep(0.01)
        say("writing hello.py")
        Path("hello.py").write_text("GREETING = 'hello'\n", encoding="utf-8")
        say("all done")
        return 0
    if mode == "marker":
        Path("hello.py").write_text("GREETING = 'hello'\n", encoding="utf-8")
        say("wrote hello.py")
        say(DONE)
        time.sleep(60)
        return 0
    if mode == "escalate":
        say("I need a decision.")
        say("<escalate>Which database should I use?</escalate>")
        answer = sys.stdin.readline().strip()
        say(f"got answer: {answer}")
        Path("answer.txt").write_text(answer + "\n", encoding="utf-8")
        return 0
    if mode == "ask-once":
        marker = "The human answered: "
        if marker not in prompt:
            say("<escalate>Tabs or spaces?</escalate>")
            return 0
        answer = prompt.split(marker, 1)[1].splitlines()[0]
        Path("answer.txt").write_text(answer + "\n", encoding="utf-8")
        say(f"using {answer}")
        return 0
    if mode == "hang":
        child = subprocess.Popen(["sleep", "300"])
        (logdir / "child.pid").write_text(str(child.pid), encoding="utf-8")
        say("thinking very hard")
        time.sleep(300)
        return 0
    if mode == "usage-cap":
        Path("hello.py").write_text("# hello() goes here\nSTARTED = True\n", encoding="utf-8")
        say("started hello.py")
        resets = logdir / "resets-in"
        when = resets.read_text(encoding="utf-8").strip() if resets.exists() else "5 minutes"
        say(f"Error: You've hit your usage limit. Try again in {when}.")
        return 1
    if mode == "fail":
        say("error: not logged in")
        return 2
    if mode == "work":
        fixed = "FIXME" in prompt
        body = "def hello() -> str:\n    return 'hello'\n"
        if not fixed:
            body += "FIXME = True\n"
        Path("hello.py").write_text(body, encoding="utf-8")
        say("fixed the gate failure" if fixed else "implemented hello()")
        return 0
    say(f"unknown mode {mode}")
    return 64


if __name__ == "__main__":
    sys.exit(main())
