"""Lambda handler: API Gateway -> SQS FIFO (group = customerId) -> this function -> DynamoDB.

Each SQS record holds one order event (``created``, ``paid`` or ``shipped``), the client's
JSON request as is. Records are processed in order with Powertools' SqsFifoPartialProcessor
and ``skip_group_on_error=True``: when a record fails, it and the later records of *its*
message group in the batch are reported in ``batchItemFailures`` (``RecordsFailed``,
``RecordsSkipped``) and retried in order; other groups carry on. If every record of the
batch fails, the invocation raises instead (same retry, but Lambda counts an error and the
event source backs off).

Each record ends in exactly one way:

* acknowledged after its conditional write (``OrdersCreated``, ``OrdersPaid``,
  ``OrdersShipped``), or after finding that the order already reached that state: a
  duplicate or stale event, nothing written (``DuplicatesIgnored``);
* dead-lettered directly (``MessagesDeadLettered``) and acknowledged, so that it does not
  block its message group for maxReceiveCount x visibility timeout: malformed
  (``MalformedMessages``: JSON, missing or wrong-typed field, unknown event), out of order
  (``OutOfOrderRejected``: paid or shipped before created, shipped before paid) or conflicting
  (``ConflictsRejected``: the order belongs to another customer). The DLQ (FIFO) copy keeps
  the body, the message group and the message attributes, plus ``ErrorReason`` and
  ``SourceMessageId``; redriving it once the missing event arrived replays it safely;
* reported in ``batchItemFailures`` (``RecordsFailed``): transient or unexpected error
  (DynamoDB throttling, 5xx, connection errors...), or a permanent error that could not be
  dead-lettered (no DEAD_LETTER_QUEUE_URL, or the send failed). Nothing was written, the
  retry is safe; the source queue's redrive policy moves it to the DLQ after maxReceiveCount.

Nothing is dropped without a log line and a metric.
"""

from __future__ import annotations

import contextlib
import functools
import os
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.batch.exceptions import (
    BatchProcessingError,
    SQSFifoMessageGroupCircuitBreakerError,
)
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .config import ConfigError, Settings
from .failures import is_transient
from .orders import Delivery, Result, apply_event
from .schema import CREATED, PAID, SHIPPED, PermanentError, parse_event

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "Conveyor")
# A failed record fails the later records of its message group only (order within a group is
# what FIFO guarantees; other customers need not wait).
processor = SqsFifoPartialProcessor(skip_group_on_error=True)

_BOTO_CONFIG = Config(retries={"mode": "standard"})
_APPLIED_METRICS = {CREATED: "OrdersCreated", PAID: "OrdersPaid", SHIPPED: "OrdersShipped"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_ERROR_REASON_CHARS = 1024
# SQS allows 10 message attributes; the DLQ copy needs two of them for the reason.
_MAX_MESSAGE_ATTRIBUTES = 10
_DEAD_LETTER_ATTRIBUTES = ("ErrorReason", "SourceMessageId")
# Log keys naming the order being processed, set per message, removed after each message.
_ORDER_LOG_KEYS = ("order_id", "order_event")


# ---------------------------------------------------------------------------------------------
# Lazily created, cached per execution environment. Nothing AWS is touched at import time, so
# a test's moto mock (started after import) still catches every call.


@functools.cache
def _settings() -> Settings:
    return Settings.from_env(os.environ)


@functools.cache
def _dynamodb_client() -> BaseClient:
    return boto3.client("dynamodb", config=_BOTO_CONFIG)


@functools.cache
def _sqs_client() -> BaseClient:
    return boto3.client("sqs", config=_BOTO_CONFIG)


# ---------------------------------------------------------------------------------------------
# Entry point


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    try:
        _settings()
    except ConfigError as exc:
        # Every record would fail the same way: fail the invocation, SQS retries the batch
        # and the redrive policy eventually moves it to the DLQ.
        logger.exception(
            "Invalid configuration: failing the whole batch", extra={"variable": exc.variable}
        )
        metrics.add_metric(name="RecordsFailed", unit=MetricUnit.Count, value=_count(event))
        raise
    try:
        response = process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    except BatchProcessingError:
        _count_skipped()  # every record failed: the whole batch is retried
        raise
    _count_skipped()
    return response


def _count_skipped() -> None:
    """Count the records not attempted because an earlier record of their group failed."""
    skipped = sum(
        1
        for _, error, _ in processor.exceptions
        if isinstance(error, SQSFifoMessageGroupCircuitBreakerError)
    )
    if skipped:
        logger.warning(
            "Later records of failed message groups skipped: they will be retried in order",
            extra={"skipped": skipped},
        )
        metrics.add_metric(name="RecordsSkipped", unit=MetricUnit.Count, value=skipped)


def record_handler(record: SQSRecord) -> None:
    """Handle one SQS message. Returning acknowledges it; raising makes it (and the rest of
    its message group in this batch) a batch item failure."""
    with logger.append_context_keys(
        message_id=record.message_id, message_group_id=_attribute(record, "MessageGroupId")
    ):
        try:
            _handle_message(record, _settings())
        except Exception as exc:
            _log_failure(exc)
            metrics.add_metric(name="RecordsFailed", unit=MetricUnit.Count, value=1)
            raise
        finally:
            logger.remove_keys(_ORDER_LOG_KEYS)


def _handle_message(record: SQSRecord, settings: Settings) -> None:
    try:
        event = parse_event(record.body)
        logger.append_keys(order_id=event.order_id, order_event=event.event)
        result = apply_event(_dynamodb_client(), settings.orders_table, event, _delivery(record))
    except PermanentError as exc:
        metrics.add_metric(name=exc.metric, unit=MetricUnit.Count, value=1)
        _dead_letter(record, exc, settings)
        return
    _log_result(result, event.event)


def _delivery(record: SQSRecord) -> Delivery:
    now = datetime.now(UTC)
    sent = _attribute(record, "SentTimestamp")
    event_time = now  # unless SQS says when it accepted the event (a console test event...)
    if sent is not None and sent.isdigit():
        with contextlib.suppress(ValueError, OverflowError, OSError):  # absurd timestamp
            event_time = _EPOCH + timedelta(milliseconds=int(sent))  # exact, unlike a float
    return Delivery(message_id=record.message_id, event_time=_iso(event_time), now=_iso(now))


def _attribute(record: SQSRecord, name: str) -> str | None:
    """A system attribute of the record (MessageGroupId, SentTimestamp...), if present."""
    attributes = record.get("attributes")
    value = attributes.get(name) if isinstance(attributes, dict) else None
    return value if isinstance(value, str) else None


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _log_result(result: Result, event: str) -> None:
    if result.applied:
        logger.info(f"Order {event}", extra={"status": result.status, "version": result.version})
        metrics.add_metric(name=_APPLIED_METRICS[event], unit=MetricUnit.Count, value=1)
    else:
        logger.info(
            f"Duplicate or stale {event} event ignored: the order is already {result.status}",
            extra={"status": result.status, "version": result.version},
        )
        metrics.add_metric(name="DuplicatesIgnored", unit=MetricUnit.Count, value=1)


# ---------------------------------------------------------------------------------------------
# Failures


def _dead_letter(record: SQSRecord, error: PermanentError, settings: Settings) -> None:
    """Send a message that can never succeed to the FIFO DLQ as is, and acknowledge it; or, if
    that is not possible, fail it (its group then waits for the SQS redrive policy)."""
    reason = error.reason[:_MAX_ERROR_REASON_CHARS]
    if settings.dead_letter_queue_url is None:
        logger.error(
            "Permanent error and no DEAD_LETTER_QUEUE_URL: failing the message, its message "
            "group is blocked until the queue's redrive policy moves it to the DLQ after "
            "maxReceiveCount",
            extra={"reason": reason},
        )
        raise error
    try:
        response = _sqs_client().send_message(
            QueueUrl=settings.dead_letter_queue_url,
            MessageBody=record.body,
            # Same group: the DLQ keeps the customer's order, a redrive replays it in order.
            # A missing group (not a FIFO record) falls back to the message's own id.
            MessageGroupId=_attribute(record, "MessageGroupId") or record.message_id,
            # A redelivery of this message (the Lambda died before acknowledging it) is
            # dead-lettered at most once within the 5-minute deduplication interval.
            MessageDeduplicationId=record.message_id,
            MessageAttributes=_dead_letter_attributes(record, reason),
        )
    except (BotoCoreError, ClientError) as exc:
        logger.exception(
            "Permanent error but the message could not be sent to the dead-letter queue: "
            "failing it, it is retried, then moved to the DLQ by the queue's redrive policy",
            extra={"reason": reason},
        )
        raise error from exc
    logger.warning(
        "Message sent to the dead-letter queue",
        extra={
            "reason": reason,
            "error": type(error).__name__,
            "dead_letter_message_id": response.get("MessageId"),
        },
    )
    metrics.add_metric(name="MessagesDeadLettered", unit=MetricUnit.Count, value=1)


def _dead_letter_attributes(record: SQSRecord, reason: str) -> dict[str, Any]:
    """ErrorReason and SourceMessageId, plus the message's own String/Number attributes (set by
    the API Gateway integration) so that a redriven message looks like the original."""
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
    if isinstance(exc, PermanentError):
        return  # already logged by _dead_letter
    if is_transient(exc):
        logger.warning(
            "Transient error: the message and the rest of its group will be retried in order",
            exc_info=exc,
        )
    else:
        logger.exception(
            "Unexpected error: the message and the rest of its group will be retried in order, "
            "then the message is dead-lettered by the queue's redrive policy"
        )


def _count(event: dict[str, Any]) -> int:
    records = event.get("Records") if isinstance(event, dict) else None
    return len(records) if isinstance(records, list) else 0
