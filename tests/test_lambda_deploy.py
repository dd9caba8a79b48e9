"""config/lambda.yaml, the Lambda deployment: cfn-lint, least privilege, the event source mapping as the issue asks,
a visibility timeout six times the function's, settings the function can load, and a deployment into moto."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from cfnlint.decode import decode
from moto.cloudformation.parsing import get_model_map

from service.aws_lambda.settings import LambdaSettings
from tests.conftest import REGION, Stack
from tests.templates import actions_of, resolved, statements

ROOT = Path(__file__).parent.parent
TEMPLATE = ROOT / "config" / "lambda.yaml"
BIN = Path(sys.executable).parent
TABLE_ARN = "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${PhotosTableName}"
# Exactly what the function's role may do, and on what: the mapping's three queue actions, the quarantine send,
# the put, and the function's own log streams.
FUNCTION_ACTIONS = {
    "sqs:ReceiveMessage": {"Fn::GetAtt": ["Queue", "Arn"]},
    "sqs:DeleteMessage": {"Fn::GetAtt": ["Queue", "Arn"]},
    "sqs:GetQueueAttributes": {"Fn::GetAtt": ["Queue", "Arn"]},
    "sqs:SendMessage": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]},
    "dynamodb:PutItem": {"Fn::GetAtt": ["PhotosTable", "Arn"]},  # the table it created (CreateTable=true)
    "logs:CreateLogStream": {"Fn::GetAtt": ["LogGroup", "Arn"]},
    "logs:PutLogEvents": {"Fn::GetAtt": ["LogGroup", "Arn"]},
}


def template() -> dict[str, Any]:
    decoded, problems = decode(str(TEMPLATE))
    assert not problems, problems
    assert decoded is not None
    return json.loads(json.dumps(decoded))  # plain dicts, with the short forms (!Ref ...) in their long form


def test_cfn_lint_passes_on_the_lambda_template() -> None:
    """cfn-lint reports nothing on config/lambda.yaml, informational findings included."""
    command = [BIN / "cfn-lint", "--include-checks", "I", "--", str(TEMPLATE)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_function_role_grants_exactly_its_seven_actions_each_on_its_one_resource() -> None:
    """No wildcard, no managed policy, no CreateLogGroup (the stack owns the log group), no ChangeMessageVisibility
    (the function never touches visibility): the list the issue gives, each on the resource it needs."""
    role = resolved(template()["Resources"]["FunctionRole"]["Properties"])
    assert "ManagedPolicyArns" not in role
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"}
    granted: dict[str, Any] = {}
    for policy in role["Policies"]:
        for statement in statements(policy):
            assert statement["Effect"] == "Allow"
            actions = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
            for action in actions:
                assert action not in granted
                granted[action] = statement["Resource"]
    assert granted == FUNCTION_ACTIONS
    existing = resolved(template()["Resources"]["FunctionRole"]["Properties"], {"CreatesTable": False})
    [write] = [s for p in existing["Policies"] for s in statements(p) if s["Sid"] == "WritePhotos"]
    assert write["Resource"] == {"Fn::Sub": TABLE_ARN}  # an existing table: that one, by name


def test_write_mode_and_verify_objects_are_parameters_with_their_grants() -> None:
    """WRITE_MODE and VERIFY_OBJECTS reach the function from parameters (the Lambda handler honours both), and each
    adds its grants only when chosen: PartiQLInsert and GetItem on the table; GetObject under the prefix and
    ListBucket on the bucket (so a missing object answers 404)."""
    variables = template()["Resources"]["Function"]["Properties"]["Environment"]["Variables"]
    assert (variables["WRITE_MODE"], variables["VERIFY_OBJECTS"]) == ({"Ref": "WriteMode"}, {"Ref": "VerifyObjects"})
    parameters = template()["Parameters"]
    assert (parameters["WriteMode"]["Default"], parameters["VerifyObjects"]["Default"]) == ("put", "false")

    def granted(conditions: dict[str, bool]) -> dict[str, Any]:
        role = resolved(template()["Resources"]["FunctionRole"]["Properties"], conditions)
        return {a: s["Resource"] for p in role["Policies"] for s in statements(p) for a in actions_of(s)}

    both = granted({"WritesInBatches": True, "VerifiesObjects": True})
    assert both.keys() - FUNCTION_ACTIONS.keys() == {
        "dynamodb:PartiQLInsert",
        "dynamodb:GetItem",
        "s3:GetObject",
        "s3:ListBucket",
    }
    assert both["dynamodb:PartiQLInsert"] == both["dynamodb:GetItem"] == {"Fn::GetAtt": ["PhotosTable", "Arn"]}
    assert both["s3:GetObject"] == {"Fn::Sub": "arn:${AWS::Partition}:s3:::${RawBucketName}/${RawPrefix}*"}
    assert both["s3:ListBucket"] == {"Fn::Sub": "arn:${AWS::Partition}:s3:::${RawBucketName}"}
    assert granted({}) == FUNCTION_ACTIONS


def test_the_mapping_reports_batch_item_failures_in_batches_of_ten() -> None:
    """ReportBatchItemFailures, batches of 10, the batching window and the maximum concurrency as parameters."""
    parsed = template()
    mapping = parsed["Resources"]["EventSourceMapping"]["Properties"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BatchSize"] == 10
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["Queue", "Arn"]}
    assert mapping["MaximumBatchingWindowInSeconds"] == {"Ref": "MaximumBatchingWindowInSeconds"}
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "MaximumConcurrency"}}
    assert parsed["Parameters"]["MaximumBatchingWindowInSeconds"]["Default"] == 0
    assert parsed["Parameters"]["MaximumConcurrency"]["MinValue"] == 2  # Lambda's own minimum


def test_the_queue_waits_six_function_timeouts_and_redrives_to_the_dead_letter_queue() -> None:
    """For every allowed function timeout, the queue's visibility timeout is six times it; failed messages move to
    the dead-letter queue after 5 receives; reserved concurrency is a parameter."""
    parsed = template()
    resources = parsed["Resources"]
    function = resources["Function"]["Properties"]
    assert function["Timeout"] == {"Ref": "FunctionTimeoutSeconds"}
    assert function["ReservedConcurrentExecutions"] == {"Ref": "ReservedConcurrency"}
    queue = resources["Queue"]["Properties"]
    [table, key, attribute] = queue["VisibilityTimeout"]["Fn::FindInMap"]
    assert key == {"Ref": "FunctionTimeoutSeconds"}
    visibility = {int(timeout): row[attribute] for timeout, row in parsed["Mappings"][table].items()}
    assert visibility == {
        timeout: 6 * timeout for timeout in parsed["Parameters"]["FunctionTimeoutSeconds"]["AllowedValues"]
    }
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]},
        "maxReceiveCount": 5,
    }


def test_the_function_runs_the_handler_with_settings_it_can_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """python3.11 on x86_64 (what `make lambda-zip` builds for), the handler's import path, and environment
    variables that are all LambdaSettings or the SDK's, which load (with placeholder values for references)."""
    function = resolved(template()["Resources"]["Function"]["Properties"])
    assert (function["Runtime"], function["Architectures"]) == ("python3.11", [{"Ref": "CpuArchitecture"}])
    assert template()["Parameters"]["CpuArchitecture"]["AllowedValues"] == ["x86_64", "arm64"]
    assert function["Handler"] == "service.aws_lambda.handler"
    variables = function["Environment"]["Variables"]
    assert set(variables) - {"AWS_RETRY_MODE"} <= {name.upper() for name in LambdaSettings.model_fields}
    assert "QUEUE_URL" not in variables
    parameters = template()["Parameters"]
    parameters["RawBucketName"]["Default"] = "raw-photos"
    for name, value in variables.items():
        monkeypatch.setenv(name, resolve(value, parameters))
    settings = LambdaSettings()
    assert (settings.photos_table, settings.raw_prefix) == ("<PhotosTable>", "photos-raw/")  # the stack's table
    assert settings.allowed_buckets == {"raw-photos"}  # the one bucket whose notifications are believed
    assert settings.dead_letter_queue_url == "<DeadLetterQueue>"
    assert settings.lambda_deadline_margin_ms == 2000
    assert settings.metrics_dimensions == {"Service": "photo-ingest"}


def resolve(value: Any, parameters: dict[str, Any]) -> str:
    """A value as the deployed function sees it: a parameter's default, a resource's placeholder, a stack name."""
    if isinstance(value, str):
        return value
    if "Ref" in value:
        name = value["Ref"]
        return str(parameters[name]["Default"]) if name in parameters else f"<{name}>"
    return str(value["Fn::Sub"]).replace("${AWS::StackName}", "photo-ingest")


def test_the_template_deploys_into_moto(stack: Stack) -> None:
    """create_stack with the template, less the resources moto cannot model: the queue's visibility timeout is six
    times the chosen function timeout, and the mapping polls it for the function, reporting batch item failures."""
    parsed = template()
    supported = get_model_map()  # moto's CloudFormation has no model for the policies and alarms
    parsed["Resources"] = {k: r for k, r in parsed["Resources"].items() if r["Type"] in supported}
    for resource in parsed["Resources"].values():  # moto keeps a dropped (AWS::NoValue) tag as null
        if "Tags" in resource.get("Properties", {}):
            resource["Properties"]["Tags"] = resolved(resource["Properties"]["Tags"])
    parsed["Parameters"]["FunctionTimeoutSeconds"]["Type"] = "String"  # moto looks a Number up in a map as an int
    stack.s3.create_bucket(Bucket="code")
    stack.s3.put_object(Bucket="code", Key="photo-ingest-lambda.zip", Body=b"PK\x05\x06" + b"\x00" * 18)
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    parameters = {
        "CodeS3Bucket": "code",
        "CodeS3Key": "photo-ingest-lambda.zip",
        "RawBucketName": "raw-photos",
        "FunctionTimeoutSeconds": "120",
    }
    cloudformation.create_stack(
        StackName="photo-ingest-lambda",
        TemplateBody=json.dumps(parsed),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    [deployed] = cloudformation.describe_stacks(StackName="photo-ingest-lambda")["Stacks"]
    assert deployed["StackStatus"] == "CREATE_COMPLETE"
    out = {o["OutputKey"]: o["OutputValue"] for o in deployed["Outputs"]}
    attributes = stack.sqs.get_queue_attributes(QueueUrl=out["QueueUrl"], AttributeNames=["All"])["Attributes"]
    assert attributes["VisibilityTimeout"] == "720"
    function = boto3.client("lambda", region_name=REGION).get_function(FunctionName=out["FunctionName"])
    assert function["Configuration"]["Timeout"] == 120
    [mapping] = boto3.client("lambda", region_name=REGION).list_event_source_mappings(FunctionName=out["FunctionName"])[
        "EventSourceMappings"
    ]
    assert mapping["EventSourceArn"] == out["QueueArn"]
    assert (mapping["BatchSize"], mapping["FunctionResponseTypes"]) == (10, ["ReportBatchItemFailures"])
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 10}
