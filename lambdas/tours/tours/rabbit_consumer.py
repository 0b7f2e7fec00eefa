"""Notification service <- RabbitMQ (course 5.2 §8), through Lambda's Amazon MQ mapping.

The mapping reads ``notification_queue`` (bound to ``tour_events`` with ``tour.booked`` and
``tour.booked.*``) and invokes with ``rmqMessagesByQueue``; it acknowledges the batch when
the function returns and nacks it with requeue when it raises. Lambda has no partial batch
response and no on-failure destination for RabbitMQ: the dead-letter queue lives on the
broker. ``notification_queue`` is a quorum queue with ``x-delivery-limit``: a message nacked
that many times goes to the dead-letter exchange ``tour_events.dlx`` ->
``notification_queue.dlq``. The mapping's batch size is 1 (the construct's default), so a
poison message only fails its own invocation.

Each message ends one way:

* notified once (``NotificationsSent``), idempotent per (event type, booking id) for 24 h:
  a redelivery (``redelivered: true``) or a duplicate booking is ``DuplicatesSkipped``;
* an unknown event type (a newer producer): acknowledged, logged, ``UnknownEventTypesIgnored``;
* malformed (not JSON, a missing or wrong-typed field):
  ``MalformedMessages`` and an error: redelivered, then dead-lettered by the broker;
* a transient failure (DynamoDB): an error, redelivered, and dead-lettered if it persists.

The message's ``correlationId`` property is the correlation id of every log line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import event_source
from aws_lambda_powertools.utilities.data_classes.rabbit_mq_event import RabbitMQEvent
from handler_kit.clients import lazy_client
from handler_kit.consumer import load_settings
from handler_kit.contract import (
    MALFORMED_MESSAGES,
    RECORDS_FAILED,
    UNKNOWN_EVENT_TYPES_IGNORED,
)
from handler_kit.metrics import count, new_metrics
from handler_kit.settings import cached_settings

from .bookings import MalformedBooking, Notifier, UnknownEventType, parse_body
from .config import ConsumerSettings
from .contract import HEADER_CORRELATION_ID, HEADER_EVENT_TYPE, TOUR_BOOKED

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.rabbit_mq_event import RabbitMessage
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
metrics = new_metrics()
_settings = cached_settings(ConsumerSettings)
_dynamodb = lazy_client("dynamodb")


def _headers(message: RabbitMessage) -> dict[str, Any]:
    headers = message.basic_properties.get("headers") or {}
    return headers if isinstance(headers, dict) else {}


def _event_type(message: RabbitMessage) -> str:
    properties = message.basic_properties
    value = properties.get("type") or _headers(message).get(HEADER_EVENT_TYPE) or TOUR_BOOKED
    return str(value)


def _correlation_id(message: RabbitMessage) -> str | None:
    value = message.basic_properties.get("correlationId") or _headers(message).get(
        HEADER_CORRELATION_ID
    )
    return str(value) if value else None


def handle_message(notifier: Notifier, queue: str, message: RabbitMessage) -> None:
    correlation_id = _correlation_id(message) or "none"
    logger.set_correlation_id(correlation_id)
    with logger.append_context_keys(queue=queue, redelivered=message.redelivered):
        try:
            booking = parse_body(message.decoded_data, event_type=_event_type(message))
        except UnknownEventType as exc:
            count(metrics, UNKNOWN_EVENT_TYPES_IGNORED)
            logger.warning(
                "Unknown event type: acknowledged and ignored", extra={"reason": str(exc)}
            )
            return
        except (MalformedBooking, ValueError) as exc:
            count(metrics, MALFORMED_MESSAGES)
            count(metrics, RECORDS_FAILED)
            logger.error(
                "Malformed booking message: failing the invocation; the broker redelivers it "
                "and dead-letters it after the queue's delivery limit",
                extra={"reason": str(exc)},
            )
            raise
        with logger.append_context_keys(booking_id=booking.booking_id):
            try:
                notifier.notify(booking, correlation_id)
            except Exception:
                count(metrics, RECORDS_FAILED)
                logger.exception("Notification failed: the broker redelivers the message")
                raise


@event_source(data_class=RabbitMQEvent)
@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: RabbitMQEvent, context: LambdaContext) -> dict[str, int]:
    messages = [(q, m) for q, batch in event.rmq_messages_by_queue.items() for m in batch]
    settings = load_settings(logger, metrics, _settings, scope="the batch", failed=len(messages))
    notifier = Notifier(logger, metrics, settings, _dynamodb(), context)
    for queue, message in messages:
        handle_message(notifier, queue, message)
    return {"processed": len(messages)}
