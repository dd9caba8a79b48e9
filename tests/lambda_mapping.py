"""What Lambda does around the handler, for the tests: the SQS event source mapping and the context object.

The mapping receives from the real (moto) queue, hands the function the messages as Lambda's camelCase records,
then deletes every message the response does not name in `batchItemFailures`; those become visible again
when their visibility timeout ends. The context counts down on its own clock, from the time left it was given.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.conftest import REGION, Stack


@dataclass
class FakeContext:
    """Lambda's context object: a request id, and the time left, counted down on `time.monotonic`."""

    remaining_ms: int = 60_000
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    deadline: float = field(init=False)

    def __post_init__(self) -> None:
        self.deadline = time.monotonic() + self.remaining_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return int((self.deadline - time.monotonic()) * 1000)


def lambda_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """One `ReceiveMessage` message as an event source mapping delivers it (see tests/events/sqs-lambda-event-*)."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message["Attributes"],
        "messageAttributes": {},
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


def receive_event(stack: Stack, count: int) -> dict[str, Any]:
    """The next `count` messages of the queue, received as the mapping does, as one event."""
    arn = stack.sqs.get_queue_attributes(QueueUrl=stack.queue_url, AttributeNames=["QueueArn"])["Attributes"]
    records: list[dict[str, Any]] = []
    while len(records) < count:
        response = stack.sqs.receive_message(
            QueueUrl=stack.queue_url,
            MaxNumberOfMessages=min(10, count - len(records)),
            WaitTimeSeconds=1,
            MessageSystemAttributeNames=["All"],
        )
        records += [lambda_record(message, arn["QueueArn"]) for message in response.get("Messages", [])]
    return {"Records": records}


def acknowledge(stack: Stack, event: dict[str, Any], response: dict[str, Any]) -> None:
    """Delete what the function did not name as failed, as the mapping does when the invocation returns."""
    failed = failed_ids(response)
    done = [record for record in event["Records"] if record["messageId"] not in failed]
    for start in range(0, len(done), 10):
        entries = [{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(done[start : start + 10])]
        assert not stack.sqs.delete_message_batch(QueueUrl=stack.queue_url, Entries=entries).get("Failed")


def failed_ids(response: dict[str, Any]) -> set[str]:
    return {failure["itemIdentifier"] for failure in response["batchItemFailures"]}
