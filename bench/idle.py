"""The idle receive rate: how many ReceiveMessage calls a minute one `photo-ingest run` sends to an empty queue,
with its defaults, after a burst has grown its pollers (issue 20: fewer than the 12 a minute of 4 fixed pollers).

    python -m bench.idle                       # a burst of 2,000 messages, 25 s to settle, then 60 s idle
    python -m bench.idle --burst 5000 --window 120 --worker-env POLLERS=8

The endpoint (bench/endpoint.py) counts every call. The figures: the pollers at the burst's peak (the `Pollers`
gauge is not read; the endpoint's waiting receives are), and the receives a minute over the idle window.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import tempfile
import time
from pathlib import Path

from bench import workload
from bench.runner import _prefill, base_env, queue_url, spawn, start_endpoint


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.idle", description=__doc__.splitlines()[0])
    parser.add_argument("--burst", type=int, default=2_000, help="messages before the idle window (2,000)")
    parser.add_argument("--latency-ms", type=float, default=5.0, help="the endpoint's round trip (5 ms)")
    parser.add_argument("--settle", type=float, default=25.0, help="seconds after the burst, for pollers to retire")
    parser.add_argument("--window", type=float, default=60.0, help="the idle window, seconds (60)")
    parser.add_argument("--worker-env", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="idle-") as scratch:
        print(json.dumps(measure(args, Path(scratch))))
    return 0


def measure(args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    endpoint, (control,) = start_endpoint(workdir, ["--latency-ms", str(args.latency_ms)])
    try:
        url = control.url
        asyncio.run(_prefill(url, queue_url(url), workload.build(args.burst).bodies))
        env = base_env(url) | {"QUEUE_URL": queue_url(url), "PHOTOS_TABLE": "Photos", "METRICS_ENABLED": "false"}
        env |= {"HEALTH_FILE": str(workdir / "health"), "LOG_LEVEL": "WARNING"}
        env |= dict(pair.split("=", 1) for pair in args.worker_env)
        worker = spawn("photo-ingest", [sys.executable, "-m", "service", "run"], env, workdir)
        try:
            control.wait(120.0, receivers=1)
            control.call("arm")
            peak = 0
            while control.call("stats")["deleted"] < args.burst:
                peak = max(peak, control.call("stats")["waiting_receives"])
                time.sleep(0.05)  # a sampling interval of the bench, not a wait for a condition
            time.sleep(args.settle)
            before = control.call("stats")["calls"].get("ReceiveMessage", 0)
            time.sleep(args.window)
            after = control.call("stats")["calls"].get("ReceiveMessage", 0)
        finally:
            worker.popen.send_signal(signal.SIGTERM)
            worker.popen.wait(60)
    finally:
        endpoint.popen.send_signal(signal.SIGTERM)
        endpoint.popen.wait(30)
    per_minute = (after - before) * 60 / args.window
    return {"burst": args.burst, "waiting_receives_peak": peak, "idle_receives_per_minute": round(per_minute, 2)}


if __name__ == "__main__":
    sys.exit(main())
