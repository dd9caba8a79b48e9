"""Settings: every knob is an environment variable (or a line in `.env`), validated once at start-up.

Region, credentials, endpoints and retries are *not* here: they come from the AWS SDK's own variables
(`AWS_REGION`, `AWS_ENDPOINT_URL[_SQS|_DYNAMODB|_S3]`, `AWS_RETRY_MODE`, `AWS_MAX_ATTEMPTS`, the task role).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service.ingest.trust import BUCKET_NAME, MAX_RECORDS_DEFAULT, TOPIC_ARN, Trust
from service.metrics import emf_problems

SQS_MAX_VISIBILITY_SECONDS = 43_200  # 12 h, the SQS hard limit


class HealthSettings(BaseSettings):
    """What `photo-ingest health` needs; it must work without the worker's other settings."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    health_file: Path = Path("/tmp/photo-ingest.health")  # noqa: S108 - a tmpfs in the container
    health_max_age_seconds: float = Field(60.0, gt=0)
    unhealthy_after_failing_seconds: float = Field(300.0, gt=0)


class TableSettings(HealthSettings):
    """What every command that writes Photos items shares: the table, the prefix, and logging."""

    photos_table: str = Field("Photos", min_length=3, max_length=255)
    raw_prefix: str = "photos-raw/"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"


Names = Annotated[frozenset[str] | None, NoDecode]  # comma-separated in the environment


class IngestSettings(TableSettings):
    """What every runtime that writes items shares, composed by `service.compose.open_ingest`: the trust boundary
    (docs/security.md), the verification of objects and the write mode.

    `ALLOWED_BUCKETS` and `ALLOWED_TOPIC_ARNS` are comma-separated; unset believes any bucket or topic, as
    `photo-ingest check` warns. `ALLOWED_TOPIC_ARNS` set but empty believes no SNS envelope at all."""

    allowed_buckets: Names = None
    allowed_topic_arns: Names = None
    max_records_per_message: int = Field(MAX_RECORDS_DEFAULT, ge=1, le=10_000)
    verify_objects: bool = False
    write_mode: Literal["put", "batch"] = "put"  # batch: PartiQL INSERTs, 25 a call (needs dynamodb:PartiQLInsert)

    @field_validator("allowed_buckets", "allowed_topic_arns", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(name.strip() for name in value.split(",") if name.strip())
        return value

    @model_validator(mode="after")
    def _allowlists_name_real_senders(self) -> IngestSettings:
        if self.allowed_buckets is not None:
            if not self.allowed_buckets:
                raise ValueError("ALLOWED_BUCKETS names no bucket: list your buckets, or unset it to accept any")
            if bad := sorted(name for name in self.allowed_buckets if not BUCKET_NAME.fullmatch(name)):
                raise ValueError(f"ALLOWED_BUCKETS: {', '.join(map(repr, bad))} is not a valid S3 bucket name")
        if bad := sorted(arn for arn in self.allowed_topic_arns or () if not TOPIC_ARN.fullmatch(arn)):
            raise ValueError(f"ALLOWED_TOPIC_ARNS: {', '.join(map(repr, bad))} is not an SNS topic ARN")
        if self.verify_objects and self.allowed_buckets is None:
            raise ValueError("VERIFY_OBJECTS needs ALLOWED_BUCKETS: the worker may only ask S3 about its own buckets")
        return self

    def trust(self) -> Trust:
        """The core's rules, for `Ingest(..., trust=settings.trust())` in every runtime."""
        return Trust(self.allowed_buckets, self.allowed_topic_arns, self.max_records_per_message)


class BackfillQueueSettings(TableSettings):
    """What `photo-ingest backfill --via-queue` needs besides: the queue that the workers read."""

    queue_url: str = Field(min_length=1)


class Settings(IngestSettings):
    """The worker's settings. Construct once in the CLI and pass it in; tests build `Settings(...)`."""

    queue_url: str = Field(min_length=1)
    dead_letter_queue_url: str | None = None

    pollers: int = Field(16, ge=1, le=64)  # the ceiling: from one, as many as demand needs (worker/pollers.py)
    max_in_flight_records: int = Field(1_024, ge=1, le=10_000)  # a safety ceiling: the limit adapts below it
    max_in_flight_bytes: int = Field(64 * 1_048_576, ge=65_536)  # message bodies held (worker/budget.py)
    receive_wait_seconds: int = Field(20, ge=1, le=20)
    receive_batch_size: int = Field(10, ge=1, le=10)
    visibility_timeout_seconds: int | None = Field(None, ge=1, le=SQS_MAX_VISIBILITY_SECONDS)
    visibility_extension_max_seconds: int = Field(3_600, ge=0, le=SQS_MAX_VISIBILITY_SECONDS)
    retry_backoff_base_seconds: float = Field(2.0, gt=0)
    retry_backoff_max_seconds: float = Field(300.0, gt=0, le=SQS_MAX_VISIBILITY_SECONDS)
    shutdown_timeout_seconds: float = Field(20.0, gt=0, le=115)

    metrics_enabled: bool = True
    metrics_interval_seconds: float = Field(60.0, gt=0)
    metrics_namespace: str = Field("PhotoIngest", min_length=1, max_length=255)
    metrics_dimensions: dict[str, str] = Field(default_factory=lambda: {"Service": "photo-ingest"})
    # otlp and both need the `otel` extra and an OTLP endpoint (OTEL_EXPORTER_OTLP_ENDPOINT): docs/observability.md
    metrics_exporter: Literal["emf", "otlp", "both", "none"] = "emf"

    @model_validator(mode="after")
    def _backoff_is_ordered(self) -> Settings:
        if self.retry_backoff_base_seconds > self.retry_backoff_max_seconds:
            raise ValueError("RETRY_BACKOFF_BASE_SECONDS must not exceed RETRY_BACKOFF_MAX_SECONDS")
        return self

    @model_validator(mode="after")
    def _dead_letter_queue_is_another_queue(self) -> Settings:
        if self.dead_letter_queue_url and same_queue(self.dead_letter_queue_url, self.queue_url):
            raise ValueError("DEAD_LETTER_QUEUE_URL must not be QUEUE_URL: quarantined messages would loop forever")
        return self

    @model_validator(mode="after")
    def _metrics_are_acceptable_to_cloudwatch(self) -> Settings:
        problems = emf_problems(self.metrics_namespace, self.metrics_dimensions) if self.metrics_enabled else []
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def metrics_on(self) -> bool:
        """Whether metrics are flushed at all: METRICS_ENABLED, and an exporter other than `none`."""
        return self.metrics_enabled and self.metrics_exporter != "none"

    def public_view(self) -> dict[str, object]:
        """The effective settings for the start-up log line (nothing here is a secret)."""
        return {name: _loggable(value) for name, value in self}


def _loggable(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    return sorted(value) if isinstance(value, frozenset) else value


def same_queue(url: str, other: str) -> bool:
    """One queue named by two URLs: the same host (case aside) and the same account and name."""

    def identity(text: str) -> tuple[str, ...]:
        parts = urlsplit(text.strip())
        return (parts.netloc.lower(), *parts.path.strip("/").split("/"))

    return identity(url) == identity(other)
