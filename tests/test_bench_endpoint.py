"""The bench endpoint's capacity, redrive and per-port counts, through botocore as the workers reach it.

The capacities here are tiny (0.001 writes a second: one write unit every 1,000 s) so that, with the buckets
empty at `arm`, a put is throttled whatever the machine's speed; no test waits on a clock.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from bench.capacity import KEY_RANGE_REASON, TABLE_REASON, WriteCapacity
from bench.runner import Control

REPO = Path(__file__).resolve().parent.parent
NO_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 1})
Endpoint = Callable[..., tuple[list[Control], Any, Any]]


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    """Start `python -m bench.endpoint` with extra flags; gives its controls and boto3 SQS and DynamoDB clients."""
    procs: list[subprocess.Popen[str]] = []

    def start(*flags: str) -> tuple[list[Control], Any, Any]:
        argv = [sys.executable, "-m", "bench.endpoint", "--queue", "q", "--table", "Photos", *flags]
        proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout is not None
        controls = [Control(port) for port in json.loads(proc.stdout.readline())["ports"]]
        session = boto3.Session("bench", "bench", region_name="us-east-1")
        url = controls[0].url
        sqs = session.client("sqs", endpoint_url=url, config=NO_RETRIES)
        ddb = session.client("dynamodb", endpoint_url=url, config=NO_RETRIES)
        return controls, sqs, ddb

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()


def item(photo_id: str) -> dict[str, dict[str, str]]:
    return {"photoId": {"S": photo_id}, "s3Bucket": {"S": "b"}, "s3Key": {"S": f"photos-raw/{photo_id}"}}


def conditional_put(ddb: Any, photo_id: str) -> None:
    ddb.put_item(TableName="Photos", Item=item(photo_id), ConditionExpression="attribute_not_exists(photoId)")


def test_a_put_beyond_the_table_capacity_is_throttled_with_the_reason_and_resource(endpoint: Endpoint) -> None:
    """ProvisionedThroughputExceededException, HTTP 400, AWS's message and ThrottlingReasons [{reason, resource}]."""
    controls, _, ddb = endpoint("--table-wcu", "0.001")
    controls[0].call("arm")
    with pytest.raises(ClientError) as caught:
        conditional_put(ddb, "p1")
    response = caught.value.response
    assert response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "provisioned throughput" in response["Error"]["Message"]
    resource = "arn:aws:dynamodb:us-east-1:000000000000:table/Photos"
    assert response["ThrottlingReasons"] == [{"reason": TABLE_REASON, "resource": resource}]
    assert isinstance(caught.value, ddb.exceptions.ProvisionedThroughputExceededException)


def test_a_throttled_conditional_put_writes_nothing(endpoint: Endpoint) -> None:
    """The capacity is checked before the condition: the item does not exist afterwards."""
    controls, _, ddb = endpoint("--table-wcu", "0.001")
    controls[0].call("arm")
    with pytest.raises(ddb.exceptions.ProvisionedThroughputExceededException):
        conditional_put(ddb, "p1")
    assert "Item" not in ddb.get_item(TableName="Photos", Key={"photoId": {"S": "p1"}})
    stats = controls[0].call("stats")
    assert stats["put.throttled"] == 1
    assert stats.get("put.written", 0) == 0


def test_hot_partition_mode_throttles_with_the_key_range_reason(endpoint: Endpoint) -> None:
    """--partition-wcu alone: the key's range is out of capacity, the table is not."""
    controls, _, ddb = endpoint("--partition-wcu", "0.001", "--partitions", "4")
    controls[0].call("arm")
    with pytest.raises(ClientError) as caught:
        conditional_put(ddb, "p1")
    assert [r["reason"] for r in caught.value.response["ThrottlingReasons"]] == [KEY_RANGE_REASON]
    assert controls[0].call("stats")[f"put.throttled.{KEY_RANGE_REASON}"] == 1


def test_without_a_capacity_every_put_writes(endpoint: Endpoint) -> None:
    controls, _, ddb = endpoint()
    controls[0].call("arm")
    for index in range(50):
        conditional_put(ddb, f"p{index}")
    assert controls[0].call("stats")["put.written"] == 50


def test_redrive_moves_a_message_received_max_receive_count_times(endpoint: Endpoint) -> None:
    """maxReceiveCount 2: two deliveries, then the next receive moves the message to the dead-letter queue."""
    controls, sqs, _ = endpoint("--dead-letter-queue", "q-dlq", "--max-receive-count", "2")
    queue, dlq = (f"{controls[0].url}/000000000000/{name}" for name in ("q", "q-dlq"))
    sqs.send_message(QueueUrl=queue, MessageBody="poison")
    controls[0].call("arm")
    counts = []
    for _ in range(3):
        answer = sqs.receive_message(
            QueueUrl=queue, VisibilityTimeout=0, WaitTimeSeconds=0, MessageSystemAttributeNames=["All"]
        )
        counts.extend(int(m["Attributes"]["ApproximateReceiveCount"]) for m in answer.get("Messages", []))
    assert counts == [1, 2]
    assert [m["Body"] for m in sqs.receive_message(QueueUrl=dlq).get("Messages", [])] == ["poison"]
    policy = json.loads(sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]["RedrivePolicy"])
    assert policy == {"deadLetterTargetArn": "arn:aws:sqs:us-east-1:000000000000:q-dlq", "maxReceiveCount": 2}
    stats = controls[0].call("stats")
    assert (stats["dead_lettered"], stats["max_receive_count"]) == (1, 2)
    assert "drained" in stats["marks"]


def test_listeners_share_one_state_and_count_each_port(endpoint: Endpoint) -> None:
    """Two ports, one queue and table: a put through port 1 is counted for listener 1."""
    controls, _, ddb = endpoint("--listeners", "2")
    controls[0].call("arm")
    conditional_put(ddb, "p0")
    other = boto3.Session("b", "b", region_name="us-east-1").client("dynamodb", endpoint_url=controls[1].url)
    with pytest.raises(other.exceptions.ConditionalCheckFailedException):
        conditional_put(other, "p0")
    by_listener = controls[0].call("stats")["by_listener"]
    assert by_listener["0"]["put.written"] == 1
    assert by_listener["1"]["put.condition_failed"] == 1


def insert(photo_id: str, key: str | None = None) -> dict[str, Any]:
    """photo-ingest's PartiQL statement (service/aws/partiql.py) for one item."""
    values = item(photo_id) | ({"s3Key": {"S": key}} if key else {})
    names = ", ".join(f"'{name}': ?" for name in values)
    return {"Statement": f'INSERT INTO "Photos" VALUE {{{names}}}', "Parameters": list(values.values())}


def test_batch_execute_statement_inserts_and_answers_duplicate_item_per_statement(endpoint: Endpoint) -> None:
    """WRITE_MODE=batch's call: new keys are written, an existing key answers DuplicateItem and is not overwritten."""
    controls, _, ddb = endpoint()
    controls[0].call("arm")
    conditional_put(ddb, "p0")
    answer = ddb.batch_execute_statement(Statements=[insert("p0", "photos-raw/other"), insert("p1"), insert("p2")])
    errors = [response.get("Error", {}).get("Code") for response in answer["Responses"]]
    assert errors == ["DuplicateItem", None, None]
    stored = ddb.get_item(TableName="Photos", Key={"photoId": {"S": "p0"}})["Item"]
    assert stored["s3Key"] == {"S": "photos-raw/p0"}
    stats = controls[0].call("stats")
    assert (stats["put.written"], stats["put.condition_failed"]) == (3, 1)
    assert stats["calls"]["BatchExecuteStatement"] == 1


@pytest.mark.parametrize(
    "statements",
    [[insert(f"p{index}") for index in range(26)], [insert("p0"), insert("p0")]],
    ids=["26 statements", "one key twice"],
)
def test_batch_execute_statement_refuses_a_batch_it_cannot_take_whole(
    endpoint: Endpoint, statements: list[dict[str, Any]]
) -> None:
    controls, _, ddb = endpoint()
    controls[0].call("arm")
    with pytest.raises(ClientError) as caught:
        ddb.batch_execute_statement(Statements=statements)
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert controls[0].call("stats").get("put.written", 0) == 0


def test_a_statement_beyond_the_capacity_is_throttled_alone_and_writes_nothing(endpoint: Endpoint) -> None:
    controls, _, ddb = endpoint("--table-wcu", "0.001")
    controls[0].call("arm")
    (response,) = ddb.batch_execute_statement(Statements=[insert("p1")])["Responses"]
    assert response["Error"]["Code"] == "ProvisionedThroughputExceeded"
    assert "Item" not in ddb.get_item(TableName="Photos", Key={"photoId": {"S": "p1"}})
    assert controls[0].call("stats")["put.throttled"] == 1


def test_the_bucket_admits_rate_times_time_and_a_throttled_put_takes_nothing() -> None:
    capacity = WriteCapacity(table_wcu=100, burst_s=1.0)
    capacity.reset(0.0)
    admitted = sum(not capacity.admit("k", 0.5) for _ in range(80))
    assert admitted == 50
    assert capacity.admit("k", 0.5) == [TABLE_REASON]
    assert capacity.admit("k", 0.51) == []  # 0.01 s later: one unit, not consumed by the throttled attempts


def test_the_bucket_holds_at_most_burst_seconds() -> None:
    capacity = WriteCapacity(table_wcu=100, burst_s=0.2)
    capacity.reset(0.0)
    assert sum(not capacity.admit("k", 60.0) for _ in range(100)) == 20


def test_key_ranges_split_the_hash_space_evenly() -> None:
    capacity = WriteCapacity(partition_wcu=1000, partitions=4)
    ranges = [capacity.key_range(f"photo-{index}") for index in range(4000)]
    assert all(800 < ranges.count(r) < 1200 for r in range(4))
