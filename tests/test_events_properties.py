"""Property-based tests of the trust boundary, from the body to the item: no input crashes the parser or the item
builder, keys survive S3's encoding, envelopes don't matter, and what passes is something S3 could have sent.

The inputs include what a forger would try: lone surrogates, NaN and Infinity, huge integers, keys past 1,024
bytes, any bucket name, repeated member names. Every body ends in entries or a classified `PoisonMessageError`,
and every object record becomes an item DynamoDB's wire form can carry.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, quote_plus

from hypothesis import given, settings
from hypothesis import strategies as st

from service.ingest.events import ObjectRecord, PoisonMessageError, SkippedRecord, parse_body
from service.ingest.ids import photo_id
from service.ingest.items import build_item
from service.ingest.trust import ANY_SENDER, KEY_BYTES_MAX, Trust
from tests import bodies

PREFIX = "photos-raw/"
NOW = datetime(2026, 11, 1, tzinfo=UTC)
BUCKET_NAME = re.compile(r"[A-Za-z0-9._-]{3,255}")  # every name S3 has ever allowed, legacy us-east-1 ones too
any_text = st.text(alphabet=st.characters(exclude_categories=()), max_size=40)  # lone surrogates included
valid_text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), min_size=1, max_size=60)
valid_buckets = st.from_regex(BUCKET_NAME, fullmatch=True)
huge_integers = st.integers(min_value=2**62, max_value=10**40) | st.integers(max_value=-1)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | huge_integers | st.floats() | any_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4),
    max_leaves=20,
)
# Documents shaped like our envelopes, with any value in any slot: the nastiest inputs are nearly right ones.
field_values = (
    json_values
    | valid_buckets
    | st.sampled_from(["ObjectCreated:Put", "Object Created", "aws.s3", "Notification", "0001-01-01T00:00:00+01:00"])
    | st.builds(lambda tail: PREFIX + tail, any_text)
)
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
        "TopicArn": field_values,
        "Message": field_values,
        "Event": field_values,
        "Bucket": field_values,
        "source": field_values,
        "detail-type": field_values,
        "time": field_values,
        "resources": st.lists(field_values, max_size=2) | field_values,
        "detail": st.fixed_dictionaries(
            {}, optional={"bucket": field_values, "object": field_values, "reason": field_values}
        )
        | field_values,
    },
)
trusts = st.sampled_from(
    [Trust(), Trust(frozenset({"beetroot-raw"}), frozenset({"arn:aws:sns:us-east-1:111122223333:t"}), 2)]
)


def settles(body: str, trust: Trust = ANY_SENDER) -> None:
    """Entries or a classified error; every object record is one S3 could have sent, and builds an item."""
    try:
        entries = parse_body(body, PREFIX, trust)
    except PoisonMessageError as exc:
        assert exc.reason  # noqa: PT017 - either outcome is allowed; only the error's class is checked
        return
    assert all(isinstance(entry, ObjectRecord | SkippedRecord) for entry in entries)
    for record in entries:
        if isinstance(record, ObjectRecord):
            assert_a_storable_item(record, trust)


def assert_a_storable_item(record: ObjectRecord, trust: Trust) -> None:
    assert BUCKET_NAME.fullmatch(record.bucket)
    assert trust.allowed_buckets is None or record.bucket in trust.allowed_buckets
    assert len(record.key.encode()) <= KEY_BYTES_MAX  # and valid Unicode, or encode() would raise
    item = build_item(record, NOW)
    assert item["s3Key"]["S"] == record.key
    datetime.fromisoformat(item["uploadedAt"]["S"])
    assert item.get("size", {"N": "0"})["N"].isdigit()
    json.dumps(item, allow_nan=False, ensure_ascii=False).encode()  # valid Unicode throughout: DynamoDB's wire


@given(st.text(alphabet=st.characters(exclude_categories=())), trusts)
def test_any_text_gives_records_or_a_classified_error(body: str, trust: Trust) -> None:
    """Whatever text arrives, parsing returns entries or raises PoisonMessageError; nothing else escapes."""
    settles(body, trust)


@given(st.binary())
def test_any_bytes_gives_records_or_a_classified_error(raw: bytes) -> None:
    """Bytes that SQS would carry as text (decoded leniently) never crash the parser."""
    settles(raw.decode("utf-8", errors="replace"))


@given(json_values | near_documents, trusts)
@settings(max_examples=400)
def test_any_json_value_gives_records_or_a_classified_error(document: Any, trust: Trust) -> None:
    """Any JSON document (NaN, Infinity and huge numbers included), shaped almost like an envelope or not, directly
    or inside SNS, settles into entries that build items, or into poison."""
    settles(json.dumps(document), trust)
    settles(json.dumps({"Type": "Notification", "Message": json.dumps(document)}), trust)


@given(st.integers(min_value=4301, max_value=6000))
def test_a_number_too_long_to_read_is_poison(digits: int) -> None:
    """Python refuses to read integers of more than 4,300 digits: that is a body that is not JSON to us."""
    settles('{"Records": [{"s3": {"object": {"size": ' + "9" * digits + "}}}]}")


@given(valid_text)
def test_any_unicode_key_survives_s3_form_encoding_and_our_decoding(suffix: str) -> None:
    """S3 form-encodes keys (space as `+`, `+` as `%2B`, UTF-8 percent-escapes); one decoding restores them."""
    key = PREFIX + suffix
    for encoded in (quote_plus(key, safe="/"), quote_plus(key, safe=""), quote(key, safe="/")):
        (entry,) = parse_body(direct_body("bkt", encoded), PREFIX)
        assert_kept(entry, key)


def assert_kept(entry: ObjectRecord | SkippedRecord, key: str) -> None:
    """The exact key, in an item; or, for a folder marker (a key ending in `/`), in a skipped record."""
    assert entry.key == key
    if key.endswith("/"):
        assert isinstance(entry, SkippedRecord)
        assert entry.reason == "folder_marker"
    else:
        assert isinstance(entry, ObjectRecord)
        assert build_item(entry, NOW)["s3Key"]["S"] == key


@given(st.text(alphabet=st.characters(exclude_categories=()), max_size=1100))
def test_any_key_through_any_envelope_is_kept_exactly_or_refused_as_invalid_key(suffix: str) -> None:
    """A key that is valid Unicode and at most 1,024 UTF-8 bytes is kept exactly, control characters and all;
    any other (a lone surrogate, too long) is `invalid_key`, in every envelope."""
    key = PREFIX + suffix
    encoded = quote_plus(key, safe="/", errors="surrogatepass")
    forms = [direct_body("beetroot-raw", encoded), sns_body(direct_body("beetroot-raw", encoded))]
    forms.append(bodies.eventbridge(bodies.Photo("beetroot-raw", key), ensure_ascii=True))
    try:
        valid = len(key.encode()) <= KEY_BYTES_MAX
    except UnicodeEncodeError:
        valid = False
        forms.append(direct_body("beetroot-raw", key))  # a forger need not percent-encode
    for body in forms:
        if valid:
            (entry,) = parse_body(body, PREFIX)
            assert_kept(entry, key)
        else:
            try:
                parse_body(body, PREFIX)
            except PoisonMessageError as exc:
                assert exc.reason == "invalid_key"  # noqa: PT017
            else:
                raise AssertionError(f"accepted {key!r}")


@given(st.text(max_size=70) | st.text(alphabet="aB1._-/", min_size=250, max_size=260))
def test_any_bucket_name_is_one_s3_accepts_or_invalid_bucket(bucket: str) -> None:
    """Only names S3 has ever allowed pass; `/` never does, so no bucket can borrow another object's photoId."""
    try:
        (record,) = parse_body(bodies.eventbridge(bodies.Photo(bucket, PREFIX + "x.jpg"), ensure_ascii=True), PREFIX)
    except PoisonMessageError as exc:
        assert exc.reason in {"invalid_bucket", "missing_bucket_or_key"}  # noqa: PT017
        assert not BUCKET_NAME.fullmatch(bucket)
    else:
        assert (isinstance(record, SkippedRecord) and not bucket) or BUCKET_NAME.fullmatch(bucket)


@given(valid_buckets, valid_text)
def test_the_photo_id_never_depends_on_the_envelope(bucket: str, suffix: str) -> None:
    """Direct, SNS-wrapped, SNS raw and EventBridge deliveries of one object give one photoId."""
    key = PREFIX + suffix
    photo = bodies.Photo(bucket, key)
    ids = set()
    for body in (bodies.direct(photo), bodies.sns(photo), bodies.eventbridge(photo)):
        (record,) = parse_body(body, PREFIX)
        assert isinstance(record, ObjectRecord)
        ids.add(build_item(record, NOW)["photoId"]["S"])
    assert ids == {photo_id(bucket, key)}


def sns_body(message: str) -> str:
    return json.dumps({"Type": "Notification", "TopicArn": "arn:aws:sns:us-east-1:111122223333:t", "Message": message})


def direct_body(bucket: str, encoded_key: str) -> str:
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "eventTime": "2024-05-02T10:15:30.123Z",
        "s3": {"bucket": {"name": bucket}, "object": {"key": encoded_key, "size": 1}},
    }
    return json.dumps({"Records": [record]})
