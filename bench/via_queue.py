"""`photo-ingest backfill --via-queue` on the fast local endpoint (bench/endpoint.py): how fast one backfill
process sends, whether `--rate` holds, and how long N objects take end to end (sent, then written by 1 or 2
worker processes).

The endpoint speaks SQS (SendMessageBatch, GetQueueAttributes, ...) and DynamoDB, not S3. The objects therefore
come from an S3 Inventory report (a manifest.json and gzip-compressed CSV data files, keys URL-encoded as S3
writes them) in a moto S3 server: the production path for a bucket of millions of objects anyway, and it keeps
moto's ~1,000 keys/s listing out of the figures. The backfill reads the report from moto (AWS_ENDPOINT_URL_S3)
and sends to the endpoint (AWS_ENDPOINT_URL_SQS); the workers poll and write to the endpoint.

    .venv/bin/python -m bench.via_queue                      N=100,000: send only; end to end with 1 and 2 workers
    .venv/bin/python -m bench.via_queue --n 10000 --rate 2000 --cases send

Each case has a fresh endpoint. The end-to-end clock runs from the backfill's start to the endpoint's last
delete; the end state is checked (N deletes, N items), so a fast but wrong run fails.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import http.client
import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, urlencode

import boto3
from moto.moto_server.threaded_moto_server import ThreadedMotoServer

REPO = Path(__file__).resolve().parent.parent
BUCKET, DESTINATION, QUEUE, TABLE = "bench-raw", "bench-inventory", "bench-queue", "Photos"
REPORT = f"inventory/{BUCKET}/daily/2026-12-05T01-00Z"
ROWS_PER_FILE = 25_000
IDLE_POLLERS = 1  # an idle worker keeps one receive waiting (its pollers grow with demand)
WAIT_S = 600.0


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ"}}
    return env | {
        "PYTHONPATH": str(REPO),
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "RAW_PREFIX": "photos-raw/",
        "LOG_FORMAT": "json",
    }


def key(n: int) -> str:
    album = ("2024-05-02", "family trip", "café", "raw+edits", "sale 50%off")[n % 5]
    return f"photos-raw/user-{n % 500:03d}/{album}/IMG_{n:07d}{('', ' (1)', ' copy', '_é')[n % 4]}.jpg"


def write_report(s3: Any, n: int) -> str:
    """An inventory report of N objects in moto; returns the manifest's s3:// URI."""
    s3.create_bucket(Bucket=DESTINATION)
    files = []
    for start in range(0, n, ROWS_PER_FILE):
        text = io.StringIO()
        rows = [
            [BUCKET, quote_plus(key(i), safe=""), str(1000 + i), "2026-12-04T10:15:30.000Z", f"{i:032x}"]
            for i in range(start, min(n, start + ROWS_PER_FILE))
        ]
        csv.writer(text, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
        name = f"inventory/{BUCKET}/daily/data/part-{len(files)}.csv.gz"
        s3.put_object(Bucket=DESTINATION, Key=name, Body=gzip.compress(text.getvalue().encode()))
        files.append({"key": name, "size": 0, "MD5checksum": "0" * 32})
    manifest = {
        "sourceBucket": BUCKET,
        "destinationBucket": f"arn:aws:s3:::{DESTINATION}",
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, Size, LastModifiedDate, ETag",
        "files": files,
    }
    s3.put_object(Bucket=DESTINATION, Key=f"{REPORT}/manifest.json", Body=json.dumps(manifest).encode())
    return f"s3://{DESTINATION}/{REPORT}/manifest.json"


class Endpoint:
    """`python -m bench.endpoint` in its own process, and its `/_bench/` control calls."""

    def __init__(self, workdir: Path) -> None:
        argv = [sys.executable, "-m", "bench.endpoint", "--queue", QUEUE, "--table", TABLE]
        err = (workdir / "endpoint.err").open("wb")
        self.popen = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, env=base_env(), cwd=workdir)
        assert self.popen.stdout is not None
        self.port = int(json.loads(self.popen.stdout.readline())["port"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.queue_url = f"{self.url}/000000000000/{QUEUE}"

    def call(self, command: str, timeout_s: float = 30.0, **query: object) -> dict[str, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout_s)
        try:
            conn.request("GET", f"/_bench/{command}?{urlencode(query)}")
            return dict(json.loads(conn.getresponse().read()))
        finally:
            conn.close()

    def stop(self) -> None:
        self.popen.send_signal(signal.SIGTERM)
        self.popen.wait(30)


def spawn(argv: list[str], env: dict[str, str], workdir: Path, name: str) -> subprocess.Popen[bytes]:
    with (workdir / f"{name}.out").open("wb") as out, (workdir / f"{name}.err").open("wb") as err:
        return subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=workdir)


def reap(popen: subprocess.Popen[bytes]) -> float:
    """Wait for the process; returns its CPU seconds (user + system, whole life) from wait4."""
    _, status, usage = os.wait4(popen.pid, 0)
    popen.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


def run_case(args: argparse.Namespace, manifest: str, s3_url: str, workers: int, workdir: Path) -> dict[str, Any]:
    endpoint = Endpoint(workdir)
    env = base_env() | {"QUEUE_URL": endpoint.queue_url, "PHOTOS_TABLE": TABLE}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for index in range(workers):
            worker_env = env | {"AWS_ENDPOINT_URL": endpoint.url, "METRICS_ENABLED": "false"}
            worker_env["HEALTH_FILE"] = str(workdir / f"health-{index}")
            procs.append(spawn([sys.executable, "-m", "service", "run"], worker_env, workdir, f"worker-{index}"))
        if workers:
            endpoint.call("wait", timeout_s=120, receivers=workers * IDLE_POLLERS)
        endpoint.call("arm")
        env |= {"AWS_ENDPOINT_URL_S3": s3_url, "AWS_ENDPOINT_URL_SQS": endpoint.url}
        result = measure(args, manifest, env, endpoint, workers=workers, workdir=workdir)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        worker_cpu_s = sum(reap(proc) for proc in procs)
        endpoint.stop()
    if workers:
        result["workers_cpu_ms_per_msg"] = round(worker_cpu_s * 1000 / args.n, 3)
    return result


def measure(
    args: argparse.Namespace, manifest: str, env: dict[str, str], endpoint: Endpoint, *, workers: int, workdir: Path
) -> dict[str, Any]:
    argv = [sys.executable, "-m", "service", "backfill", "--via-queue", "--bucket", BUCKET, "--inventory", manifest]
    argv += ["--concurrency", str(args.concurrency)] + (["--rate", str(args.rate)] if args.rate else [])
    started = time.perf_counter()
    backfill = spawn(argv, env, workdir, f"backfill-{workers}")
    cpu_s = reap(backfill)
    sent_s = time.perf_counter() - started
    out = (workdir / f"backfill-{workers}.out").read_text()
    if backfill.returncode != 0 or f"sent          {args.n}" not in out:
        raise SystemExit(f"the backfill failed (exit {backfill.returncode}):\n{out[-2000:]}")
    own = re.search(r"finished after ([\d.]+) s", out)
    result: dict[str, Any] = {
        "workers": workers,
        "n": args.n,
        "backfill_wall_s": round(sent_s, 2),
        "backfill_own_s": float(own.group(1)) if own else None,
        "send_msg_per_s": round(args.n / float(own.group(1))) if own else None,
        "backfill_cpu_ms_per_msg": round(cpu_s * 1000 / args.n, 3),
    }
    if args.rate and own:
        result["rate_requested"] = args.rate
    if workers:
        drained = endpoint.call("wait", timeout_s=WAIT_S, deleted=args.n)
        end_to_end_s = time.perf_counter() - started
        items = drained["items"][TABLE]
        if drained["deleted"] < args.n or items != args.n:
            raise SystemExit(f"wrong end state: {drained['deleted']} deleted, {items} items, for {args.n}")
        result |= {"end_to_end_s": round(end_to_end_s, 2), "end_to_end_msg_per_s": round(args.n / end_to_end_s)}
    else:
        queued = endpoint.call("stats")["queues"][QUEUE]["visible"]
        if queued != args.n:
            raise SystemExit(f"wrong end state: {queued} messages on the queue, for {args.n}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.via_queue", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="objects in the inventory report (default 100,000)")
    parser.add_argument("--cases", default="send,1,2", help="send (no worker) and/or worker counts, e.g. send,1,2")
    parser.add_argument("--concurrency", type=int, default=16, help="the backfill's --concurrency (default 16)")
    parser.add_argument("--rate", type=float, help="the backfill's --rate (default: none)")
    parser.add_argument("--keep-logs", type=Path, help="keep each case's process logs under this directory")
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request lines
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    s3_url = f"http://{host}:{port}"
    env = base_env()
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_url,
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    manifest = write_report(s3, args.n)
    print(
        f"N={args.n:,} (inventory report in moto); cpu count {os.cpu_count()}; load {os.getloadavg()[0]:.1f};"
        f" --concurrency {args.concurrency}" + (f"; --rate {args.rate:g}" if args.rate else ""),
        flush=True,
    )
    try:
        for case in args.cases.split(","):
            workers = 0 if case == "send" else int(case)
            with tempfile.TemporaryDirectory() as scratch:
                workdir = args.keep_logs / case if args.keep_logs else Path(scratch)
                workdir.mkdir(parents=True, exist_ok=True)
                result = run_case(args, manifest, s3_url, workers, workdir)
            print(json.dumps(result), flush=True)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
