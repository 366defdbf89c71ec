"""Redaction speed on 1 MB of transcript-like text: the exact-match pattern (the baseline, as
before encoded forms were added) against today's Redactor (exact + base64/hex/reversed forms,
and the slower invisible-character pattern when such a character is present).

Run: ``.venv/bin/python benchmarks/bench_redaction.py [--repeats N]``.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import string
import time
from collections.abc import Callable

from ralph_tui.safety.credentials import Redactor

SECRETS = {
    "ANTHROPIC_API_KEY": "sk-ant-api03-bench-" + "x7" * 20,
    "GITHUB_TOKEN": "ghp_bench_0123456789abcdefghijklmn",
    "DB_PASSWORD": "correct-horse-battery-staple-42",
}


def sample(size: int, invisible: bool) -> str:
    rng = random.Random(7)
    words = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 10))) for _ in range(500)]
    lines, total = [], 0
    while total < size:
        line = " ".join(rng.choices(words, k=12))
        if invisible and rng.random() < 0.01:
            line += "\u200b"
        lines.append(line)
        total += len(line) + 1
    return "\n".join(lines)[:size]


def seconds(redact: Callable[[str], str], text: str, repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        redact(text)
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def main(repeats: int) -> None:
    exact = re.compile("|".join(re.escape(v) for v in SECRETS.values()))
    redactor = Redactor(env=SECRETS)
    for invisible in (False, True):
        text = sample(1 << 20, invisible)
        base = seconds(lambda t: exact.sub("[REDACTED]", t), text, repeats)
        now = seconds(redactor, text, repeats)
        kind = "with zero-width chars" if invisible else "plain text"
        print(
            f"1 MiB {kind:22s} exact-only {base * 1000:7.1f} ms   "
            f"Redactor {now * 1000:7.1f} ms   ratio {now / base:5.1f}x"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    main(parser.parse_args().repeats)
