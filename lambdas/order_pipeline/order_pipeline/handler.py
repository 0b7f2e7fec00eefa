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
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor
from aws_lambda_powertools.utilities.batch.exceptions import (
    SQSFifoMessageGroupCircuitBreakerError,
)
from handler_kit.clients import lazy_client
from handler_kit.consumer import SqsConsumer
from handler_kit.contract import RECORDS_SKIPPED
from handler_kit.dead_letter import DeadLetterQueue, system_attribute
from handler_kit.metrics import count, new_metrics
from handler_kit.settings import cached_settings

from .config import Settings
from .orders import Delivery, Result, apply_event
from .schema import CREATED, PAID, SHIPPED, PermanentError, parse_event

if TYPE_CHECKING:
    from collections.abc import Mapping

    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

__all__ = ["handler", "record_handler"]

logger = Logger()
metrics = new_metrics()
# A failed record fails the later records of its message group only (order within a group is
# what FIFO guarantees; other customers need not wait).
processor = SqsFifoPartialProcessor(skip_group_on_error=True)

_APPLIED_METRICS = {CREATED: "OrdersCreated", PAID: "OrdersPaid", SHIPPED: "OrdersShipped"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Log keys naming the order being processed, set per message, removed after each message.
_ORDER_LOG_KEYS = ("order_id", "order_event")


# ---------------------------------------------------------------------------------------------
# Lazily created, cached per execution environment (nothing AWS is touched at import time).


_settings = cached_settings(Settings)


_dynamodb_client = lazy_client("dynamodb")
_sqs_client = lazy_client("sqs")
# The DLQ copy keeps the body, the message group and the message attributes (set by the API
# Gateway integration); it is acknowledged, so it does not block its group.
_dead_letter_queue = DeadLetterQueue(
    logger,
    metrics,
    _sqs_client,
    label="Permanent error",
    fallback="its message group is blocked until the queue's redrive policy moves it to the "
    "DLQ after maxReceiveCount",
    fifo=True,
)


# ---------------------------------------------------------------------------------------------
# Entry point


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
        count(metrics, RECORDS_SKIPPED, skipped)


def _record_context(record: SQSRecord) -> Mapping[str, str | None]:
    return {"message_group_id": system_attribute(record, "MessageGroupId")}


consumer = SqsConsumer(
    logger,
    metrics,
    _settings,
    processor,
    record_context=_record_context,
    finish=_count_skipped,
    retry_note="the message and the rest of its group will be retried in order",
    redrive_note="the message is dead-lettered by the queue's redrive policy",
)


@consumer.record_logic(logged_errors=(PermanentError,), log_keys=_ORDER_LOG_KEYS)
def _handle_message(record: SQSRecord, settings: Settings) -> None:
    try:
        event = parse_event(record.body)
        logger.append_keys(order_id=event.order_id, order_event=event.event)
        result = apply_event(_dynamodb_client(), settings.orders_table, event, _delivery(record))
    except PermanentError as exc:
        count(metrics, exc.metric)
        _dead_letter_queue.send(record, exc.reason, exc, settings.dead_letter_queue_url)
        return
    _log_result(result, event.event)


record_handler = consumer.record_handler
handler = consumer.lambda_handler()


def _delivery(record: SQSRecord) -> Delivery:
    now = datetime.now(UTC)
    sent = system_attribute(record, "SentTimestamp")
    event_time = now  # unless SQS says when it accepted the event (a console test event...)
    if sent is not None and sent.isdigit():
        with contextlib.suppress(ValueError, OverflowError, OSError):  # absurd timestamp
            event_time = _EPOCH + timedelta(milliseconds=int(sent))  # exact, unlike a float
    return Delivery(message_id=record.message_id, event_time=_iso(event_time), now=_iso(now))


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _log_result(result: Result, event: str) -> None:
    if result.applied:
        logger.info(f"Order {event}", extra={"status": result.status, "version": result.version})
        count(metrics, _APPLIED_METRICS[event])
    else:
        logger.info(
            f"Duplicate or stale {event} event ignored: the order is already {result.status}",
            extra={"status": result.status, "version": result.version},
        )
        count(metrics, "DuplicatesIgnored")
