"""`redrive` and the dead-letter queue's policy: it refuses a DLQ that anyone may send to (exit 2, and why) unless
`--force`; the stacks' DLQ policies refuse a forged body from anyone but the quarantining role; and
`--server-side` drives SQS's StartMessageMoveTask, against a stub that checks each request against botocore's
model of SQS (moto has no move tasks) and answers as SQS does."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.session import get_session
from botocore.validate import validate_parameters

from service.cli import main
from service.ops.redrive import command, guard, server
from tests import bodies
from tests.conftest import BUCKET, Stack, capture_logs
from tests.templates import ECS_TEMPLATE, LAMBDA_TEMPLATE, active, load, statements
from tests.test_redrive import closed_policy

ACCOUNT = "123456789012"
DLQ_ARN = f"arn:aws:sqs:eu-west-1:{ACCOUNT}:photo-ingest-DeadLetterQueue-1"
QUEUE_ARN = f"arn:aws:sqs:eu-west-1:{ACCOUNT}:photo-ingest-Queue-1"
QUARANTINER = f"arn:aws:iam::{ACCOUNT}:role/photo-ingest-TaskRole-1"
SQS_MODEL = get_session().get_service_model("sqs")


def sender(principal: str) -> dict[str, str]:
    return guard.outsider(DLQ_ARN) | {"aws:PrincipalArn": principal}


def dlq_policy_of(template: Path, quarantiner: str) -> dict[str, Any]:
    """The template's DLQ policy as deployed: its references replaced by this test's ARNs."""
    document = active(load(template))["DeadLetterQueuePolicy"]["Properties"]["PolicyDocument"]
    names = {"DeadLetterQueue": DLQ_ARN, quarantiner: QUARANTINER}
    text = json.dumps(document)
    text = re.sub(r'\{"Fn::GetAtt": \["(\w+)", "Arn"\]\}', lambda m: json.dumps(names[m[1]]), text)
    return dict(json.loads(text))


@pytest.mark.parametrize(("template", "quarantiner"), [(ECS_TEMPLATE, "TaskRole"), (LAMBDA_TEMPLATE, "FunctionRole")])
def test_a_forged_body_sent_straight_to_the_dlq_is_refused_by_the_stacks_policy(
    template: Path, quarantiner: str
) -> None:
    """Evaluated as IAM does: SendMessage by any other principal of the account (an administrator, the operator
    role) meets an explicit Deny; the quarantining role's does not; redrive judges the policy closed."""
    policy = dlq_policy_of(template, quarantiner)
    forgers = [f"arn:aws:iam::{ACCOUNT}:role/Admin", f"arn:aws:iam::{ACCOUNT}:role/photo-ingest-OperatorRole-1"]
    for forger in forgers:
        assert any(guard.denies(s, sender(forger)) for s in statements(policy)), forger
    assert not any(guard.denies(s, sender(QUARANTINER)) for s in statements(policy))
    anonymous = {k: v for k, v in sender("x").items() if k != "aws:PrincipalArn"}
    assert any(guard.denies(s, anonymous) for s in statements(policy))  # no principal ARN at all: denied too
    assert guard.open_reason(json.dumps(policy), DLQ_ARN) is None


@pytest.mark.parametrize(
    ("policy", "why"),
    [
        (None, "no queue policy"),
        (
            {"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "sqs:*", "Resource": DLQ_ARN}]},
            "any principal",
        ),
        (
            {
                "Statement": [
                    {
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "sqs:*",
                        "Resource": DLQ_ARN,
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    }
                ]
            },
            "does not deny",
        ),
        (
            {
                "Statement": [
                    {
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "sqs:SendMessage",
                        "Resource": DLQ_ARN,
                        "Condition": {"NumericLessThan": {"aws:EpochTime": "1"}},
                    }
                ]
            },
            "does not deny",
        ),
        ("{not json", "cannot be read"),
    ],
    ids=["none", "allow-all", "tls-only", "unknown-operator", "unreadable"],
)
def test_an_open_or_unknown_policy_is_judged_open(policy: Any, why: str) -> None:
    """No policy, an unconditional Allow for '*', a deny that an outsider does not meet, a condition this code
    does not understand, or a policy that does not parse: each is open, with a reason."""
    text = policy if policy is None or isinstance(policy, str) else json.dumps(policy)
    reason = guard.open_reason(text, DLQ_ARN)
    assert reason is not None
    assert why in reason


def notification(key: str) -> str:
    return bodies.direct(bodies.Photo(BUCKET, key))


def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, stack: Stack) -> None:
    monkeypatch.chdir(tmp_path)  # no `.env` from the developer's checkout
    # Logging stays as the tests have it: configured by `main`, it would cache loggers on this test's stdout.
    monkeypatch.setattr(command, "configure_logging", lambda *_: None)
    monkeypatch.setenv("QUEUE_URL", stack.queue_url)
    monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", stack.dlq_url)


def test_redrive_refuses_an_open_dlq_with_exit_2_and_moves_it_only_with_force(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The emulator's DLQ, with no policy: `redrive` (and its dry run) exit 2, say why on stderr and leave the
    message where it is; `--force` moves it."""
    environment(monkeypatch, tmp_path, stack)
    stack.sqs.send_message(QueueUrl=stack.dlq_url, MessageBody=notification("photos-raw/forged.jpg"))

    for argv in (["redrive"], ["redrive", "--dry-run"], ["redrive", "--server-side"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "refusing" in err
        assert "no queue policy" in err
        assert "--force" in err
    assert (stack.depth(stack.dlq_url), stack.depth()) == (1, 0)

    assert main(["redrive", "--force"]) == 0
    assert "moved 1 messages" in capsys.readouterr().out
    assert (stack.depth(stack.dlq_url), stack.depth()) == (0, 1)


def test_a_closed_dlq_is_redriven_without_force(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    environment(monkeypatch, tmp_path, stack)
    arn = stack.sqs.get_queue_attributes(QueueUrl=stack.dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    stack.sqs.set_queue_attributes(QueueUrl=stack.dlq_url, Attributes={"Policy": closed_policy(arn, QUARANTINER)})
    stack.sqs.send_message(QueueUrl=stack.dlq_url, MessageBody=notification("photos-raw/a.jpg"))

    assert main(["redrive"]) == 0
    assert (stack.depth(stack.dlq_url), stack.depth()) == (0, 1)


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["redrive", "--server-side", "--max", "3"], "not allowed with argument --server-side"),
        (["redrive", "--server-side", "--rate", "501"], "must be a whole number from 1 to 500, not '501'"),
    ],
)
def test_server_side_takes_no_max_and_a_rate_sqs_allows(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """SQS's move cannot stop at a count, and caps the rate at 500/s: usage errors, exit 2."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert said in capsys.readouterr().err


def test_rate_without_server_side_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["redrive", "--rate", "10"]) == 2
    assert "--rate: only with --server-side" in capsys.readouterr().err


class MoveTaskStub:
    """SQS as StartMessageMoveTask and ListMessageMoveTasks answer: each request is validated against botocore's
    model of the API; the task runs for `polls` list calls, then ends with `ending`. ListMessageMoveTasks names
    the handle of a running task only, as SQS does."""

    def __init__(self, polls: int = 2, ending: str = "COMPLETED", failure: str | None = None) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.polls, self.ending, self.failure = polls, ending, failure

    def _check(self, operation: str, params: dict[str, Any]) -> None:
        validate_parameters(params, SQS_MODEL.operation_model(operation).input_shape)  # raises on a bad shape
        self.requests.append((operation, params))

    async def get_queue_attributes(self, **params: Any) -> dict[str, Any]:
        self._check("GetQueueAttributes", params)
        arn = DLQ_ARN if "dlq" in params["QueueUrl"] else QUEUE_ARN
        attributes = {"QueueArn": arn}
        if "Policy" in params["AttributeNames"]:
            attributes["Policy"] = closed_policy(DLQ_ARN, QUARANTINER)
        return {"Attributes": attributes}

    async def start_message_move_task(self, **params: Any) -> dict[str, Any]:
        self._check("StartMessageMoveTask", params)
        return {"TaskHandle": "eyJ0YXNrSWQiOiJkYTFkOWIwMCJ9"}

    async def list_message_move_tasks(self, **params: Any) -> dict[str, Any]:
        self._check("ListMessageMoveTasks", params)
        listed = sum(1 for operation, _ in self.requests if operation == "ListMessageMoveTasks")
        result: dict[str, Any] = {
            "SourceArn": params["SourceArn"],
            "DestinationArn": QUEUE_ARN,
            "ApproximateNumberOfMessagesMoved": 40 * listed,
            "ApproximateNumberOfMessagesToMove": 120,
            "StartedTimestamp": 1767225600000,
        }
        if listed < self.polls:
            result |= {"Status": "RUNNING", "TaskHandle": "eyJ0YXNrSWQiOiJkYTFkOWIwMCJ9"}
        else:
            result |= {"Status": self.ending} | ({"FailureReason": self.failure} if self.failure else {})
        return {"Results": [result]}


@pytest.fixture
def no_poll_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "POLL_S", 0.0)


@pytest.fixture(autouse=True)
def events() -> Iterator[list[dict[str, Any]]]:
    """The log events, captured (a `main` of an earlier test configured logging to its own, closed, stdout)."""
    with capture_logs() as captured:
        yield captured


@pytest.mark.usefixtures("no_poll_wait")
async def test_server_side_starts_a_move_task_from_the_dlq_to_the_queue_and_follows_it(
    capsys: pytest.CaptureFixture[str], events: list[dict[str, Any]]
) -> None:
    """StartMessageMoveTask from the DLQ's ARN to the queue's, with the rate cap; then ListMessageMoveTasks on
    the DLQ until the task completes (after it ends SQS no longer lists its handle): exit 0, the count moved."""
    sqs = MoveTaskStub(polls=3)

    code = await server.move(
        sqs, DLQ_ARN, "https://sqs.eu-west-1.amazonaws.com/1/photo-ingest-Queue-1", 100, asyncio.Event()
    )  # type: ignore[arg-type]

    assert code == 0
    [start] = [params for operation, params in sqs.requests if operation == "StartMessageMoveTask"]
    assert start == {"SourceArn": DLQ_ARN, "DestinationArn": QUEUE_ARN, "MaxNumberOfMessagesPerSecond": 100}
    lists = [params for operation, params in sqs.requests if operation == "ListMessageMoveTasks"]
    assert len(lists) == 3
    assert all(params["SourceArn"] == DLQ_ARN for params in lists)
    out = capsys.readouterr().out
    assert "started SQS message move task eyJ0YXNrSWQiOiJkYTFkOWIwMCJ9" in out
    assert "move task completed: moved about 120 messages" in out
    assert [e["status"] for e in events if e["event"] == "redrive.move_task"] == ["COMPLETED"]


@pytest.mark.usefixtures("no_poll_wait")
async def test_a_failed_move_task_exits_1_with_its_reason(capsys: pytest.CaptureFixture[str]) -> None:
    sqs = MoveTaskStub(polls=1, ending="FAILED", failure="AWS.SimpleQueueService.NonExistentQueue")

    code = await server.move(sqs, DLQ_ARN, "https://sqs/photo-ingest-Queue-1", None, asyncio.Event())  # type: ignore[arg-type]

    assert code == 1
    [start] = [params for operation, params in sqs.requests if operation == "StartMessageMoveTask"]
    assert "MaxNumberOfMessagesPerSecond" not in start  # no --rate: SQS chooses
    assert (
        "move task failed: moved about 40 messages (AWS.SimpleQueueService.NonExistentQueue)" in capsys.readouterr().out
    )


async def test_stopping_leaves_the_task_running_on_sqs(capsys: pytest.CaptureFixture[str]) -> None:
    """Ctrl-C while following: the command returns at once, says the task goes on and how to cancel it."""
    sqs = MoveTaskStub(polls=100)
    stop = asyncio.Event()
    stop.set()

    code = await server.move(sqs, DLQ_ARN, "https://sqs/photo-ingest-Queue-1", None, stop)  # type: ignore[arg-type]

    assert code == 0
    assert "still running on SQS" in capsys.readouterr().out
    assert sum(1 for operation, _ in sqs.requests if operation == "ListMessageMoveTasks") == 1


def test_the_stub_rejects_a_request_sqs_would_reject() -> None:
    """The control for the stub: a misspelt parameter fails botocore's validation, as the real call would."""
    with pytest.raises(Exception, match="DestinationArm"):
        asyncio.run(MoveTaskStub().start_message_move_task(SourceArn=DLQ_ARN, DestinationArm=QUEUE_ARN))
