"""The hostile corpus: forged and malformed SQS bodies, each in every envelope it can travel in, with the end
state the trust boundary promises (docs/security.md).

    direct       {"Records": [...]}, keys form-encoded as S3 does (a forger may leave them raw)
    sns          the same document as the `Message` string of an SNS envelope from the allowed topic
    sns_raw      SNS raw message delivery: the document alone, as SNS's sample sends it
    eventbridge  one "Object Created" event per object, keys literal

`corpus(trusting=...)` builds every case for a worker with the allowlists set (`ALLOWED`) or unset. A case
says what its message must end as: deleted after writing exactly `items`, or quarantined with `reason`.
Bodies are built from the AWS samples in `tests/events/`; the key of every case is its own, so a case's
items are told apart from every other's.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

from tests.conftest import BUCKET, EVENTS

ENVELOPES = ("direct", "sns", "sns_raw", "eventbridge")
TOPIC = "arn:aws:sns:us-east-1:111122223333:photos-raw-topic"  # the sample's topic: the allowed one
FOREIGN_TOPIC = "arn:aws:sns:us-east-1:999999999999:not-ours"
FOREIGN_BUCKET = "someone-elses-bucket"
ALLOWED = {"ALLOWED_BUCKETS": BUCKET, "ALLOWED_TOPIC_ARNS": TOPIC}
BODY_BYTES_MAX = 1_048_576  # SQS's limit on one message


@dataclass(frozen=True)
class Obj:
    """One object a record announces, and the fields a forger chooses."""

    key: str
    bucket: str = BUCKET
    event_time: Any = "2026-11-01T12:00:00.000Z"  # anything JSON can hold: a number is no event time
    size: Any = 1024  # anything JSON can hold; `json` writes float("nan") as NaN
    etag: str = "d41d8cd98f00b204e9800998ecf8427e"
    event: str | None = None  # the eventName (EventBridge: the detail-type) a forger writes; None: the sample's


@dataclass(frozen=True)
class Case:
    name: str
    envelope: str
    body: str
    reason: str | None = None  # the quarantine reason; None: deleted
    items: tuple[tuple[str, str], ...] = ()  # (bucket, key) of the items it must write
    checks: tuple[str, ...] = ()  # "no_size": its items have no size; "no_event_time": uploadedAt is ingestedAt


def _sample(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return document


def _record(obj: Obj, *, encode: bool = True) -> dict[str, Any]:
    record = copy.deepcopy(_sample("s3-direct-put-photos-raw")["Records"][0])
    record["eventTime"] = obj.event_time
    record["eventName"] = obj.event or record["eventName"]
    record["s3"]["bucket"] = {"name": obj.bucket, "arn": f"arn:aws:s3:::{obj.bucket}"}
    key = quote_plus(obj.key, safe="/", errors="surrogatepass") if encode else obj.key
    record["s3"]["object"] = {"key": key, "size": obj.size, "eTag": obj.etag, "sequencer": "0055AED6DCD90281E5"}
    return record


def records_document(objects: list[Obj], *, encode: bool = True) -> str:
    return json.dumps({"Records": [_record(obj, encode=encode) for obj in objects]}, separators=(",", ":"))


def sns(message: str, topic: str | None = TOPIC) -> str:
    envelope = _sample("sns-wrapped-s3-put")
    envelope["Message"] = message
    if topic is None:
        del envelope["TopicArn"]
    else:
        envelope["TopicArn"] = topic
    return json.dumps(envelope, separators=(",", ":"))


def sns_raw(objects: list[Obj]) -> str:
    document = _sample("sns-raw-delivery-s3-put")
    template = document["Records"][0]
    fields = ("s3", "eventTime", "eventName")
    document["Records"] = [template | {name: _record(obj)[name] for name in fields} for obj in objects]
    return json.dumps(document, separators=(",", ":"))


def eventbridge(obj: Obj, resources: list[str] | None = None) -> str:
    event = _sample("eventbridge-object-created-photos-raw")
    event["time"] = obj.event_time
    event["detail-type"] = obj.event or event["detail-type"]
    event["resources"] = resources or [f"arn:aws:s3:::{obj.bucket}"]
    event["detail"]["bucket"]["name"] = obj.bucket
    event["detail"]["object"] = {"key": obj.key, "size": obj.size, "etag": obj.etag, "sequencer": "617f08299329d189"}
    return json.dumps(event, separators=(",", ":"))  # ASCII: a lone surrogate travels as its JSON escape


def body(envelope: str, objects: list[Obj], edit: Callable[[str], str] = str) -> str:
    """`objects` in one message of this envelope (EventBridge carries exactly one); `edit` changes the text of
    the S3 document, inside the SNS envelope for `sns`."""
    if envelope == "direct":
        return edit(records_document(objects))
    if envelope == "sns":
        return sns(edit(records_document(objects)))
    if envelope == "sns_raw":
        return edit(sns_raw(objects))
    [obj] = objects
    return edit(eventbridge(obj))


def _untrusted_unless(trusting: bool, reason: str, bucket: str, key: str) -> dict[str, Any]:
    """A forged sender: quarantined under an allowlist, written without one (the risk of leaving it unset)."""
    return {"reason": reason} if trusting else {"items": ((bucket, key),)}


def _key(case: str, envelope: str, name: str = "photo.jpg") -> str:
    return f"photos-raw/hostile/{case}/{envelope}/{name}"


# ------------------------------------------------------------------------------------------ the cases


def _plain(envelope: str, trusting: bool) -> Iterator[Case]:
    """The control: an honest upload is written."""
    key = _key("plain", envelope)
    yield Case("plain", envelope, body(envelope, [Obj(key)]), items=((BUCKET, key),))


def _control_characters(envelope: str, trusting: bool) -> Iterator[Case]:
    """A key may hold ESC, BEL, CR, LF and NUL: the item keeps it exactly."""
    key = _key("control-characters", envelope, "\x1b[31mred\x07\r\n\x00\u202e.jpg")
    yield Case("control_characters", envelope, body(envelope, [Obj(key)]), items=((BUCKET, key),))


def _key_lengths(envelope: str, trusting: bool) -> Iterator[Case]:
    """1,024 UTF-8 bytes is S3's limit: that key is written; one byte more is invalid_key."""
    stem = _key("key-length", envelope, "")
    at_limit = stem + "é" * ((1024 - len(stem.encode())) // 2)
    at_limit += "x" * (1024 - len(at_limit.encode()))
    yield Case("key_at_1024_bytes", envelope, body(envelope, [Obj(at_limit)]), items=((BUCKET, at_limit),))
    yield Case("key_over_1024_bytes", envelope, body(envelope, [Obj(at_limit + "x")]), reason="invalid_key")


def _lone_surrogate(envelope: str, trusting: bool) -> Iterator[Case]:
    """`photos-raw/\\ud800.jpg`: JSON can spell it, no S3 key can hold it."""
    surrogate = body(envelope, [Obj(_key("surrogate", envelope, "\ud800.jpg"))])
    yield Case("lone_surrogate", envelope, surrogate, "invalid_key")
    if envelope == "direct":  # a forger need not percent-encode it
        raw = records_document([Obj(_key("surrogate-raw", envelope, "\ud800.jpg"))], encode=False)
        yield Case("lone_surrogate_unencoded", envelope, raw, "invalid_key")


def _not_utf8(envelope: str, trusting: bool) -> Iterator[Case]:
    """`%FF` decodes to no UTF-8 in a Records key; in EventBridge, where keys are literal, it is three characters."""
    literal = _key("not-utf8", envelope, "%FF.jpg")
    if envelope == "eventbridge":
        yield Case("percent_ff", envelope, eventbridge(Obj(literal)), items=((BUCKET, literal),))
        return
    document = records_document([Obj(literal)], encode=False)
    yield Case("percent_ff", envelope, sns(document) if envelope == "sns" else document, "invalid_key")


def _buckets(envelope: str, trusting: bool) -> Iterator[Case]:
    """A foreign bucket is untrusted (with ALLOWED_BUCKETS); a name S3 refuses is invalid, whatever the allowlist.
    `beetroot-raw/photos-raw` + `photos-raw/x.jpg` hashes like `photos-raw/photos-raw/x.jpg` in beetroot-raw:
    refused, so the real photo, sent after it, keeps its photoId."""
    key = _key("foreign-bucket", envelope)
    foreign = body(envelope, [Obj(key, bucket=FOREIGN_BUCKET)])
    yield Case(
        "foreign_bucket", envelope, foreign, **_untrusted_unless(trusting, "untrusted_bucket", FOREIGN_BUCKET, key)
    )
    invalid = {"too_short": "ab", "too_long": "b" * 256, "space": "beet raw", "non_ascii": "bëet", "colon": "a:b"}
    for name, bucket in invalid.items():
        wrong = body(envelope, [Obj(_key(name, envelope), bucket=bucket)])
        yield Case(f"bucket_{name}", envelope, wrong, "invalid_bucket")
    legacy = {"aws_sample": "DOC-EXAMPLE-BUCKET1", "underscore": "Beet_Raw", "longest": "b" * 255}
    for name, bucket in legacy.items():  # us-east-1 before March 2018: the allowlist, not the name, decides
        key = _key(f"legacy-{name}", envelope)
        legit = body(envelope, [Obj(key, bucket=bucket)])
        yield Case(
            f"legacy_bucket_{name}", envelope, legit, **_untrusted_unless(trusting, "untrusted_bucket", bucket, key)
        )
    real_key = f"photos-raw/{_key('slash', envelope)}"
    forged = Obj(real_key.removeprefix("photos-raw/"), bucket=f"{BUCKET}/photos-raw")
    yield Case("bucket_with_slash", envelope, body(envelope, [forged]), "invalid_bucket")
    yield Case("real_photo_after_slash", envelope, body(envelope, [Obj(real_key)]), items=((BUCKET, real_key),))


def _record_counts(envelope: str, trusting: bool) -> Iterator[Case]:
    """At most MAX_RECORDS_PER_MESSAGE (100) records; a 1 MiB body holds thousands."""
    if envelope == "eventbridge":
        return
    objects = [Obj(_key("101-records", envelope, f"{n}.jpg")) for n in range(101)]
    yield Case("101_records", envelope, body(envelope, objects), "too_many_records")
    if envelope == "direct":
        objects = [Obj(_key("100-records", envelope, f"{n}.jpg")) for n in range(100)]
        yield Case("100_records", envelope, body(envelope, objects), items=tuple((BUCKET, o.key) for o in objects))
        yield Case("1_MiB_of_records", envelope, storm_body(), "too_many_records")


def storm_body(bytes_max: int = BODY_BYTES_MAX) -> str:
    """A direct body of at most `bytes_max` bytes with as many (small, distinct) records as fit."""
    record = '{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"%s"},"object":{"key":"photos-raw/storm/%07d"}}}'
    parts: list[str] = []
    size = len('{"Records":[]}')
    while size + len(record % (BUCKET, 0)) + 1 <= bytes_max:
        parts.append(record % (BUCKET, len(parts)))
        size += len(parts[-1]) + 1
    return '{"Records":[' + ",".join(parts) + "]}"


def _ambiguous(envelope: str, trusting: bool) -> Iterator[Case]:
    """A repeated member name at any level, or NaN / Infinity: readers could disagree on what was sent."""
    obj = [Obj(_key("ambiguous", envelope))]
    member = '"detail":{}' if envelope == "eventbridge" else '"Records":[]'
    repeated = body(envelope, obj, lambda text: f"{text[:-1]},{member}}}")
    yield Case("repeated_top_level_member", envelope, repeated, "ambiguous_json")
    bucket = f'"name":"{BUCKET}"'
    nested = body(envelope, obj, lambda text: text.replace(bucket, f'{bucket},"name":"{FOREIGN_BUCKET}"', 1))
    yield Case("repeated_bucket_name", envelope, nested, "ambiguous_json")
    for name, size in (("nan_size", float("nan")), ("infinite_size", float("inf"))):
        yield Case(name, envelope, body(envelope, [Obj(_key(name, envelope), size=size)]), "ambiguous_json")
    if envelope == "sns":
        topic = f'"TopicArn":"{TOPIC}"'
        repeated_topic = body(envelope, obj).replace(topic, f'{topic},"TopicArn":"{FOREIGN_TOPIC}"')
        yield Case("repeated_topic", envelope, repeated_topic, "ambiguous_json")


def _times_and_sizes(envelope: str, trusting: bool) -> Iterator[Case]:
    """An eventTime that cannot be read, out-of-range years included, is no event time: uploadedAt is the ingest
    time. A size out of range is no size."""
    for name, event_time in (("year_0", "0001-01-01T00:00:00+01:00"), ("year_10000", "9999-12-31T23:59:59-01:00")):
        key = _key(name, envelope)
        timeless = body(envelope, [Obj(key, event_time=event_time)])
        yield Case(name, envelope, timeless, items=((BUCKET, key),), checks=("no_event_time",))
    for name, size in (("huge_size", 10**30), ("negative_size", -1)):
        key = _key(name, envelope)
        yield Case(name, envelope, body(envelope, [Obj(key, size=size)]), items=((BUCKET, key),), checks=("no_size",))


def _event_times_of_any_type(envelope: str, trusting: bool) -> Iterator[Case]:
    """An eventTime (EventBridge: time) that is not a string at all is no event time either: the photo is written,
    where a number used to quarantine the whole message as broken_structure."""
    for name, event_time in (("number", 1730462400), ("object", {"at": "now"}), ("list", []), ("boolean", True)):
        key = _key(f"time-{name}", envelope)
        timeless = body(envelope, [Obj(key, event_time=event_time)])
        yield Case(f"event_time_{name}", envelope, timeless, items=((BUCKET, key),), checks=("no_event_time",))


def _folder_markers(envelope: str, trusting: bool) -> Iterator[Case]:
    """The S3 console's "Create folder": a zero-byte `photos-raw/.../` that fires ObjectCreated:Put. Skipped as
    `folder_marker`, never written; a photo in the same message still is."""
    folder = _key("folder", envelope, "2024/")
    yield Case("folder_marker", envelope, body(envelope, [Obj(folder, size=0)]))
    if envelope != "eventbridge":
        photo = _key("folder", envelope, "2024/photo.jpg")
        both = body(envelope, [Obj(folder, size=0), Obj(photo)])
        yield Case("folder_marker_and_photo", envelope, both, items=((BUCKET, photo),))


def _long_values(envelope: str, trusting: bool) -> Iterator[Case]:
    """Values that reach a log line as they are, at any length: an eventName or detail-type of 900,000
    characters, of characters a log line must escape (6 or 12 bytes each once escaped), beside a 1,024-byte key
    of control characters; a hundred records each logging a long one. Every line stays within 16 KiB."""
    name = "ObjectRemoved:" if envelope != "eventbridge" else "Object Removed "
    huge = name + "x" * 900_000
    yield Case("event_name_900_KB", envelope, body(envelope, [Obj(_key("long-name", envelope), event=huge)]))
    escaped = name + "\x85\u202e\U000e0001\x7f" * 15_000  # C1, a bidi override, a tag, DEL
    control_key = _key("escaped-name", envelope, "") + "\x01" * 980
    yield Case("escaped_event_name", envelope, body(envelope, [Obj(control_key, event=escaped)]))
    if envelope != "eventbridge":
        objects = [Obj(_key("long-names", envelope, f"{n}.jpg"), event=name + "y" * 9_000) for n in range(100)]
        yield Case("100_long_event_names", envelope, body(envelope, objects))


def _item_too_large(envelope: str, trusting: bool) -> Iterator[Case]:
    """DynamoDB refuses an item over 400 KB: the content can never pass, so the message is quarantined."""
    large = body(envelope, [Obj(_key("large", envelope), etag="e" * 410_000)])
    yield Case("item_over_400_KB", envelope, large, "invalid_item")


def _topics(envelope: str, trusting: bool) -> Iterator[Case]:
    """An SNS envelope from a topic outside ALLOWED_TOPIC_ARNS, or from none, is untrusted."""
    if envelope != "sns":
        return
    for name, topic in (("foreign_topic", FOREIGN_TOPIC), ("no_topic", None)):
        key = _key(name, envelope)
        message = sns(records_document([Obj(key)]), topic)
        yield Case(name, envelope, message, **_untrusted_unless(trusting, "untrusted_topic", BUCKET, key))


def _eventbridge_resources(envelope: str, trusting: bool) -> Iterator[Case]:
    """An EventBridge envelope whose `resources` name a bucket outside the allowlist is untrusted."""
    if envelope != "eventbridge":
        return
    key = _key("resources", envelope)
    event = eventbridge(Obj(key), resources=[f"arn:aws:s3:::{FOREIGN_BUCKET}"])
    yield Case("foreign_resources", envelope, event, **_untrusted_unless(trusting, "untrusted_bucket", BUCKET, key))


def _test_events(envelope: str, trusting: bool) -> Iterator[Case]:
    """S3's test event is acknowledged, but only from an allowed bucket."""
    if envelope not in ("direct", "sns"):
        return
    for name, bucket in (("test_event", BUCKET), ("foreign_test_event", FOREIGN_BUCKET)):
        event = json.dumps(_sample("s3-testevent") | {"Bucket": bucket}, separators=(",", ":"))
        reason = "untrusted_bucket" if trusting and bucket != BUCKET else None
        yield Case(name, envelope, sns(event) if envelope == "sns" else event, reason)


def _one_bad_record(envelope: str, trusting: bool) -> Iterator[Case]:
    """One bad record poisons the whole message: nothing of it is written."""
    if envelope == "eventbridge":
        return
    objects = [Obj(_key("one-bad", envelope, "good.jpg")), Obj(_key("one-bad", envelope, "\ud800.jpg"))]
    yield Case("one_bad_record", envelope, body(envelope, objects), "invalid_key")


CASES: list[Callable[[str, bool], Iterator[Case]]] = [
    _plain,
    _control_characters,
    _key_lengths,
    _lone_surrogate,
    _not_utf8,
    _buckets,
    _record_counts,
    _ambiguous,
    _times_and_sizes,
    _event_times_of_any_type,
    _folder_markers,
    _long_values,
    _item_too_large,
    _topics,
    _eventbridge_resources,
    _test_events,
    _one_bad_record,
]


def corpus(*, trusting: bool) -> list[Case]:
    """Every case through every envelope, for a worker with the allowlists set (`trusting`) or unset."""
    cases = [case for envelope in ENVELOPES for build in CASES for case in build(envelope, trusting)]
    assert all(len(case.body.encode()) <= BODY_BYTES_MAX for case in cases)
    return cases
