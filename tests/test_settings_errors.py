"""Every invalid setting, and every invalid AWS variable the process reads at start, is one line that names the
variable, then exit 2 (the Lambda handler: one exception line): no traceback, whatever the value.

The invalid values are generated from each field's own declaration (its type, its bounds, its choices), for every
field of every settings class under service/, so a new setting is covered the day it is added; a field whose
rule is not in its declaration (a check across fields, a name pattern) says what breaks it in `BREAKERS`. The
commands run in process through `service.cli.main`; a few cases run the real entry point in a subprocess.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import pkgutil
import subprocess
import sys
import types
import typing
from collections.abc import Iterator
from pathlib import Path

import annotated_types
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic.fields import FieldInfo

import service
from service.aws import environment
from service.aws_lambda import entry
from service.cli import main
from service.config import HealthSettings
from service.process import ConfigurationError
from tests.lambda_mapping import FakeContext

QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/photos"
CLOSED_PORT = "http://127.0.0.1:9"  # discard: a value wrongly taken as valid fails fast, never reaches AWS
EXAMPLES = hypothesis_settings(max_examples=20)

# Text an environment variable can hold (no NUL, no lone surrogate), and words that no parser reads as a number,
# a boolean or a choice of ours.
ENV_TEXT = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
NUMBER_WORDS = {"inf", "+inf", "-inf", "infinity", "+infinity", "-infinity", "nan", "+nan", "-nan"}
BOOLEAN_WORDS = {"0", "off", "f", "false", "n", "no", "1", "on", "t", "true", "y", "yes"}
WORDS = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzXYZ-_ "), min_size=1, max_size=12).filter(
    lambda text: text.strip().lower() not in NUMBER_WORDS | BOOLEAN_WORDS
)
NOT_JSON = st.text(ENV_TEXT, min_size=1, max_size=20).filter(lambda text: not _decodes(text))

# Fields that no value of their type breaks at load time: every text is a valid prefix or path, and the Lambda
# runtime reads no queue URL (`Class.field`, or a field name for every class).
ANY_TEXT = {"raw_prefix", "health_file", "LambdaSettings.queue_url"}

# What breaks a field beyond its declaration: the checks in validators, across fields or by pattern.
BREAKERS: dict[str, st.SearchStrategy[str]] = {
    "allowed_buckets": st.one_of(
        st.just(","), st.text(st.sampled_from("abc/"), min_size=1, max_size=8).map(lambda text: f"photos/{text}")
    ),
    "allowed_topic_arns": WORDS.filter(lambda text: text.strip() != ""),
    "verify_objects": st.just("true"),  # without ALLOWED_BUCKETS
    "dead_letter_queue_url": st.sampled_from([QUEUE, QUEUE.upper().replace("PHOTOS", "photos"), QUEUE + "/"]),
    "retry_backoff_base_seconds": st.integers(301, 40_000).map(str),  # above RETRY_BACKOFF_MAX_SECONDS' 300
    "metrics_namespace": st.text(st.sampled_from("ab !é"), min_size=1, max_size=8).filter(lambda t: not t.isalpha()),
    "metrics_dimensions": st.one_of(
        st.just("{}").map(lambda _: json.dumps({f"D{n}": "x" for n in range(31)})),
        st.sampled_from(['{"_aws": "x"}', '{"Service": 1}', '{"Service": ""}', '{"Service": "é"}']),
    ),
}


def _decodes(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def settings_classes() -> list[type[HealthSettings]]:
    """Every settings class in service/, found by importing every module (a new one is covered at once)."""
    for module in pkgutil.walk_packages(service.__path__, "service."):
        if module.name != "service.__main__":  # it runs the command line
            with contextlib.suppress(ImportError):  # a module of an optional extra that is not installed
                importlib.import_module(module.name)
    found, todo = [], [HealthSettings]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return sorted(set(found), key=lambda cls: cls.__name__)


def out_of_bounds(kind: type, metadata: list[object]) -> list[st.SearchStrategy[str]]:
    """Numbers past each bound in `metadata`: on it when it is strict, just past it, and far past it."""
    found = []
    for bound in metadata:
        if isinstance(bound, annotated_types.Ge | annotated_types.Gt):
            strict, low = isinstance(bound, annotated_types.Gt), getattr(bound, "ge", getattr(bound, "gt", 0))
            below = (
                st.integers(-(10**9), low - (not strict))
                if kind is int
                else st.floats(-1e9, low, exclude_max=not strict)
            )
            found.append(below.map(str))
        if isinstance(bound, annotated_types.Le | annotated_types.Lt):
            strict, high = isinstance(bound, annotated_types.Lt), getattr(bound, "le", getattr(bound, "lt", 0))
            above = (
                st.integers(high + (not strict), 10**12)
                if kind is int
                else st.floats(high, 1e12, exclude_min=not strict)
            )
            found.append(above.map(str))
    return found


def invalid_values(name: str, field: FieldInfo) -> st.SearchStrategy[str] | None:
    """Values that the field's declaration refuses, plus its `BREAKERS`; None when every text is valid."""
    declared = field.annotation
    if typing.get_origin(declared) in (typing.Union, types.UnionType):  # `X | None`: the X
        declared = next(arg for arg in typing.get_args(declared) if arg is not type(None))
    kind = typing.get_origin(declared) or declared
    strategies = [BREAKERS[name]] if name in BREAKERS else []
    if kind in (int, float):
        strategies += [WORDS, *out_of_bounds(kind, field.metadata)]
    elif kind is bool:
        strategies.append(WORDS)
    elif kind is typing.Literal:
        strategies.append(WORDS.filter(lambda text: text not in typing.get_args(declared)))
    elif kind is dict:
        strategies += [NOT_JSON, st.sampled_from(["[]", "1", '"x"', "true"])]
    elif kind is str:
        for bound in field.metadata:
            if isinstance(bound, annotated_types.MinLen) and bound.min_length > 0:
                strategies.append(st.text(ENV_TEXT, max_size=bound.min_length - 1))
            if isinstance(bound, annotated_types.MaxLen):
                strategies.append(st.text(st.sampled_from("abc"), min_size=bound.max_length + 1, max_size=300))
    return st.one_of(strategies) if strategies else None


# How each class is loaded for real; None: no command loads it on its own (its fields are all in a subclass).
COMMANDS: dict[str, list[str] | None] = {
    "HealthSettings": ["health"],
    "TableSettings": ["backfill", "--bucket", "photos", "--dry-run"],
    "BackfillQueueSettings": ["backfill", "--bucket", "photos", "--via-queue", "--dry-run"],
    "IngestSettings": None,
    "Settings": ["check"],
    "LambdaSettings": ["lambda"],
}


def checked(cls: type[HealthSettings]) -> list[str]:
    """The fields of `cls` that some value breaks."""
    return [name for name in cls.model_fields if not {name, f"{cls.__name__}.{name}"} & ANY_TEXT]


CASES = [
    pytest.param(cls, name, id=f"{cls.__name__}.{name.upper()}")
    for cls in settings_classes()
    if COMMANDS.get(cls.__name__)
    for name in checked(cls)
]


@contextlib.contextmanager
def environment_of(tmp: Path, **variables: str) -> Iterator[None]:
    """Only these settings and AWS variables over a valid baseline, in a directory without `.env`."""
    with pytest.MonkeyPatch.context() as patch:
        for name in [*(name.upper() for cls in settings_classes() for name in cls.model_fields), *environment.RULES]:
            patch.delenv(name, raising=False)
        patch.chdir(tmp)
        # Logging stays as the tests have it: configured by the handler, it would filter out DEBUG lines and cache
        # loggers for the tests after this one.
        patch.setattr(entry, "configure_logging", lambda *_: None)
        baseline = {"AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": CLOSED_PORT, "QUEUE_URL": QUEUE}
        for name, value in (baseline | variables).items():
            patch.setenv(name, value)
        yield


def run(cls_name: str) -> tuple[int, str]:
    """The exit code and stderr of the command that loads `cls_name` (the Lambda handler: 2 and its exception)."""
    command = COMMANDS[cls_name]
    assert command
    if command == ["lambda"]:
        entry.runtime.cache_clear()
        try:
            entry.handler({"Records": []}, FakeContext())
        except ConfigurationError as exc:
            return 2, str(exc)
        finally:
            entry.close()
        return 0, ""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(command)
    return code, err.getvalue()


def assert_one_line_naming(code: int, stderr: str, variable: str) -> None:
    lines = stderr.strip().splitlines()
    assert code == 2, stderr
    assert len(lines) == 1, stderr
    assert variable in lines[0], lines[0]
    assert "Traceback" not in stderr
    assert "Value error" not in lines[0], "pydantic's prefix is noise to a user"


def test_every_field_of_every_settings_class_can_be_checked() -> None:
    """A new field without a generator of invalid values fails here: add a rule to its declaration, or a
    `BREAKERS` entry, or say in `ANY_TEXT` that every text is valid. A new class needs an entry in COMMANDS."""
    classes = settings_classes()
    assert {cls.__name__ for cls in classes} <= COMMANDS.keys(), "a new settings class: say how it is loaded"
    unchecked = sorted(
        f"{cls.__name__}.{name}"
        for cls in classes
        for name in checked(cls)
        if invalid_values(name, cls.model_fields[name]) is None
    )
    assert not unchecked, f"no invalid value is known for {unchecked}"


@pytest.mark.parametrize(("cls", "name"), CASES)
@EXAMPLES
@given(data=st.data())
def test_an_invalid_setting_is_one_line_naming_it_and_exit_2(
    tmp_path_factory: pytest.TempPathFactory, cls: type[HealthSettings], name: str, data: st.DataObject
) -> None:
    """Whatever the invalid value, the command that loads this class stops with one line naming the variable."""
    strategy = invalid_values(name, cls.model_fields[name])
    assert strategy is not None
    value = data.draw(strategy, label=name.upper())
    with environment_of(tmp_path_factory.getbasetemp(), **{name.upper(): value}):
        code, stderr = run(cls.__name__)
    assert_one_line_naming(code, stderr, name.upper())


# The AWS variables the process reads at start (issue 18), and what breaks each, from botocore's rules.
HOSTS_WITH_A_BAD_CHARACTER = st.text(st.sampled_from("ab_! "), min_size=1, max_size=10).filter(
    lambda host: not host.isalpha()
)
BAD_ENDPOINTS = st.one_of(
    WORDS,
    HOSTS_WITH_A_BAD_CHARACTER.map(lambda host: f"http://{host}"),
    st.sampled_from(["ftp://example.com", "http://", "http://h:99999", "http://h:port", "http://[::1", "//h:5000"]),
    st.sampled_from(["localhost:4566", "s3.amazonaws.com", "file:///tmp/x", "https://-h.example"]),
)
BAD_REGIONS = st.one_of(
    HOSTS_WITH_A_BAD_CHARACTER,
    st.integers(0, 10**6).map(str),
    st.sampled_from(["-eu-west-1", "eu-west-1-", "eu.west.1", "a" * 64]),
)
AWS_BREAKERS: dict[str, st.SearchStrategy[str]] = {
    "AWS_RETRY_MODE": WORDS.filter(lambda text: text not in ("legacy", "standard", "adaptive")),
    "AWS_MAX_ATTEMPTS": st.one_of(WORDS, st.integers(-(10**6), 0).map(str), st.sampled_from(["1.5", "2e3", "0x3"])),
    **dict.fromkeys(environment.ENDPOINT_VARIABLES, BAD_ENDPOINTS),
    **dict.fromkeys(environment.REGION_VARIABLES, BAD_REGIONS),
}
AWS_COMMANDS = ["Settings", "TableSettings", "BackfillQueueSettings", "LambdaSettings"]  # all reach AWS


def test_every_aws_variable_read_at_start_is_checked() -> None:
    """The SDK variables the issue names, and every one the product checks, have invalid values here."""
    named = {"AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE", "AWS_REGION", "AWS_ENDPOINT_URL"}
    named |= {f"AWS_ENDPOINT_URL_{service}" for service in ("SQS", "DYNAMODB", "S3")}
    assert named <= environment.RULES.keys()
    assert environment.RULES.keys() == AWS_BREAKERS.keys()


@pytest.mark.parametrize("variable", sorted(AWS_BREAKERS))
@EXAMPLES
@given(data=st.data())
def test_an_invalid_aws_variable_is_one_line_naming_it_and_exit_2(
    tmp_path_factory: pytest.TempPathFactory, variable: str, data: st.DataObject
) -> None:
    """Whatever the invalid value, every command that reaches AWS stops with one line naming the variable."""
    value = data.draw(AWS_BREAKERS[variable], label=variable)
    cls_name = data.draw(st.sampled_from(AWS_COMMANDS), label="loaded by")
    with environment_of(tmp_path_factory.getbasetemp(), **{variable: value}):
        code, stderr = run(cls_name)
    assert_one_line_naming(code, stderr, variable)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
        ("AWS_ENDPOINT_URL", "https://sqs.eu-west-1.amazonaws.com"),
        ("AWS_ENDPOINT_URL_S3", "http://[::1]:4566/"),
        ("AWS_ENDPOINT_URL_DYNAMODB", "http://localstack:4566"),
        ("AWS_REGION", "eu-west-1"),
        ("AWS_REGION", "us-gov-west-1"),
        ("AWS_DEFAULT_REGION", "local"),
        ("AWS_RETRY_MODE", "adaptive"),
        ("AWS_MAX_ATTEMPTS", "1"),
        ("AWS_MAX_ATTEMPTS", "10"),
        ("AWS_REGION", ""),  # empty is unset, as clients.py reads it
    ],
)
def test_valid_aws_values_pass(variable: str, value: str) -> None:
    """The rules refuse nothing that botocore and a local emulator take."""
    assert environment.problems({variable: value}) == []


def test_the_four_values_from_the_issue_stop_the_real_entry_point() -> None:
    """`python -m service run` with each of the values that gave tracebacks: one line, exit 2."""
    for variable, value in [
        ("METRICS_DIMENSIONS", "{not json"),
        ("AWS_MAX_ATTEMPTS", "abc"),
        ("AWS_RETRY_MODE", "bogus"),
        ("AWS_ENDPOINT_URL", "not-a-url"),
        ("ALLOWED_BUCKETS", "photos/raw"),
    ]:
        env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "AWS_REGION": "us-east-1", "QUEUE_URL": QUEUE}
        result = subprocess.run(
            [sys.executable, "-m", "service", "run"],
            env=env | {variable: value},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert_one_line_naming(result.returncode, result.stderr, variable)
        assert result.stdout == ""


def test_the_lambda_handler_logs_the_one_line_and_fails_the_invocation() -> None:
    """The first invocation with a bad setting logs one JSON line naming it; the exception says the same."""
    script = "from service.aws_lambda import handler\nhandler({'Records': []}, None)\n"
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "AWS_REGION": "us-east-1", "AWS_MAX_ATTEMPTS": "abc"}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    [line] = result.stdout.splitlines()
    logged = json.loads(line)
    assert logged["event"] == "lambda.configuration_invalid"
    assert logged["error"] == "AWS_MAX_ATTEMPTS: must be a whole number of attempts, 1 or more"
    assert result.stderr.strip().splitlines()[-1] == f"service.process.ConfigurationError: {logged['error']}"


def test_local_stops_on_a_bad_aws_variable(tmp_path: Path) -> None:
    """`photo-ingest local` keeps the user's retry settings, so a bad one stops it like any command."""
    with environment_of(tmp_path, AWS_RETRY_MODE="bogus"):
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(["local", "--port", "0"])
    assert_one_line_naming(code, err.getvalue(), "AWS_RETRY_MODE")


def typed_options() -> list[tuple[str, str]]:
    """Every (subcommand, option) of the real parser whose value is converted, and so can be refused, by a `type`
    (a path or a string takes any text)."""
    from service.cli import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return [
        (name, action.option_strings[0])
        for name, sub in commands.choices.items()
        for action in sub._actions
        if action.type not in (None, str, Path) and action.option_strings
    ]


@pytest.mark.parametrize(("command", "option"), typed_options())
def test_an_argument_error_says_what_is_allowed(command: str, option: str) -> None:
    """`--max abc` says `must be a whole number, 1 or more, not 'abc'`, not `invalid _positive value`."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exited:
        main([command, option, "abc"])
    assert exited.value.code == 2
    message = err.getvalue().strip().splitlines()[-1]
    assert f"argument {option}: must be " in message, message
    assert "'abc'" in message
    assert "invalid" not in message
