"""The template's optional backfill task (`CreateBackfillTask=true`): a one-off `photo-ingest backfill --via-queue`
whose role may list the raw bucket, read inventory reports and send to the queue, and nothing else. The role's
statements, as the template writes them, are given to an IAM user on moto with IAM enforced, and a backfill
through the queue runs with them; a direct backfill (which puts items) is refused."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest

from service.config import BackfillQueueSettings, TableSettings
from service.ops.backfill.command import backfill_command
from service.ops.backfill.options import Options
from tests.conftest import BUCKET, Stack
from tests.fleet import photo_keys, queue_options, upload
from tests.test_backfill_inventory import DESTINATION, MANIFEST, make_report, rows_of_bucket
from tests.test_deploy_config import ROOT, actions_of, container, statements, template
from tests.test_preflight import iam_enforced, iam_user_credentials

ACTIONS = {"s3:ListBucket": "RawBucket", "sqs:SendMessage": "Queue", "sqs:GetQueueAttributes": "Queue"}


def resolved(value: Any, names: dict[str, str]) -> Any:
    """The template's statements with the few intrinsic functions they use replaced by this stack's values."""
    if isinstance(value, list):
        return [item for item in (resolved(v, names) for v in value) if item is not None]
    if not isinstance(value, dict):
        return value
    if "Fn::If" in value:
        value = value["Fn::If"][1]  # the backfill reads inventory reports in these tests
    if "Fn::GetAtt" in value:
        return names[value["Fn::GetAtt"][0]]
    if "Fn::Sub" in value:
        return re.sub(r"\$\{([^}]+)\}", lambda match: names[match[1]], value["Fn::Sub"])
    return {key: resolved(item, names) for key, item in value.items()}


def test_the_backfill_task_runs_backfill_via_queue_with_a_role_of_its_own() -> None:
    """Both resources exist only with CreateBackfillTask=true; the role lists the raw bucket (under RawPrefix),
    sends to the queue and reads its depth, reads inventory reports only if a bucket is named, and writes no
    item; the task runs `backfill --via-queue` on the worker's image with QUEUE_URL, and the worker's own task
    role is untouched."""
    resources = template()["Resources"]
    role, task = resources["BackfillTaskRole"], resources["BackfillTaskDefinition"]
    [policy] = role["Properties"]["Policies"]
    granted = {}
    for written in statements(policy):
        statement = written["Fn::If"][1] if "Fn::If" in written else written
        if "Fn::If" in written:
            assert (written["Fn::If"][0], written["Fn::If"][2]) == ("ReadsInventory", {"Ref": "AWS::NoValue"})
            assert statement["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:s3:::${InventoryBucketName}/*"}
        by_name = {"Fn::Sub": "arn:${AWS::Partition}:s3:::${RawBucketName}"}  # not GetAtt: the queue policy names it
        at = (
            "RawBucket"
            if statement["Resource"] == by_name
            else statement["Resource"].get("Fn::GetAtt", ["inventory"])[0]
        )
        for action in actions_of(statement):
            granted[action] = at
        if statement["Action"] == "s3:ListBucket":
            assert statement["Condition"] == {"StringLike": {"s3:prefix": {"Fn::Sub": "${RawPrefix}*"}}}

    assert granted == ACTIONS | {"s3:GetObject": "inventory"}
    assert (role["Condition"], task["Condition"]) == ("WantsBackfillTask", "WantsBackfillTask")
    assert task["Properties"]["TaskRoleArn"] == {"Fn::GetAtt": ["BackfillTaskRole", "Arn"]}
    [backfill] = task["Properties"]["ContainerDefinitions"]
    assert backfill["Command"][:2] == ["backfill", "--via-queue"]
    assert backfill["Image"] == container(resources)["Image"]
    assert {"Name": "QUEUE_URL", "Value": {"Ref": "Queue"}} in backfill["Environment"]
    assert "BackfillTaskRole" not in json.dumps([resources["TaskRole"], resources["TaskDefinition"]])


async def test_the_backfill_task_role_is_enough_to_backfill_through_the_queue_and_no_more(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With only the role's statements and IAM enforced: a backfill through the queue from a listing, and one
    from an inventory report under --max-backlog, both send every object; a direct backfill is refused its
    first put and aborts."""
    keys = photo_keys(20)
    upload(stack, keys)
    make_report(stack, rows_of_bucket(stack))
    queue_arn = stack.sqs.get_queue_attributes(QueueUrl=stack.queue_url, AttributeNames=["QueueArn"])["Attributes"]
    names = {
        "RawBucket": f"arn:aws:s3:::{BUCKET}",
        "RawBucketName": BUCKET,
        "Queue": queue_arn["QueueArn"],
        "RawPrefix": "photos-raw/",
        "AWS::Partition": "aws",
        "InventoryBucketName": DESTINATION,
    }
    [policy] = template()["Resources"]["BackfillTaskRole"]["Properties"]["Policies"]
    granted = resolved(statements(policy), names)
    for statement in granted:  # moto's limits (the static test above reads the template as it is): it authorizes
        # ListObjectsV2, HeadObject and SendMessageBatch by their API names, and it knows no `s3:prefix` condition
        # key. (AWS authorizes HeadObject, which checks a report's data files, by s3:GetObject.)
        aliases = {
            "s3:ListBucket": "s3:ListObjectsV2",
            "s3:GetObject": "s3:HeadObject",
            "sqs:SendMessage": "sqs:SendMessageBatch",
        }
        statement["Action"] = [*actions_of(statement), *(aliases[a] for a in actions_of(statement) if a in aliases)]
        statement.pop("Condition", None)
    for name, value in iam_user_credentials(stack.endpoint, "backfill-task", granted).items():
        monkeypatch.setenv(name, value)
    queue = BackfillQueueSettings(queue_url=stack.queue_url)  # type: ignore[call-arg]
    direct = Options(BUCKET, "photos-raw/", "photos-raw/", concurrency=1)

    with iam_enforced(stack.endpoint):
        listed = await backfill_command(queue, queue_options(stack), asyncio.Event(), None)
        inventoried = await backfill_command(
            queue, queue_options(stack, inventory=MANIFEST, max_backlog=1000), asyncio.Event(), None
        )
        refused = await backfill_command(TableSettings(), direct, asyncio.Event(), None)  # type: ignore[call-arg]
    captured = capsys.readouterr()
    out = captured.out

    assert (listed, inventoried, refused) == (0, 0, 1), captured.err
    assert out.count(f"sent          {len(keys)}") == 2
    assert "reason        put_forbidden" in out
    assert stack.depth() == 2 * len(keys)


def test_the_standalone_via_queue_policy_grants_what_the_template_role_does() -> None:
    """config/backfill-via-queue-policy.json, for a backfill run outside the stack, has the role's actions, the
    same prefix condition on the listing, and no write to the table."""
    document = json.loads((ROOT / "config" / "backfill-via-queue-policy.json").read_text())

    actions = {action for statement in document["Statement"] for action in actions_of(statement)}
    assert actions == set(ACTIONS) | {"s3:GetObject"}
    [listing] = [s for s in document["Statement"] if s["Action"] == "s3:ListBucket"]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": "photos-raw/*"}}


async def test_a_backlog_it_may_not_read_stops_the_run_and_says_why(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--max-backlog needs sqs:GetQueueAttributes: without it the run cannot pace itself, so it stops before its
    first send, says why, and exits 1."""
    upload(stack, photo_keys(20))
    allowed = [{"Effect": "Allow", "Action": ["s3:ListObjectsV2", "sqs:SendMessageBatch"], "Resource": "*"}]
    for name, value in iam_user_credentials(stack.endpoint, "no-depth", allowed).items():
        monkeypatch.setenv(name, value)
    settings = BackfillQueueSettings(queue_url=stack.queue_url)  # type: ignore[call-arg]

    with iam_enforced(stack.endpoint):
        code = await backfill_command(settings, queue_options(stack, max_backlog=100), asyncio.Event(), None)
    out = capsys.readouterr().out

    assert code == 1
    assert re.search(r"reason +backlog_read_failed: .*GetQueueAttributes", out), out
    assert stack.depth() == 0
