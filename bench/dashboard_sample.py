"""`python -m bench.dashboard_sample`: record a real run's metrics for docs/dashboard.png.

It starts moto on 127.0.0.1 with production's bucket, queue, dead-letter queue and table (named as the
dashboard's placeholders), runs `photo-ingest run` as real worker processes with METRICS_INTERVAL_SECONDS=5, and
drives about 100 seconds of load through them:

    0-25 s   uploads to S3 at ~15/s (S3's own notifications), one in ten a re-upload (a duplicate)
    25 s     a burst of 2,000 notifications sent straight to the queue, a few keys outside photos-raw/, and
             three bodies that are not JSON (quarantined to the dead-letter queue)
    25-85 s  uploads again at ~10/s; then the load stops and the workers drain the queue

Replicas follow KEDA's rule, ceil((visible + in flight) / QUEUE_LENGTH) between 1 and 2, with a 15 s
stabilization before a scale-in, which sends SIGTERM: the scaled-in worker drains like a pod.

The output (JSON lines, sorted by time) holds two kinds of EMF documents:
- every line with an `_aws` key that the workers printed on stdout, verbatim (namespace PhotoIngest);
- what CloudWatch would have from AWS for the same seconds, observed every 5 s by this script and marked
  `"observedBy"`: the queues' attributes (AWS/SQS), the running and desired worker count
  (ECS/ContainerInsights) and each worker's CPU from /proc (AWS/ECS, % of one vCPU).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import boto3

REPO = Path(__file__).resolve().parent.parent
REGION, ACCOUNT = "eu-west-1", "123456789012"
BUCKET, RAW_PREFIX, TABLE = "beetroot-raw", "photos-raw/", "Photos"
QUEUE, DEAD_LETTER_QUEUE = "photos-ingest", "photos-ingest-dlq"  # config/dashboard.json's placeholders
CLUSTER = SERVICE = "photo-ingest"
INTERVAL_S = 5.0
QUEUE_LENGTH = 500  # messages per replica for this demo's scaler (production: config/k8s/scaledobject.yaml)
MAX_REPLICAS, SCALE_IN_STABILIZATION_S = 2, 15.0
DRAIN_DEADLINE_S = 120.0
SENDERS = 4
OBSERVED_BY = "bench/dashboard_sample.py"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard_sample", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "dashboard-sample.emf.jsonl")
    parser.add_argument("--burst", type=int, default=2_000, help="notifications sent at once at 25 s")
    args = parser.parse_args()
    from moto.server import ThreadedMotoServer  # the extra `local`, as in `photo-ingest local`

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        lines = Run(f"http://{host}:{port}").record(args.burst)
    finally:
        server.stop()
    lines.sort(key=lambda line: json.loads(line)["_aws"]["Timestamp"])
    args.out.write_text("".join(line + "\n" for line in lines))
    print(f"{len(lines)} EMF lines in {args.out}")
    return 0


def emf(namespace: str, dimensions: dict[str, str], figures: dict[str, tuple[float, str]]) -> str:
    """One set of observed datapoints, in the same Embedded Metric Format as the worker's lines."""
    declaration = {
        "Namespace": namespace,
        "Dimensions": [sorted(dimensions)],
        "Metrics": [{"Name": name, "Unit": unit} for name, (_, unit) in figures.items()],
    }
    values = {name: round(value, 3) for name, (value, _) in figures.items()}
    document = {"_aws": {"Timestamp": int(time.time() * 1000), "CloudWatchMetrics": [declaration]}}
    return json.dumps(document | dimensions | values | {"observedBy": OBSERVED_BY}, separators=(",", ":"))


def notification(key: str) -> str:
    """A direct S3 notification body for one object, as S3 sends it (form-encoded key, event time now)."""
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": REGION,
        "eventTime": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": BUCKET}, "object": {"key": key.replace(" ", "+"), "size": 1024}},
    }
    return json.dumps({"Records": [record]})


def oldest_message_age_s(queue_name: str) -> float:
    """ApproximateAgeOfOldestMessage, which SQS publishes only to CloudWatch: read from moto's own queue (this
    process runs the server), over every message not yet deleted, in flight or not."""
    from moto.sqs.models import sqs_backends

    queue = sqs_backends[ACCOUNT][REGION].queues[queue_name]
    sent_ms = [message.sent_timestamp or 0 for message in list(queue._messages)]
    return max(0.0, time.time() - min(sent_ms) / 1000) if sent_ms else 0.0


class Worker:
    """One `photo-ingest run` process; its stdout's EMF lines are collected, its CPU read from /proc."""

    def __init__(self, env: dict[str, str], collect: Callable[[str], None]) -> None:
        command = [str(Path(sys.executable).parent / "photo-ingest"), "run"]
        self.process = subprocess.Popen(command, env=env, cwd=env["HOME"], stdout=subprocess.PIPE, text=True)
        self._ticks, self._read_at = 0, time.monotonic()
        self._ticks = self._cpu_ticks()
        self._reader = threading.Thread(target=self._read, args=(collect,), daemon=True)
        self._reader.start()

    def _read(self, collect: Callable[[str], None]) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith('{"_aws"'):
                collect(line.strip())

    def _cpu_ticks(self) -> int:
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return self._ticks
        return int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks

    def cpu_percent(self) -> float:
        """CPU used since the last call, as % of one vCPU (ECS's CPUUtilization with one vCPU reserved)."""
        ticks, now = self._cpu_ticks(), time.monotonic()
        used_s = (ticks - self._ticks) / os.sysconf("SC_CLK_TCK")
        percent = 100 * used_s / max(now - self._read_at, 1e-3)
        self._ticks, self._read_at = ticks, now
        return percent

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)  # the worker drains, then exits 0

    def wait(self) -> int:
        code = self.process.wait(timeout=60)
        self._reader.join(timeout=10)
        return code


class Run:
    """The stack's clients, the workers, the load, and the lines collected."""

    def __init__(self, endpoint: str) -> None:
        aws = {"endpoint_url": endpoint, "region_name": REGION}
        aws |= {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
        self.s3, self.sqs, self.dynamodb = (boto3.client(name, **aws) for name in ("s3", "sqs", "dynamodb"))  # type: ignore[call-overload]
        self.endpoint = endpoint
        self.lines: list[str] = []
        self.workers: list[Worker] = []
        self.stopped: list[Worker] = []
        self.done = threading.Event()
        self._lock = threading.Lock()

    def collect(self, line: str) -> None:
        with self._lock:
            self.lines.append(line)

    def record(self, burst: int) -> list[str]:
        self.queue_url, self.dead_letter_queue_url = self._provision()
        with tempfile.TemporaryDirectory() as home:
            self.home = home
            self._start_worker()
            observer = threading.Thread(target=self._observe_and_scale)
            observer.start()
            try:
                self._load(burst)
                self._wait_until_drained()
                self.done.wait(2 * INTERVAL_S)  # two more observations of the drained queue for the graphs
            finally:
                self.done.set()
                observer.join()
                for worker in self.workers:
                    worker.stop()
                codes = [worker.wait() for worker in self.workers + self.stopped]
        print(f"workers exited {codes}; {len(self.workers) + len(self.stopped)} started")
        return self.lines

    def _provision(self) -> tuple[str, str]:
        dead_letter_url = self.sqs.create_queue(QueueName=DEAD_LETTER_QUEUE)["QueueUrl"]
        dead_letter_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{DEAD_LETTER_QUEUE}"
        redrive = json.dumps({"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": 5})
        attributes = {"VisibilityTimeout": "30", "RedrivePolicy": redrive}
        queue_url = self.sqs.create_queue(QueueName=QUEUE, Attributes=attributes)["QueueUrl"]
        self.dynamodb.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "photoId", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "photoId", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        self.s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        rules = {"FilterRules": [{"Name": "prefix", "Value": RAW_PREFIX}]}
        queue_configuration = {"QueueArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{QUEUE}", "Events": ["s3:ObjectCreated:*"]}
        self.s3.put_bucket_notification_configuration(
            Bucket=BUCKET,
            NotificationConfiguration={"QueueConfigurations": [queue_configuration | {"Filter": {"Key": rules}}]},
        )
        return queue_url, dead_letter_url

    def _start_worker(self) -> None:
        env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
        env |= {
            "HOME": self.home,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "QUEUE_URL": self.queue_url,
            "DEAD_LETTER_QUEUE_URL": self.dead_letter_queue_url,
            "METRICS_INTERVAL_SECONDS": str(INTERVAL_S),
            "LOG_FORMAT": "json",
            "HEALTH_FILE": f"{self.home}/worker-{len(self.workers) + len(self.stopped)}.health",
        }
        self.workers.append(Worker(env, self.collect))

    def _load(self, burst: int) -> None:
        started = time.monotonic()
        self._uploads(started, until_s=25, per_s=15)
        self._burst(burst)
        self._uploads(started, until_s=85, per_s=10)

    def _uploads(self, started: float, until_s: float, per_s: float) -> None:
        """Uploads paced at `per_s` until `until_s` after `started`; every tenth re-uploads an earlier key."""
        keys: list[str] = []
        begin = time.monotonic() - started
        for n in range(int((until_s - begin) * per_s)):
            self.done.wait(max(0.0, started + begin + n / per_s - time.monotonic()))  # pacing, not a condition
            key = keys[n // 2] if keys and n % 10 == 9 else f"{RAW_PREFIX}{uuid.uuid4().hex[:12]}.jpg"
            keys.append(key)
            self.s3.put_object(Bucket=BUCKET, Key=key, Body=b"\xff\xd8\xff\xe0 not really a JPEG")

    def _burst(self, count: int) -> None:
        """`count` notifications at once (a backfill, a batch import), a few outside the prefix, three poison."""
        bodies = [notification(f"{RAW_PREFIX}burst/{n:05d}.jpg") for n in range(count)]
        bodies[::500] = [notification(f"other/readme-{n}.txt") for n in range(len(bodies[::500]))]
        bodies += ["this is not JSON {"] * 3
        batches = [bodies[first : first + 10] for first in range(0, len(bodies), 10)]
        with ThreadPoolExecutor(SENDERS) as senders:  # faster than one worker drains, so a backlog builds
            list(senders.map(self._send, batches))

    def _send(self, bodies: list[str]) -> None:
        entries = [{"Id": str(n), "MessageBody": body} for n, body in enumerate(bodies)]
        self.sqs.send_message_batch(QueueUrl=self.queue_url, Entries=entries)

    def _depth(self, queue_url: str) -> tuple[int, int]:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        attributes = self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"]
        return int(attributes[names[0]]), int(attributes[names[1]])

    def _wait_until_drained(self) -> None:
        deadline = time.monotonic() + DRAIN_DEADLINE_S
        while sum(self._depth(self.queue_url)) and time.monotonic() < deadline:
            self.done.wait(1.0)

    def _observe_and_scale(self) -> None:
        below_since = None
        while not self.done.wait(INTERVAL_S):
            visible, in_flight = self._depth(self.queue_url)
            desired = min(MAX_REPLICAS, max(1, math.ceil((visible + in_flight) / QUEUE_LENGTH)))
            below_since = self._scale(desired, below_since)
            self._observe(visible, in_flight, desired)

    def _scale(self, desired: int, below_since: float | None) -> float | None:
        """KEDA's rule: scale out at once, scale in after SCALE_IN_STABILIZATION_S below target (SIGTERM)."""
        if desired > len(self.workers):
            self._start_worker()
        if desired >= len(self.workers):
            return None
        if below_since is None:
            return time.monotonic()
        if time.monotonic() - below_since >= SCALE_IN_STABILIZATION_S:
            worker = self.workers.pop()
            worker.stop()
            self.stopped.append(worker)
            return None
        return below_since

    def _observe(self, visible: int, in_flight: int, desired: int) -> None:
        queue = {
            "ApproximateNumberOfMessagesVisible": (visible, "Count"),
            "ApproximateNumberOfMessagesNotVisible": (in_flight, "Count"),
            "ApproximateAgeOfOldestMessage": (oldest_message_age_s(QUEUE), "Seconds"),
        }
        dead_letters = {"ApproximateNumberOfMessagesVisible": (self._depth(self.dead_letter_queue_url)[0], "Count")}
        running = sum(worker.process.poll() is None for worker in self.workers + self.stopped)
        tasks = {"RunningTaskCount": (running, "Count"), "DesiredTaskCount": (desired, "Count")}
        service = {"ClusterName": CLUSTER, "ServiceName": SERVICE}
        self.collect(emf("AWS/SQS", {"QueueName": QUEUE}, queue))
        self.collect(emf("AWS/SQS", {"QueueName": DEAD_LETTER_QUEUE}, dead_letters))
        self.collect(emf("ECS/ContainerInsights", service, tasks))
        for worker in self.workers + self.stopped:
            if worker.process.poll() is None:
                cpu = {"CPUUtilization": (worker.cpu_percent(), "Percent")}
                self.collect(emf("AWS/ECS", service, cpu))


if __name__ == "__main__":
    sys.exit(main())
