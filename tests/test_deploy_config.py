"""The deployment as code: the Dockerfile (hadolint, a base pinned by digest), the CloudFormation template (cfn-lint,
least privilege, who may send to the queue, TLS only, and a real deployment into moto's CloudFormation that the
worker then drains), the standalone task definition, the example environment file and the hashed runtime lock."""

from __future__ import annotations

import ast
import json
import re
import string
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.cloudformation.parsing import get_model_map
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from service.config import Settings
from service.ops.check.command import run_checks
from service.ops.check.findings import Level
from tests.conftest import REGION, Stack, eventually, run_until
from tests.templates import actions_of, load, resolved, statements
from tests.test_preflight import iam_enforced, iam_user_credentials

ROOT = Path(__file__).parent.parent
TEMPLATE = ROOT / "config" / "cloudformation.yaml"
TASK_DEFINITION = ROOT / "config" / "ecs-task-definition.json"
BIN = Path(sys.executable).parent

# Exactly what the worker's task role may do, and on which of the template's resources.
WORKER_ACTIONS = {
    "sqs:ReceiveMessage": "Queue",
    "sqs:DeleteMessage": "Queue",
    "sqs:ChangeMessageVisibility": "Queue",
    "sqs:GetQueueAttributes": "Queue",
    "sqs:SendMessage": "DeadLetterQueue",
    "dynamodb:PutItem": "PhotosTable",
    "dynamodb:DescribeTable": "PhotosTable",
}
# moto 5.2's CloudFormation has no model for these; the deployment test drops them (the lint covers them).
MOTO_UNSUPPORTED = {
    "AWS::SQS::QueuePolicy",
    "AWS::ApplicationAutoScaling::ScalableTarget",
    "AWS::ApplicationAutoScaling::ScalingPolicy",
    "AWS::CloudWatch::Alarm",
    "AWS::S3::BucketPolicy",
}
SDK_VARIABLES = {"AWS_REGION", "AWS_RETRY_MODE", "AWS_MAX_ATTEMPTS"}
TWO_TAGS = {"HasTag1": True, "HasTag2": True, "HasTag3": False}  # the deployments pass Tags=team=photos,stage=test


def template() -> dict[str, Any]:
    return load(TEMPLATE)


def container(resources: dict[str, Any]) -> dict[str, Any]:
    [definition] = resources["TaskDefinition"]["Properties"]["ContainerDefinitions"]
    return dict(definition)


def test_hadolint_passes_on_the_dockerfile() -> None:
    """hadolint reports nothing on the Dockerfile: no warning, and none ignored."""
    result = subprocess.run([BIN / "hadolint", "Dockerfile"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "hadolint ignore" not in (ROOT / "Dockerfile").read_text()


def test_cfn_lint_passes_on_the_template() -> None:
    """cfn-lint reports nothing on the template, informational findings included."""
    command = [BIN / "cfn-lint", "--include-checks", "I", "--", str(TEMPLATE)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dockerfile_runs_the_worker_as_pid_1_non_root_from_the_lock() -> None:
    """Exec-form entrypoint and command, SIGTERM, a health check, a numeric non-root user, the slim base pinned by
    digest for both stages, and an install checked against the lock's hashes."""
    text = (ROOT / "Dockerfile").read_text()
    instructions = [line for line in text.splitlines() if line and not line.startswith((" ", "#"))]
    [base] = [line for line in instructions if line.startswith("ARG BASE_IMAGE=")]
    assert re.fullmatch(r"ARG BASE_IMAGE=python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", base)
    assert instructions.index(base) == 0  # before every FROM, so both stages can use it
    assert [line for line in instructions if line.startswith("FROM")] == [
        "FROM ${BASE_IMAGE} AS builder",
        "FROM ${BASE_IMAGE}",
    ]
    assert 'ENTRYPOINT ["photo-ingest"]' in instructions
    assert 'CMD ["run"]' in instructions
    assert "STOPSIGNAL SIGTERM" in instructions
    assert re.search(r'^HEALTHCHECK .*CMD \["python", "-I", "-m", "service.ops.liveness"\]$', text, re.MULTILINE)
    [user] = [line for line in instructions if line.startswith("USER")]
    assert re.fullmatch(r"USER [1-9]\d*:[1-9]\d*", user)
    assert "--require-hashes --only-binary=:all: --no-deps -r /tmp/requirements.lock" in text
    assert "COPY config/requirements.lock /tmp/requirements.lock" in text
    assert "--no-deps --no-index /wheels/*.whl" in text  # the project itself: its dependencies are the lock's
    assert "ENV PYTHONUNBUFFERED=1" in text
    assert "PYTHONDONTWRITEBYTECODE=1" in text


def lock_pins() -> dict[str, tuple[str, list[str]]]:
    """config/requirements.lock: canonical name -> (version, hashes)."""
    pins: dict[str, tuple[str, list[str]]] = {}
    text = (ROOT / "config" / "requirements.lock").read_text().replace("\\\n", " ")
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            requirement, *options = line.split()
            name, _, version = requirement.partition("==")
            assert version, f"not an exact pin: {line}"
            pins[canonicalize_name(name)] = (
                version,
                [o.removeprefix("--hash=") for o in options if o.startswith("--hash=")],
            )
    return pins


def runtime_closure() -> set[str]:
    """Every distribution photo-ingest needs at run time, transitively, as installed here."""
    needed: set[str] = set()
    todo = [Requirement(r) for r in metadata.requires("photo-ingest") or []]
    while todo:
        requirement = todo.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
            continue  # an extra (local, dev) or another platform's dependency
        name = canonicalize_name(requirement.name)
        if name not in needed:
            needed.add(name)
            todo += [Requirement(r) for r in metadata.requires(name) or []]
    return needed


def test_the_lock_pins_every_runtime_dependency_with_hashes() -> None:
    """config/requirements.lock pins, with == and at least one sha256 hash, every package photo-ingest needs at
    run time, transitively; each pin satisfies pyproject's own requirement; nothing of the extras is in it."""
    pins = lock_pins()
    assert runtime_closure() - set(pins) == set()
    assert all(hashes and all(h.startswith("sha256:") for h in hashes) for _, hashes in pins.values())
    for line in metadata.requires("photo-ingest") or []:
        requirement = Requirement(line)
        if requirement.marker is None:
            version, _ = pins[canonicalize_name(requirement.name)]
            assert requirement.specifier.contains(version, prereleases=True), (requirement, version)
    assert "moto" not in pins  # the local and dev extras stay out of the image
    assert "pytest" not in pins


def test_the_lock_is_what_make_lock_writes() -> None:
    """The lock is pip-compile's output for pyproject.toml (`make lock`), not a hand-edited file."""
    text = (ROOT / "config" / "requirements.lock").read_text()
    [command] = [line for line in text.splitlines()[:6] if "pip-compile --" in line]
    assert "autogenerated by pip-compile" in text.splitlines()[1]
    assert "--generate-hashes" in command
    assert command.endswith(" pyproject.toml")
    assert "pip-compile --quiet --generate-hashes" in (ROOT / "Makefile").read_text()


def test_example_env_lists_every_setting_with_its_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every setting appears in config/example.env; loaded as it is, it gives exactly the defaults (the optional
    ones are commented out, which is unset)."""
    text = (ROOT / "config" / "example.env").read_text()
    written = {match[1] for match in re.finditer(r"^#? ?([A-Z][A-Z0-9_]+)=", text, re.MULTILINE)}
    assert {name.upper() for name in Settings.model_fields} <= written
    assert written >= SDK_VARIABLES
    for name in written:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env

    loaded = Settings(_env_file=str(ROOT / "config" / "example.env"))  # type: ignore[call-arg]

    assert loaded == Settings(queue_url=loaded.queue_url)
    assert loaded.queue_url.startswith("https://sqs.")


def test_the_task_role_grants_only_the_worker_actions_on_its_own_resources() -> None:
    """The task role's policy names exactly the worker's seven actions, each on the one resource it needs, with
    no wildcard and no managed policy beside it; the backfill policy is separate and attached to nobody."""
    resources = template()["Resources"]
    role = resolved(resources["TaskRole"]["Properties"], {"VerifiesObjects": False})
    assert "ManagedPolicyArns" not in role
    granted: dict[str, str] = {}
    for policy in role["Policies"]:
        for statement in statements(policy):
            assert statement["Effect"] == "Allow"
            [target] = [statement["Resource"]["Fn::GetAtt"]]  # one resource of this stack, by reference
            assert target[1] == "Arn"
            for action in actions_of(statement):
                assert "*" not in action
                granted[action] = target[0]

    assert granted == WORKER_ACTIONS
    assert len(granted) == 7
    backfill = resources["BackfillPolicy"]
    assert {"Roles", "Users", "Groups"}.isdisjoint(backfill["Properties"])
    assert "BackfillPolicy" not in json.dumps(resources["TaskRole"])
    backfill_actions = {a for s in statements(backfill["Properties"]) for a in actions_of(s)}
    assert backfill_actions == {"s3:ListBucket", "dynamodb:PutItem"}
    assert backfill["Condition"] == "WantsBackfillPolicy"


def test_verify_objects_grants_reading_the_raw_photos_only_when_enabled() -> None:
    """VerifyObjects=true adds s3:GetObject under the raw prefix (HeadObject) and s3:ListBucket on the bucket (a
    missing key then answers 404, not 403), and sets VERIFY_OBJECTS; false adds nothing."""
    resources = template()["Resources"]
    extra = []
    for policy in resolved(resources["TaskRole"]["Properties"], {"VerifiesObjects": True})["Policies"]:
        extra += [s for s in statements(policy) if s["Sid"] in {"VerifyObjects", "MissingObjectsAnswer404"}]
    assert {(s["Action"], json.dumps(s["Resource"])) for s in extra} == {
        ("s3:GetObject", json.dumps({"Fn::Sub": "arn:${AWS::Partition}:s3:::${RawBucketName}/${RawPrefix}*"})),
        ("s3:ListBucket", json.dumps({"Fn::Sub": "arn:${AWS::Partition}:s3:::${RawBucketName}"})),
    }
    environment = {e["Name"]: e["Value"] for e in container(resources)["Environment"]}
    assert environment["VERIFY_OBJECTS"] == {"Ref": "VerifyObjects"}


def test_only_the_bucket_the_topic_and_the_operators_may_send_to_the_queue() -> None:
    """The queue policy allows S3 for this bucket (and the SNS topic when one is given), and denies SendMessage
    to every other service and to every principal but the stack's operator role (redrive, fleet backfill)."""
    parsed = template()
    policy = resolved(
        parsed["Resources"]["QueuePolicy"]["Properties"], {"HasSourceTopic": True, "WantsBackfillTask": False}
    )
    by_sid = {statement["Sid"]: statement for statement in statements(policy)}
    bucket_arn = {"Fn::Sub": "arn:${AWS::Partition}:s3:::${RawBucketName}"}
    services, principals = by_sid["DenyOtherServiceSenders"], by_sid["DenyOtherPrincipalSenders"]
    for deny in (services, principals):
        assert (deny["Effect"], deny["Principal"], deny["Action"]) == ("Deny", "*", "sqs:SendMessage")
    assert services["Condition"]["Bool"] == {"aws:PrincipalIsAWSService": "true"}
    assert services["Condition"]["ArnNotEquals"]["aws:SourceArn"] == [bucket_arn, {"Ref": "SourceTopicArn"}]
    assert principals["Condition"]["BoolIfExists"] == {"aws:PrincipalIsAWSService": "false"}
    assert principals["Condition"]["ArnNotEquals"] == {"aws:PrincipalArn": [{"Fn::GetAtt": ["OperatorRole", "Arn"]}]}
    with_backfill = resolved(
        parsed["Resources"]["QueuePolicy"]["Properties"], {"HasSourceTopic": True, "WantsBackfillTask": True}
    )
    [senders] = [s for s in statements(with_backfill) if s["Sid"] == "DenyOtherPrincipalSenders"]
    assert senders["Condition"]["ArnNotEquals"]["aws:PrincipalArn"] == [
        {"Fn::GetAtt": ["OperatorRole", "Arn"]},
        {"Fn::GetAtt": ["BackfillTaskRole", "Arn"]},  # the fleet backfill's task sends the notifications
    ]
    assert by_sid["SourceTopicNotifications"]["Principal"] == {"Service": "sns.amazonaws.com"}
    without_topic = resolved(
        parsed["Resources"]["QueuePolicy"]["Properties"], {"HasSourceTopic": False, "WantsBackfillTask": False}
    )
    assert "SourceTopicNotifications" not in {s["Sid"] for s in statements(without_topic)}
    operator = resolved(parsed["Resources"]["OperatorRole"]["Properties"])
    sends = {
        json.dumps(s["Resource"])
        for p in operator["Policies"]
        for s in statements(p)
        if "sqs:SendMessage" in actions_of(s)
    }
    assert sends == {json.dumps({"Fn::GetAtt": ["Queue", "Arn"]})}


def test_the_queues_and_the_bucket_refuse_requests_without_tls() -> None:
    resources = template()["Resources"]
    for name, target in (
        ("QueuePolicy", "Queue"),
        ("DeadLetterQueuePolicy", "DeadLetterQueue"),
        ("RawBucketPolicy", "RawBucket"),
    ):
        policy = resolved(resources[name]["Properties"], {"HasSourceTopic": False, "WantsBackfillTask": False})
        [tls] = [s for s in statements(policy) if s["Sid"] == "DenyWithoutTls"]
        assert (tls["Effect"], tls["Principal"], tls["Condition"]) == (
            "Deny",
            "*",
            {"Bool": {"aws:SecureTransport": "false"}},
        )
        assert tls["Action"] in ("sqs:*", "s3:*")
        assert target in json.dumps(tls["Resource"])
    assert resources["RawBucketPolicy"]["Properties"]["Bucket"] == {"Ref": "RawBucket"}


def test_both_roles_trust_ecs_only_for_this_account_and_region() -> None:
    """The task role and the execution role each carry aws:SourceAccount and aws:SourceArn (confused deputy)."""
    resources = template()["Resources"]
    for role in ("TaskRole", "ExecutionRole"):
        [trust] = resources[role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
        assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
        assert set(trust["Condition"]["ArnLike"]) == {"aws:SourceArn"}


def test_the_worker_believes_only_its_own_bucket() -> None:
    """The template sets ALLOWED_BUCKETS to the bucket it creates, and ALLOWED_TOPIC_ARNS to its topic or none."""
    environment = {e["Name"]: e["Value"] for e in container(template()["Resources"])["Environment"]}
    assert environment["ALLOWED_BUCKETS"] == {"Ref": "RawBucketName"}
    assert environment["ALLOWED_TOPIC_ARNS"] == {"Ref": "SourceTopicArn"}


def test_the_template_wires_bucket_queue_and_table_as_the_issue_asks() -> None:
    """ObjectCreated under photos-raw/ to the queue, a queue policy for S3 with source conditions, long polling,
    a dead-letter queue after 5 receives, the Photos table on demand with point-in-time recovery, alarms."""
    parsed = template()
    resources = parsed["Resources"]
    notification = resources["RawBucket"]["Properties"]["NotificationConfiguration"]["QueueConfigurations"][0]
    assert notification["Event"] == "s3:ObjectCreated:*"
    assert notification["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": {"Ref": "RawPrefix"}}]
    assert parsed["Parameters"]["RawPrefix"]["Default"] == "photos-raw/"
    assert resources["RawBucket"]["DependsOn"] == "QueuePolicy"
    [allow_s3] = [
        s for s in statements(resources["QueuePolicy"]["Properties"]) if s.get("Sid") == "RawBucketNotifications"
    ]
    assert allow_s3["Principal"] == {"Service": "s3.amazonaws.com"}
    assert set(allow_s3["Condition"]["ArnLike"]) == {"aws:SourceArn"}
    assert set(allow_s3["Condition"]["StringEquals"]) == {"aws:SourceAccount"}
    queue = resources["Queue"]["Properties"]
    assert queue["ReceiveMessageWaitTimeSeconds"] == 20
    assert queue["RedrivePolicy"]["maxReceiveCount"] >= 5
    table = resources["PhotosTable"]["Properties"]
    assert table["KeySchema"] == [{"AttributeName": "photoId", "KeyType": "HASH"}]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    alarms = {r["Properties"]["MetricName"] for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert alarms == {
        *("ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage", "MessagesUntrusted"),
        *("RecordsInvalid", "RecordsConflict", "RunningTaskCount", "QueueLag"),
    }
    scaling = resources["BacklogPerTaskScaling"]["Properties"]["TargetTrackingScalingPolicyConfiguration"]
    metrics = {m["Id"]: m for m in scaling["CustomizedMetricSpecification"]["Metrics"]}
    assert metrics["visible"]["MetricStat"]["Metric"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert metrics["tasks"]["MetricStat"]["Metric"]["MetricName"] == "RunningTaskCount"
    assert metrics["backlogPerTask"]["Expression"] == "visible / tasks"


def task_definition_file(**placeholders: str) -> dict[str, Any]:
    text = string.Template(TASK_DEFINITION.read_text()).substitute(placeholders)
    return dict(json.loads(text))


def test_the_standalone_task_definition_is_fargate_ready(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """config/ecs-task-definition.json registers as it is (the API's own validation), and has what ECS needs to
    stop and check the worker: read-only root, /tmp on ephemeral storage, awslogs, the health command, a
    stopTimeout above the drain, a non-root user, and settings that load."""
    definition = task_definition_file(
        AWS_ACCOUNT_ID="123456789012", AWS_REGION=REGION, IMAGE_URI="x/photo-ingest:1", RAW_BUCKET_NAME="raw-photos"
    )
    ecs = boto3.client("ecs", region_name=REGION)
    registered = ecs.register_task_definition(**definition)["taskDefinition"]
    [worker] = registered["containerDefinitions"]

    assert registered["requiresCompatibilities"] == ["FARGATE"]
    assert registered["networkMode"] == "awsvpc"
    assert registered["taskRoleArn"] != registered["executionRoleArn"]
    assert worker["readonlyRootFilesystem"] is True
    assert worker["user"] == "10001:10001"
    assert definition["containerDefinitions"][0]["linuxParameters"] == {"capabilities": {"drop": ["ALL"]}}
    assert worker["healthCheck"]["command"] == ["CMD", "python", "-I", "-m", "service.ops.liveness"]
    assert worker["logConfiguration"]["logDriver"] == "awslogs"
    [mount] = worker["mountPoints"]
    assert mount["containerPath"] == "/tmp"
    assert definition["volumes"] == [{"name": mount["sourceVolume"]}]  # no host: Fargate ephemeral storage
    for pair in worker["environment"]:
        monkeypatch.setenv(pair["name"], pair["value"])
    settings = Settings()  # type: ignore[call-arg]  # from the environment, as in the container
    assert worker["stopTimeout"] >= settings.shutdown_timeout_seconds + 10
    assert str(settings.health_file).startswith("/tmp/")
    assert settings.allowed_buckets == {"raw-photos"}
    assert settings.allowed_topic_arns == frozenset()  # no SNS: no envelope is believed


def test_the_template_task_definition_matches_the_standalone_file() -> None:
    """The template's container and the standalone file agree on everything but the values it wires in."""
    in_template = container(template()["Resources"])
    [standalone] = task_definition_file(AWS_ACCOUNT_ID="1", AWS_REGION="r", IMAGE_URI="i", RAW_BUCKET_NAME="b")[
        "containerDefinitions"
    ]

    assert in_template["StopTimeout"] == standalone["stopTimeout"]
    assert in_template["ReadonlyRootFilesystem"] is standalone["readonlyRootFilesystem"] is True
    assert in_template["User"] == standalone["user"]
    assert (
        in_template["LinuxParameters"]["Capabilities"]
        == {"Drop": ["ALL"]}
        == {"Drop": standalone["linuxParameters"]["capabilities"]["drop"]}
    )
    assert in_template["HealthCheck"]["Command"] == standalone["healthCheck"]["command"]
    assert in_template["MountPoints"][0]["ContainerPath"] == standalone["mountPoints"][0]["containerPath"]
    assert {e["Name"] for e in in_template["Environment"]} == {e["name"] for e in standalone["environment"]}
    assert in_template["LogConfiguration"]["LogDriver"] == standalone["logConfiguration"]["logDriver"]


def deployable_in_moto() -> tuple[dict[str, Any], set[str]]:
    """The template minus the resource types moto cannot create, and the types dropped."""
    parsed = template()
    supported = get_model_map()
    dropped = {r["Type"] for r in parsed["Resources"].values() if r["Type"] not in supported}
    parsed["Resources"] = {k: r for k, r in parsed["Resources"].items() if r["Type"] in supported}
    for resource in parsed["Resources"].values():  # moto keeps a dropped (AWS::NoValue) tag as null: two tags given
        if "Tags" in resource.get("Properties", {}):
            resource["Properties"]["Tags"] = resolved(resource["Properties"]["Tags"], TWO_TAGS)
    # moto models the dashboard, but its body names the alarms, which moto cannot create: it goes with them.
    del parsed["Resources"]["Dashboard"]
    del parsed["Outputs"]["DashboardName"]
    return parsed, dropped


def role_policy(iam: Any, role_arn: str) -> list[dict[str, Any]]:
    """The task role's statements as moto stored them (moto keeps a CloudFormation inline policy as a repr)."""
    role = role_arn.rpartition("/")[2]
    [name] = iam.list_role_policies(RoleName=role)["PolicyNames"]
    document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError:
            document = ast.literal_eval(document)
    return list(document["Statement"])


@pytest.mark.parametrize("existing", [False, True], ids=["creates-bucket-and-table", "uses-existing-ones"])
async def test_the_template_deploys_into_moto_and_the_worker_drains_its_queue(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, existing: bool
) -> None:
    """create_stack with the template (less what moto cannot model), uploads under photos-raw/, then the real
    worker, holding only the task role's permissions, writes one item per photo and quarantines poison to the
    dead-letter queue; `check` passes on the same stack. Either the stack creates the bucket and the table, or it
    is given existing ones (CreateBucket=false, CreateTable=false) and its role is scoped to those."""
    parsed, dropped = deployable_in_moto()
    assert dropped <= MOTO_UNSUPPORTED  # anything else moto cannot create would be a surprise to look at
    cloudformation, ec2 = boto3.client("cloudformation", region_name=REGION), boto3.client("ec2", region_name=REGION)
    vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    subnet = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"][0]["SubnetId"]
    parameters = {
        "ImageUri": "x/photo-ingest:1",
        "ImageRepositoryArn": f"arn:aws:ecr:{REGION}:123456789012:repository/photo-ingest",
        "VpcId": vpc,
        "SubnetIds": subnet,
        "RawBucketName": "raw-photos",
        "PhotosTableName": "PhotosFromTheStack",
        "Tags": "team=photos,stage=test",
    }
    if existing:  # the old Lambda's bucket and table, made outside the stack
        stack.s3.create_bucket(Bucket="raw-photos")
        stack.dynamodb.create_table(
            TableName="PhotosFromTheStack",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "photoId", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "photoId", "KeyType": "HASH"}],
        )
        parameters |= {"CreateBucket": "false", "CreateTable": "false"}
    cloudformation.create_stack(
        StackName="photo-ingest",
        TemplateBody=json.dumps(parsed),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    [deployed] = cloudformation.describe_stacks(StackName="photo-ingest")["Stacks"]
    assert deployed["StackStatus"] == "CREATE_COMPLETE"
    out = {o["OutputKey"]: o["OutputValue"] for o in deployed["Outputs"]}
    attributes = stack.sqs.get_queue_attributes(QueueUrl=out["QueueUrl"], AttributeNames=["All"])["Attributes"]
    assert attributes["ReceiveMessageWaitTimeSeconds"] == "20"
    assert json.loads(attributes["RedrivePolicy"])["maxReceiveCount"] >= 5

    created = {
        r["LogicalResourceId"]
        for r in cloudformation.list_stack_resources(StackName="photo-ingest")["StackResourceSummaries"]
    }
    assert {"RawBucket", "PhotosTable"} & created == (set() if existing else {"RawBucket", "PhotosTable"})
    assert (out["PhotosTableName"], out["RawBucketName"]) == ("PhotosFromTheStack", "raw-photos")
    # moto ignores a bucket's NotificationConfiguration in CloudFormation: set the template's one through the API.
    [notification] = parsed["Resources"]["RawBucket"]["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    stack.s3.put_bucket_notification_configuration(
        Bucket=out["RawBucketName"],
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": attributes["QueueArn"],
                    "Events": [notification["Event"]],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "photos-raw/"}]}},
                }
            ]
        },
    )
    keys = [f"photos-raw/2026/{n:02d} beach.jpg" for n in range(6)]
    for key in [*keys, "thumbnails/not-a-photo.jpg"]:
        stack.s3.put_object(Bucket=out["RawBucketName"], Key=key, Body=b"jpeg")
    stack.sqs.send_message(QueueUrl=out["QueueUrl"], MessageBody="not json: poison")

    # The worker, and the check, with the task role's policy as moto stored it. Two adaptations, both moto's
    # limits: DynamoDB requests are authorized against "*" rather than the table's ARN, and the SQS batch calls
    # by their own names (see MOTO_BATCH_ALIASES).
    stored = role_policy(boto3.client("iam", region_name=REGION), out["TaskRoleArn"])
    granted = [statement for statement in stored if statement]  # moto keeps an AWS::NoValue statement as null
    for statement in granted:
        if str(statement["Resource"]).startswith("arn:aws:dynamodb:"):
            statement["Resource"] = "*"
    credentials = iam_user_credentials(stack.endpoint, "task-role", granted)
    for name, value in credentials.items():
        monkeypatch.setenv(name, value)  # the worker's and the check's fresh sessions read them
    sqs_as_worker = boto3.client("sqs", region_name=REGION, **{name.lower(): v for name, v in credentials.items()})
    settings = stack.settings(
        queue_url=out["QueueUrl"],
        dead_letter_queue_url=out["DeadLetterQueueUrl"],
        photos_table=out["PhotosTableName"],
        visibility_timeout_seconds=None,  # the queue's own, from the template
    )

    def drained() -> bool:
        queue = sqs_as_worker.get_queue_attributes(
            QueueUrl=out["QueueUrl"],
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return queue == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}

    with iam_enforced(stack.endpoint):
        findings = await run_checks(settings)
        await eventually(lambda: not drained())  # the uploads' notifications are on the queue
        await run_until(settings, drained)

    assert [f for f in findings if f.level is Level.FAIL] == []
    assert [f.level for f in findings if f.subject == "dlq"] == [Level.NOTE]  # the role may only send to it
    table = stack.dynamodb.scan(TableName=out["PhotosTableName"])["Items"]
    assert sorted(item["s3Key"]["S"] for item in table) == keys
    assert {item["s3Bucket"]["S"] for item in table} == {"raw-photos"}
    assert stack.depth(out["DeadLetterQueueUrl"]) == 1  # the poison message, quarantined
