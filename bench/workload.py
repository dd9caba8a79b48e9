"""The workload: N SQS bodies, one direct S3 notification record each, 10% of them duplicate deliveries of an
object announced earlier, and the end state they must produce.

Keys are under `photos-raw/` and form-encoded as S3 sends them (a space is `+`, non-ASCII is percent-encoded
UTF-8), so a contender that skips decoding, or decodes twice, writes the wrong photoIds and fails the check.
The generator is deterministic: the runner, the floor and the checks rebuild the same messages from (n, seed).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from hashlib import sha256
from urllib.parse import quote_plus

BUCKET = "beetroot-raw"
RAW_PREFIX = "photos-raw/"
EVENT_TIME = "2024-05-02T10:15:30.123Z"
UPLOADED_AT = "2024-05-02T10:15:30.123000+00:00"  # EVENT_TIME as the product stores it
DUPLICATE_EVERY = 10  # every 10th message re-delivers an earlier object: 10% duplicates


def photo_id(bucket: str, key: str) -> str:
    """The contract, restated here so that the checks do not trust the product's own code."""
    return sha256(f"{bucket}/{key}".encode()).hexdigest()[:20]


@dataclass(frozen=True, slots=True)
class Photo:
    bucket: str
    key: str  # decoded
    size: int
    etag: str
    sequencer: str

    @property
    def photo_id(self) -> str:
        return photo_id(self.bucket, self.key)


@dataclass(frozen=True, slots=True)
class Workload:
    bodies: list[str]
    photos: list[Photo]  # the object each message announces, by message index

    @property
    def distinct(self) -> dict[str, Photo]:
        return {photo.photo_id: photo for photo in self.photos}


def _key(rng: random.Random, index: int) -> str:
    album = rng.choice(["2024-05-02", "family trip", "café", "raw+edits", "sale 50%2Aoff"])
    name = f"IMG_{index:07d}" + rng.choice(["", " (1)", " copy", "_é"])
    return f"{RAW_PREFIX}user-{rng.randrange(500):03d}/{album}/{name}.jpg"


def _body(photo: Photo, index: int) -> str:
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": EVENT_TIME,
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:AIDAJDPLRKLG7UEXAMPLE"},
        "requestParameters": {"sourceIPAddress": "192.0.2.10"},
        "responseElements": {
            "x-amz-request-id": f"C3D13FE58DE4{index:08X}",
            "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD",
        },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "photos-raw-created",
            "bucket": {
                "name": photo.bucket,
                "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                "arn": f"arn:aws:s3:::{photo.bucket}",
            },
            "object": {
                "key": quote_plus(photo.key, safe="/"),
                "size": photo.size,
                "eTag": photo.etag,
                "sequencer": photo.sequencer,
            },
        },
    }
    return json.dumps({"Records": [record]}, separators=(",", ":"))


def build(n: int, seed: int = 7, duplicate_every: int = DUPLICATE_EVERY) -> Workload:
    """N messages; message i with i % 10 == 9 re-delivers (the same body) an object announced before it.
    `duplicate_every` changes the 10 (0: no duplicates, every message announces a photo of its own)."""
    rng = random.Random(seed)
    bodies: list[str] = []
    photos: list[Photo] = []
    originals: list[int] = []
    for index in range(n):
        if duplicate_every and index % duplicate_every == duplicate_every - 1 and originals:
            source = originals[rng.randrange(len(originals))]
            bodies.append(bodies[source])
            photos.append(photos[source])
            continue
        photo = Photo(
            BUCKET,
            _key(rng, index),
            rng.randrange(50_000, 9_000_000),
            f"{rng.getrandbits(128):032x}",
            f"{0x0055AED6DCD90281E5 + index:018X}",
        )
        originals.append(index)
        photos.append(photo)
        bodies.append(_body(photo, index))
    return Workload(bodies, photos)


def item(photo: Photo, ingested_at: str) -> dict[str, dict[str, str]]:
    """The item photo-ingest writes for `photo`, in DynamoDB's wire form (what the floor sends, pre-built)."""
    return {
        "photoId": {"S": photo.photo_id},
        "s3Bucket": {"S": photo.bucket},
        "s3Key": {"S": photo.key},
        "uploadedAt": {"S": UPLOADED_AT},
        "ingestedAt": {"S": ingested_at},
        "eventName": {"S": "ObjectCreated:Put"},
        "size": {"N": str(photo.size)},
        "eTag": {"S": photo.etag},
        "sequencer": {"S": photo.sequencer},
    }
