"""One seed's traffic: photos, the S3 events that announce them (duplicated, late, in three envelopes) and
hostile bodies, each message with what its content must end in (the oracle, written independently of the
product's parser: the contract's photoId, and the documented reason codes).

    stored photos ─ announced 1-3 times, by S3 notification, SNS or EventBridge; their objects exist
    gone photos ── announced, but deleted from S3 since: no item with VERIFY_OBJECTS, an item without
    taken photos ─ their photoId already holds another object's item: the message is quarantined, `conflict`
    noise ──────── removed objects, keys outside the prefix, S3 test events: nothing to write
    hostile ────── bodies that can never pass: quarantined, with the reason their content earns
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from urllib.parse import quote_plus

BUCKETS = ("photos-a", "photos-b")
PREFIX = "photos-raw/"
TOPIC = "arn:aws:sns:us-east-1:123456789012:uploads"
HOSTILE = (  # (body, the reason it must be quarantined with)
    ("not json {", "body_not_json"),
    ("[1, 2]", "body_not_object"),
    ('{"Records": 5}', "records_not_list"),
    ('{"Records": ["x"]}', "broken_structure"),
    ('{"Records": [], "Records": []}', "ambiguous_json"),
    (json.dumps({"Type": "Notification", "TopicArn": TOPIC, "Message": 5}), "sns_message_not_string"),
    (json.dumps({"Type": "Notification", "TopicArn": TOPIC, "Message": "{nope"}), "sns_message_not_json"),
)
NAMES = ("a b+c", "100%25 d", "é/ü", "x&y=z#", "東京", "😀 smile", "plain")


def photo_id(bucket: str, key: str) -> str:
    return hashlib.sha256(f"{bucket}/{key}".encode()).hexdigest()[:20]


@dataclass(frozen=True, slots=True)
class Photo:
    bucket: str
    key: str
    kind: str  # stored | gone | taken

    @property
    def id(self) -> str:
        return photo_id(self.bucket, self.key)


@dataclass(slots=True)
class Sent:
    """One message to send at `at`, and what its content must end in."""

    at: float
    body: str
    photos: tuple[Photo, ...] = ()
    reason: str | None = None  # the quarantine reason its content earns; None: it must be deleted
    message_id: str = ""


@dataclass(slots=True)
class Traffic:
    photos: list[Photo] = field(default_factory=list)
    messages: list[Sent] = field(default_factory=list)


def make_traffic(rng: random.Random, messages: int, span_s: float) -> Traffic:
    traffic = Traffic()
    while len(traffic.messages) < messages:
        roll = rng.random()
        if roll < 0.06:
            body, reason = rng.choice(HOSTILE)
            traffic.messages.append(Sent(rng.uniform(0, span_s), body, reason=reason))
        elif roll < 0.08:
            test = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": rng.choice(BUCKETS)}
            traffic.messages.append(Sent(rng.uniform(0, span_s), json.dumps(test)))
        else:
            _announce(rng, traffic, span_s)
    return traffic


def _announce(rng: random.Random, traffic: Traffic, span_s: float) -> None:
    """A new photo (and sometimes a second in the same message), announced 1-3 times, later copies late."""
    kind = rng.choices(("stored", "gone", "taken"), (0.85, 0.1, 0.05))[0]
    index = len(traffic.photos)
    photo = Photo(rng.choice(BUCKETS), f"{PREFIX}{index // 10}/{rng.choice(NAMES)} {index}.jpg", kind)
    traffic.photos.append(photo)
    at = rng.uniform(0, span_s)
    for copy in range(rng.choices((1, 2, 3), (0.5, 0.35, 0.15))[0]):
        envelope = rng.choice(("notification", "sns", "eventbridge"))
        body = _body(rng, envelope, photo)
        reason = "conflict" if kind == "taken" else None
        traffic.messages.append(Sent(at + copy * rng.uniform(0, 60), body, (photo,), reason))


def _body(rng: random.Random, envelope: str, photo: Photo) -> str:
    if envelope == "eventbridge":
        return json.dumps(_eventbridge(photo))
    records = [_record(photo, "ObjectCreated:Put")]
    if rng.random() < 0.2:  # noise in the same message: nothing to write for these
        records.append(_record(photo, "ObjectRemoved:Delete"))
        records.append(_record(Photo(photo.bucket, f"thumbs/{photo.key}", "noise"), "ObjectCreated:Put"))
        rng.shuffle(records)
    document = {"Records": records}
    if envelope == "sns":
        return json.dumps({"Type": "Notification", "TopicArn": TOPIC, "Message": json.dumps(document)})
    return json.dumps(document)


def _record(photo: Photo, event: str) -> dict[str, object]:
    obj = {"key": quote_plus(photo.key, safe="/"), "size": 1000 + len(photo.key), "eTag": "e" * 32}
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventTime": "2026-09-21T10:00:00.000Z",
        "eventName": event,
        "s3": {"bucket": {"name": photo.bucket}, "object": obj},
    }


def _eventbridge(photo: Photo) -> dict[str, object]:
    return {
        "version": "0",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "time": "2026-09-21T10:00:00Z",
        "resources": [f"arn:aws:s3:::{photo.bucket}"],
        "detail": {"bucket": {"name": photo.bucket}, "object": {"key": photo.key, "size": 1000}, "reason": "PutObject"},
    }
