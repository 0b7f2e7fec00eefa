"""Booking service -> RabbitMQ (course 5.2 §7): POST /bookings publishes the booking on the
durable topic exchange ``tour_events`` with the routing key of its event type
(``tour.booked``, ``tour.booked.premium``/``standard`` by tier, ``tour.cancelled``).

- persistent messages (delivery mode 2), ``mandatory`` and publisher confirms: the broker
  confirms each message once it is routed to every bound durable queue (and written to disk);
- a message no queue is bound for (``tour.cancelled`` in the course) comes back as unroutable:
  answered ``202`` with ``routed: false``, logged and counted (``RecordsSkipped``);
- the correlation id (header ``x-correlation-id`` or a new one) is the message's
  ``correlation_id`` property and a header, and is in every log line;
- a broker that is down or refuses: reconnect and retry with exponential back-off and full
  jitter (``PUBLISH_ATTEMPTS``, ``PUBLISH_BASE_DELAY_MS``), ``PublishRetries``; after the last
  attempt ``503`` and ``PublishFailures`` (the booking's caller retries: never a silent loss).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from handler_kit.backoff import retry
from handler_kit.contract import MALFORMED_MESSAGES, RECORDS_SKIPPED
from handler_kit.metrics import count, new_metrics
from handler_kit.settings import ConfigError, cached_settings

from .bookings import MalformedBooking, booking_request, response
from .broker import amqp_parameters
from .config import RabbitProducerSettings
from .contract import (
    BOOKINGS_PUBLISHED,
    EXCHANGE,
    HEADER_CORRELATION_ID,
    HEADER_EVENT_TYPE,
    PUBLISH_FAILURES,
    PUBLISH_RETRIES,
)

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
_sleep = time.sleep  # the back-off's wait (tests watch it)
metrics = new_metrics()
_settings = cached_settings(RabbitProducerSettings)
_channel: Any = None  # kept open between invocations (one connection per environment)


class BrokerUnavailable(RuntimeError):
    """Connecting or publishing failed (transient: retried with back-off)."""


def _open_channel(settings: RabbitProducerSettings) -> Any:
    import pika

    global _channel
    if _channel is not None and _channel.is_open:
        return _channel
    parameters = amqp_parameters(
        settings.endpoint,
        settings.secret_arn,
        connection_attempts=1,
        socket_timeout=3,
        blocked_connection_timeout=5,
    )
    try:
        connection = pika.BlockingConnection(parameters)
    except pika.exceptions.AMQPError as exc:
        raise BrokerUnavailable(f"cannot connect to the broker: {exc!r}") from exc
    channel = connection.channel()
    channel.confirm_delivery()
    _channel = channel
    return channel


def _publish(
    settings: RabbitProducerSettings, routing_key: str, body: bytes, correlation_id: str
) -> bool:
    """Publish once and wait for the broker's confirm; False: unroutable."""
    import pika

    global _channel
    channel = _open_channel(settings)
    properties = pika.BasicProperties(
        content_type="application/json",
        delivery_mode=pika.DeliveryMode.Persistent,
        correlation_id=correlation_id,
        type=routing_key,
        headers={HEADER_CORRELATION_ID: correlation_id, HEADER_EVENT_TYPE: routing_key},
    )
    try:
        channel.basic_publish(EXCHANGE, routing_key, body, properties, mandatory=True)
    except pika.exceptions.UnroutableError:
        return False
    except (pika.exceptions.AMQPError, OSError) as exc:  # NackError, closed connection...
        _channel = None
        raise BrokerUnavailable(f"publish failed: {exc!r}") from exc
    return True


@logger.inject_lambda_context(clear_state=True, correlation_id_path='headers."x-correlation-id"')
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
    logger.append_keys(booking_id=booking.booking_id, routing_key=booking.event_type)

    def on_retry(number: int, wait: float, error: Exception) -> None:
        count(metrics, PUBLISH_RETRIES)
        logger.warning(
            "Broker unavailable: retrying the publish",
            extra={"retry": number, "wait_s": round(wait, 3), "error": str(error)},
        )

    try:
        routed = retry(
            lambda: _publish(
                settings, booking.event_type, booking.encoded(), request.correlation_id
            ),
            settings.backoff,
            retry_on=lambda error: isinstance(error, BrokerUnavailable),
            on_retry=on_retry,
            sleep=lambda seconds: _sleep(seconds),
        )
    except BrokerUnavailable as exc:
        count(metrics, PUBLISH_FAILURES)
        logger.error("Publish failed after every retry: answering 503", extra={"error": str(exc)})
        return response(
            503, {"message": "the broker is unavailable, retry later"}, request.correlation_id
        )
    if routed:
        count(metrics, BOOKINGS_PUBLISHED)
        logger.info("Booking event published and confirmed by the broker")
    else:
        count(metrics, RECORDS_SKIPPED)
        logger.warning("No queue is bound for this routing key: the broker dropped the event")
    body = {"bookingId": booking.booking_id, "routingKey": booking.event_type, "routed": routed}
    return response(202, body, request.correlation_id)
