"""Run every benchmark script in this folder (``bench_*.py``: gates, loop, prompt cache, sandbox,
TUI), one after another (``make bench``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    failed = 0
    for script in sorted(HERE.glob("bench_*.py")):
        print(f"\n=== {script.name} ===", flush=True)
        failed |= subprocess.run([sys.executable, str(script)], check=False).returncode != 0
    raise SystemExit(1 if failed else 0)
