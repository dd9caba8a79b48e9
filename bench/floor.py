"""Contender 4, the floor: what aiobotocore itself costs per message, with nothing of ours around it.

Each of `--loops` loops receives 10 messages, sends their 10 conditional `put_item` calls concurrently, and
deletes the 10 with one `DeleteMessageBatch`: one receive and one batch delete per 10 puts, and at most
loops x 10 puts in flight (6 x 10 against photo-ingest's MAX_IN_FLIGHT_RECORDS of 64). No JSON parsing, no
logging, no per-message objects of our own: each message's item is pre-built from the workload (looked up by
its body) before the clock starts, so the table ends in the same state photo-ingest leaves it in.

The clients use photo-ingest's configuration (standard retries, keep-alive, pools sized to the concurrency),
so the two differ only in the code around the SDK. SIGTERM stops it; it exits 0.

Run: `python -m bench.floor --n N --seed S` with QUEUE_URL, PHOTOS_TABLE and the AWS_* variables set.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
from datetime import UTC, datetime
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from bench import workload

CONDITION = "attribute_not_exists(photoId)"


def config(pool: int, read_timeout_s: float) -> AioConfig:
    return AioConfig(
        retries={"mode": "standard"},
        connect_timeout=5,
        read_timeout=read_timeout_s,
        max_pool_connections=pool,
        tcp_keepalive=True,
    )


async def run(args: argparse.Namespace) -> None:
    jobs = workload.build(args.n, args.seed)
    ingested_at = datetime.now(UTC).isoformat()
    items = {body: workload.item(photo, ingested_at) for body, photo in zip(jobs.bodies, jobs.photos, strict=True)}
    queue_url, table = os.environ["QUEUE_URL"], os.environ.get("PHOTOS_TABLE", "Photos")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    session = get_session()
    async with (
        session.create_client("sqs", config=config(args.loops * 2 + 4, args.wait_s + 10)) as sqs,
        session.create_client("dynamodb", config=config(args.loops * 10 + 4, 10)) as ddb,
    ):
        conditional_failed = ddb.exceptions.ConditionalCheckFailedException

        async def put(item: dict[str, Any]) -> None:
            with contextlib.suppress(conditional_failed):
                await ddb.put_item(
                    TableName=table,
                    Item=item,
                    ConditionExpression=CONDITION,
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )

        async def worker() -> None:
            while not stop.is_set():
                response = await sqs.receive_message(
                    QueueUrl=queue_url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=args.wait_s,
                    MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
                )
                messages = response.get("Messages")
                if not messages:
                    continue
                await asyncio.gather(*(put(items[m["Body"]]) for m in messages))
                entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
                await sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)

        async with asyncio.TaskGroup() as group:
            for _ in range(args.loops):
                group.create_task(worker())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--loops", type=int, default=6)
    parser.add_argument("--wait-s", type=int, default=1)
    asyncio.run(run(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
