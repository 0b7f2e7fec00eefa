"""Lambda handler: order service -> SNS "order.placed" -> SQS (one per consumer) -> this function.

The same code runs as four consumers (payment, inventory, shipping, notification), told apart
by ``CONSUMER_NAME``. Each SQS record holds one ``OrderPlaced`` event, wrapped in the SNS
envelope or (raw message delivery) as is. Each record ends in exactly one way:

* acknowledged after its work is done (``OrdersProcessed``), or after finding that this
  consumer already did it (``DuplicatesSkipped``): the work runs once per consumer and order
  id, whatever the SQS or SNS message id (Powertools idempotency, DynamoDB);
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
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
)
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .config import ConfigError, ConsumerSettings
from .consumers import perform
from .failures import is_transient
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
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "Conveyor")
# When every record of a batch fails, process_partial_response raises BatchProcessingError
# (Powertools' default): the invocation counts as an error and the event source backs off.
processor = BatchProcessor(event_type=EventType.SQS)

_BOTO_CONFIG = Config(retries={"mode": "standard"})
_MAX_ERROR_REASON_CHARS = 1024
# SQS allows 10 message attributes; the DLQ copy needs two of them for the reason.
_MAX_MESSAGE_ATTRIBUTES = 10
_DEAD_LETTER_ATTRIBUTES = ("ErrorReason", "SourceMessageId")
# Log keys naming the order being processed, set per message, removed after each message.
_ORDER_LOG_KEYS = ("order_id", "event_id", "sns_message_id")


# ---------------------------------------------------------------------------------------------
# Lazily created, cached per execution environment. Nothing AWS is touched at import time, so
# a test's moto mock (started after import) still catches every call.


@functools.cache
def _settings() -> ConsumerSettings:
    return ConsumerSettings.from_env(os.environ)


@functools.cache
def _sqs_client() -> BaseClient:
    return boto3.client("sqs", config=_BOTO_CONFIG)


@functools.cache
def _dynamodb_client() -> BaseClient:
    return boto3.client("dynamodb", config=_BOTO_CONFIG)


@functools.cache
def _idempotency_config() -> IdempotencyConfig:
    return IdempotencyConfig(
        event_key_jmespath="orderId",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=_settings().idempotency_expires_after_seconds,
        response_hook=_on_duplicate,
    )


@functools.cache
def _process_once() -> Callable[..., dict[str, Any]]:
    """``_fulfil`` made idempotent per consumer and order id (the key is built from
    ``key_prefix`` and the hash of ``order.orderId``, never from a message id)."""
    settings = _settings()
    persistence = DynamoDBPersistenceLayer(
        table_name=settings.idempotency_table, boto3_client=_dynamodb_client()
    )
    return cast(
        Callable[..., dict[str, Any]],
        idempotent_function(
            _fulfil,
            data_keyword_argument="order",
            persistence_store=persistence,
            config=_idempotency_config(),
            key_prefix=idempotency_key_prefix(settings.consumer_name),
        ),
    )


def idempotency_key_prefix(consumer_name: str) -> str:
    """Records are ``<prefix>#<md5 of the order id>``; the consumers can share one table."""
    return f"order_events.{consumer_name}.{ORDER_PLACED}"


# ---------------------------------------------------------------------------------------------
# Entry point


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    try:
        settings = _settings()
    except ConfigError as exc:
        # Every record would fail the same way: fail the invocation, SQS retries the batch
        # and the redrive policy eventually moves it to the DLQ.
        logger.exception(
            "Invalid configuration: failing the whole batch", extra={"variable": exc.variable}
        )
        metrics.add_metric(name="RecordsFailed", unit=MetricUnit.Count, value=_count(event))
        raise
    logger.append_keys(consumer=settings.consumer_name)
    # Lets an in-progress idempotency record expire with this invocation if it times out.
    _idempotency_config().register_lambda_context(context)
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )


def record_handler(record: SQSRecord) -> dict[str, Any] | None:
    """Handle one SQS message. Returning acknowledges it; raising makes it a batch failure."""
    with logger.append_context_keys(message_id=record.message_id):
        try:
            return _handle_message(record, _settings())
        except Exception as exc:
            _log_failure(exc)
            metrics.add_metric(name="RecordsFailed", unit=MetricUnit.Count, value=1)
            raise
        finally:
            logger.remove_keys(_ORDER_LOG_KEYS)


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
            metrics.add_metric(name="UnknownEventTypesIgnored", unit=MetricUnit.Count, value=1)
            return None
        version = version_of(message)
        check_supported(version)
        order_json = message.payload.get("order")
        order = parse_order(order_json)
    except UnsupportedVersion as exc:
        metrics.add_metric(name="UnsupportedVersions", unit=MetricUnit.Count, value=1)
        _dead_letter(record, str(exc), settings)
        return None
    except MalformedMessage as exc:
        metrics.add_metric(name="MalformedMessages", unit=MetricUnit.Count, value=1)
        _dead_letter(record, str(exc), settings)
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
        metrics.add_metric(name="NewerMinorVersionProcessed", unit=MetricUnit.Count, value=1)
    return result


# ---------------------------------------------------------------------------------------------
# The work, run once per consumer and order


def _fulfil(*, order: dict[str, Any], parsed: Order) -> dict[str, Any]:
    """Do this consumer's work. ``order`` (the event's JSON) is what Powertools hashes."""
    result = perform(_settings().consumer_name, parsed)
    logger.info("Order processed", extra={"result": result})
    metrics.add_metric(name="OrdersProcessed", unit=MetricUnit.Count, value=1)
    return result


def _on_duplicate(response: Any, idempotent_data: DataRecord) -> Any:
    """Powertools calls this instead of ``_fulfil`` when the order was already processed."""
    logger.info(
        "Duplicate order event skipped: this consumer already processed the order",
        extra={"idempotency_key": idempotent_data.idempotency_key, "result": response},
    )
    metrics.add_metric(name="DuplicatesSkipped", unit=MetricUnit.Count, value=1)
    return response


# ---------------------------------------------------------------------------------------------
# Failures


def _dead_letter(record: SQSRecord, reason: str, settings: ConsumerSettings) -> None:
    """Send a poison message to the DLQ as is, or fail it so that SQS redrives it there."""
    reason = reason[:_MAX_ERROR_REASON_CHARS]
    if settings.dead_letter_queue_url is None:
        logger.error(
            "Poison message and no DEAD_LETTER_QUEUE_URL: failing it, the queue's redrive "
            "policy moves it to the DLQ after maxReceiveCount",
            extra={"reason": reason},
        )
        raise MalformedMessage(reason)
    try:
        response = _sqs_client().send_message(
            QueueUrl=settings.dead_letter_queue_url,
            MessageBody=record.body,
            MessageAttributes=_dead_letter_attributes(record, reason),
        )
    except (BotoCoreError, ClientError) as exc:
        logger.exception(
            "Poison message could not be sent to the dead-letter queue: failing it, the "
            "queue's redrive policy moves it to the DLQ after maxReceiveCount",
            extra={"reason": reason},
        )
        raise MalformedMessage(reason) from exc
    logger.warning(
        "Poison message sent to the dead-letter queue",
        extra={"reason": reason, "dead_letter_message_id": response.get("MessageId")},
    )
    metrics.add_metric(name="MessagesDeadLettered", unit=MetricUnit.Count, value=1)


def _dead_letter_attributes(record: SQSRecord, reason: str) -> dict[str, Any]:
    """ErrorReason and SourceMessageId, plus the message's own String/Number attributes (raw
    delivery: eventType, version...) so that a redriven message looks like the original."""
    attributes: dict[str, Any] = {
        "ErrorReason": {"DataType": "String", "StringValue": reason},
        "SourceMessageId": {"DataType": "String", "StringValue": record.message_id},
    }
    original = record.get("messageAttributes")
    for name, attribute in original.items() if isinstance(original, dict) else ():
        if len(attributes) >= _MAX_MESSAGE_ATTRIBUTES or name in _DEAD_LETTER_ATTRIBUTES:
            continue
        if not isinstance(attribute, dict):
            continue
        data_type = attribute.get("dataType")
        value = attribute.get("stringValue")
        if isinstance(data_type, str) and data_type.startswith(("String", "Number")) and value:
            attributes[name] = {"DataType": data_type, "StringValue": value}
    return attributes


def _log_failure(exc: Exception) -> None:
    if isinstance(exc, MalformedMessage):
        return  # already logged by _dead_letter
    if isinstance(exc, IdempotencyAlreadyInProgressError):
        logger.warning(
            "Another delivery of this order is being processed: the message will be retried",
            exc_info=exc,
        )
    elif is_transient(exc):
        logger.warning("Transient error: the message will be retried", exc_info=exc)
    else:
        logger.exception(
            "Unexpected error: the message will be retried, then dead-lettered by the "
            "queue's redrive policy"
        )


def _count(event: dict[str, Any]) -> int:
    records = event.get("Records") if isinstance(event, dict) else None
    return len(records) if isinstance(records, list) else 0
