"""Settings: every knob is an environment variable (or a line in `.env`), validated once at start-up.

Region, credentials, endpoints and retries are *not* here: they come from the AWS SDK's own variables
(`AWS_REGION`, `AWS_ENDPOINT_URL[_SQS|_DYNAMODB|_S3]`, `AWS_RETRY_MODE`, `AWS_MAX_ATTEMPTS`, the task role).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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


class Settings(TableSettings):
    """The worker's settings. Construct once in the CLI and pass it in; tests build `Settings(...)`."""

    queue_url: str = Field(min_length=1)
    dead_letter_queue_url: str | None = None

    pollers: int = Field(4, ge=1, le=64)
    max_in_flight_records: int = Field(128, ge=1, le=10_000)
    receive_wait_seconds: int = Field(20, ge=1, le=20)
    receive_batch_size: int = Field(10, ge=1, le=10)
    visibility_timeout_seconds: int | None = Field(None, ge=1, le=SQS_MAX_VISIBILITY_SECONDS)
    visibility_extension_max_seconds: int = Field(3_600, ge=0, le=SQS_MAX_VISIBILITY_SECONDS)
    retry_backoff_base_seconds: float = Field(2.0, gt=0)
    retry_backoff_max_seconds: float = Field(300.0, gt=0, le=SQS_MAX_VISIBILITY_SECONDS)
    shutdown_timeout_seconds: float = Field(20.0, gt=0, le=115)
    write_mode: Literal["put", "batch"] = "put"  # batch: PartiQL INSERTs, 25 a call (needs dynamodb:PartiQLInsert)

    metrics_enabled: bool = True
    metrics_interval_seconds: float = Field(60.0, gt=0)
    metrics_namespace: str = Field("PhotoIngest", min_length=1, max_length=255)
    metrics_dimensions: dict[str, str] = Field(default_factory=lambda: {"Service": "photo-ingest"})

    @model_validator(mode="after")
    def _backoff_is_ordered(self) -> Settings:
        if self.retry_backoff_base_seconds > self.retry_backoff_max_seconds:
            raise ValueError("RETRY_BACKOFF_BASE_SECONDS must not exceed RETRY_BACKOFF_MAX_SECONDS")
        return self

    @model_validator(mode="after")
    def _metrics_are_acceptable_to_cloudwatch(self) -> Settings:
        problems = emf_problems(self.metrics_namespace, self.metrics_dimensions) if self.metrics_enabled else []
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def public_view(self) -> dict[str, object]:
        """The effective settings for the start-up log line (nothing here is a secret)."""
        return {name: str(value) if isinstance(value, Path) else value for name, value in self}
