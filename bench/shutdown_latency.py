"""How fast an idle worker stops on SIGTERM: the measurements the shutdown tests no longer bound.

Usage: .venv/bin/python bench/shutdown_latency.py [ROUNDS] [--burn N]
Each round starts `photo-ingest run` against an embedded moto server with a 20 s long poll, waits for its first
heartbeat, sends SIGTERM, and records two figures:

- stop: `process.stop_requested` -> `worker.stopped`, from the worker's own log timestamps (the long poll
  cut, the clients closed);
- exit: SIGTERM -> the process has exited, by this script's clock (interpreter teardown included).

`--burn N` keeps N busy-looping processes running meanwhile, to see the figures on a loaded machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import boto3
from moto.moto_server.threaded_moto_server import ThreadedMotoServer

BURN = "while True: pass"


def start_moto() -> tuple[ThreadedMotoServer, str]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="x",
        AWS_SECRET_ACCESS_KEY="x",  # noqa: S106 - moto accepts any credentials
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
    )
    return server, endpoint


def one_round(queue_url: str, directory: Path) -> tuple[float, float]:
    """(stop s by the worker's log, exit s by this clock) for one idle worker."""
    health = directory / "health"
    env = os.environ | {
        "QUEUE_URL": queue_url,
        "RECEIVE_WAIT_SECONDS": "20",
        "LOG_FORMAT": "json",
        "METRICS_ENABLED": "false",
        "HEALTH_FILE": str(health),
    }
    log_path = directory / "worker.log"
    with log_path.open("w") as log_file:
        worker = subprocess.Popen([sys.executable, "-m", "service", "run"], env=env, cwd=directory, stdout=log_file)
    deadline = time.monotonic() + 30
    while not health.exists():
        if time.monotonic() > deadline or worker.poll() is not None:
            worker.kill()
            raise SystemExit(f"the worker did not start: {log_path.read_text()[-2000:]}")
        time.sleep(0.05)
    signalled = time.perf_counter()
    worker.send_signal(signal.SIGTERM)
    worker.wait(60)
    exit_s = time.perf_counter() - signalled
    events = {e["event"]: e["timestamp"] for e in map(json.loads, log_path.read_text().splitlines())}
    stopped = datetime.fromisoformat(events["worker.stopped"])
    stop_s = (stopped - datetime.fromisoformat(events["process.stop_requested"])).total_seconds()
    health.unlink()
    return stop_s, exit_s


def summary(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    return (
        f"{name}: median {statistics.median(ordered):.3f} s, max {ordered[-1]:.3f} s, min {ordered[0]:.3f} s"
        f" over {len(ordered)} rounds"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rounds", nargs="?", type=int, default=10)
    parser.add_argument("--burn", type=int, default=0, help="busy-looping processes to run meanwhile")
    options = parser.parse_args()
    server, endpoint = start_moto()
    queue_url = boto3.client("sqs").create_queue(QueueName="bench-shutdown")["QueueUrl"]
    burners = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(options.burn)]
    try:
        print(f"moto {endpoint}; cpu count {os.cpu_count()}; busy loops {options.burn}")
        with tempfile.TemporaryDirectory() as directory:
            rounds = [one_round(queue_url, Path(directory)) for _ in range(options.rounds)]
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
        server.stop()
    print(summary("stop (process.stop_requested -> worker.stopped, worker's clock)", [r[0] for r in rounds]))
    print(summary("exit (SIGTERM -> process exited, wall clock)", [r[1] for r in rounds]))


if __name__ == "__main__":
    main()
