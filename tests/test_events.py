"""Parsing SQS bodies into S3 object records, driven by real AWS message bodies (see tests/events/SOURCES.md)."""

from __future__ import annotations

import json

import pytest

from service.ingest.events import ObjectRecord, PoisonMessageError, SkippedRecord, parse_body
from service.ingest.ids import photo_id
from tests.conftest import event_body

PREFIX = "photos-raw/"
# The golden corpus: each created object's envelope, its decoded key (None: not checked) and AWS's photoId.
CREATED = [
    ("s3-direct-put-photos-raw", "photos-raw/HappyFace.jpg", "47f1d3ed99273a6e196e"),
    ("sns-wrapped-s3-put", "photos-raw/HappyFace.jpg", "47f1d3ed99273a6e196e"),
    ("sns-raw-delivery-s3-put", "photos-raw/HappyFace.jpg", "47f1d3ed99273a6e196e"),
    ("s3-key-with-spaces-and-unicode", "photos-raw/2024 Trip/Café C++ @ 東京: day=1.jpg", "94c27ed80fa411bc245c"),
    ("s3-key-literal-percent", "photos-raw/100% real.jpg", "076efe85c56798f5d2bd"),
    ("s3-key-encoded-at-sign", "photos-raw/a@b", "4e85ecafb798f6898d53"),
    ("s3-multipart-upload", "photos-raw/test-key", "862f90f9e19230baee96"),
    ("s3-object-created-copy", None, "82fa9043a282a869890b"),
    ("s3-object-created-post", None, "b0ddd81820882f05e1fa"),
    ("eventbridge-object-created-photos-raw", "photos-raw/example-key.jpg", "037a739adede150f5f2b"),
]
# Every other body of the corpus, and why it writes nothing.
SKIPPED = [
    ("s3-direct-put", "outside_prefix"),
    ("s3-direct-put-powertools", "outside_prefix"),
    ("s3-key-observed-colon-plus", "outside_prefix"),
    ("s3-key-percent20-synthetic", "outside_prefix"),
    ("s3-extra-fields-empty-versionid", "outside_prefix"),
    ("sqs-body-from-lambda-event-s3", "outside_prefix"),
    ("eventbridge-object-created-powertools", "outside_prefix"),
    ("eventbridge-object-created", "outside_prefix"),
    ("s3-object-removed-delete", "not_object_created"),
    ("s3-object-removed-delete-marker-created", "not_object_created"),
    ("s3-object-tagging-put", "not_object_created"),
    ("s3-object-restore-completed", "not_object_created"),
    ("s3-lifecycle-transition-synthetic", "not_object_created"),
    ("s3-replication-failed-synthetic", "not_object_created"),
    ("eventbridge-object-deleted-powertools", "not_object_created"),
    ("eventbridge-object-deleted", "not_object_created"),
    ("eventbridge-object-restore-completed", "not_object_created"),
    ("s3-folder-marker-put", "folder_marker"),
    ("s3-testevent", "test_event"),
    ("sns-wrapped-s3-testevent", "test_event"),
    ("sns-wrapped-non-s3-message", "not_an_s3_event"),
]


def parse(name: str) -> list[ObjectRecord | SkippedRecord]:
    return parse_body(event_body(name), PREFIX)


def only_record(name: str) -> ObjectRecord:
    entries = parse(name)
    assert len(entries) == 1
    record = entries[0]
    assert isinstance(record, ObjectRecord), record
    return record


@pytest.mark.parametrize(("name", "key", "expected_id"), CREATED)
def test_created_objects_give_the_documented_photo_id(name: str, key: str | None, expected_id: str) -> None:
    """Every envelope of a created object under the prefix yields one record whose photoId matches AWS's sample."""
    record = only_record(name)
    if key is not None:
        assert record.key == key
    assert photo_id(record.bucket, record.key) == expected_id


@pytest.mark.parametrize(("name", "reason"), SKIPPED)
def test_everything_else_is_skipped_with_a_reason(name: str, reason: str) -> None:
    """Out-of-prefix keys, non-create events, test events and foreign payloads are acknowledged, not written."""
    entries = parse(name)
    assert entries
    assert all(isinstance(e, SkippedRecord) and e.reason == reason for e in entries), entries


def test_aws_sample_with_a_legacy_bucket_name_is_written_under_its_prefix() -> None:
    """AWS's EventBridge samples name `DOC-EXAMPLE-BUCKET1`: upper case, a legacy us-east-1 name that such
    buckets still have. It was `invalid_bucket` (quarantined); its object is now a record like any other, with
    the photoId SOURCES.md gives."""
    [record] = parse_body(event_body("eventbridge-object-created"), "example-")
    assert isinstance(record, ObjectRecord)
    assert (record.bucket, record.key) == ("DOC-EXAMPLE-BUCKET1", "example-key")
    assert photo_id(record.bucket, record.key) == "ac54574c6a46295fe686"


def test_keys_are_decoded_exactly_once_before_the_prefix_check() -> None:
    """`%25` becomes `%` and stays: a second decoding would corrupt keys holding `%` followed by hex digits."""
    assert only_record("s3-key-literal-percent").key == "photos-raw/100% real.jpg"
    skipped = parse("s3-key-observed-colon-plus")[0]
    assert isinstance(skipped, SkippedRecord)
    assert skipped.key == "job/subjob/2021-05-12T19:26:00+00:00/1.log"


def test_percent20_spaces_from_emulators_also_decode() -> None:
    """`%20` (what emulators send) decodes like `+`: unquote_plus accepts both."""
    skipped = parse("s3-key-percent20-synthetic")[0]
    assert isinstance(skipped, SkippedRecord)
    assert skipped.key == "Happy Face.jpg"


def test_the_prefix_is_matched_on_the_decoded_key() -> None:
    """An encoded prefix (`photos-raw%2F`, as moto sends) still matches once decoded."""
    body = json.loads(event_body("s3-direct-put-photos-raw"))
    body["Records"][0]["s3"]["object"]["key"] = "photos-raw%2Fa+b.jpg"
    (record,) = parse_body(json.dumps(body), PREFIX)
    assert isinstance(record, ObjectRecord)
    assert record.key == "photos-raw/a b.jpg"


def test_eventbridge_keys_are_taken_literally() -> None:
    """EventBridge sends keys unencoded: a `+` stays a `+` and `%20` stays `%20`."""
    body = json.loads(event_body("eventbridge-object-created-photos-raw"))
    body["detail"]["object"]["key"] = "photos-raw/a+b%20c.jpg"
    (record,) = parse_body(json.dumps(body), PREFIX)
    assert isinstance(record, ObjectRecord)
    assert record.key == "photos-raw/a+b%20c.jpg"


def test_optional_fields_are_carried_when_present() -> None:
    """size, eTag, versionId and sequencer come through; eventName loses nothing."""
    record = only_record("eventbridge-object-created-photos-raw")
    assert (record.size, record.etag, record.version_id, record.sequencer) == (
        5,
        "b1946ac92492d2347c6235b4d2611184",
        "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
        "617f08299329d189",
    )
    direct = only_record("s3-direct-put-photos-raw")
    assert direct.event_name == "ObjectCreated:Put"
    assert direct.event_time is not None


def test_missing_optional_fields_are_none() -> None:
    """A record with only bucket, key and eventName is still a photo."""
    body = {
        "Records": [
            {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "bkt"}, "object": {"key": "photos-raw/x"}}}
        ]
    }
    (record,) = parse_body(json.dumps(body), PREFIX)
    assert record == ObjectRecord(bucket="bkt", key="photos-raw/x", event_name="ObjectCreated:Put")


def test_several_records_in_one_body_are_all_parsed() -> None:
    """Two creates and a delete give two records and one skip, in order."""
    entries = parse("s3-multiple-records-composed")
    ids = [photo_id(e.bucket, e.key) for e in entries if isinstance(e, ObjectRecord)]
    assert ids == ["3cb85f12ce707288ac9b", "82fa9043a282a869890b"]
    assert isinstance(entries[2], SkippedRecord)
    assert entries[2].reason == "not_object_created"


@pytest.mark.parametrize(
    "record",
    [
        {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "bkt"}, "object": {}}},
        {"eventName": "ObjectCreated:Put", "s3": {"object": {"key": "photos-raw/x"}}},
        {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": ""}, "object": {"key": "photos-raw/x"}}},
        {"eventName": "ObjectCreated:Put"},
    ],
)
def test_records_missing_bucket_or_key_are_skipped(record: dict[str, object]) -> None:
    """As in the old Lambda: a record without a bucket or key is skipped (with a warning), not poison."""
    (entry,) = parse_body(json.dumps({"Records": [record]}), PREFIX)
    assert isinstance(entry, SkippedRecord)
    assert entry.reason == "missing_bucket_or_key"


def test_an_empty_records_list_means_nothing_to_do() -> None:
    """`{"Records": []}` is a valid body with no records: acknowledged."""
    assert parse_body('{"Records": []}', PREFIX) == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("not json", "body_not_json"),
        ("", "body_not_json"),
        ('{"Records": [', "body_not_json"),
        ("[1, 2]", "body_not_object"),
        ('"a string"', "body_not_object"),
        ('{"Records": {"s3": {}}}', "records_not_list"),
        ('{"Records": ["x"]}', "broken_structure"),
        ('{"Records": [{"s3": "x"}]}', "broken_structure"),
        (
            '{"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": 7}, "object": {"key": "k"}}}]}',
            "broken_structure",
        ),
        ('{"Type": "Notification", "Message": {"Records": []}}', "sns_message_not_string"),
        ('{"Type": "Notification", "Message": "not json"}', "sns_message_not_json"),
        (
            json.dumps(
                {
                    "Records": [
                        {
                            "eventName": "ObjectCreated:Put",
                            "s3": {"bucket": {"name": "bkt"}, "object": {"key": "photos-raw/%FF"}},
                        }
                    ]
                }
            ),
            "invalid_key",
        ),
        ('{"source": "aws.s3", "detail-type": "Object Created", "detail": []}', "broken_structure"),
    ],
)
def test_broken_bodies_are_poison_with_a_reason(body: str, reason: str) -> None:
    """A body that can never be processed raises PoisonMessageError naming why, and nothing else."""
    with pytest.raises(PoisonMessageError) as caught:
        parse_body(body, PREFIX)
    assert caught.value.reason == reason


def test_sns_is_unwrapped_only_once() -> None:
    """An SNS envelope inside an SNS envelope is not an S3 event."""
    inner = event_body("sns-wrapped-s3-put")
    outer = json.dumps({"Type": "Notification", "Message": inner})
    (entry,) = parse_body(outer, PREFIX)
    assert isinstance(entry, SkippedRecord)
    assert entry.reason == "not_an_s3_event"


def test_the_lifecycle_quirk_s3_prefix_on_event_names_is_tolerated() -> None:
    """Some libraries' samples spell `s3:ObjectCreated:Put`; it is still a create."""
    body = {
        "Records": [
            {"eventName": "s3:ObjectCreated:Put", "s3": {"bucket": {"name": "bkt"}, "object": {"key": "photos-raw/x"}}}
        ]
    }
    (record,) = parse_body(json.dumps(body), PREFIX)
    assert isinstance(record, ObjectRecord)
    assert record.event_name == "ObjectCreated:Put"


def test_the_lambda_shaped_event_is_not_mistaken_for_a_body() -> None:
    """A whole Lambda SQS event (lower-case `body`) is not what ReceiveMessage returns: its records are skipped."""
    entries = parse("sqs-lambda-event-s3")
    assert all(isinstance(e, SkippedRecord) and e.reason == "missing_bucket_or_key" for e in entries)
