"""The handler kit's event sourcing: the event store (append with optimistic concurrency,
load from a snapshot, rebuild to any version), the idempotent projection (duplicates,
out-of-order events, a concurrent writer), and the outbox publisher, under moto.

The aggregate here is a counter whose events add their ``n``: expected values are sums of
the events the test appends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from aws_lambda_powertools import Logger, Metrics
from botocore.config import Config
from handler_kit import event_store, outbox, projection
from handler_kit.event_store import (
    ConcurrencyConflict,
    EventStore,
    MalformedStoredEvent,
    NewEvent,
    StoredEvent,
)
from handler_kit.projection import Projection, ProjectionConflict

from tests.support.aws import REGION, mocked_aws
from tests.support.lambda_context import LambdaContext

STORE, SNAPSHOTS, READ_MODEL, REBUILT = "events", "snapshots", "counters", "counters-rebuilt"


@pytest.fixture
def dynamodb(boto3_session: boto3.session.Session) -> Iterator[Any]:
    with mocked_aws(boto3_session):
        client = boto3.client("dynamodb", region_name=REGION)
        client.create_table(
            TableName=STORE,
            KeySchema=[
                {"AttributeName": "aggregateId", "KeyType": "HASH"},
                {"AttributeName": "version", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "aggregateId", "AttributeType": "S"},
                {"AttributeName": "version", "AttributeType": "N"},
            ],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
        )
        for name in (SNAPSHOTS, READ_MODEL, REBUILT):
            client.create_table(
                TableName=name,
                KeySchema=[{"AttributeName": "aggregateId", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "aggregateId", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
        yield client


@dataclass(frozen=True)
class Counter:
    total: int = 0
    applied: int = 0


def apply(state: Counter, event: StoredEvent) -> Counter:
    return Counter(state.total + int(event.data["n"]), state.applied + 1)


def store(client: Any, **options: Any) -> EventStore:
    return EventStore(lambda: client, STORE, **options)


def added(*values: int) -> list[NewEvent]:
    return [NewEvent("Added", {"n": n}) for n in values]


def counter_projection(client: Any, table: str = READ_MODEL) -> Projection[Counter]:
    return Projection(
        client=lambda: client,
        table=table,
        store=store(client),
        apply=apply,
        initial=Counter,
        encode=lambda s: {"total": s.total, "applied": s.applied},
        decode=lambda a: Counter(int(a["total"]), int(a["applied"])),
    )


def stream_records(client: Any) -> list[dict[str, Any]]:
    """The store's stream records (moto), in Lambda's event record shape."""
    # botocore ≥ 1.35 would send ARN-bearing Streams calls to an account-scoped host moto does
    # not route in-process.
    streams = boto3.client(
        "dynamodbstreams", region_name=REGION, config=Config(account_id_endpoint_mode="disabled")
    )
    arn = client.describe_table(TableName=STORE)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = streams.get_records(ShardIterator=iterator)["Records"]
    return [
        {
            "eventID": r["eventID"],
            "eventName": r["eventName"],
            "eventSource": "aws:dynamodb",
            "dynamodb": {
                k: v for k, v in r["dynamodb"].items() if k != "ApproximateCreationDateTime"
            },
        }
        for r in records
    ]


# -- the event store ---------------------------------------------------------------------------


def test_appended_events_get_consecutive_versions_and_the_fold_is_their_sum(dynamodb) -> None:
    events = store(dynamodb)
    events.append("c-1", 0, added(100))
    events.append("c-1", 1, added(-30, 5))

    loaded = events.load("c-1", apply, Counter())

    assert (loaded.version, loaded.state) == (3, Counter(75, 3))
    assert [e.version for e in events.events("c-1")] == [1, 2, 3]


def test_every_stored_event_carries_type_schema_correlation_and_causation(dynamodb) -> None:
    events = store(dynamodb)
    first = NewEvent("Added", {"n": 1}, schema_version=2, correlation_id="corr-1")
    (stored,) = events.append("c-1", 0, [first])
    (second,) = events.append(
        "c-1", 1, [NewEvent("Added", {"n": 2}, correlation_id="corr-1", causation_id="cmd-9")]
    )

    item = dynamodb.get_item(
        TableName=STORE, Key={"aggregateId": {"S": "c-1"}, "version": {"N": "1"}}
    )["Item"]
    assert event_store.from_item(item) == stored
    assert (stored.type, stored.schema_version, stored.correlation_id) == ("Added", 2, "corr-1")
    assert stored.causation_id is None
    assert (second.correlation_id, second.causation_id) == ("corr-1", "cmd-9")


def test_a_flow_without_a_correlation_id_is_correlated_by_its_first_event(dynamodb) -> None:
    (stored,) = store(dynamodb).append("c-1", 0, added(1))
    assert stored.correlation_id == stored.event_id


def test_an_append_on_a_stale_version_is_a_conflict_and_overwrites_nothing(dynamodb) -> None:
    events = store(dynamodb)
    events.append("c-1", 0, added(100))
    # Two commands loaded version 1; the first appends version 2...
    events.append("c-1", 1, added(-70))

    with pytest.raises(ConcurrencyConflict) as raised:
        events.append("c-1", 1, added(-50))  # ...the second loses the race

    assert raised.value.expected_version == 1
    assert events.load("c-1", apply, Counter()).state == Counter(30, 2)


def test_a_multi_event_append_is_all_or_nothing(dynamodb) -> None:
    events = store(dynamodb)
    events.append("c-1", 0, added(1, 2))

    with pytest.raises(ConcurrencyConflict):
        events.append("c-1", 1, added(10, 20))  # version 2 exists: version 3 is not written

    assert [e.data["n"] for e in events.events("c-1")] == [1, 2]


def test_rebuild_gives_the_state_at_any_version(dynamodb) -> None:
    events = store(dynamodb)
    events.append("c-1", 0, added(0, 100, -30))

    assert events.rebuild("c-1", apply, Counter(), to_version=2).state.total == 100
    assert events.rebuild("c-1", apply, Counter()).state.total == 70
    from_two = events.rebuild("c-1", apply, Counter(100, 2), from_version=2)
    assert (from_two.version, from_two.state.total) == (3, 70)


def test_a_snapshot_is_written_each_n_events_and_loading_starts_from_it(dynamodb) -> None:
    events = store(dynamodb, snapshot_table=SNAPSHOTS, snapshot_every=2)
    state, version = Counter(), 0
    for n in (1, 2, 3):
        appended = events.append("c-1", version, added(n))
        for event in appended:
            state = apply(state, event)
        events.maybe_snapshot("c-1", version, appended[-1].version, state.__dict__)
        version = appended[-1].version

    snapshot = dynamodb.get_item(TableName=SNAPSHOTS, Key={"aggregateId": {"S": "c-1"}})["Item"]
    assert snapshot["version"] == {"N": "2"}
    # A snapshot that differs from the replay proves load starts from it.
    dynamodb.put_item(
        TableName=SNAPSHOTS,
        Item={
            "aggregateId": {"S": "c-1"},
            "version": {"N": "2"},
            "state": {"S": json.dumps({"total": 1000, "applied": 2})},
        },
    )
    loaded = events.load("c-1", apply, Counter(), decode=lambda s: Counter(**s))
    assert (loaded.version, loaded.state) == (3, Counter(1003, 3))


def test_an_older_snapshot_never_replaces_a_newer_one(dynamodb) -> None:
    events = store(dynamodb, snapshot_table=SNAPSHOTS, snapshot_every=1)
    assert events.save_snapshot("c-1", 4, {"total": 4})
    assert not events.save_snapshot("c-1", 3, {"total": 3})


def test_snapshots_need_a_table_and_loading_them_needs_a_decoder(dynamodb) -> None:
    with pytest.raises(ValueError, match="snapshot_every needs a snapshot_table"):
        store(dynamodb, snapshot_every=5)
    events = store(dynamodb, snapshot_table=SNAPSHOTS, snapshot_every=1)
    events.save_snapshot("c-1", 1, {"total": 1})
    with pytest.raises(ValueError, match="decode="):
        events.load("c-1", apply, Counter())


def test_a_published_event_parses_back_and_a_broken_one_is_rejected(dynamodb) -> None:
    (stored,) = store(dynamodb).append("c-1", 0, added(5))
    assert event_store.from_json(json.loads(json.dumps(stored.as_json()))) == stored
    for broken in ({}, {**stored.as_json(), "version": "1"}, {**stored.as_json(), "data": []}):
        with pytest.raises(MalformedStoredEvent):
            event_store.from_json(broken)


# -- the projection ------------------------------------------------------------------------------


def test_projecting_the_stream_gives_the_fold_and_records_the_last_version(dynamodb) -> None:
    store(dynamodb).append("c-1", 0, added(100, -30))
    view = counter_projection(dynamodb)

    outcomes = [view.project(projection.stored_event_of(r)) for r in stream_records(dynamodb)]

    assert outcomes == [projection.APPLIED, projection.APPLIED]
    item = dynamodb.get_item(TableName=READ_MODEL, Key={"aggregateId": {"S": "c-1"}})["Item"]
    assert (item["total"], item["lastVersion"]) == ({"N": "70"}, {"N": "2"})


def test_a_duplicate_stream_record_is_ignored(dynamodb) -> None:
    store(dynamodb).append("c-1", 0, added(100))
    view = counter_projection(dynamodb)
    (record,) = stream_records(dynamodb)

    assert view.project(projection.stored_event_of(record)) == projection.APPLIED
    assert view.project(projection.stored_event_of(record)) == projection.DUPLICATE

    item = dynamodb.get_item(TableName=READ_MODEL, Key={"aggregateId": {"S": "c-1"}})["Item"]
    assert item["total"] == {"N": "100"}


def test_an_event_ahead_of_the_read_model_catches_up_then_the_late_one_is_a_duplicate(
    dynamodb,
) -> None:
    store(dynamodb).append("c-1", 0, added(0, 100, -30))
    view = counter_projection(dynamodb)
    first, second, third = stream_records(dynamodb)

    outcomes = [
        view.project(projection.stored_event_of(r)) for r in (first, third, second)
    ]  # version 3 arrives before version 2

    assert outcomes == [projection.APPLIED, projection.CAUGHT_UP, projection.DUPLICATE]
    item = dynamodb.get_item(TableName=READ_MODEL, Key={"aggregateId": {"S": "c-1"}})["Item"]
    assert (item["total"], item["applied"], item["lastVersion"]) == (
        {"N": "70"},
        {"N": "3"},
        {"N": "3"},
    )


def test_a_concurrent_projection_write_is_a_conflict_not_a_lost_update(dynamodb) -> None:
    store(dynamodb).append("c-1", 0, added(1, 2))
    view = counter_projection(dynamodb)
    first, second = stream_records(dynamodb)
    view.project(projection.stored_event_of(first))

    real_get = dynamodb.get_item

    def get_then_someone_else_writes(**kwargs: Any) -> Any:
        seen = real_get(**kwargs)
        dynamodb.update_item(
            TableName=READ_MODEL,
            Key={"aggregateId": {"S": "c-1"}},
            UpdateExpression="SET lastVersion = :v",
            ExpressionAttributeValues={":v": {"N": "2"}},
        )
        return seen

    racing = Projection(
        **{**view.__dict__, "client": lambda: _Racing(dynamodb, get_then_someone_else_writes)}
    )
    with pytest.raises(ProjectionConflict):
        racing.project(projection.stored_event_of(second))


class _Racing:
    """A client whose get_item lets another writer in before returning."""

    def __init__(self, client: Any, get_item: Any) -> None:
        self._client, self.get_item = client, get_item

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_a_modify_or_remove_record_is_not_an_event_of_the_store(dynamodb) -> None:
    with pytest.raises(MalformedStoredEvent, match="never modified or deleted"):
        projection.stored_event_of({"eventName": "MODIFY", "dynamodb": {"NewImage": {}}})
    with pytest.raises(MalformedStoredEvent):
        projection.stored_event_of({"eventName": "INSERT", "dynamodb": {"NewImage": {"x": {}}}})


def test_rebuilding_the_read_model_equals_the_live_projection(dynamodb) -> None:
    events = store(dynamodb)
    events.append("c-1", 0, added(0, 100, -30))
    events.append("c-2", 0, added(7))
    events.append("c-1", 3, added(5))
    view = counter_projection(dynamodb)
    for record in stream_records(dynamodb):
        view.project(projection.stored_event_of(record))

    written = projection.rebuild_read_model(view, REBUILT)

    def table(name: str) -> dict[str, Any]:
        return {i["aggregateId"]["S"]: i for i in dynamodb.scan(TableName=name)["Items"]}

    assert written == 2
    assert table(REBUILT) == table(READ_MODEL)
    assert table(REBUILT)["c-1"]["total"] == {"N": "75"}


# -- the outbox ------------------------------------------------------------------------------


@pytest.fixture
def bus(dynamodb) -> Any:
    events = boto3.client("events", region_name=REGION)
    events.create_event_bus(Name="accounts")
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="subscriber")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name="all", EventBusName="accounts", EventPattern=json.dumps({"source": ["test.store"]})
    )
    events.put_targets(Rule="all", EventBusName="accounts", Targets=[{"Id": "q", "Arn": arn}])
    return sqs, url


def publisher() -> Any:
    settings = outbox.OutboxSettings(event_bus="accounts", source="test.store")
    return outbox.outbox_handler(
        Logger(service="outbox-test"),
        Metrics(namespace="OutboxTest", service="outbox-test"),
        lambda: settings,
        lambda: boto3.client("events", region_name=REGION),
    )


def test_the_outbox_publishes_each_event_exactly_as_stored(dynamodb, bus) -> None:
    sqs, url = bus
    appended = store(dynamodb).append("c-1", 0, added(100, -30))

    response = publisher()({"Records": stream_records(dynamodb)}, LambdaContext())

    assert response == {"batchItemFailures": []}
    received = [
        json.loads(m["Body"])
        for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    ]
    assert sorted((e["detail-type"], e["detail"]["version"]) for e in received) == [
        ("Added", 1),
        ("Added", 2),
    ]
    assert {json.dumps(e["detail"], sort_keys=True) for e in received} == {
        json.dumps(a.as_json(), sort_keys=True) for a in appended
    }


def test_after_a_failed_put_the_later_events_of_that_aggregate_wait(dynamodb, bus) -> None:
    store(dynamodb).append("c-1", 0, added(1, 2))
    store(dynamodb).append("c-2", 0, added(3))
    records = stream_records(dynamodb)
    calls: list[str] = []
    real = boto3.client("events", region_name=REGION)

    class FailingFirst:
        def put_events(self, Entries: Any) -> Any:
            detail = json.loads(Entries[0]["Detail"])
            calls.append(f"{detail['aggregateId']}/{detail['version']}")
            if len(calls) == 1:
                return {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure"}]}
            return real.put_events(Entries=Entries)

    settings = outbox.OutboxSettings(event_bus="accounts", source="test.store")
    handler = outbox.outbox_handler(
        Logger(service="outbox-test"),
        Metrics(namespace="OutboxTest", service="outbox-test"),
        lambda: settings,
        FailingFirst,
    )
    response = handler({"Records": records}, LambdaContext())

    failed = [f["itemIdentifier"] for f in response["batchItemFailures"]]
    sequences = [r["dynamodb"]["SequenceNumber"] for r in records]
    assert failed == sequences[:2]  # c-1/1 failed, so c-1/2 was not put
    assert calls == ["c-1/1", "c-2/1"]
