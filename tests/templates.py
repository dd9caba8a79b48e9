"""The CloudFormation templates as plain data, for the tests that read them: decoded by cfn-lint's own loader,
with each `Fn::If` decided by a set of conditions (the defaults a new account gets, unless a test says
otherwise), and the parameter combinations that the stacks accept."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cfnlint.decode import decode

ROOT = Path(__file__).parent.parent
ECS_TEMPLATE = ROOT / "config" / "cloudformation.yaml"
LAMBDA_TEMPLATE = ROOT / "config" / "lambda.yaml"
EKS_ALARMS_TEMPLATE = ROOT / "config" / "k8s" / "alarms.yaml"

# A new account's stack: it creates the bucket and the table, with no KMS key, no tags and no options.
DEFAULT_CONDITIONS = {
    "CreatesBucket": True,
    "CreatesTable": True,
    "NamesTable": False,
    "HasKmsKey": False,
    "HasTag1": False,
    "HasTag2": False,
    "HasTag3": False,
    "HasAlarmTopic": False,
    "HasSourceTopic": False,
    "VerifiesObjects": False,
    "WantsBackfillPolicy": False,
    "WantsBackfillTask": False,
    "ReadsInventory": False,
    "WritesInBatches": False,
    "MappingIsEnabled": True,
    "HasBackfillRole": False,
}


def load(path: Path) -> dict[str, Any]:
    decoded, problems = decode(str(path))
    assert not problems, problems
    assert decoded is not None
    return dict(json.loads(json.dumps(decoded)))  # plain dicts, the short forms (!Ref ...) in their long form


def resolved(node: Any, conditions: dict[str, bool] | None = None) -> Any:
    """`node` with each `Fn::If` decided by `conditions` (over the defaults), `AWS::NoValue` dropped."""
    decide = DEFAULT_CONDITIONS | (conditions or {})
    if isinstance(node, dict):
        if set(node) == {"Fn::If"}:
            name, yes, no = node["Fn::If"]
            return resolved(yes if decide[name] else no, decide)
        return {key: value for key, value in ((k, resolved(v, decide)) for k, v in node.items()) if not _absent(value)}
    if isinstance(node, list):
        return [value for value in (resolved(item, decide) for item in node) if not _absent(value)]
    return node


def _absent(value: Any) -> bool:
    return value == {"Ref": "AWS::NoValue"}


def active(parsed: dict[str, Any], conditions: dict[str, bool] | None = None) -> dict[str, Any]:
    """The resources that exist under `conditions`, resolved."""
    decide = DEFAULT_CONDITIONS | (conditions or {})
    return {
        name: resolved(resource, decide)
        for name, resource in parsed["Resources"].items()
        if decide.get(resource.get("Condition", ""), True)
    }


def statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    found = document.get("PolicyDocument", document)["Statement"]
    return [found] if isinstance(found, dict) else list(found)


def actions_of(statement: dict[str, Any]) -> list[str]:
    return [statement["Action"]] if isinstance(statement["Action"], str) else list(statement["Action"])


def data_combinations() -> Iterator[dict[str, bool]]:
    """Every create/use-existing combination of the bucket and the table, with and without a KMS key and tags."""
    for bucket, table, kms, tags in itertools.product((True, False), repeat=4):
        yield {
            "CreatesBucket": bucket,
            "CreatesTable": table,
            "NamesTable": not table,
            "HasKmsKey": kms,
            "HasTag1": tags,
            "HasTag2": tags,
            "HasTag3": False,
        }


def parameters_for(conditions: dict[str, bool]) -> dict[str, str]:
    """Parameter values that give `conditions` (for rendering and linting one combination)."""
    values = {
        "CreateBucket": str(conditions["CreatesBucket"]).lower(),
        "CreateTable": str(conditions["CreatesTable"]).lower(),
        "PhotosTableName": "" if conditions["CreatesTable"] else "Photos",
        "KmsKeyArn": "arn:aws:kms:eu-west-1:123456789012:key/0f0e0d0c-0b0a-0908-0706-050403020100"
        if conditions["HasKmsKey"]
        else "",
        "Tags": "team=photos,cost-center=42" if conditions["HasTag1"] else "",
    }
    if conditions.get("HasSourceTopic"):
        values["SourceTopicArn"] = "arn:aws:sns:eu-west-1:123456789012:photo-uploads"
    if conditions.get("ReadsInventory"):
        values["InventoryBucketName"] = "raw-photos-inventory"
    if conditions.get("HasAlarmTopic"):
        values["AlarmTopicArn"] = "arn:aws:sns:eu-west-1:123456789012:alarms"
    return values


def rendered(parsed: dict[str, Any], parameters: dict[str, str]) -> dict[str, Any]:
    """The template with these parameters as defaults: what a deployment with them evaluates."""
    copy = json.loads(json.dumps(parsed))
    for name, value in parameters.items():
        if name in copy["Parameters"]:
            copy["Parameters"][name]["Default"] = value
    return dict(copy)
