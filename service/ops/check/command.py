"""`photo-ingest check`: before traffic arrives, is the queue, the table and the access right? One line per
finding, each saying what to fix; exit 0 when the worker can run, 1 when it cannot (2: bad settings).

Every probe leaves the queue and the table as they were. Authorization is proven by calls that AWS authorizes
first and then refuses: batch deletes and visibility changes of a receipt handle that cannot exist, and a put
whose condition never holds. `sqs:ReceiveMessage` and `sqs:SendMessage` have no such call: the report names
them as not probed rather than guessing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from service import process
from service.aws.clients import (
    CONNECT_TIMEOUT_S,
    DYNAMODB_MAX_ATTEMPTS,
    DYNAMODB_READ_TIMEOUT_S,
    make_session,
    open_dynamodb,
    open_sqs,
)
from service.aws.errors import AWS_ERRORS, ErrorKind, classify
from service.aws.table import PhotoStore
from service.config import Settings
from service.ops.check.findings import Finding, Level, failure, probe
from service.ops.check.trust import trust_findings
from service.text import printable

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient
    from types_aiobotocore_sqs import SQSClient

SHUTDOWN_MARGIN_S = 10  # the worker's releases after the drain (at most 5 s), and slack
PUT_WORST_S = (CONNECT_TIMEOUT_S + DYNAMODB_READ_TIMEOUT_S) * DYNAMODB_MAX_ATTEMPTS  # one put, the SDK's retries too
SHORT_VISIBILITY_S = max(30, PUT_WORST_S)  # below it, only the worker's heartbeat keeps a slow message hidden
PROBE_RECEIPT_HANDLE = "photo-ingest-check-not-a-receipt-handle"
PROBE_PHOTO_ID = "photo-ingest-check-probe"
NEVER_TRUE = "attribute_exists(photoId) AND attribute_not_exists(photoId)"


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add `check`; its handler returns the exit code."""
    reads = [*process.variables(Settings), *process.AWS_VARIABLES]
    summary = "preflight the queue, the table and access, changing nothing; exit 0 if the worker can run"
    process.add_command(commands, "check", summary, reads, _cmd_check)


def _cmd_check(args: argparse.Namespace) -> int:
    settings = process.load_settings(Settings)
    findings = asyncio.run(run_checks(settings))
    print(render(settings, findings))
    return 1 if any(finding.level is Level.FAIL for finding in findings) else 0


async def run_checks(settings: Settings) -> list[Finding]:
    """Every finding, in the order a reader fixes them: the queue and its dead-letter queue, then the table."""
    session = make_session()
    async with AsyncExitStack() as stack:
        sqs = await open_sqs(stack, session, pool=4, wait_s=0)
        dynamodb = await open_dynamodb(stack, session, pool=4)
        findings = await _check_queue(sqs, settings)
        if settings.dead_letter_queue_url:
            findings.append(await _check_dead_letter_queue(sqs, settings.dead_letter_queue_url))
        return findings + await _check_table(dynamodb, settings.photos_table) + trust_findings(settings)


def render(settings: Settings, findings: list[Finding]) -> str:
    lines = [f"photo-ingest check: queue {printable(settings.queue_url)}, table {printable(settings.photos_table)}"]
    lines += [f"  {finding.level:<4}  {finding.subject:<10}  {printable(finding.text)}" for finding in findings]
    unprovable = "sqs:ReceiveMessage" + (", sqs:SendMessage" if settings.dead_letter_queue_url else "")
    lines.append(
        f"  {Level.NOTE:<4}  {'access':<10}  not probed, as no call proves it without side effects: {unprovable}"
    )
    failed = sum(finding.level is Level.FAIL for finding in findings)
    warned = sum(finding.level is Level.WARN for finding in findings)
    verdict = f"FAILED: {failed} problem(s) to fix" if failed else "passed: the worker can run"
    return "\n".join([*lines, f"check {verdict}" + (f", {warned} warning(s)" if warned else "")])


async def _check_queue(sqs: SQSClient, settings: Settings) -> list[Finding]:
    url, what = settings.queue_url, f"QUEUE_URL {settings.queue_url}"
    try:
        response = await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
    except AWS_ERRORS as exc:
        return [failure("queue", what, "sqs:GetQueueAttributes", exc)]
    attributes = {str(name): value for name, value in response.get("Attributes", {}).items()}
    waiting, held = (
        attributes.get("ApproximateNumberOfMessages"),
        attributes.get("ApproximateNumberOfMessagesNotVisible"),
    )
    entry: Any = {"Id": "0", "ReceiptHandle": PROBE_RECEIPT_HANDLE}
    findings = [
        Finding(Level.OK, "queue", f"reachable; {waiting} messages waiting, {held} in flight"),
        _redrive(attributes, settings.dead_letter_queue_url),
        _visibility(attributes, settings),
        await probe("sqs:DeleteMessage", what, sqs.delete_message_batch(QueueUrl=url, Entries=[entry])),
    ]
    release = sqs.change_message_visibility_batch(QueueUrl=url, Entries=[entry | {"VisibilityTimeout": 0}])
    return [*findings, await probe("sqs:ChangeMessageVisibility", what, release)]


def _redrive(attributes: dict[str, str], dead_letter_url: str | None) -> Finding:
    if "RedrivePolicy" not in attributes:
        fix = "add a dead-letter queue with maxReceiveCount 5 or more, or a failing message loops until it expires"
        return Finding(Level.WARN, "redrive", f"the queue has no redrive policy: {fix}")
    policy = json.loads(attributes["RedrivePolicy"])
    target, receives = str(policy.get("deadLetterTargetArn", "")), int(policy.get("maxReceiveCount", 0))
    if receives < 5:
        fix = "use 5 or more, or a short outage moves good messages to the dead-letter queue"
        return Finding(Level.WARN, "redrive", f"maxReceiveCount is {receives}: {fix}")
    if dead_letter_url and target.split(":")[-2:] != dead_letter_url.rstrip("/").split("/")[-2:]:
        fix = "point both at one queue, or quarantined and exhausted messages end up apart"
        return Finding(Level.WARN, "redrive", f"DEAD_LETTER_QUEUE_URL is not the redrive target {target}: {fix}")
    return Finding(Level.OK, "redrive", f"dead-letter queue {target.rpartition(':')[2]} after {receives} receives")


def _visibility(attributes: dict[str, str], settings: Settings) -> Finding:
    source = "VISIBILITY_TIMEOUT_SECONDS" if settings.visibility_timeout_seconds else "the queue's VisibilityTimeout"
    timeout_s = settings.visibility_timeout_seconds or int(attributes.get("VisibilityTimeout", "30"))
    needed_s = math.ceil(settings.shutdown_timeout_seconds) + SHUTDOWN_MARGIN_S
    if timeout_s < needed_s:
        why = f"{timeout_s}s is under SHUTDOWN_TIMEOUT_SECONDS + {SHUTDOWN_MARGIN_S}s, so a message still draining"
        fix = f"raise {source} to {needed_s}s or more, or lower SHUTDOWN_TIMEOUT_SECONDS"
        return Finding(Level.FAIL, "visibility", f"{why} at SIGTERM could reach another task first: {fix}")
    if timeout_s < SHORT_VISIBILITY_S:
        why = f"{timeout_s}s ({source}) is short: one put may take {PUT_WORST_S}s with the SDK's retries"
        fix = f"so the heartbeat alone keeps a slow message from a second receive; raise it to {SHORT_VISIBILITY_S}s"
        return Finding(Level.WARN, "visibility", f"{why}, {fix} or more")
    drain = f"{settings.shutdown_timeout_seconds:g}s"
    return Finding(Level.OK, "visibility", f"{timeout_s}s ({source}) covers the {drain} shutdown drain")


async def _check_dead_letter_queue(sqs: SQSClient, url: str) -> Finding:
    """Reachable with these credentials? The task role may not read it (the worker only sends): that is a note."""
    try:
        await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    except AWS_ERRORS as exc:
        if classify(exc) is not ErrorKind.FORBIDDEN:
            return failure("dlq", f"DEAD_LETTER_QUEUE_URL {url}", "sqs:GetQueueAttributes", exc)
        return Finding(Level.NOTE, "dlq", "not readable with these credentials, which the worker does not need")
    return Finding(Level.OK, "dlq", f"DEAD_LETTER_QUEUE_URL reachable: quarantined messages go to {url}")


async def _check_table(dynamodb: DynamoDBClient, table: str) -> list[Finding]:
    what = f"PHOTOS_TABLE {table}"
    try:
        description = await PhotoStore(dynamodb, table).describe()
    except AWS_ERRORS as exc:
        return [failure("table", what, "dynamodb:DescribeTable", exc)]
    keys = [(key["AttributeName"], key["KeyType"]) for key in description.get("KeySchema", [])]
    types = {a["AttributeName"]: a["AttributeType"] for a in description.get("AttributeDefinitions", [])}
    if keys != [("photoId", "HASH")] or types.get("photoId") != "S":
        shown = ", ".join(f"{name} ({types.get(name, '?')} {kind})" for name, kind in keys)
        fix = "the worker needs photoId (S) as its only key: point PHOTOS_TABLE at the Photos table, or recreate it"
        return [Finding(Level.FAIL, "table", f"{table}'s key is {shown}; {fix}")]
    status = description.get("TableStatus", "UNKNOWN")
    level = Level.OK if status in {"ACTIVE", "UPDATING"} else Level.WARN
    put = dynamodb.put_item(TableName=table, Item={"photoId": {"S": PROBE_PHOTO_ID}}, ConditionExpression=NEVER_TRUE)
    return [Finding(level, "table", f"photoId (S) hash key, {status}"), await probe("dynamodb:PutItem", what, put)]
