"""Contender 1, the naive port: the old Lambda's handler, verbatim in its logic, driven by the sequential boto3
poll loop most teams write first (receive up to 10 with a short wait; per message: handle, then delete).

The handler below is the seed's `lambda_handler` (the old Lambda: `unquote_plus`, the prefix check, the photoId,
a conditional `put_item` through the boto3 *resource*, `ConditionalCheckFailedException` treated as a skip, a
`print` per record). Only the poll loop around it is new. SIGTERM stops it after the current message; exit 0.

Run: `python -m bench.naive` with QUEUE_URL, PHOTOS_TABLE, RAW_PREFIX and the AWS_* variables set.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

import boto3
from botocore.exceptions import ClientError

ddb = boto3.resource("dynamodb")
PHOTOS_TABLE = os.environ.get("PHOTOS_TABLE", "Photos")
RAW_PREFIX = os.environ.get("RAW_PREFIX", "photos-raw/")
photos_table = ddb.Table(PHOTOS_TABLE)


def make_photo_id(bucket: str, key: str) -> str:
    """Deterministic, stable photoId: SHA-256(bucket/key), first 20 hex chars."""
    raw = f"{bucket}/{key}".encode()
    return hashlib.sha256(raw).hexdigest()[:20]


def lambda_handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    records = event.get("Records", [])
    if not records:
        print("No Records found; nothing to do.")
        return {"statusCode": 200, "body": "no records"}

    for r in records:
        s3 = r.get("s3", {})
        bucket = s3.get("bucket", {}).get("name")
        key = s3.get("object", {}).get("key")

        if not bucket or not key:
            print("Skipping record: missing bucket/key")
            continue

        # S3 keys in events are URL-encoded sometimes
        key = unquote_plus(key)

        # Only process uploads under photos-raw/
        if not key.startswith(RAW_PREFIX):
            print(f"Skipping key not under RAW_PREFIX: {key}")
            continue

        photo_id = make_photo_id(bucket, key)
        uploaded_at = datetime.now(UTC).isoformat()

        item = {
            "photoId": photo_id,
            "s3Bucket": bucket,
            "s3Key": key,
            "uploadedAt": uploaded_at,
        }

        try:
            photos_table.put_item(
                Item=item,
                ConditionExpression="attribute_not_exists(photoId)",
            )
            print(f"Photos: inserted photoId={photo_id} key={key}")
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "Unknown")
            if code == "ConditionalCheckFailedException":
                print(f"Photos: already exists, skipping photoId={photo_id} key={key}")
                continue
            print("DynamoDB put_item failed:", str(e))
            raise

    return {"statusCode": 200, "body": "ingest lambda with s3 trigger ok"}


def main() -> int:
    """The poll loop: receive, handle, delete; one message at a time."""
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    sqs = boto3.client("sqs")
    queue_url = os.environ["QUEUE_URL"]
    wait_s = int(os.environ.get("NAIVE_WAIT_SECONDS", "1"))
    while not stopping:
        response = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_s)
        for message in response.get("Messages", []):
            lambda_handler(json.loads(message["Body"]), None)
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
