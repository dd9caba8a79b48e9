"""One security baseline, asserted on every target: the ECS worker, the ECS backfill task, the Lambda function and
Kubernetes (its manifests, base and every overlay, with config/eks.yaml for the queues and alarms).

Each target gets: the allowlists from its own parameters or overlay; TLS-only queues; a queue policy that denies
every sender but S3 for the bucket (or the topic) and the named operator and backfill roles; a dead-letter queue
that only the quarantining role may send to; capabilities dropped, non-root and a read-only root where the
target has them; the image pull scoped to its repository; alarms on untrusted messages, invalid items, conflicts,
a non-empty DLQ, the oldest message's age, QueueLag's p99, and (ECS, EKS) zero running workers. The first test
finds every compute resource in config/, so a new target cannot ship without being listed here, and so checked."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.kustomize import render
from tests.templates import (
    DEFAULT_CONDITIONS,
    ECS_TEMPLATE,
    LAMBDA_TEMPLATE,
    ROOT,
    actions_of,
    active,
    data_combinations,
    load,
    parameters_for,
    rendered,
    resolved,
    statements,
)

EKS_TEMPLATE = ROOT / "config" / "eks.yaml"
K8S = ROOT / "config" / "k8s"
BIN = Path(sys.executable).parent
COMPUTE = {"AWS::ECS::TaskDefinition", "AWS::Lambda::Function"}
TLS_DENY = {"Bool": {"aws:SecureTransport": "false"}}
BUCKET_ARN = {"Fn::Sub": "arn:${AWS::Partition}:s3:::${RawBucketName}"}
# Every alarm a target needs: (namespace, metric) and whether it watches the dead-letter queue.
ALARMS = {
    ("PhotoIngest", "MessagesUntrusted"),
    ("PhotoIngest", "RecordsInvalid"),
    ("PhotoIngest", "RecordsConflict"),
    ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),  # on the dead-letter queue
    ("AWS/SQS", "ApproximateAgeOfOldestMessage"),  # on the queue
    ("PhotoIngest", "QueueLag"),  # its p99: how late photos reach the table
}
DATA_RESOURCES = {"AWS::SQS::Queue", "AWS::DynamoDB::Table", "AWS::S3::Bucket", "AWS::Logs::LogGroup"}


def arn(logical_id: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id, "Arn"]}


@dataclass(frozen=True)
class Target:
    name: str
    template: Path
    compute: str | None  # the task definition or function (None: the workers are Kubernetes manifests)
    conditions: dict[str, bool]  # what makes the target exist
    quarantine: list[Any]  # who may send to the dead-letter queue
    senders: list[Any]  # the principals the queue policy lets send, besides S3 and the topic
    zero_workers_alarm: bool
    image_repository: Any = None  # what the image pull is scoped to (None: no image, or the nodes pull it)
    extra: dict[str, Any] = field(default_factory=dict)


TARGETS = [
    Target(
        "ecs-worker",
        ECS_TEMPLATE,
        "TaskDefinition",
        {},
        [arn("TaskRole")],
        [arn("OperatorRole")],
        zero_workers_alarm=True,
        image_repository={"Ref": "ImageRepositoryArn"},
    ),
    Target(
        "ecs-backfill",
        ECS_TEMPLATE,
        "BackfillTaskDefinition",
        {"WantsBackfillTask": True},
        [arn("TaskRole")],
        [arn("OperatorRole"), arn("BackfillTaskRole")],
        zero_workers_alarm=True,
        image_repository={"Ref": "ImageRepositoryArn"},
    ),
    Target(
        "lambda",
        LAMBDA_TEMPLATE,
        "Function",
        {},
        [arn("FunctionRole")],
        [arn("OperatorRole")],
        zero_workers_alarm=False,  # Lambda runs on demand: there is no worker to be missing
    ),
    Target(
        "kubernetes",
        EKS_TEMPLATE,
        None,
        {"HasBackfillRole": True},
        [{"Ref": "WorkerRoleArn"}],
        [{"Ref": "OperatorRoleArn"}, {"Ref": "BackfillRoleArn"}],
        zero_workers_alarm=True,
    ),
]


def templates_in_config() -> list[Path]:
    return sorted(p for p in (ROOT / "config").rglob("*.yaml") if "AWSTemplateFormatVersion" in p.read_text())


def resources(target: Target) -> dict[str, Any]:
    return active(load(target.template), target.conditions | {"HasBackfillRole": True, "HasSourceTopic": True})


def queue_policy(found: dict[str, Any], queue: str) -> list[dict[str, Any]]:
    [policy] = [
        r
        for r in found.values()
        if r["Type"] == "AWS::SQS::QueuePolicy" and {"Ref": queue} in r["Properties"]["Queues"]
    ]
    return statements(policy["Properties"])


def containers(target: Target) -> list[dict[str, Any]]:
    definition = resources(target)[target.compute]["Properties"] if target.compute else {}
    return list(definition.get("ContainerDefinitions", []))


def k8s_deployments() -> list[dict[str, Any]]:
    trees = [K8S / "base", *sorted(p for p in (K8S / "overlays").iterdir() if p.is_dir())]
    return [d for tree in trees for d in render(tree) if d["kind"] == "Deployment"]


def test_every_compute_resource_and_manifest_is_a_target_of_the_baseline() -> None:
    """Every task definition and function in every template under config/, and the Kubernetes Deployment, is a
    target above: a new one fails here until it is added, and so checked."""
    found = {
        (path, logical_id)
        for path in templates_in_config()
        for logical_id, resource in load(path)["Resources"].items()
        if resource["Type"] in COMPUTE
    }
    assert found == {(t.template, t.compute) for t in TARGETS if t.compute}
    assert {t.template for t in TARGETS} == set(templates_in_config())
    deployments = {d["metadata"]["name"] for d in k8s_deployments()}
    assert deployments == {"photo-ingest"}
    assert len(k8s_deployments()) == 1 + len(list((K8S / "overlays").iterdir()))


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_the_allowlists_come_from_the_targets_own_parameters(target: Target) -> None:
    """The worker (function, pods) believes only the stack's bucket and topic; the backfill announces only that
    bucket. Kubernetes: the ConfigMap of the base and of every overlay sets both allowlists."""
    if target.name == "kubernetes":
        trees = [K8S / "base", *sorted(p for p in (K8S / "overlays").iterdir() if p.is_dir())]
        for tree in trees:
            [config] = [d["data"] for d in render(tree) if d["kind"] == "ConfigMap"]
            assert config["ALLOWED_BUCKETS"], tree
            assert "ALLOWED_TOPIC_ARNS" in config, tree
        return
    if target.compute == "Function":
        variables = resources(target)["Function"]["Properties"]["Environment"]["Variables"]
    elif target.compute == "BackfillTaskDefinition":
        [backfill] = containers(target)
        command = backfill["Command"]
        assert command[command.index("--bucket") + 1] == {"Ref": "RawBucketName"}
        return
    else:
        [worker] = containers(target)
        variables = {pair["Name"]: pair["Value"] for pair in worker["Environment"]}
    assert variables["ALLOWED_BUCKETS"] == {"Ref": "RawBucketName"}
    assert variables["ALLOWED_TOPIC_ARNS"] == {"Ref": "SourceTopicArn"}


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_the_queues_refuse_plain_http_and_untrusted_senders(target: Target) -> None:
    """Both queues deny every sqs:* request without TLS. The queue: S3 for the bucket (and the topic) may send,
    every other service and every principal but the named roles is denied SendMessage."""
    found = resources(target)
    queues = [name for name, r in found.items() if r["Type"] == "AWS::SQS::Queue"]
    assert sorted(queues) == ["DeadLetterQueue", "Queue"]
    for queue in queues:
        [tls] = [s for s in queue_policy(found, queue) if s.get("Condition") == TLS_DENY]
        assert (tls["Effect"], tls["Principal"], tls["Action"]) == ("Deny", "*", "sqs:*")
    by_sid = {s["Sid"]: s for s in queue_policy(found, "Queue")}
    assert by_sid["RawBucketNotifications"]["Condition"]["ArnLike"] == {"aws:SourceArn": BUCKET_ARN}
    services, principals = by_sid["DenyOtherServiceSenders"], by_sid["DenyOtherPrincipalSenders"]
    for deny in (services, principals):
        assert (deny["Effect"], deny["Principal"], deny["Action"]) == ("Deny", "*", "sqs:SendMessage")
    assert services["Condition"]["ArnNotEquals"]["aws:SourceArn"] == [BUCKET_ARN, {"Ref": "SourceTopicArn"}]
    assert principals["Condition"]["ArnNotEquals"]["aws:PrincipalArn"] == target.senders
    allows = [s for s in queue_policy(found, "Queue") if s["Effect"] == "Allow"]
    assert {json.dumps(s["Principal"]) for s in allows} <= {
        '{"Service": "s3.amazonaws.com"}',
        '{"Service": "sns.amazonaws.com"}',
    }


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_only_the_quarantining_role_may_send_to_the_dead_letter_queue(target: Target) -> None:
    """A body sent straight to the dead-letter queue would be moved to the queue by the next redrive, under the
    operator's identity: so the DLQ denies SendMessage to every principal but the one that quarantines, allows
    nobody, and that role is the only one whose own policy sends there."""
    found = resources(target)
    dlq = queue_policy(found, "DeadLetterQueue")
    [deny] = [s for s in dlq if s["Sid"] == "DenyAllButQuarantine"]
    assert (deny["Effect"], deny["Principal"], deny["Action"]) == ("Deny", "*", "sqs:SendMessage")
    assert deny["Resource"] == arn("DeadLetterQueue")
    assert deny["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": target.quarantine}}
    assert [s for s in dlq if s["Effect"] == "Allow"] == []
    senders = {
        name
        for name, r in found.items()
        if r["Type"] == "AWS::IAM::Role"
        for policy in r["Properties"].get("Policies", [])
        for s in statements(policy)
        if "sqs:SendMessage" in actions_of(s) and s["Resource"] == arn("DeadLetterQueue")
    }
    assert [arn(name) for name in sorted(senders)] == [q for q in target.quarantine if "Fn::GetAtt" in q]


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_the_workload_runs_non_root_read_only_without_capabilities(target: Target) -> None:
    """ECS containers: a numeric non-root user, a read-only root, every capability dropped. Kubernetes: the same
    in the pod's and the container's security context, in the base and every overlay. Lambda has no such knobs."""
    if target.name == "kubernetes":
        for deployment in k8s_deployments():
            pod = deployment["spec"]["template"]["spec"]
            [container] = pod["containers"]
            assert pod["securityContext"]["runAsNonRoot"] is True
            assert pod["securityContext"]["runAsUser"] > 0
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"] == {"drop": ["ALL"]}
        return
    for container in containers(target):
        user, _, group = container["User"].partition(":")
        assert int(user) > 0
        assert int(group) > 0
        assert container["ReadonlyRootFilesystem"] is True
        assert container["LinuxParameters"]["Capabilities"] == {"Drop": ["ALL"]}
        assert "Privileged" not in container
    assert target.compute != "Function" or containers(target) == []


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_the_image_pull_is_scoped_to_its_repository(target: Target) -> None:
    """ECS: the execution role pulls from the image's repository only (GetAuthorizationToken has no resource).
    Lambda runs a zip from S3 and Kubernetes nodes pull with their own role: neither has an image pull here."""
    found = resources(target)
    pulls = [
        s
        for r in found.values()
        if r["Type"] == "AWS::IAM::Role"
        for policy in r["Properties"].get("Policies", [])
        for s in statements(policy)
        if any(action.startswith("ecr:") for action in actions_of(s))
    ]
    if target.image_repository is None:
        assert pulls == []
        return
    for statement in pulls:
        if actions_of(statement) == ["ecr:GetAuthorizationToken"]:
            assert statement["Resource"] == "*"
        else:
            assert statement["Resource"] == target.image_repository
    assert any(actions_of(s) != ["ecr:GetAuthorizationToken"] for s in pulls)
    image = containers(target)[0]["Image"]
    assert image == {"Ref": "ImageUri"}


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_the_alarms_cover_the_trust_boundary_the_backlog_and_the_workers(target: Target) -> None:
    """Untrusted messages, invalid items, conflicts, a non-empty DLQ, the oldest message's age, QueueLag's p99; and
    for ECS and EKS, zero running workers, with missing data breaching (no worker may publish nothing)."""
    alarms = [r["Properties"] for r in resources(target).values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    watched = {(a["Namespace"], a["MetricName"]): a for a in alarms}
    assert set(watched) >= ALARMS
    dlq = watched["AWS/SQS", "ApproximateNumberOfMessagesVisible"]["Dimensions"]
    assert dlq == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]}}]
    oldest = watched["AWS/SQS", "ApproximateAgeOfOldestMessage"]["Dimensions"]
    assert oldest == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["Queue", "QueueName"]}}]
    lag = watched["PhotoIngest", "QueueLag"]
    assert (lag["ExtendedStatistic"], lag["Threshold"]) == ("p99", {"Ref": "QueueLagAlarmSeconds"})
    assert lag["Dimensions"] == watched["PhotoIngest", "MessagesUntrusted"]["Dimensions"]  # METRICS_DIMENSIONS
    zero = [
        a for a in alarms if a["ComparisonOperator"] == "LessThanThreshold" and a["TreatMissingData"] == "breaching"
    ]
    assert len(zero) == int(target.zero_workers_alarm)
    notified = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    raw = [
        r["Properties"] for r in load(target.template)["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"
    ]
    assert all(alarm["AlarmActions"] == alarm["OKActions"] == notified for alarm in raw)


@pytest.mark.parametrize("template", [ECS_TEMPLATE, LAMBDA_TEMPLATE, EKS_TEMPLATE], ids=lambda p: p.name)
def test_what_holds_data_outlives_the_stack_and_every_taggable_resource_is_tagged(template: Path) -> None:
    """Queues, table, bucket and log groups: DeletionPolicy and UpdateReplacePolicy Retain. Every resource whose
    type takes Tags carries the three slots of the Tags parameter; the queues (and the table, the logs) take the
    KMS key when one is given."""
    parsed = load(template)
    from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

    for name, resource in parsed["Resources"].items():
        if resource["Type"] in DATA_RESOURCES:
            assert (resource["DeletionPolicy"], resource["UpdateReplacePolicy"]) == ("Retain", "Retain"), name
        schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", resource["Type"]).schema
        if "Tags" in schema.get("properties", {}):
            tags = resource["Properties"].get("Tags", [])
            assert [t["Fn::If"][0] for t in tags[:3]] == ["HasTag1", "HasTag2", "HasTag3"], name
    keyed = {"HasKmsKey": True}
    for name, resource in active(parsed, keyed).items():
        if resource["Type"] == "AWS::SQS::Queue":
            assert resource["Properties"]["KmsMasterKeyId"] == {"Ref": "KmsKeyArn"}, name
            assert "SqsManagedSseEnabled" not in resource["Properties"]
        if resource["Type"] == "AWS::Logs::LogGroup":
            assert resource["Properties"]["KmsKeyId"] == {"Ref": "KmsKeyArn"}, name
        if resource["Type"] == "AWS::DynamoDB::Table":
            assert resource["Properties"]["SSESpecification"]["KMSMasterKeyId"] == {"Ref": "KmsKeyArn"}


def concrete(parsed: dict[str, Any], conditions: dict[str, bool]) -> dict[str, Any]:
    """The template as one deployment sees it: every condition decided, what it excludes gone."""
    decide = DEFAULT_CONDITIONS | conditions
    out = rendered(parsed, parameters_for(decide))
    out.pop("Conditions")
    out["Resources"] = {n: {k: v for k, v in r.items() if k != "Condition"} for n, r in active(parsed, decide).items()}
    outputs = {n: o for n, o in parsed.get("Outputs", {}).items() if decide.get(o.get("Condition", ""), True)}
    out["Outputs"] = {n: {k: v for k, v in resolved(o, decide).items() if k != "Condition"} for n, o in outputs.items()}
    return out


def test_cfn_lint_passes_on_both_stacks_with_every_combination_of_create_or_use_existing(tmp_path: Path) -> None:
    """Each create/use-existing combination of bucket and table, with every option off, or on (a KMS key, tags,
    a topic, the backfill task and policy, VerifyObjects, batch writes), rendered with its conditions decided: a
    reference to a resource that combination does not create would fail the lint. Unused parameters (W2001) are
    expected once conditions are decided. config/eks.yaml, which has no such choice, is linted as it is."""
    paths = []
    for template in (ECS_TEMPLATE, LAMBDA_TEMPLATE):
        parsed = load(template)
        for n, combination in enumerate(data_combinations()):
            options = combination["HasKmsKey"]
            if combination["HasTag1"] != options:
                continue  # options on and off together: 4 data combinations x 2
            extra = dict.fromkeys(
                ("HasSourceTopic", "WantsBackfillTask", "WantsBackfillPolicy", "ReadsInventory"), options
            )
            extra |= dict.fromkeys(("VerifiesObjects", "WritesInBatches", "HasAlarmTopic"), options)
            paths.append(tmp_path / f"{template.stem}-{n}.json")
            paths[-1].write_text(json.dumps(concrete(parsed, combination | extra)))
    assert len(paths) == 16

    command = [
        BIN / "cfn-lint",
        "--include-checks",
        "I",
        "--ignore-checks",
        "W2001",
        "--",
        *map(str, paths),
        str(EKS_TEMPLATE),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)

    assert result.returncode == 0, result.stdout + result.stderr


def test_an_existing_table_and_bucket_are_reached_by_name_and_never_created() -> None:
    """With CreateBucket=false and CreateTable=false neither stack creates them, and every grant on the table names
    PhotosTableName's ARN; with the defaults the table is the stack's own, named after the stack."""
    table_arn = {"Fn::Sub": "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${PhotosTableName}"}
    for template in (ECS_TEMPLATE, LAMBDA_TEMPLATE):
        parsed = load(template)
        existing = active(parsed, {"CreatesBucket": False, "CreatesTable": False, "NamesTable": True})
        assert {"RawBucket", "RawBucketPolicy", "PhotosTable"}.isdisjoint(existing)
        grants = [s for r in existing.values() for p in r["Properties"].get("Policies", []) for s in statements(p)]
        on_table = [s for s in grants if any(a.startswith("dynamodb:") for a in actions_of(s))]
        assert on_table
        assert all(s["Resource"] == table_arn for s in on_table)
        created = active(parsed)["PhotosTable"]["Properties"]["TableName"]
        assert created == {"Fn::Sub": "${AWS::StackName}-Photos"}
        assert parsed["Rules"]["ExistingTableIsNamed"]["Assertions"][0]["Assert"] == {
            "Fn::Not": [{"Fn::Equals": [{"Ref": "PhotosTableName"}, ""]}]
        }
