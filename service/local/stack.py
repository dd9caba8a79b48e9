"""The embedded AWS stack for `demo` and `local`: production's resources, provisioned on the `moto_endpoint`.

    s3://beetroot-raw ── ObjectCreated:* on photos-raw/ ──▶ SQS photos ── after 5 receives ──▶ SQS photos-dlq
                                                                └──▶ worker ──▶ DynamoDB Photos

`Stack` holds one client per service, and reads back what the demo checks: queues, the table, dead letters.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from service.aws.clients import make_session, open_dynamodb, open_s3, open_sqs

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_sqs import SQSClient

BUCKET = "beetroot-raw"
RAW_PREFIX = "photos-raw/"
TABLE = "Photos"
QUEUE, DEAD_LETTER_QUEUE = "photos", "photos-dlq"
MAX_RECEIVE_COUNT = 5
VISIBILITY_TIMEOUT_S = 30


@dataclass(frozen=True, slots=True)
class Stack:
    """The provisioned resources, and one client for each service that reaches them."""

    endpoint: str
    queue_url: str
    dead_letter_queue_url: str
    s3: S3Client
    sqs: SQSClient
    dynamodb: DynamoDBClient

    def settings_overrides(self) -> dict[str, Any]:
        """What `Settings` must say to use this stack; the other settings still come from the environment."""
        return {
            "queue_url": self.queue_url,
            "dead_letter_queue_url": self.dead_letter_queue_url,
            "photos_table": TABLE,
            "raw_prefix": RAW_PREFIX,
        }

    async def depth(self, queue_url: str) -> int:
        """Messages on a queue, visible or in flight."""
        names: Any = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        attributes = (await self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names))["Attributes"]
        return sum(int(attributes[name]) for name in names)

    async def items(self) -> list[dict[str, str]]:
        """The whole table, in plain values."""
        pages = self.dynamodb.get_paginator("scan").paginate(TableName=TABLE)
        return [
            {name: str(next(iter(value.values()))) for name, value in item.items()}
            async for page in pages
            for item in page["Items"]
        ]

    async def dead_letters(self) -> list[tuple[str, dict[str, str]]]:
        """Up to 10 bodies on the dead-letter queue, with their string attributes; left on the queue."""
        response = await self.sqs.receive_message(
            QueueUrl=self.dead_letter_queue_url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=0,
            MessageAttributeNames=["All"],
        )
        return [
            (raw.get("Body", ""), {k: v.get("StringValue", "") for k, v in raw.get("MessageAttributes", {}).items()})
            for raw in response.get("Messages", [])
        ]


@asynccontextmanager
async def open_stack(endpoint: str) -> AsyncIterator[Stack]:
    """Provision what production has on the endpoint; the clients close on exit."""
    session = make_session()
    async with AsyncExitStack() as clients:
        s3 = await open_s3(clients, session, 4)
        sqs = await open_sqs(clients, session, 4, 1)
        dynamodb = await open_dynamodb(clients, session, 4)
        queue_url, dead_letter_queue_url = await _create_queues(sqs)
        await dynamodb.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "photoId", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "photoId", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        await s3.create_bucket(Bucket=BUCKET)
        await _notify_queue(s3, await _queue_arn(sqs, queue_url))
        yield Stack(endpoint, queue_url, dead_letter_queue_url, s3, sqs, dynamodb)


async def _create_queues(sqs: SQSClient) -> tuple[str, str]:
    dead_letter_url = (await sqs.create_queue(QueueName=DEAD_LETTER_QUEUE))["QueueUrl"]
    redrive = {"deadLetterTargetArn": await _queue_arn(sqs, dead_letter_url), "maxReceiveCount": MAX_RECEIVE_COUNT}
    attributes: Any = {"RedrivePolicy": json.dumps(redrive), "VisibilityTimeout": str(VISIBILITY_TIMEOUT_S)}
    queue_url = (await sqs.create_queue(QueueName=QUEUE, Attributes=attributes))["QueueUrl"]
    return queue_url, dead_letter_url


async def _queue_arn(sqs: SQSClient, queue_url: str) -> str:
    response = await sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    return response["Attributes"]["QueueArn"]


async def _notify_queue(s3: S3Client, queue_arn: str) -> None:
    """S3 -> SQS for every created object under the prefix; S3 (and moto) then sends an `s3:TestEvent`."""
    await s3.put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "Id": "photos-raw-to-queue",
                    "QueueArn": queue_arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": RAW_PREFIX}]}},
                }
            ]
        },
    )
