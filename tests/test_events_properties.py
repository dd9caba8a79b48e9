"""Property-based tests of the parser: no input crashes it, keys survive S3's encoding, envelopes don't matter."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, quote_plus

from hypothesis import given, settings
from hypothesis import strategies as st

from service.ingest.events import ObjectRecord, PoisonMessageError, SkippedRecord, parse_body
from service.ingest.ids import photo_id
from tests import bodies

PREFIX = "photos-raw/"
unicode_text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), min_size=1, max_size=60)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
# Documents shaped like our envelopes, with any value in any slot: the nastiest inputs are nearly right ones.
field_values = json_values | st.sampled_from(["ObjectCreated:Put", "Object Created", "aws.s3", "Notification"])
near_documents = st.fixed_dictionaries(
    {},
    optional={
        "Records": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "eventName": field_values,
                    "eventTime": field_values,
                    "s3": st.fixed_dictionaries(
                        {},
                        optional={
                            "bucket": st.fixed_dictionaries({}, optional={"name": field_values}) | field_values,
                            "object": st.fixed_dictionaries(
                                {}, optional={"key": field_values, "size": field_values, "eTag": field_values}
                            )
                            | field_values,
                        },
                    )
                    | field_values,
                },
            )
            | field_values,
            max_size=3,
        )
        | field_values,
        "Type": field_values,
        "Message": field_values,
        "Event": field_values,
        "source": field_values,
        "detail-type": field_values,
        "detail": st.fixed_dictionaries(
            {}, optional={"bucket": field_values, "object": field_values, "reason": field_values}
        )
        | field_values,
    },
)


def settles(body: str) -> None:
    try:
        entries = parse_body(body, PREFIX)
    except PoisonMessageError as exc:
        assert exc.reason  # noqa: PT017 - either outcome is allowed; only the error's class is checked
        return
    assert all(isinstance(entry, ObjectRecord | SkippedRecord) for entry in entries)


@given(st.text())
def test_any_text_gives_records_or_a_classified_error(body: str) -> None:
    """Whatever text arrives, parsing returns entries or raises PoisonMessageError; nothing else escapes."""
    settles(body)


@given(st.binary())
def test_any_bytes_gives_records_or_a_classified_error(raw: bytes) -> None:
    """Bytes that SQS would carry as text (decoded leniently) never crash the parser."""
    settles(raw.decode("utf-8", errors="replace"))


@given(json_values | near_documents)
@settings(max_examples=300)
def test_any_json_value_gives_records_or_a_classified_error(document: Any) -> None:
    """Any JSON document, including ones shaped almost like an envelope, settles into entries or poison."""
    settles(json.dumps(document))
    settles(json.dumps({"Type": "Notification", "Message": json.dumps(document)}))


@given(unicode_text)
def test_any_unicode_key_survives_s3_form_encoding_and_our_decoding(suffix: str) -> None:
    """S3 form-encodes keys (space as `+`, `+` as `%2B`, UTF-8 percent-escapes); one decoding restores them."""
    key = PREFIX + suffix
    for encoded in (quote_plus(key, safe="/"), quote_plus(key, safe=""), quote(key, safe="/")):
        (record,) = parse_body(direct_body("b", encoded), PREFIX)
        assert isinstance(record, ObjectRecord)
        assert record.key == key


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789.-", min_size=3, max_size=20), unicode_text)
def test_the_photo_id_never_depends_on_the_envelope(bucket: str, suffix: str) -> None:
    """Direct, SNS-wrapped, SNS raw and EventBridge deliveries of one object give one photoId."""
    key = PREFIX + suffix
    photo = bodies.Photo(bucket, key)
    ids = set()
    for body in (bodies.direct(photo), bodies.sns(photo), bodies.eventbridge(photo)):
        (record,) = parse_body(body, PREFIX)
        assert isinstance(record, ObjectRecord)
        ids.add(photo_id(record.bucket, record.key))
    assert ids == {photo_id(bucket, key)}


def direct_body(bucket: str, encoded_key: str) -> str:
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "eventTime": "2024-05-02T10:15:30.123Z",
        "s3": {"bucket": {"name": bucket}, "object": {"key": encoded_key, "size": 1}},
    }
    return json.dumps({"Records": [record]})
