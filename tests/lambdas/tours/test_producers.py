"""The tour producers against the real local RabbitMQ (Debian's rabbitmq-server, started once
per session): publisher confirms, persistent messages, the correlation id in every log line,
and the back-off while the broker is down, then up (a forwarder that starts listening late)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import tours.rabbit_producer as producer
from moto import mock_aws
from tours import contract

from tests.conftest import require_broker
from tests.support.brokers import LateForwarder
from tests.support.observability import captured_logs

QUEUE = "producer_test_queue"


def booking(booking_id: str = "h-1", **extra: Any) -> dict[str, Any]:
    return {
        "bookingId": booking_id,
        "tourId": "paris-city-tour",
        "userId": "user-42",
        "bookingDate": "2026-12-02T10:00:00Z",
        "status": "confirmed",
        "totalPrice": 199.99,
        **extra,
    }


def request(body: dict[str, Any], correlation_id: str = "corr-h-1") -> dict[str, Any]:
    return {"body": json.dumps(body), "headers": {"X-Correlation-Id": correlation_id}}


@pytest.fixture
def rabbitmq(local_brokers: Any) -> Any:
    require_broker(local_brokers, "rabbitmq")
    return local_brokers.rabbitmq


@pytest.fixture
def channel(rabbitmq: Any) -> Iterator[Any]:
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq.url))
    channel = connection.channel()
    channel.exchange_declare(contract.EXCHANGE, exchange_type="topic", durable=True)
    channel.queue_declare(QUEUE, durable=False, exclusive=True)
    channel.queue_bind(QUEUE, contract.EXCHANGE, routing_key="tour.booked.#")
    yield channel
    connection.close()


@pytest.fixture
def producer_env(monkeypatch: pytest.MonkeyPatch, rabbitmq: Any) -> Iterator[dict[str, Any]]:
    with mock_aws():
        secret = boto3.client("secretsmanager").create_secret(
            Name="broker", SecretString=json.dumps({"username": "guest", "password": "guest"})
        )
        monkeypatch.setenv(contract.BROKER_SECRET_ARN, secret["ARN"])
        monkeypatch.setenv(contract.BROKER_ENDPOINT, rabbitmq.endpoint)
        monkeypatch.setenv(contract.PUBLISH_BASE_DELAY_MS, "50")
        producer._settings.cache_clear()
        producer._channel = None
        yield {"monkeypatch": monkeypatch}
        producer._settings.cache_clear()
        producer._channel = None


@pytest.fixture
def logs() -> Iterator[list[dict[str, Any]]]:
    with captured_logs(producer.logger) as lines:
        yield lines


def test_a_booking_is_published_persistent_and_confirmed(producer_env, channel, lambda_context):
    response = producer.handler(request(booking(tier="premium")), lambda_context)

    assert response["statusCode"] == 202
    assert json.loads(response["body"]) == {
        "bookingId": "h-1",
        "routingKey": "tour.booked.premium",
        "routed": True,
    }
    method, properties, body = channel.basic_get(QUEUE, auto_ack=True)
    assert method.routing_key == "tour.booked.premium"
    assert properties.delivery_mode == 2  # persistent
    assert properties.correlation_id == "corr-h-1"
    assert properties.headers == {"correlationId": "corr-h-1", "eventType": "tour.booked.premium"}
    assert json.loads(body)["bookingId"] == "h-1"


def test_every_log_line_carries_the_correlation_id(producer_env, channel, lambda_context, logs):
    producer.handler(request(booking(), "corr-logs"), lambda_context)

    lines = logs
    assert lines
    assert {line.get("correlation_id") for line in lines} == {"corr-logs"}


def test_the_producer_backs_off_while_the_broker_is_down_then_publishes(
    producer_env, channel, rabbitmq, lambda_context, logs
):
    forwarder = LateForwarder(rabbitmq.port)  # nothing listens on its port yet
    producer_env["monkeypatch"].setenv(
        contract.BROKER_ENDPOINT, f"amqp://127.0.0.1:{forwarder.port}"
    )
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:  # the broker comes back during the second wait
            forwarder.start()

    producer_env["monkeypatch"].setattr(producer, "_sleep", sleep)
    try:
        response = producer.handler(request(booking("h-2")), lambda_context)
    finally:
        forwarder.stop()

    assert response["statusCode"] == 202
    assert len(waits) == 2
    # full jitter under an exponential ceiling: base 50 ms, then 100 ms
    assert 0 <= waits[0] <= 0.05
    assert 0 <= waits[1] <= 0.1
    retries = [line for line in logs if "retrying" in line["message"]]
    assert [line["retry"] for line in retries] == [1, 2]
    _method, _, body = channel.basic_get(QUEUE, auto_ack=True)
    assert json.loads(body)["bookingId"] == "h-2"


def test_a_broker_down_for_every_attempt_answers_503(producer_env, lambda_context, logs):
    producer_env["monkeypatch"].setenv(contract.BROKER_ENDPOINT, "amqp://127.0.0.1:1")
    producer_env["monkeypatch"].setenv(contract.PUBLISH_ATTEMPTS, "3")
    producer_env["monkeypatch"].setattr(producer, "_sleep", lambda seconds: None)

    response = producer.handler(request(booking("h-3")), lambda_context)

    assert response["statusCode"] == 503
    errors = [line for line in logs if line["level"] == "ERROR"]
    assert errors
    assert "after every retry" in errors[0]["message"]


def test_a_malformed_booking_is_answered_400_before_any_publish(producer_env, lambda_context):
    response = producer.handler(request({"bookingId": "h-4"}), lambda_context)
    assert response["statusCode"] == 400
    assert "tourId" in json.loads(response["body"])["message"] or "totalPrice" in response["body"]
