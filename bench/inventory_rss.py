"""The peak RSS of `photo-ingest backfill --inventory` on a hostile report: one data file of 149 KiB whose gzip
inflates to a single row of 150 MiB (issue 18), next to a normal report of the same few rows.

    .venv/bin/python -m bench.inventory_rss               the normal and the hostile report, --via-queue --dry-run
    .venv/bin/python -m bench.inventory_rss --row-mib 500

Each case is one `photo-ingest backfill --via-queue --dry-run` process against a moto S3 server; its peak RSS
comes from wait4 (ru_maxrss), its exit code and summary are printed. The manifest carries each data file's true
size and MD5, so a checking backfill reads it.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import logging
import os
import subprocess
import sys
import zlib
from typing import Any

import boto3
from moto.moto_server.threaded_moto_server import ThreadedMotoServer

from bench.via_queue import BUCKET, DESTINATION, REPORT, base_env

ROW = '"{bucket}","photos-raw/{name}.jpg","1234","2026-12-04T10:15:30.000Z","0123456789abcdef0123456789abcdef"\n'


def hostile_gzip(row_mib: int) -> bytes:
    """A good row, one row of `row_mib` MiB (a key of that many `a`), a good row: compressed as it streams."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [deflate.compress(ROW.format(bucket=BUCKET, name="before").encode())]
    parts.append(deflate.compress(f'"{BUCKET}","photos-raw/'.encode()))
    block = b"a" * (1 << 20)
    parts += [deflate.compress(block) for _ in range(row_mib)]
    parts.append(deflate.compress(b'.jpg","1","2026-12-04T10:15:30.000Z","00"\n'))
    parts.append(deflate.compress(ROW.format(bucket=BUCKET, name="after").encode()))
    return b"".join([*parts, deflate.flush()])


def write_report(s3: Any, name: str, data: bytes) -> str:
    key = f"inventory/{BUCKET}/daily/data/{name}.csv.gz"
    s3.put_object(Bucket=DESTINATION, Key=key, Body=data)
    manifest = {
        "sourceBucket": BUCKET,
        "destinationBucket": f"arn:aws:s3:::{DESTINATION}",
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, Size, LastModifiedDate, ETag",
        "files": [{"key": key, "size": len(data), "MD5checksum": hashlib.md5(data, usedforsecurity=False).hexdigest()}],
    }
    manifest_key = f"{REPORT}/{name}/manifest.json"
    s3.put_object(Bucket=DESTINATION, Key=manifest_key, Body=json.dumps(manifest).encode())
    return f"s3://{DESTINATION}/{manifest_key}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.inventory_rss", description=__doc__.splitlines()[0])
    parser.add_argument("--row-mib", type=int, default=150, help="the hostile row's size in MiB (default 150)")
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = base_env() | {"AWS_ENDPOINT_URL": endpoint, "LOG_FORMAT": "json", "LOG_LEVEL": "WARNING"}
    session = boto3.Session(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], region_name=env["AWS_REGION"])
    s3, sqs = session.client("s3", endpoint_url=endpoint), session.client("sqs", endpoint_url=endpoint)
    s3.create_bucket(Bucket=DESTINATION)
    env["QUEUE_URL"] = sqs.create_queue(QueueName="bench-rss")["QueueUrl"]
    normal = gzip.compress("".join(ROW.format(bucket=BUCKET, name=n) for n in range(3)).encode())
    hostile = hostile_gzip(args.row_mib)
    try:
        for label, data in (("normal", normal), (f"hostile ({args.row_mib} MiB row)", hostile)):
            result = _measured(write_report(s3, label.split()[0], data), env)
            print(f"{label}: gzip {len(data) / 1024:.0f} KiB; {result}", flush=True)
    finally:
        server.stop()
    return 0


def _measured(manifest: str, env: dict[str, str]) -> str:
    argv = [sys.executable, "-m", "service", "backfill", "--via-queue", "--dry-run", "--bucket", BUCKET]
    with subprocess.Popen([*argv, "--inventory", manifest], env=env, stdout=subprocess.PIPE) as popen:
        out = popen.stdout.read().decode() if popen.stdout else ""
        _, status, usage = os.wait4(popen.pid, 0)
        popen.returncode = os.waitstatus_to_exitcode(status)
    summary = " | ".join(line.strip() for line in out.splitlines())
    return f"peak RSS {usage.ru_maxrss / 1024:.0f} MiB; exit {popen.returncode}; {summary}"


if __name__ == "__main__":
    sys.exit(main())
