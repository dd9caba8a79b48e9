"""Backfill throughput against an embedded moto server: `photo-ingest backfill` as a user runs it.

Usage: .venv/bin/python bench/backfill_throughput.py [OBJECTS] [CONCURRENCY ...]
Prints, per concurrency: wall time of the whole command (process start to exit), the command's own
objects/s (from its summary), and a raw PutItem baseline (the same conditional put, no listing, no CLI).
"""

from __future__ import annotations

import asyncio
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

import aioboto3
import boto3
from moto.moto_server.threaded_moto_server import ThreadedMotoServer

BUCKET, TABLE = "bench-raw", "Photos"


def reset(s3, dynamodb) -> None:
    try:
        dynamodb.delete_table(TableName=TABLE)
        dynamodb.get_waiter("table_not_exists").wait(TableName=TABLE)
    except dynamodb.exceptions.ResourceNotFoundException:
        pass
    dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "photoId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "photoId", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


async def raw_puts(count: int, concurrency: int) -> float:
    session = aioboto3.Session()
    async with session.client("dynamodb") as client:
        semaphore = asyncio.Semaphore(concurrency)

        async def put(n: int) -> None:
            async with semaphore:
                await client.put_item(
                    TableName=TABLE,
                    Item={"photoId": {"S": f"raw-{n}"}, "s3Key": {"S": f"k{n}"}},
                    ConditionExpression="attribute_not_exists(photoId)",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )

        started = time.perf_counter()
        await asyncio.gather(*(put(n) for n in range(count)))
        return count / (time.perf_counter() - started)


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    levels = [int(a) for a in sys.argv[2:]] or [1, 4, 16, 32]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://{host}:{port}",
        AWS_ACCESS_KEY_ID="x",
        AWS_SECRET_ACCESS_KEY="x",  # noqa: S106 - moto accepts any credentials
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
    )
    s3, dynamodb = boto3.client("s3"), boto3.client("dynamodb")
    s3.create_bucket(Bucket=BUCKET)
    for n in range(count):
        s3.put_object(Bucket=BUCKET, Key=f"photos-raw/{n:06d}.jpg", Body=b"x")
    env = os.environ | {"PHOTOS_TABLE": TABLE, "LOG_FORMAT": "json"}
    print(f"{count} objects; moto {host}:{port}; cpu count {os.cpu_count()}")
    for concurrency in levels:
        reset(s3, dynamodb)
        command = [sys.executable, "-m", "service", "backfill", "--bucket", BUCKET, "--concurrency", str(concurrency)]
        started = time.perf_counter()
        cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        with tempfile.TemporaryDirectory() as cwd:
            done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - started
        cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_s = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
        rate = re.search(r"\(([\d.]+) objects/s\)", done.stdout)
        inserted = re.search(r"^  inserted\s+(\d+)", done.stdout, re.MULTILINE)
        reset(s3, dynamodb)
        baseline = asyncio.run(raw_puts(count, concurrency))
        print(
            f"concurrency {concurrency:>3}: inserted {inserted and inserted.group(1)}; command wall {wall:.2f} s"
            f" ({count / wall:.0f} objects/s incl. start-up); backfill's own rate {rate and rate.group(1)} objects/s;"
            f" raw PutItem baseline {baseline:.0f} puts/s; command CPU {cpu_s:.2f} s incl. ~1 s start-up"
        )
    server.stop()


if __name__ == "__main__":
    main()
