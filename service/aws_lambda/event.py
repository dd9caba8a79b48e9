"""An SQS event source mapping's event -> the messages it carries, in the worker's own `Message` form.

    {"Records": [{"messageId", "receiptHandle", "body",
                  "attributes": {"ApproximateReceiveCount", "SentTimestamp", ...}, "eventSourceARN", ...}]}

The records are camelCase, unlike `ReceiveMessage`'s answer. A body is exactly what a poller would receive, so
the core settles it unchanged. Only the event's own shape is checked here: a record without a `messageId`
cannot be named in `batchItemFailures`, so such an event fails as a whole and nothing in it is lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from service.aws.queue import Message


class InvalidEventError(ValueError):
    """The function was invoked with something other than an SQS event source mapping's event."""


@dataclass(frozen=True, slots=True)
class SqsEvent:
    messages: list[Message]
    queue: str | None  # the source queue's name, from `eventSourceARN` (arn:aws:sqs:<region>:<account>:<name>)


def parse_event(event: object) -> SqsEvent:
    if not isinstance(event, Mapping) or not isinstance(event.get("Records"), list):
        raise InvalidEventError("expected an SQS event: {'Records': [...]}")
    messages = [_message(record) for record in event["Records"]]
    arns = [record.get("eventSourceARN") for record in event["Records"]]
    queue = next((arn.rpartition(":")[2] for arn in arns if isinstance(arn, str) and arn.startswith("arn:")), None)
    return SqsEvent(messages, queue)


def _message(record: object) -> Message:
    if not isinstance(record, Mapping) or not isinstance(record.get("messageId"), str) or not record["messageId"]:
        raise InvalidEventError("an SQS event record has no messageId")
    attributes = record.get("attributes")
    attributes = attributes if isinstance(attributes, Mapping) else {}
    body = record.get("body")
    return Message(
        message_id=record["messageId"],
        receipt_handle=str(record.get("receiptHandle", "")),
        body=body if isinstance(body, str) else "",  # no body: the core quarantines it as not JSON
        receive_count=_number(attributes.get("ApproximateReceiveCount")) or 1,
        sent_at_ms=_number(attributes.get("SentTimestamp")),
        trace_header=trace if isinstance(trace := attributes.get("AWSTraceHeader"), str) else None,
    )


def _number(value: object) -> int | None:
    return int(value) if isinstance(value, str) and value.isdecimal() else None
