"""The forged-body storm (issue 11): what 1 MiB bodies holding as many records as fit do to photo-ingest's memory,
against the normal workload's; and what VERIFY_OBJECTS costs in CPU per message.

    python -m bench.storm                      # normal (N=2,000), storm (100 x 1 MiB), normal with VERIFY_OBJECTS
    python -m bench.storm --storm 200 --n 5000 --max-records 100
    python -m bench.storm --cases normal,padded   # 400 bodies of 1 MiB, one record each, 4 s a put: the byte budget

Each case: a fresh `bench.endpoint` (SQS and DynamoDB on 127.0.0.1, run as it is), its queue pre-filled, then
`photo-ingest run` as a process, with a dead-letter queue. The clock starts once the worker long-polls and the
endpoint is armed; it stops when the endpoint has seen every message deleted (a quarantine deletes too). Figures:
the worker's peak RSS (`VmHWM` in /proc, since exec) and its CPU over that window (/proc/<pid>/stat) per message.

The storm's bodies are direct notifications of about 100 bytes a record, ~9,000 records in 1 MiB: with the
default MAX_RECORDS_PER_MESSAGE (100) each is quarantined as `too_many_records` before any put. VERIFY_OBJECTS
needs S3: a small stand-in in this process answers every HeadObject with 200, so the worker's own cost is what
is measured. Like `python -m bench`, it drives photo-ingest only through its command line.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.request import urlopen

import boto3

from bench import workload

QUEUE, DEAD_LETTERS, TABLE = "storm-queue", "storm-dlq", "Photos"
BODY_BYTES_MAX = 1_048_576
CLK_TCK = os.sysconf("SC_CLK_TCK")
IDLE_POLLERS = 1  # the worker's pollers grow with demand from one


@dataclass
class Result:
    case: str
    messages: int
    seconds: float
    cpu_ms_per_message: float
    peak_rss_mb: float
    dead_letters: int
    items: int


def storm_body(index: int) -> str:
    """A direct notification body of at most 1 MiB, with as many small, distinct records as fit."""
    record = '{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"%s"},"object":{"key":"photos-raw/s%04d/%07d"}}}'
    parts: list[str] = []
    size = len('{"Records":[]}')
    while size + len(record % (workload.BUCKET, index, len(parts))) + 1 <= BODY_BYTES_MAX:
        parts.append(record % (workload.BUCKET, index, len(parts)))
        size += len(parts[-1]) + 1
    return '{"Records":[' + ",".join(parts) + "]}"


class StandInS3(BaseHTTPRequestHandler):
    """HeadObject answers 200 for every key: what an S3 that holds every object would say. Keep-alive, as S3."""

    protocol_version = "HTTP/1.1"

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "1024")
        self.send_header("ETag", '"d41d8cd98f00b204e9800998ecf8427e"')
        self.send_header("Last-Modified", "Sat, 02 May 2024 10:15:30 GMT")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        return


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def control(port: int, command: str, timeout_s: float = 600.0) -> dict[str, object]:
    with urlopen(f"http://127.0.0.1:{port}/_bench/{command}", timeout=timeout_s) as response:
        return dict(json.loads(response.read()))


def padded_body(index: int) -> str:
    """A direct notification of about 1 MiB: one valid record, and padding in a field the worker ignores."""
    record = '{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"%s"},"object":{"key":"photos-raw/p/%07d"}}}'
    head = '{"Records":[' + record % (workload.BUCKET, index) + '],"padding":"'
    return head + "x" * (BODY_BYTES_MAX - len(head) - 2) + '"}'


def run_case(
    case: str, bodies: list[str], workdir: Path, worker_env: dict[str, str], table_latency_ms: float = 0.0
) -> Result:
    env = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "TMPDIR"}}
    env |= {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1"}
    argv = [sys.executable, "-m", "bench.endpoint", "--queue", QUEUE, "--queue", DEAD_LETTERS, "--table", TABLE]
    argv += ["--table-latency-ms", str(table_latency_ms)]
    endpoint = subprocess.Popen(argv, stdout=subprocess.PIPE, env=env | {"PYTHONPATH": str(Path.cwd())})
    try:
        assert endpoint.stdout is not None
        port = int(json.loads(endpoint.stdout.readline())["port"])
        url = f"http://127.0.0.1:{port}"
        keys = {"aws_access_key_id": env["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"]}
        sqs = boto3.client("sqs", endpoint_url=url, region_name="us-east-1", **keys)
        queue_url, dlq_url = (f"{url}/000000000000/{name}" for name in (QUEUE, DEAD_LETTERS))
        for body in bodies:
            sqs.send_message(QueueUrl=queue_url, MessageBody=body)
        return _measure(case, len(bodies), port, workdir, env | worker_env | _settings(url, queue_url, dlq_url))
    finally:
        endpoint.send_signal(signal.SIGTERM)
        endpoint.wait(30)


def _settings(url: str, queue_url: str, dlq_url: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": url,
        "QUEUE_URL": queue_url,
        "DEAD_LETTER_QUEUE_URL": dlq_url,
        "PHOTOS_TABLE": TABLE,
        "ALLOWED_BUCKETS": workload.BUCKET,
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "WARNING",  # the quarantine lines are errors: one per storm message
        "METRICS_ENABLED": "false",
    }


def _measure(case: str, messages: int, port: int, workdir: Path, env: dict[str, str]) -> Result:
    env["HEALTH_FILE"] = str(workdir / f"{case}.health")
    with (workdir / f"{case}.log").open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "service", "run"], env=env, stdout=log, stderr=log, cwd=workdir
        )
    try:
        control(port, f"wait?receivers={IDLE_POLLERS}", timeout_s=60)
        cpu_before, started = proc_cpu_s(worker.pid), time.monotonic()
        control(port, "arm")
        control(port, f"wait?deleted={messages}")
        seconds, cpu_s, peak = time.monotonic() - started, proc_cpu_s(worker.pid) - cpu_before, peak_rss_mb(worker.pid)
        stats = control(port, "stats")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
    dead, items = stats["queues"][DEAD_LETTERS]["visible"], stats["items"][TABLE]  # type: ignore[index]
    return Result(case, messages, round(seconds, 2), round(cpu_s * 1000 / messages, 3), round(peak, 1), dead, items)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.storm", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2_000, help="messages of the normal workload (default 2000)")
    parser.add_argument("--storm", type=int, default=100, help="1 MiB forged bodies (default 100)")
    parser.add_argument("--max-records", type=int, default=100, help="MAX_RECORDS_PER_MESSAGE for the storm")
    parser.add_argument("--padded", type=int, default=400, help="1 MiB bodies of one record each (default 400)")
    parser.add_argument("--table-latency-ms", type=float, default=4_000, help="each put's delay, padded case")
    parser.add_argument("--cases", default="normal,storm,padded,normal+VERIFY_OBJECTS", help="which cases")
    parser.add_argument("--worker-env", action="append", default=[], metavar="KEY=VALUE", help="for every case")
    args = parser.parse_args(argv)
    stand_in = ThreadingHTTPServer(("127.0.0.1", 0), StandInS3)
    threading.Thread(target=stand_in.serve_forever, daemon=True).start()
    s3 = {"VERIFY_OBJECTS": "true", "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{stand_in.server_address[1]}"}
    normal = workload.build(args.n).bodies
    extra = dict(pair.split("=", 1) for pair in args.worker_env)
    cases = [
        ("normal", lambda: normal, {}, 0.0),
        (
            "storm",
            lambda: [storm_body(i) for i in range(args.storm)],
            {"MAX_RECORDS_PER_MESSAGE": str(args.max_records)},
            0.0,
        ),
        ("padded", lambda: [padded_body(i) for i in range(args.padded)], {}, args.table_latency_ms),
        ("normal+VERIFY_OBJECTS", lambda: normal, s3, 0.0),
    ]
    wanted = args.cases.split(",")
    with tempfile.TemporaryDirectory(prefix="storm-") as scratch:
        results = [
            run_case(name, bodies(), Path(scratch), env | extra, latency)
            for name, bodies, env, latency in cases
            if name in wanted
        ]
    stand_in.shutdown()
    header = f"{'case':<24}{'messages':>9}{'seconds':>9}{'CPU ms/msg':>12}{'peak RSS MB':>13}"
    print(header + f"{'dead letters':>14}{'items':>7}")
    for r in results:
        print(
            f"{r.case:<24}{r.messages:>9}{r.seconds:>9}{r.cpu_ms_per_message:>12}{r.peak_rss_mb:>13}"
            f"{r.dead_letters:>14}{r.items:>7}"
        )
    print(json.dumps([result.__dict__ for result in results]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
