"""Settings: defaults, limits, and a clear exit 2 naming the variable before any AWS call."""

from __future__ import annotations

import subprocess
import sys

import pytest

from service.config import Settings


def test_defaults_match_the_old_lambda_and_sqs() -> None:
    """PHOTOS_TABLE and RAW_PREFIX keep the Lambda's defaults; receives wait 20 s for 10 messages."""
    settings = Settings(queue_url="https://sqs.us-east-1.amazonaws.com/1/q")
    assert (settings.photos_table, settings.raw_prefix) == ("Photos", "photos-raw/")
    assert (settings.receive_wait_seconds, settings.receive_batch_size) == (20, 10)
    assert settings.shutdown_timeout_seconds == 20
    assert settings.visibility_timeout_seconds is None


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every knob is an environment variable named after its field."""
    monkeypatch.setenv("QUEUE_URL", "q")
    monkeypatch.setenv("PHOTOS_TABLE", "PhotosProd")
    monkeypatch.setenv("RAW_PREFIX", "incoming/")
    monkeypatch.setenv("MAX_IN_FLIGHT_RECORDS", "7")
    monkeypatch.setenv("METRICS_DIMENSIONS", '{"Service": "pi", "Stage": "prod"}')
    settings = Settings()  # type: ignore[call-arg]
    assert (settings.photos_table, settings.raw_prefix, settings.max_in_flight_records) == (
        "PhotosProd",
        "incoming/",
        7,
    )
    assert settings.metrics_dimensions == {"Service": "pi", "Stage": "prod"}


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {"PATH": "/usr/bin:/bin", "AWS_REGION": "us-east-1", "HOME": "/nonexistent"} | env
    return subprocess.run(
        [sys.executable, "-m", "service", *args], env=clean, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({}, "QUEUE_URL"),
        ({"QUEUE_URL": "q", "RECEIVE_WAIT_SECONDS": "30"}, "RECEIVE_WAIT_SECONDS"),
        ({"QUEUE_URL": "q", "RECEIVE_BATCH_SIZE": "11"}, "RECEIVE_BATCH_SIZE"),
        ({"QUEUE_URL": "q", "LOG_FORMAT": "xml"}, "LOG_FORMAT"),
        ({"QUEUE_URL": "q", "POLLERS": "many"}, "POLLERS"),
        ({"QUEUE_URL": "q", "VISIBILITY_TIMEOUT_SECONDS": "50000"}, "VISIBILITY_TIMEOUT_SECONDS"),
    ],
)
def test_a_bad_setting_exits_2_with_one_line_naming_it(env: dict[str, str], variable: str) -> None:
    """No traceback and no AWS call: one line on stderr that names the variable, then exit code 2."""
    result = run_cli(env, "run")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert variable in lines[0]
    assert "Traceback" not in result.stderr


def test_backoff_base_may_not_exceed_its_cap() -> None:
    """RETRY_BACKOFF_BASE_SECONDS above RETRY_BACKOFF_MAX_SECONDS is rejected."""
    with pytest.raises(ValueError, match="RETRY_BACKOFF_BASE_SECONDS"):
        Settings(queue_url="q", retry_backoff_base_seconds=10, retry_backoff_max_seconds=5)


def test_version_and_module_entry_point() -> None:
    """`python -m service --version` works like the `photo-ingest` console script."""
    result = run_cli({}, "--version")
    assert result.returncode == 0
    assert result.stdout.startswith("photo-ingest ")


def test_aws_region_is_honoured_on_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """`AWS_REGION` alone sets the region (botocore 1.40 reads only AWS_DEFAULT_REGION by itself)."""
    from service.aws.clients import make_session

    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    assert make_session().region_name == "eu-west-3"


def test_no_region_at_all_is_a_configuration_error() -> None:
    """Without any region the worker exits 2 with a line naming AWS_REGION, not a traceback."""
    result = run_cli({"QUEUE_URL": "https://sqs.example/1/q", "AWS_REGION": ""}, "run")
    assert result.returncode == 2, result.stderr
    assert "AWS_REGION" in result.stderr
    assert "Traceback" not in result.stderr


def test_metric_settings_cloudwatch_would_reject_are_refused_at_start() -> None:
    """A namespace or dimension CloudWatch rejects stops the worker at start, naming the variable."""
    result = run_cli({"QUEUE_URL": "q", "METRICS_NAMESPACE": "bad namespace!"}, "run")
    assert result.returncode == 2
    assert "METRICS_NAMESPACE" in result.stderr
