"""Booking service -> Kafka (course 5.2 §12): POST /bookings produces the booking on topic
``tour_events``.

- key = ``bookingId`` (every event of a booking lands on one partition, in order), headers
  ``eventType`` and ``correlationId``;
- the idempotent producer (``enable.idempotence``: ``acks=all``, no duplicate from the
  client's own retries, order kept per partition); the delivery report is awaited;
- a failed delivery (broker down, timeout): a new producer and a retry with exponential
  back-off and full jitter (``PublishRetries``); after the last attempt ``503`` and
  ``PublishFailures``;
- the bootstrap brokers and authentication come from ``kafka:GetBootstrapBrokers`` (MSK
  Serverless: SASL/IAM, signed with the function's role).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from handler_kit.backoff import retry
from handler_kit.contract import MALFORMED_MESSAGES
from handler_kit.metrics import count, new_metrics
from handler_kit.settings import ConfigError, cached_settings

from .bookings import MalformedBooking, booking_request, response
from .broker import kafka_client_config
from .config import KafkaProducerSettings
from .contract import (
    BOOKINGS_PUBLISHED,
    HEADER_CORRELATION_ID,
    HEADER_EVENT_TYPE,
    PUBLISH_FAILURES,
    PUBLISH_RETRIES,
    TOPIC,
)

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
_sleep = time.sleep  # the back-off's wait (tests watch it)
metrics = new_metrics()
_settings = cached_settings(KafkaProducerSettings)
_producer: Any = None
DELIVERY_TIMEOUT_S = 10.0


class DeliveryFailed(RuntimeError):
    """The broker did not acknowledge the record (transient: retried with back-off)."""


def _new_producer(settings: KafkaProducerSettings) -> Any:
    from confluent_kafka import Producer

    config = {
        **kafka_client_config(settings.cluster_arn),
        "client.id": "booking-management-service",
        "enable.idempotence": True,
        "acks": "all",
        "message.timeout.ms": int(DELIVERY_TIMEOUT_S * 1000),
        "socket.connection.setup.timeout.ms": 3000,
    }
    return Producer(config)


def _produce(
    settings: KafkaProducerSettings, key: str, value: bytes, headers: dict[str, str]
) -> dict[str, Any]:
    global _producer
    if _producer is None:
        _producer = _new_producer(settings)
    outcome: dict[str, Any] = {}

    def delivered(error: Any, message: Any) -> None:
        if error is not None:
            outcome["error"] = str(error)
        else:
            outcome.update(partition=message.partition(), offset=message.offset())

    try:
        _producer.produce(
            TOPIC, key=key.encode(), value=value, headers=headers, on_delivery=delivered
        )
        _producer.flush(DELIVERY_TIMEOUT_S + 1)
    except Exception as exc:  # KafkaException, BufferError
        _producer = None
        raise DeliveryFailed(f"produce failed: {exc!r}") from exc
    if "partition" not in outcome:
        _producer = None
        raise DeliveryFailed(outcome.get("error", "no delivery report in time"))
    return outcome


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        settings = _settings()
    except ConfigError:
        logger.exception("Invalid configuration: answering 500")
        return response(500, {"message": "the booking service is misconfigured"})
    try:
        request = booking_request(event)
    except MalformedBooking as exc:
        count(metrics, MALFORMED_MESSAGES)
        logger.warning("Malformed booking request: answering 400", extra={"reason": str(exc)})
        return response(400, {"message": str(exc)})
    booking = request.booking
    logger.set_correlation_id(request.correlation_id)
    logger.append_keys(booking_id=booking.booking_id, event_type=booking.event_type)
    headers = {HEADER_EVENT_TYPE: booking.event_type, HEADER_CORRELATION_ID: request.correlation_id}

    def on_retry(number: int, wait: float, error: Exception) -> None:
        count(metrics, PUBLISH_RETRIES)
        logger.warning(
            "Delivery failed: retrying",
            extra={"retry": number, "wait_s": round(wait, 3), "error": str(error)},
        )

    try:
        outcome = retry(
            lambda: _produce(settings, booking.booking_id, booking.encoded(), headers),
            settings.backoff,
            retry_on=lambda error: isinstance(error, DeliveryFailed),
            on_retry=on_retry,
            sleep=lambda seconds: _sleep(seconds),
        )
    except DeliveryFailed as exc:
        count(metrics, PUBLISH_FAILURES)
        logger.error("Delivery failed after every retry: answering 503", extra={"error": str(exc)})
        return response(
            503, {"message": "the broker is unavailable, retry later"}, request.correlation_id
        )
    count(metrics, BOOKINGS_PUBLISHED)
    logger.info("Booking event acknowledged by every in-sync replica", extra=outcome)
    body = {"bookingId": booking.booking_id, "eventType": booking.event_type, **outcome}
    return response(202, body, request.correlation_id)
