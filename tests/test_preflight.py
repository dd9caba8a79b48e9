"""`photo-ingest check` against moto: a right set-up passes, and each broken one fails (or warns) with a line
that says what to fix. Permission failures use moto's IAM enforcement, switched on only around the check."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest

from service.cli import main
from service.ops.check.command import render, run_checks
from service.ops.check.findings import Finding, Level
from tests.conftest import BUCKET, REGION, Stack

# AWS authorizes DeleteMessageBatch and ChangeMessageVisibilityBatch by DeleteMessage and ChangeMessageVisibility;
# moto authorizes them by their own names, so a policy given to moto carries both.
TRUSTING = {"allowed_buckets": BUCKET, "allowed_topic_arns": ""}  # a right set-up: its own bucket, no SNS
MOTO_BATCH_ALIASES = {
    "sqs:DeleteMessage": "sqs:DeleteMessageBatch",
    "sqs:ChangeMessageVisibility": "sqs:ChangeMessageVisibilityBatch",
}


def _reset_auth(endpoint: str, free_requests: str) -> None:
    """How many requests moto serves before it checks IAM (0: from now on; "inf": never, its default)."""
    url, body = f"{endpoint}/moto-api/reset-auth", free_requests.encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "text/plain"}, method="POST")  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - our own loopback server
        assert response.status == 200


@contextmanager
def iam_enforced(endpoint: str) -> Iterator[None]:
    """Inside the block, moto checks every request's signature and IAM policy (a server-wide switch, restored
    on the way out so other tests run unchecked)."""
    _reset_auth(endpoint, "0")
    try:
        yield
    finally:
        _reset_auth(endpoint, "inf")


def moto_policy(statements: Iterable[dict[str, Any]]) -> str:
    """A policy document for moto: the statements as given, plus moto's names for the SQS batch calls."""
    adapted = []
    for statement in statements:
        actions = [statement["Action"]] if isinstance(statement["Action"], str) else list(statement["Action"])
        adapted.append(
            {**statement, "Action": actions + [MOTO_BATCH_ALIASES[a] for a in actions if a in MOTO_BATCH_ALIASES]}
        )
    return json.dumps({"Version": "2012-10-17", "Statement": adapted})


def iam_user_credentials(endpoint: str, name: str, statements: Iterable[dict[str, Any]]) -> dict[str, str]:
    """Environment variables for a new IAM user that has exactly these statements."""
    iam = boto3.client("iam", region_name=REGION, endpoint_url=endpoint)
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="only-these", PolicyDocument=moto_policy(statements))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}


def by_subject(findings: list[Finding]) -> dict[str, list[Finding]]:
    grouped: dict[str, list[Finding]] = {}
    for finding in findings:
        grouped.setdefault(finding.subject, []).append(finding)
    return grouped


def failures(findings: list[Finding]) -> list[Finding]:
    return [finding for finding in findings if finding.level is Level.FAIL]


def replace_table(stack: Stack, *key: tuple[str, str, str]) -> None:
    """Recreate the Photos table with another key schema: (name, type, HASH|RANGE) each."""
    stack.dynamodb.delete_table(TableName=stack.table)
    stack.dynamodb.create_table(
        TableName=stack.table,
        KeySchema=[{"AttributeName": name, "KeyType": kind} for name, _, kind in key],
        AttributeDefinitions=[{"AttributeName": name, "AttributeType": type_} for name, type_, _ in key],
        BillingMode="PAY_PER_REQUEST",
    )


async def test_a_right_set_up_passes_with_every_check_ok(stack: Stack) -> None:
    """Queue with redrive, a long enough visibility, a reachable dead-letter queue and the Photos table: all ok."""
    findings = await run_checks(stack.settings(dead_letter_queue_url=stack.dlq_url, **TRUSTING))

    assert [f for f in findings if f.level is not Level.OK] == []
    assert {"queue", "redrive", "visibility", "dlq", "table", "access"} <= set(by_subject(findings))
    probed = " ".join(f.text for f in by_subject(findings)["access"])
    assert all(action in probed for action in ("sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "dynamodb:PutItem"))
    report = render(stack.settings(), findings)
    assert report.endswith("check passed: the worker can run")
    assert "not probed, as no call proves it without side effects: sqs:ReceiveMessage" in report


async def test_the_check_changes_nothing_on_the_queue_or_the_table(stack: Stack) -> None:
    """The probes neither receive, delete nor hide a waiting message, and write no item."""
    stack.send('{"Records": []}')

    await run_checks(stack.settings())

    message = stack.sqs.receive_message(
        QueueUrl=stack.queue_url, MessageSystemAttributeNames=["ApproximateReceiveCount"], WaitTimeSeconds=1
    )["Messages"][0]
    assert message["Attributes"]["ApproximateReceiveCount"] == "1"  # this receive is its first
    assert stack.items() == {}


async def test_a_missing_queue_fails_and_says_to_fix_queue_url(stack: Stack) -> None:
    """A QUEUE_URL that names no queue is a failure that names QUEUE_URL."""
    findings = await run_checks(stack.settings(queue_url=stack.queue_url + "-missing"))

    [queue] = by_subject(findings)["queue"]
    assert queue.level is Level.FAIL
    assert f"QUEUE_URL {stack.queue_url}-missing does not exist" in queue.text


async def test_a_missing_table_fails_and_says_to_fix_photos_table(stack: Stack) -> None:
    """A PHOTOS_TABLE that names no table is a failure that names PHOTOS_TABLE."""
    findings = await run_checks(stack.settings(photos_table="PhotosMissing"))

    [table] = failures(findings)
    assert table.subject == "table"
    assert "PHOTOS_TABLE PhotosMissing does not exist" in table.text


@pytest.mark.parametrize(
    "key",
    [
        (("id", "S", "HASH"),),
        (("photoId", "N", "HASH"),),
        (("photoId", "S", "HASH"), ("uploadedAt", "S", "RANGE")),
    ],
    ids=["other-name", "number", "with-sort-key"],
)
async def test_a_table_without_photo_id_as_its_only_string_key_fails(
    stack: Stack, key: tuple[tuple[str, str, str], ...]
) -> None:
    """The worker's put needs photoId (S) as the whole key: another name, type or a sort key fails."""
    replace_table(stack, *key)

    findings = await run_checks(stack.settings())

    [table] = failures(findings)
    assert table.subject == "table"
    assert "photoId (S) as its only key" in table.text


async def test_a_queue_without_a_redrive_policy_is_only_a_warning(stack: Stack) -> None:
    """No redrive policy: a warning that says to add a dead-letter queue, and the check still passes."""
    url = stack.sqs.create_queue(QueueName="photos-no-redrive")["QueueUrl"]

    findings = await run_checks(stack.settings(queue_url=url, **TRUSTING))

    [redrive] = by_subject(findings)["redrive"]
    assert redrive.level is Level.WARN
    assert "no redrive policy: add a dead-letter queue with maxReceiveCount 5 or more" in redrive.text
    assert failures(findings) == []
    assert render(stack.settings(), findings).endswith("check passed: the worker can run, 1 warning(s)")


async def test_a_max_receive_count_under_five_is_a_warning(stack: Stack) -> None:
    """maxReceiveCount 2 sends good messages to the dead-letter queue after a short outage: a warning."""
    dlq_arn = stack.sqs.get_queue_attributes(QueueUrl=stack.dlq_url, AttributeNames=["QueueArn"])["Attributes"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn["QueueArn"], "maxReceiveCount": "2"})
    stack.sqs.set_queue_attributes(QueueUrl=stack.queue_url, Attributes={"RedrivePolicy": redrive})

    [finding] = by_subject(await run_checks(stack.settings()))["redrive"]

    assert finding.level is Level.WARN
    assert "maxReceiveCount is 2" in finding.text


async def test_a_queue_visibility_timeout_shorter_than_the_shutdown_fails(stack: Stack) -> None:
    """The queue's 10 s cannot cover a 20 s drain: a failure that names the minimum, 30 s."""
    stack.sqs.set_queue_attributes(QueueUrl=stack.queue_url, Attributes={"VisibilityTimeout": "10"})
    settings = stack.settings(visibility_timeout_seconds=None, shutdown_timeout_seconds=20)

    [finding] = failures(await run_checks(settings))

    assert finding.subject == "visibility"
    assert "the queue's VisibilityTimeout to 30s or more" in finding.text


async def test_a_short_visibility_timeout_setting_fails_too(stack: Stack) -> None:
    """VISIBILITY_TIMEOUT_SECONDS, when set, is what the worker uses, so it is the one checked."""
    settings = stack.settings(visibility_timeout_seconds=12, shutdown_timeout_seconds=5)

    [finding] = failures(await run_checks(settings))

    assert finding.subject == "visibility"
    assert "raise VISIBILITY_TIMEOUT_SECONDS to 15s or more" in finding.text


async def test_a_visibility_timeout_under_30_seconds_is_a_warning(stack: Stack) -> None:
    """20 s covers a 5 s drain, but not one put's worst case with the SDK's retries: the heartbeat would be the
    only guard against a second receive, so the check warns and names 30 s, and still passes."""
    settings = stack.settings(visibility_timeout_seconds=20, shutdown_timeout_seconds=5)

    findings = await run_checks(settings)

    assert failures(findings) == []
    [finding] = by_subject(findings)["visibility"]
    assert finding.level is Level.WARN
    assert "20s (VISIBILITY_TIMEOUT_SECONDS) is short" in finding.text
    assert "raise it to 30s or more" in finding.text


async def test_a_missing_dead_letter_queue_fails(stack: Stack) -> None:
    """A DEAD_LETTER_QUEUE_URL that names no queue fails: quarantined messages would have nowhere to go."""
    settings = stack.settings(dead_letter_queue_url=stack.dlq_url + "-missing")

    findings = await run_checks(settings)

    assert [f.subject for f in failures(findings)] == ["dlq"]
    assert "DEAD_LETTER_QUEUE_URL" in failures(findings)[0].text
    assert any("not the redrive target" in f.text for f in by_subject(findings)["redrive"])


async def test_an_unreachable_endpoint_fails_with_what_to_check(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing listening at the endpoint: each check fails with 'cannot reach AWS', not a traceback."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # the discard port: nothing listens
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")

    findings = await run_checks(stack.settings())

    assert {f.subject for f in failures(findings)} == {"queue", "table"}
    assert all("cannot reach AWS" in f.text for f in failures(findings))


async def test_denied_calls_fail_naming_the_action_to_grant(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials without sqs:ChangeMessageVisibility and dynamodb:PutItem: each probe that AWS denies is a
    failure naming that action; the allowed ones pass, and nothing was changed to find out."""
    allowed = [
        {"Effect": "Allow", "Action": ["sqs:GetQueueAttributes", "sqs:DeleteMessage"], "Resource": "*"},
        {"Effect": "Allow", "Action": ["dynamodb:DescribeTable"], "Resource": "*"},
    ]
    for name, value in iam_user_credentials(stack.endpoint, "half-permitted", allowed).items():
        monkeypatch.setenv(name, value)

    with iam_enforced(stack.endpoint):
        findings = await run_checks(stack.settings())

    denied = {f.text.split(" on ")[0] for f in failures(findings)}
    assert denied == {"sqs:ChangeMessageVisibility", "dynamodb:PutItem"}
    assert all("grant it to the task role" in f.text for f in failures(findings))
    assert any(f.level is Level.OK and "sqs:DeleteMessage allowed" in f.text for f in findings)


def test_check_command_exits_0_when_right_and_1_when_not(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`photo-ingest check` prints the report and exits 0 for the right set-up, 1 for a missing table."""
    monkeypatch.setenv("QUEUE_URL", stack.queue_url)
    monkeypatch.setenv("SHUTDOWN_TIMEOUT_SECONDS", "5")
    monkeypatch.setenv("ALLOWED_BUCKETS", BUCKET)  # a right set-up believes its own bucket only
    monkeypatch.setenv("ALLOWED_TOPIC_ARNS", "")

    assert main(["check"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("check passed: the worker can run")

    monkeypatch.setenv("PHOTOS_TABLE", "NoSuchTable")
    assert main(["check"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  table" in out
    assert out.rstrip().endswith("check FAILED: 1 problem(s) to fix")


def test_check_command_exits_2_without_a_queue_url(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad configuration is exit 2 with one line naming the variable, before any AWS call."""
    monkeypatch.delenv("QUEUE_URL", raising=False)

    assert main(["check"]) == 2
    assert "QUEUE_URL" in capsys.readouterr().err
