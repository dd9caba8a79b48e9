"""photo-ingest: S3 event notifications from SQS, exactly one DynamoDB item per photo."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    """`__version__`, read from the installed metadata (pyproject.toml's `version`) when first asked for: importing
    the package stays free, so `python -m service.ops.liveness` loads nothing but the standard library."""
    if name != "__version__":
        raise AttributeError(f"module 'service' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415 - lazy, see above

    try:
        return version("photo-ingest")
    except PackageNotFoundError:  # running from a source tree that was not installed
        return "0.0.0+unknown"
