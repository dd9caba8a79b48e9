"""photo-ingest: S3 event notifications from SQS, exactly one DynamoDB item per photo."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("photo-ingest")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"
