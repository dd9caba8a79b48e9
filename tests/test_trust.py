"""The trust boundary, one behaviour per test: each case the issue saw on main, and each rule that replaced it."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError
from structlog.testing import capture_logs

from service.aws.errors import ErrorKind, classify, pauses_intake
from service.ingest.events import ObjectRecord, PoisonMessageError, parse_body
from service.ingest.ids import photo_id
from service.ingest.items import Item, build_item
from service.ingest.outcomes import Disposition, Outcome, PutOutcome
from service.ingest.settle import Ingest
from service.ingest.trust import ANY_SENDER, Trust
from service.metrics import Metrics
from tests.hostile import Obj, eventbridge, records_document, sns

PREFIX = "photos-raw/"
NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)


def reason_of(body: str, trust: Trust = ANY_SENDER) -> str:
    with pytest.raises(PoisonMessageError) as caught:
        parse_body(body, PREFIX, trust)
    return caught.value.reason


class Table:
    """A store that answers INSERTED, or raises what it is told to for one key."""

    def __init__(self, fail: dict[str, BaseException] | None = None, slow_key: str | None = None) -> None:
        self.fail = fail or {}
        self.slow_key = slow_key
        self.finished: list[str] = []
        self.cancelled: list[str] = []

    async def put(self, item: Item) -> PutOutcome:
        key = item["s3Key"]["S"]
        if key == self.slow_key:
            try:
                await asyncio.sleep(0.2)  # a slow put, still running when the other one fails
            except asyncio.CancelledError:
                self.cancelled.append(key)
                raise
        self.finished.append(key)
        if key in self.fail:
            raise self.fail[key]
        return PutOutcome.INSERTED


class Watcher:
    def __init__(self, raise_on_success: bool = False) -> None:
        self.succeeded = 0
        self.failed: list[ErrorKind] = []
        self.raise_on_success = raise_on_success

    def put_succeeded(self) -> None:
        self.succeeded += 1
        if self.raise_on_success and self.succeeded == 1:
            raise RuntimeError("a bug in the watcher")

    def put_failed(self, kind: ErrorKind) -> None:
        self.failed.append(kind)


def validation_error(message: str) -> ClientError:
    error = {"Code": "ValidationException", "Message": message}
    return ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400}}, "PutItem")


async def test_a_key_holding_a_lone_surrogate_is_quarantined_once_as_invalid_key() -> None:
    """`photos-raw/\\ud800.jpg` used to pass parsing and raise in photo_id, outside the put's error handling:
    released and retried until redrive. It is now poison, quarantined at the first receive."""
    body = records_document([Obj("photos-raw/\ud800.jpg")], encode=False)
    with capture_logs() as logs:
        settlement = await Ingest(Table(), PREFIX, Metrics()).settle_body(body)
    assert (settlement.disposition, settlement.reason) == (Disposition.QUARANTINE, "invalid_key")
    assert logs == []  # the runtime logs its one quarantine line


def test_an_event_time_out_of_range_is_no_event_time() -> None:
    """`0001-01-01T00:00:00+01:00` is year 0 in UTC: OverflowError on main. It is now no event time, as an
    unreadable one always was: uploadedAt is the ingest time."""
    for event_time in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "yesterday", "\ud800"):
        record = ObjectRecord("beetroot-raw", "photos-raw/x.jpg", "ObjectCreated:Put", event_time=event_time)
        item = build_item(record, NOW)
        assert item["uploadedAt"] == item["ingestedAt"] == {"S": NOW.isoformat()}


async def test_a_multi_record_message_is_settled_only_after_every_put_finished() -> None:
    """On main, gather handed the first exception up at once and the message was settled while other puts ran.
    Now the message's puts run in one task group: when one raises (here, a bug in the watcher), the others are
    cancelled and awaited before settle raises, so no put outlives its message."""
    table = Table(slow_key="photos-raw/slow.jpg")
    ingest = Ingest(table, PREFIX, Metrics(), Watcher(raise_on_success=True))
    entries = parse_body(records_document([Obj("photos-raw/fast.jpg"), Obj("photos-raw/slow.jpg")]), PREFIX)
    with pytest.raises(ExceptionGroup) as raised:
        await ingest.settle(entries)
    assert raised.group_contains(RuntimeError, match="a bug in the watcher")
    assert table.finished == ["photos-raw/fast.jpg"]
    assert table.cancelled == ["photos-raw/slow.jpg"]  # ended before settle returned, not left running


async def test_a_failing_put_does_not_settle_its_message_before_the_others() -> None:
    """One record's classified failure and another's slow success: both are settled, the message released."""
    table = Table({"photos-raw/a.jpg": validation_error("something else")}, slow_key="photos-raw/b.jpg")
    entries = parse_body(records_document([Obj("photos-raw/a.jpg"), Obj("photos-raw/b.jpg")]), PREFIX)
    settlement = await Ingest(table, PREFIX, Metrics()).settle(entries)
    assert [record.outcome for record in settlement.records] == [Outcome.FAILED, Outcome.INSERTED]
    assert settlement.disposition is Disposition.RELEASE


@pytest.mark.parametrize(
    "body",
    [
        '{"Records":[{"s3":{"bucket":{"name":"beetroot-raw"},"object":{"key":"photos-raw/x"}}}],"Records":[]}',
        '{"Records":[{"s3":{"bucket":{"name":"beetroot-raw","name":"other-bucket"},"object":{"key":"k"}}}]}',
        '{"Records":[{"s3":{"bucket":{"name":"beetroot-raw"},"object":{"key":"photos-raw/x","size":NaN}}}]}',
        '{"Records":[{"s3":{"bucket":{"name":"beetroot-raw"},"object":{"key":"photos-raw/x","size":-Infinity}}}]}',
        '{"Type":"Notification","Message":"{\\"Records\\":[],\\"Records\\":[]}"}',
    ],
)
def test_ambiguous_json_is_poison(body: str) -> None:
    """A repeated member (at any level, inside SNS too) was read as its last value, so `{"Records":[...],
    "Records":[]}` was deleted without a word; NaN and Infinity were accepted. Both are `ambiguous_json`."""
    assert reason_of(body) == "ambiguous_json"


def test_a_bucket_holding_a_slash_cannot_take_a_real_photos_id() -> None:
    """sha256("beetroot-raw/photos-raw" + "/" + "photos-raw/x.jpg") is the id of photos-raw/photos-raw/x.jpg in
    beetroot-raw. No bucket name holds `/`: the forged one is `invalid_bucket`, without any allowlist."""
    assert photo_id("beetroot-raw/photos-raw", "photos-raw/x.jpg") == photo_id(
        "beetroot-raw", "photos-raw/photos-raw/x.jpg"
    )
    for body in (
        records_document([Obj("photos-raw/x.jpg", bucket="beetroot-raw/photos-raw")]),
        eventbridge(Obj("photos-raw/x.jpg", bucket="beetroot-raw/photos-raw")),
    ):
        assert reason_of(body) == "invalid_bucket"


@pytest.mark.parametrize("name", ["ab", "b" * 256, "beet raw", "beet:raw", "beet/raw", "bëet", "beet\x00", ""])
def test_bucket_names_s3_never_allowed_are_invalid(name: str) -> None:
    """3-255 of A-Z a-z 0-9 . - _ (every name S3 has ever allowed), or `invalid_bucket` (an empty name is a
    record without a bucket: skipped, as the old Lambda did)."""
    body = records_document([Obj("photos-raw/x.jpg", bucket=name)])
    if name:
        assert reason_of(body) == "invalid_bucket"
    else:
        [entry] = parse_body(body, PREFIX)
        assert not isinstance(entry, ObjectRecord)


def test_keys_are_checked_after_decoding_at_1024_utf8_bytes() -> None:
    """1,024 UTF-8 bytes of decoded key pass (the item keeps them exactly); one more is `invalid_key`."""
    key = PREFIX + "é" * ((1024 - len(PREFIX)) // 2) + "x"
    assert len(key.encode()) == 1024
    [record] = parse_body(records_document([Obj(key)]), PREFIX)
    assert isinstance(record, ObjectRecord)
    assert record.key == key
    assert reason_of(records_document([Obj(key + "x")])) == "invalid_key"


def test_control_characters_in_a_key_are_kept_exactly() -> None:
    key = "photos-raw/\x1b[2J\x07\r\x00.jpg"
    [record] = parse_body(records_document([Obj(key)]), PREFIX)
    assert isinstance(record, ObjectRecord)
    assert build_item(record, NOW)["s3Key"] == {"S": key}


def test_more_records_than_the_limit_is_poison() -> None:
    """MAX_RECORDS_PER_MESSAGE (100 by default) bounds what one message can make the worker do."""
    objects = [Obj(f"photos-raw/{n}.jpg") for n in range(101)]
    assert len(parse_body(records_document(objects[:100]), PREFIX)) == 100
    assert reason_of(records_document(objects)) == "too_many_records"
    assert reason_of(records_document(objects[:3]), Trust(max_records=2)) == "too_many_records"


def test_senders_outside_the_allowlists_are_untrusted() -> None:
    """ALLOWED_BUCKETS and ALLOWED_TOPIC_ARNS: any other bucket or topic is untrusted; unset, any is believed."""
    trust = Trust(frozenset({"beetroot-raw"}), frozenset({"arn:aws:sns:us-east-1:111122223333:photos"}))
    foreign = records_document([Obj("photos-raw/x.jpg", bucket="other-bucket")])
    assert reason_of(foreign, trust) == "untrusted_bucket"
    assert parse_body(foreign, PREFIX)  # no allowlist: believed, as before
    assert (
        reason_of(sns(records_document([Obj("photos-raw/x.jpg")]), "arn:aws:sns:us-east-1:1:x"), trust)
        == "untrusted_topic"
    )
    assert reason_of(sns(records_document([Obj("photos-raw/x.jpg")]), None), trust) == "untrusted_topic"
    assert parse_body(
        sns(records_document([Obj("photos-raw/x.jpg")]), "arn:aws:sns:us-east-1:111122223333:photos"), PREFIX, trust
    )
    assert reason_of(eventbridge(Obj("photos-raw/x.jpg"), ["arn:aws:s3:::other-bucket"]), trust) == "untrusted_bucket"


async def test_an_untrusted_message_is_quarantined_and_counted_apart() -> None:
    """Never skipped and deleted: quarantined, and counted in MessagesUntrusted (and MessagesQuarantined)."""
    metrics = Metrics()
    ingest = Ingest(Table(), PREFIX, metrics, trust=Trust(frozenset({"beetroot-raw"})))
    settlement = await ingest.settle_body(records_document([Obj("photos-raw/x.jpg", bucket="other-bucket")]))
    assert (settlement.disposition, settlement.reason) == (Disposition.QUARANTINE, "untrusted_bucket")
    assert metrics.snapshot({})["MessagesUntrusted"] == 1


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("Item size has exceeded the maximum allowed size", ErrorKind.INVALID),
        (
            "One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an "
            "empty string value. Key: eTag",
            ErrorKind.INVALID,
        ),
        ("Number overflow. Attempting to store a number with magnitude larger than supported range", ErrorKind.INVALID),
        ("One of the required keys was not given a value", ErrorKind.MISCONFIGURED),
        (
            "One or more parameter values were invalid: Type mismatch for key photoId expected: N actual: S",
            ErrorKind.MISCONFIGURED,
        ),
        ("One or more parameter values were invalid: Missing the key photoId in the item", ErrorKind.MISCONFIGURED),
        ("Invalid ConditionExpression: Syntax error", ErrorKind.REJECTED),
    ],
)
def test_validation_errors_tell_the_items_content_from_the_tables_schema(message: str, kind: ErrorKind) -> None:
    """An item DynamoDB refuses for its content is INVALID (quarantine, no retry); a key schema that refuses every
    put is MISCONFIGURED, an environment error that pauses intake; any other validation error stays REJECTED."""
    assert classify(validation_error(message)) is kind
    assert pauses_intake(kind) is (kind is ErrorKind.MISCONFIGURED)


async def test_a_put_refused_for_its_content_quarantines_and_spares_health() -> None:
    """`invalid_item`: quarantined at once, and the heartbeat's watcher hears nothing (health is untouched)."""
    watcher = Watcher()
    table = Table({"photos-raw/x.jpg": validation_error("Item size has exceeded the maximum allowed size")})
    settlement = await Ingest(table, PREFIX, Metrics(), watcher).settle_body(
        records_document([Obj("photos-raw/x.jpg")])
    )
    assert (settlement.disposition, settlement.reason) == (Disposition.QUARANTINE, "invalid_item")
    assert (watcher.succeeded, watcher.failed) == (0, [])


async def test_a_schema_mismatch_releases_and_reports_an_environment_failure() -> None:
    watcher = Watcher()
    table = Table({"photos-raw/x.jpg": validation_error("One of the required keys was not given a value")})
    settlement = await Ingest(table, PREFIX, Metrics(), watcher).settle_body(
        records_document([Obj("photos-raw/x.jpg")])
    )
    assert settlement.disposition is Disposition.RELEASE
    assert watcher.failed == [ErrorKind.MISCONFIGURED]


async def test_an_item_that_cannot_be_built_is_invalid_not_unexpected(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the parser let through that the item builder chokes on ends as an outcome: quarantined."""

    def broken(record: ObjectRecord, now: datetime) -> dict[str, Any]:
        raise OverflowError("date value out of range")

    monkeypatch.setattr("service.ingest.settle.build_item", broken)
    with capture_logs() as logs:
        settlement = await Ingest(Table(), PREFIX, Metrics()).settle_body(records_document([Obj("photos-raw/x.jpg")]))
    assert (settlement.disposition, settlement.reason) == (Disposition.QUARANTINE, "invalid_item")
    assert [entry["event"] for entry in logs] == ["photo.invalid"]


def test_the_metrics_name_the_new_counters() -> None:
    figures = Metrics().snapshot({})
    assert {"MessagesUntrusted", "RecordsInvalid", "RecordsObjectMissing"} <= set(figures)
    json.dumps(figures, allow_nan=False)


def test_check_warns_while_an_allowlist_is_unset() -> None:
    """`photo-ingest check` warns for each allowlist left unset; set, it says whom it believes."""
    from service.config import Settings
    from service.ops.check.findings import Level
    from service.ops.check.trust import trust_findings

    unset = trust_findings(Settings(queue_url="q"))
    assert [(f.level, f.text.split(" ")[0]) for f in unset] == [
        (Level.WARN, "ALLOWED_BUCKETS"),
        (Level.WARN, "ALLOWED_TOPIC_ARNS"),
    ]
    allowed = trust_findings(Settings(queue_url="q", allowed_buckets="beetroot-raw", allowed_topic_arns=""))
    assert [f.level for f in allowed] == [Level.OK, Level.OK]
    assert "beetroot-raw" in allowed[0].text
    assert "no SNS envelope" in allowed[1].text


def test_a_topic_arn_that_is_not_a_string_is_untrusted_not_a_crash() -> None:
    """Found by the property test: `"TopicArn": []` with an allowlist raised TypeError (unhashable) instead of
    being classified; any TopicArn that is not one of the allowed strings is `untrusted_topic`."""
    trust = Trust(allowed_topic_arns=frozenset({"arn:aws:sns:us-east-1:111122223333:t"}))
    envelope = json.dumps({"Type": "Notification", "Message": "{}", "TopicArn": []})
    with pytest.raises(PoisonMessageError) as caught:
        parse_body(envelope, PREFIX, trust)
    assert caught.value.reason == "untrusted_topic"
