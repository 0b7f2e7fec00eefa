"""Lambda handler: order service -> SNS "order.placed" -> SQS (one per consumer) -> this function.

The same code runs as four consumers (payment, inventory, shipping, notification), told apart
by ``CONSUMER_NAME``. Each SQS record holds one ``OrderPlaced`` event, wrapped in the SNS
envelope or (raw message delivery) as is. Each record ends in exactly one way:

* acknowledged after its work is done (``OrdersProcessed``), or after finding that this
  consumer already did it (``DuplicatesSkipped``): the work's result is recorded once per
  consumer and order id, whatever the SQS or SNS message id (Powertools idempotency, DynamoDB;
  the completion write is retried with backoff, ``handler_kit.idempotency``). If that write
  keeps failing, the record is retried once the in-progress record expires and the work runs
  again: the work is at-least-once. It is pure and deterministic (the shipment id derives from
  the order id), so a second run repeats no effect; a consumer that adds a real side effect
  must key it by the order id at its destination (a conditional write, a deterministic id);
* acknowledged as a counted drop: an event type other than OrderPlaced
  (``UnknownEventTypesIgnored``; the subscription filter policy should have stopped it);
* dead-lettered directly (DEAD_LETTER_QUEUE_URL set, ``MessagesDeadLettered``): malformed
  (``MalformedMessages``) or of an unsupported major version (``UnsupportedVersions``, reason
  "unsupported version ...": redrive it once the consumer is upgraded);
* reported in ``batchItemFailures`` (``RecordsFailed``): transient or unexpected error
  (DynamoDB throttling, the same order being processed concurrently...), or a message that
  could not be dead-lettered. SQS retries it and its redrive policy moves it to the DLQ after
  maxReceiveCount. If every record of the batch fails, the invocation raises instead.

Nothing is dropped without a log line and a metric.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
)
from handler_kit import idempotency
from handler_kit.clients import lazy_client
from handler_kit.consumer import SqsConsumer
from handler_kit.contract import (
    MALFORMED_MESSAGES,
    NEWER_MINOR_VERSION_PROCESSED,
    UNKNOWN_EVENT_TYPES_IGNORED,
    UNSUPPORTED_VERSIONS,
)
from handler_kit.dead_letter import DeadLetterLedger, DeadLetterQueue
from handler_kit.metrics import count, new_metrics
from handler_kit.settings import cached_settings

from .config import ConsumerSettings
from .consumers import perform
from .schema import (
    ORDER_PLACED,
    MalformedMessage,
    Order,
    UnsupportedVersion,
    check_supported,
    event_type_of,
    parse_order,
    sqs_string_attributes,
    unwrap_sqs_body,
    version_of,
)

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = ["handler", "idempotency_key_prefix", "record_handler"]

logger = Logger()
metrics = new_metrics()
# When every record of a batch fails, process_partial_response raises BatchProcessingError
# (Powertools' default): the invocation counts as an error and the event source backs off.
processor = BatchProcessor(event_type=EventType.SQS)

# Log keys naming the order being processed, set per message, removed after each message.
_ORDER_LOG_KEYS = ("order_id", "event_id", "sns_message_id")


# ---------------------------------------------------------------------------------------------
# Lazily created, cached per execution environment (nothing AWS is touched at import time).


_settings = cached_settings(ConsumerSettings)


_sqs_client = lazy_client("sqs")
_dynamodb_client = lazy_client("dynamodb")
# One DLQ copy per source message: copies are recorded in the idempotency table.
_dead_letter_queue = DeadLetterQueue(
    logger,
    metrics,
    _sqs_client,
    label="Poison message",
    ledger=DeadLetterLedger(_dynamodb_client, lambda: _settings().idempotency_table),
)


@functools.cache
def _idempotency_config() -> IdempotencyConfig:
    return idempotency.idempotency_config(
        "orderId", _settings().idempotency_expires_after_seconds, _on_duplicate
    )


@functools.cache
def _process_once() -> Callable[..., dict[str, Any]]:
    """``_fulfil`` made idempotent per consumer and order id (the key is built from
    ``key_prefix`` and the hash of ``order.orderId``, never from a message id)."""
    settings = _settings()
    return idempotency.once(
        _fulfil,
        data_keyword_argument="order",
        table=settings.idempotency_table,
        client=_dynamodb_client(),
        config=_idempotency_config(),
        key_prefix=idempotency_key_prefix(settings.consumer_name),
    )


def idempotency_key_prefix(consumer_name: str) -> str:
    """Records are ``<prefix>#<md5 of the order id>``; the consumers can share one table."""
    return f"order_events.{consumer_name}.{ORDER_PLACED}"


# ---------------------------------------------------------------------------------------------
# Entry point


def _prepare(settings: ConsumerSettings, context: LambdaContext) -> None:
    logger.append_keys(consumer=settings.consumer_name)
    # Lets an in-progress idempotency record expire with this invocation if it times out.
    _idempotency_config().register_lambda_context(context)


def _log_in_progress(exc: Exception) -> bool:
    if not isinstance(exc, IdempotencyAlreadyInProgressError):
        return False
    logger.warning(
        "Another delivery of this order is being processed: the message will be retried",
        exc_info=exc,
    )
    return True


consumer = SqsConsumer(
    logger, metrics, _settings, processor, prepare=_prepare, log_failure_hook=_log_in_progress
)


@consumer.record_logic(logged_errors=(MalformedMessage,), log_keys=_ORDER_LOG_KEYS)
def _handle_message(record: SQSRecord, settings: ConsumerSettings) -> dict[str, Any] | None:
    """The consumer's result (also for a duplicate), or None if the message was not processed."""
    try:
        message = unwrap_sqs_body(
            record.body, sqs_string_attributes(record.get("messageAttributes"))
        )
        logger.append_keys(sns_message_id=message.sns_message_id)
        event_type = event_type_of(message)
        if event_type != ORDER_PLACED:
            logger.warning(
                "Unknown eventType ignored: the subscription filter policy should have stopped it",
                extra={"event_type": event_type[:200]},
            )
            count(metrics, UNKNOWN_EVENT_TYPES_IGNORED)
            return None
        version = version_of(message)
        check_supported(version)
        order_json = message.payload.get("order")
        order = parse_order(order_json)
    except (UnsupportedVersion, MalformedMessage) as exc:
        is_unsupported = isinstance(exc, UnsupportedVersion)
        count(metrics, UNSUPPORTED_VERSIONS if is_unsupported else MALFORMED_MESSAGES)
        _dead_letter_queue.send(
            record, str(exc), MalformedMessage(str(exc)), settings.dead_letter_queue_url
        )
        return None

    event_id = message.payload.get("eventId")
    logger.append_keys(
        order_id=order.order_id, event_id=event_id if isinstance(event_id, str) else None
    )
    result = _process_once()(order=order_json, parsed=order)
    if version.is_newer_minor:
        logger.info(
            "Processed an event of a newer minor version; its unknown fields were ignored",
            extra={"version": str(version)},
        )
        count(metrics, NEWER_MINOR_VERSION_PROCESSED)
    return result


record_handler = consumer.record_handler
handler = consumer.lambda_handler()


# ---------------------------------------------------------------------------------------------
# The work, run once per consumer and order


def _fulfil(*, order: dict[str, Any], parsed: Order) -> dict[str, Any]:
    """Do this consumer's work. ``order`` (the event's JSON) is what Powertools hashes."""
    result = perform(_settings().consumer_name, parsed)
    logger.info("Order processed", extra={"result": result})
    count(metrics, "OrdersProcessed")
    return result


_on_duplicate = idempotency.duplicate_hook(
    logger, metrics, "Duplicate order event skipped: this consumer already processed the order"
)
