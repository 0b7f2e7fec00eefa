"""The Notification service handlers with Lambda's event shapes (built by the sandbox's
``lambda_events``), under moto: once per booking, malformed input, unknown event types, order
within a partition."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import tours.kafka_consumer as kafka_consumer
import tours.rabbit_consumer as rabbit_consumer
from botocore.exceptions import ClientError
from handler_kit import idempotency as kit_idempotency
from moto import mock_aws
from tours import contract

from conveyor.sandbox import lambda_events


@pytest.fixture
def tables(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with mock_aws():
        dynamodb = boto3.client("dynamodb")
        for name, key in (("notifications", "bookingId"), ("idempotency", "id")):
            dynamodb.create_table(
                TableName=name,
                KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
        monkeypatch.setenv(contract.NOTIFICATIONS_TABLE, "notifications")
        monkeypatch.setenv("IDEMPOTENCY_TABLE", "idempotency")
        for module in (kafka_consumer, rabbit_consumer):
            module._settings.cache_clear()
            module._dynamodb.cache_clear()
        yield dynamodb
        for module in (kafka_consumer, rabbit_consumer):
            module._settings.cache_clear()
            module._dynamodb.cache_clear()


def booking(booking_id: str) -> bytes:
    return json.dumps(
        {
            "bookingId": booking_id,
            "tourId": "t-1",
            "userId": "u-1",
            "bookingDate": "2026-12-02",
            "status": "confirmed",
            "totalPrice": 10,
        }
    ).encode()


def record(offset: int, key: str, value: bytes, event_type: str = "tour.booked") -> dict[str, Any]:
    return lambda_events.kafka_record(
        topic="tour_events",
        partition=0,
        offset=offset,
        timestamp_ms=1_796_000_000_000,
        key=key.encode(),
        value=value,
        headers=[("eventType", event_type.encode()), ("correlationId", b"c-1")],
    )


def kafka_event(*records: dict[str, Any]) -> dict[str, Any]:
    return lambda_events.kafka_event(
        records,
        cluster_arn="arn:aws:kafka:us-east-1:123456789012:cluster/c/1",
        bootstrap_servers="b:9098",
    )


def sends(dynamodb: Any, booking_id: str) -> int:
    item = dynamodb.get_item(TableName="notifications", Key={"bookingId": {"S": booking_id}})
    return int(item.get("Item", {}).get("sends", {}).get("N", "0"))


def test_a_malformed_record_fails_with_the_later_records_of_its_partition(tables, lambda_context):
    event = kafka_event(
        record(0, "k-1", booking("k-1")),
        record(1, "k-2", b"{broken"),
        record(2, "k-3", booking("k-3")),
    )
    response = kafka_consumer.handler(event, lambda_context)
    assert response["batchItemFailures"] == [
        {"itemIdentifier": {"partition": "tour_events-0", "offset": 1}},
        {"itemIdentifier": {"partition": "tour_events-0", "offset": 2}},
    ]
    assert (sends(tables, "k-1"), sends(tables, "k-3")) == (1, 0)


def test_a_record_whose_key_is_not_its_booking_id_is_malformed(tables, lambda_context):
    response = kafka_consumer.handler(
        kafka_event(record(0, "other", booking("k-4"))), lambda_context
    )
    assert response["batchItemFailures"] == [
        {"itemIdentifier": {"partition": "tour_events-0", "offset": 0}}
    ]


def test_an_unknown_event_type_is_acknowledged_without_a_notification(tables, lambda_context):
    event = kafka_event(record(0, "k-5", booking("k-5"), event_type="tour.reviewed"))
    assert kafka_consumer.handler(event, lambda_context) == {"batchItemFailures": []}
    assert sends(tables, "k-5") == 0


def test_a_redelivered_record_is_notified_once(tables, lambda_context):
    event = kafka_event(record(0, "k-6", booking("k-6")))
    kafka_consumer.handler(event, lambda_context)
    kafka_consumer.handler(event, lambda_context)
    assert sends(tables, "k-6") == 1


class Properties:
    """What pika gives the sandbox's RabbitMQ poller."""

    content_type = "application/json"
    content_encoding = None
    delivery_mode = 2
    priority = None
    reply_to = None
    expiration = None
    message_id = None
    timestamp = None
    user_id = None
    app_id = None
    cluster_id = None

    def __init__(self, event_type: str = "tour.booked") -> None:
        self.type = event_type
        self.correlation_id = "c-r"
        self.headers = {"eventType": event_type, "correlationId": "c-r"}


def rabbit_event(
    body: bytes, *, redelivered: bool = False, event_type: str = "tour.booked"
) -> dict[str, Any]:
    message = lambda_events.rabbitmq_message(body, Properties(event_type), redelivered=redelivered)
    return lambda_events.rabbitmq_event(
        [message],
        broker_arn="arn:aws:mq:us-east-1:123456789012:broker:b:b-1",
        queue="notification_queue",
        virtual_host="/",
    )


def test_a_malformed_message_fails_the_invocation_so_the_broker_redelivers_it(
    tables, lambda_context
):
    with pytest.raises(ValueError, match="not JSON"):
        rabbit_consumer.handler(rabbit_event(b"{broken"), lambda_context)


def test_a_redelivered_message_is_notified_once(tables, lambda_context):
    rabbit_consumer.handler(rabbit_event(booking("r-1")), lambda_context)
    rabbit_consumer.handler(rabbit_event(booking("r-1"), redelivered=True), lambda_context)
    assert sends(tables, "r-1") == 1
    assert base64.b64decode(
        rabbit_event(booking("r-1"))["rmqMessagesByQueue"]["notification_queue::/"][0]["data"]
    ) == booking("r-1")


def test_an_unknown_routing_key_is_acknowledged_without_a_notification(tables, lambda_context):
    assert rabbit_consumer.handler(
        rabbit_event(booking("r-2"), event_type="tour.reviewed"), lambda_context
    ) == {"processed": 1}
    assert sends(tables, "r-2") == 0


def test_a_redelivery_after_a_lost_completion_write_sends_nothing_again(
    tables, lambda_context, monkeypatch
):
    """Powertools' completion write fails on every attempt (the kit retries it): the record
    fails and stays INPROGRESS until it expires; the redelivered record then runs the work
    again, and the notification, keyed by (booking, event type) in its item, is not sent twice."""
    monkeypatch.setattr(kit_idempotency.random, "uniform", lambda low, high: 0.0)
    client = kafka_consumer._dynamodb()
    calls: list[str] = []

    def throttle(**_: Any) -> None:
        # The notification's own UpdateItem goes first; the completion writes after it fail.
        calls.append("UpdateItem")
        if 1 < len(calls) <= 1 + kit_idempotency.COMPLETION_WRITE_ATTEMPTS:
            raise ClientError(
                {"Error": {"Code": "ThrottlingException", "Message": "injected"}}, "UpdateItem"
            )

    event = kafka_event(record(0, "k-9", booking("k-9")))
    client.meta.events.register("before-call.dynamodb.UpdateItem", throttle)
    try:
        response = kafka_consumer.handler(event, lambda_context)
    finally:
        client.meta.events.unregister("before-call.dynamodb.UpdateItem", throttle)
    failed = calls[1:]
    assert len(failed) == kit_idempotency.COMPLETION_WRITE_ATTEMPTS
    assert response["batchItemFailures"] == [
        {"itemIdentifier": {"partition": "tour_events-0", "offset": 0}}
    ]
    assert sends(tables, "k-9") == 1
    for item in tables.scan(TableName="idempotency")["Items"]:  # the record expires
        tables.delete_item(TableName="idempotency", Key={"id": item["id"]})

    assert kafka_consumer.handler(event, lambda_context)["batchItemFailures"] == []  # redelivery

    assert sends(tables, "k-9") == 1
