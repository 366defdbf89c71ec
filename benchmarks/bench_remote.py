"""Latency added by a remote face: an event emitted in the engine, seen by an attached client.

A real engine (on a temp repository) serves on 127.0.0.1; a client in another process attaches
and records, for each of N ``Notice`` events, the time from ``Engine.emit`` to (a) the client's
model (``RemoteRun`` handing the event to its sink: what a local TUI's batcher gets) and (b) the
attached TUI's widgets (``AttachedApp.flush_events`` applied it; this includes the TUI's own
batching, the same for a local run: one paint per 100 ms during a stream, at once after a quiet
spell). Both processes read ``time.monotonic`` (one clock on Linux). Events are spaced 2 ms
apart by default (a stream); ``--spacing-ms 150`` shows sparse events (approvals, gates).

Run: ``.venv/bin/python benchmarks/bench_remote.py [--events 1000]``. Goal: p99 (a) < 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PREFIX = "bench#"


def _sent_at(message: str) -> tuple[int, float] | None:
    if not message.startswith(PREFIX):
        return None
    index, sent = message[len(PREFIX) :].split("@")
    return int(index), float(sent)


async def client_model(url: str, token: str, count: int) -> list[float]:
    from ralph_tui.events import Event, Notice
    from ralph_tui.server.client import RemoteRun
    from ralph_tui.supervisor import Supervisor

    latencies: list[float] = []
    done = asyncio.Event()

    def sink(event: Event) -> None:
        if isinstance(event, Notice) and (stamp := _sent_at(event.message)):
            latencies.append(time.monotonic() - stamp[1])
            if len(latencies) == count:
                done.set()

    class Never:
        async def approve(self, request: Any) -> Any:
            await asyncio.Event().wait()

        async def answer(self, request: Any) -> Any:
            await asyncio.Event().wait()

    never: Supervisor = Never()
    run = RemoteRun(url, token, never, sink)
    task = asyncio.create_task(run.run())
    await run.wait_connected()
    print("ready", flush=True)
    await done.wait()
    task.cancel()
    return latencies


async def client_tui(url: str, token: str, count: int) -> list[float]:
    from ralph_tui.events import Event, Notice
    from ralph_tui.server.client import first_look
    from ralph_tui.tui import app as app_module
    from ralph_tui.tui.remote import AttachedApp

    latencies: list[float] = []
    done = asyncio.Event()

    class Timed(AttachedApp):
        CSS_PATH = Path(app_module.__file__).with_name("app.tcss")
        drained: list[Event] = []  # noqa: RUF012

        def flush_events(self) -> None:
            if not hasattr(self, "_plain_drain"):
                self._plain_drain = self.batcher.drain

                def drain() -> list[Event]:
                    self.drained = self._plain_drain()
                    return self.drained

                self.batcher.drain = drain  # type: ignore[method-assign]
            self.drained = []
            super().flush_events()  # the widgets have applied what was drained
            now = time.monotonic()
            for event in self.drained:
                if not isinstance(event, Notice):
                    continue
                if stamp := _sent_at(event.message):
                    latencies.append(now - stamp[1])
            if len(latencies) >= count:
                done.set()

    info, prd = first_look(url, token)
    app = Timed(url, token, info, prd)
    async with app.run_test(size=(120, 40)):
        assert app.remote is not None
        await app.remote.wait_connected()
        os.write(1, b"ready\n")  # Textual captures print() while the app runs
        await done.wait()
    return latencies


def child(mode: str, url: str, token: str, count: int) -> None:
    runner = client_model if mode == "model" else client_tui
    latencies = asyncio.run(runner(url, token, count))
    print(json.dumps(latencies), flush=True)


async def measure(mode: str, count: int, spacing_s: float) -> list[float]:
    from ralph_tui.config import load_config
    from ralph_tui.events import Notice
    from ralph_tui.runs import make_run_factory
    from tests.support.engine import ScriptedSupervisor
    from tests.support.repo import make_repo

    with tempfile.TemporaryDirectory(prefix="bench-remote-") as tmp:
        root = make_repo(Path(tmp) / "ws")
        config = load_config(root, {"listen": "127.0.0.1:0", "notify": {"desktop": False}})
        served = make_run_factory(root, config)(ScriptedSupervisor(), lambda e: None)
        assert served.server is not None
        url = await served.server.start()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--client",
            mode,
            url,
            served.server.token,
            str(count),
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        assert proc.stdout is not None
        ready = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert ready.strip() == b"ready", ready
        for index in range(count):
            served.engine.emit(
                Notice(level="info", message=f"{PREFIX}{index}@{time.monotonic():.6f}")
            )
            await asyncio.sleep(spacing_s)
        result = await asyncio.wait_for(proc.stdout.readline(), 120)
        await proc.wait()
        await served.server.stop()
        latencies: list[float] = json.loads(result)
        return latencies


def report(label: str, latencies: list[float]) -> None:
    ms = sorted(x * 1000 for x in latencies)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    print(
        f"{label:<42} n={len(ms):>5}  median {statistics.median(ms):6.2f} ms  "
        f"p99 {p99:6.2f} ms  max {ms[-1]:6.2f} ms",
        flush=True,
    )


async def main(count: int, spacing_s: float) -> None:
    print(
        f"engine emit -> attached client over 127.0.0.1, {count} events, "
        f"{spacing_s * 1000:g} ms apart"
    )
    report("client model (RemoteRun sink)", await measure("model", count, spacing_s))
    report("attached TUI widgets (incl. the TUI batching)", await measure("tui", count, spacing_s))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--spacing-ms", type=float, default=2.0)
    parser.add_argument("--client", nargs=4, metavar=("MODE", "URL", "TOKEN", "N"))
    args = parser.parse_args()
    if args.client:
        mode, url, token, n = args.client
        child(mode, url, token, int(n))
    else:
        asyncio.run(main(args.events, args.spacing_ms / 1000))
