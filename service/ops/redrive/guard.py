"""Whether a dead-letter queue's policy lets anyone send to it: `redrive` refuses such a DLQ unless `--force`.

A redrive moves every message on the DLQ to the queue under the operator's identity, which the queue's policy
allows. A body sent straight to the DLQ by someone the queue's policy denies would thus be laundered into the
queue. The stacks' DLQ policies deny SendMessage to every principal but the role that quarantines (SQS's own
move after maxReceiveCount is no SendMessage and still works). This module evaluates a policy's explicit Deny
statements for an outsider, a principal of the same account that no policy names, as IAM would: if the outsider
is not denied, the DLQ is open. Only the condition operators the stacks use are understood; a statement with
another one is not counted as a deny, so an unknown policy is judged open rather than closed.
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any

SEND = "sqs:SendMessage"
OUTSIDER_ROLE = "photo-ingest-redrive-outsider"  # no policy names it: it stands for "anyone else"
_NEGATED = {"ArnNotEquals", "ArnNotLike", "StringNotEquals", "StringNotLike"}
_POSITIVE = {"ArnEquals", "ArnLike", "StringEquals", "StringLike", "Bool"}


def outsider(queue_arn: str) -> dict[str, str]:
    """The request context of a SendMessage by an unnamed role of the queue's own account, over TLS."""
    account = queue_arn.split(":")[4]
    return {
        "aws:PrincipalArn": f"arn:aws:iam::{account}:role/{OUTSIDER_ROLE}",
        "aws:PrincipalAccount": account,
        "aws:PrincipalIsAWSService": "false",
        "aws:SecureTransport": "true",
    }


def open_reason(policy_text: str | None, queue_arn: str) -> str | None:
    """Why anyone may send to this DLQ, or None when its policy denies SendMessage to everyone it does not name."""
    if not policy_text:
        return "it has no queue policy, so every principal that IAM lets send may put a message on it"
    try:
        policy = json.loads(policy_text)
        found = policy["Statement"]
    except (ValueError, KeyError, TypeError):
        return "its queue policy cannot be read"
    statements = [found] if isinstance(found, dict) else list(found)
    context = outsider(queue_arn)
    if any(_is_open_allow(s) for s in statements if isinstance(s, dict)):
        return "its queue policy allows SendMessage to any principal ('*') without a condition"
    if not any(denies(s, context) for s in statements if isinstance(s, dict)):
        return "its queue policy does not deny SendMessage to principals other than the role that quarantines"
    return None


def denies(statement: dict[str, Any], context: dict[str, str]) -> bool:
    """True if this statement is an explicit Deny of SendMessage that applies in `context`."""
    return (
        statement.get("Effect") == "Deny"
        and _everyone(statement.get("Principal"))
        and _covers_send(statement.get("Action"))
        and _conditions_hold(statement.get("Condition", {}), context)
    )


def _is_open_allow(statement: dict[str, Any]) -> bool:
    return (
        statement.get("Effect") == "Allow"
        and _everyone(statement.get("Principal"))
        and _covers_send(statement.get("Action"))
        and not statement.get("Condition")
    )


def _everyone(principal: Any) -> bool:
    return principal == "*" or (isinstance(principal, dict) and principal.get("AWS") in ("*", ["*"]))


def _covers_send(action: Any) -> bool:
    actions = [action] if isinstance(action, str) else list(action or [])
    return any(fnmatch.fnmatchcase(SEND.lower(), str(pattern).lower()) for pattern in actions)


def _conditions_hold(conditions: dict[str, Any], context: dict[str, str]) -> bool:
    return all(_holds(operator, tests, context) for operator, tests in conditions.items())


def _holds(operator: str, tests: dict[str, Any], context: dict[str, str]) -> bool:
    base = operator.removesuffix("IfExists")
    if base not in _NEGATED | _POSITIVE:
        return False  # not understood: not counted as a deny
    for key, expected in tests.items():
        values = [expected] if isinstance(expected, str) else [str(v) for v in expected]
        actual = context.get(key)
        if actual is None:
            if not (operator.endswith("IfExists") or base in _NEGATED):
                return False
            continue
        matched = any(_match(base, actual, value) for value in values)
        if matched == (base in _NEGATED):
            return False
    return True


def _match(operator: str, actual: str, value: str) -> bool:
    if operator.endswith("Like"):
        return fnmatch.fnmatchcase(actual, value)
    if operator == "Bool":
        return actual.lower() == value.lower()
    return actual == value
