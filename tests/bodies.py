"""SQS bodies for many photos, built from the AWS samples in `tests/events/`, in the three envelopes S3 uses:

    direct       {"Records":[...]}, the key form-encoded as S3 does it (space `+`, `+` `%2B`, UTF-8 `%XX`),
                 with `/` left alone or encoded as `%2F` (moto's way); decoded once with `unquote_plus`
    sns          the same document as a JSON *string* in an SNS envelope's `Message`
    eventbridge  an "Object Created" event whose key is literal (raw `+`, `%`, non-ASCII)

All three must give the same photoId for the same object. `deliveries` makes a reproducible plan of
messages: most photos are announced two or three times, through different envelopes, and some duplicates
share one `SendMessageBatch` so that they usually arrive in the same receive and are put concurrently.
"""

from __future__ import annotations

import copy
import json
import random
import uuid
from dataclasses import dataclass
from functools import cache
from hashlib import md5, sha256
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

EVENTS = Path(__file__).parent / "events"
ENVELOPES = ("direct", "sns", "eventbridge")
# Words that make the key encoding matter: spaces, `+`, `%` (also `%25`, which a double decode corrupts),
# `&`, `=`, `#`, non-ASCII letters, CJK and an emoji (outside the BMP).
KEY_WORDS = (
    "Summer trip",
    "C++ & Rust",
    "50% off",
    "100%25 literal",
    "café Ω",
    "東京 タワー",
    "a+b=c",
    "naïve #1",
    "photo 📷",
    "plain",
)


@dataclass(frozen=True)
class Photo:
    bucket: str
    key: str  # the real (decoded) S3 key

    @property
    def photo_id(self) -> str:
        return sha256(f"{self.bucket}/{self.key}".encode()).hexdigest()[:20]  # the contract, spelled out


@cache
def _template(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return document


def photos(count: int, bucket: str, label: str = "chaos", prefix: str = "photos-raw/") -> list[Photo]:
    """`count` distinct objects whose keys cycle through `KEY_WORDS`."""
    return [Photo(bucket, f"{prefix}{label} {i:03d}/{KEY_WORDS[i % len(KEY_WORDS)]} {i}.jpg") for i in range(count)]


def _records_document(photo: Photo, *, encode_slash: bool) -> dict[str, Any]:
    document = copy.deepcopy(_template("s3-direct-put-photos-raw"))
    record = document["Records"][0]
    record["s3"]["bucket"]["name"] = photo.bucket
    record["s3"]["bucket"]["arn"] = f"arn:aws:s3:::{photo.bucket}"
    obj = record["s3"]["object"]
    obj["key"] = quote_plus(photo.key, safe="" if encode_slash else "/")
    obj["eTag"] = md5(photo.key.encode("utf-8", "surrogatepass"), usedforsecurity=False).hexdigest()
    obj["size"] = len(photo.key)
    return document


def direct(photo: Photo, *, encode_slash: bool = False) -> str:
    return json.dumps(_records_document(photo, encode_slash=encode_slash), separators=(",", ":"))


def direct_many(photos: list[Photo]) -> str:
    """One direct notification carrying a record per photo (S3 sends one; the format allows many)."""
    records = [_records_document(photo, encode_slash=False)["Records"][0] for photo in photos]
    return json.dumps({"Records": records}, separators=(",", ":"))


def sns(photo: Photo) -> str:
    envelope = copy.deepcopy(_template("sns-wrapped-s3-put"))
    envelope["MessageId"] = str(uuid.uuid4())
    envelope["Message"] = json.dumps(_records_document(photo, encode_slash=False), separators=(",", ":"))
    return json.dumps(envelope)


def eventbridge(photo: Photo, *, ensure_ascii: bool = False) -> str:
    event = copy.deepcopy(_template("eventbridge-object-created-photos-raw"))
    event["id"] = str(uuid.uuid4())
    event["resources"] = [f"arn:aws:s3:::{photo.bucket}"]
    event["detail"]["bucket"]["name"] = photo.bucket
    event["detail"]["object"]["key"] = photo.key  # literal
    event["detail"]["object"]["etag"] = md5(
        photo.key.encode("utf-8", "surrogatepass"), usedforsecurity=False
    ).hexdigest()
    return json.dumps(event, ensure_ascii=ensure_ascii)  # raw UTF-8 in the body, as EventBridge sends it


def body(photo: Photo, envelope: str, rng: random.Random) -> str:
    if envelope == "direct":
        return direct(photo, encode_slash=rng.random() < 0.5)
    if envelope == "sns":
        return sns(photo)
    return eventbridge(photo)


@dataclass(frozen=True)
class Plan:
    """Messages to send, already packed into `SendMessageBatch` calls of at most 10, and split into waves."""

    waves: list[list[list[str]]]  # wave -> batch -> bodies
    copies: dict[str, int]  # photoId -> how many messages announce it
    same_batch_pairs: int  # photos with two copies in one send batch
    mixed_envelopes: int  # photos announced through more than one envelope

    @property
    def messages(self) -> int:
        return sum(len(batch) for wave in self.waves for batch in wave)


def deliveries(items: list[Photo], waves: int, seed: int = 4) -> Plan:
    """One to three messages per photo (about 20% / 50% / 30%), in random envelopes; for about a quarter of
    the multiply-delivered photos two copies travel in the same send batch."""
    rng = random.Random(seed)
    units: list[list[str]] = []  # bodies that must share a send batch
    copies: dict[str, int] = {}
    same_batch = mixed = 0
    for photo in items:
        count = rng.choices((1, 2, 3), weights=(2, 5, 3))[0]
        envelopes = [rng.choice(ENVELOPES) for _ in range(count)]
        bodies = [body(photo, envelope, rng) for envelope in envelopes]
        copies[photo.photo_id] = count
        mixed += len(set(envelopes)) > 1
        if count > 1 and rng.random() < 0.25:
            units.append(bodies[:2])
            units.extend([b] for b in bodies[2:])
            same_batch += 1
        else:
            units.extend([b] for b in bodies)
    rng.shuffle(units)
    size = -(-len(units) // waves)
    return Plan([_pack(units[start : start + size]) for start in range(0, len(units), size)], copies, same_batch, mixed)


def _pack(units: list[list[str]]) -> list[list[str]]:
    batches: list[list[str]] = [[]]
    for unit in units:
        if len(batches[-1]) + len(unit) > 10:
            batches.append([])
        batches[-1].extend(unit)
    return batches
