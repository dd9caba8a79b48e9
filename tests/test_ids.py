"""The photoId rule is a contract with existing tables: pinned by vectors computed from the old Lambda's formula."""

from __future__ import annotations

import hashlib

import pytest

from service.ingest.ids import photo_id


@pytest.mark.parametrize(
    ("bucket", "key", "expected"),
    [
        ("mybucket", "HappyFace.jpg", "9c6e66f436cd02ceb398"),
        ("amzn-s3-demo-bucket", "photos-raw/HappyFace.jpg", "47f1d3ed99273a6e196e"),
        ("amzn-s3-demo-bucket", "photos-raw/2024 Trip/Café C++ @ 東京: day=1.jpg", "94c27ed80fa411bc245c"),
        ("amzn-s3-demo-bucket", "photos-raw/100% real.jpg", "076efe85c56798f5d2bd"),
        ("DOC-EXAMPLE-BUCKET1", "example-key", "ac54574c6a46295fe686"),
    ],
)
def test_photo_id_vectors(bucket: str, key: str, expected: str) -> None:
    """sha256 of "bucket/key" in UTF-8, first 20 hex digits, exactly as the Lambda computed it."""
    assert photo_id(bucket, key) == expected


def test_photo_id_is_the_lambda_formula() -> None:
    """The same formula, spelled as the Lambda spelled it."""
    bucket, key = "beetroot-raw", "photos-raw/group1.jpg"
    assert photo_id(bucket, key) == hashlib.sha256(f"{bucket}/{key}".encode()).hexdigest()[:20]
    assert len(photo_id(bucket, key)) == 20
