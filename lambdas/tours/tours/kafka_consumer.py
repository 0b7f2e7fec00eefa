"""Notification service <- Kafka (course 5.2 §13), through Lambda's MSK mapping (consumer
group ``notification_service_group``), with Powertools' Kafka consumer utility
(``kafka_consumer``: base64 keys/values decoded, JSON values deserialized lazily; a schema
registry's Avro/Protobuf is a ``SchemaConfig`` change).

The mapping delivers records by ``topic-partition``, in offset order per partition. Each
record ends one way:

* notified once per (event type, booking id) for 24 h (``NotificationsSent``; a redelivered
  record or a duplicate booking is ``DuplicatesSkipped``); ``tour.cancelled`` is recorded in
  the booking's history and notified as a cancellation;
* failed (``RecordsFailed``) and reported in ``batchItemFailures`` as
  ``{"partition": "topic-p", "offset": n}``: a malformed record (``MalformedMessages``: not
  JSON, a missing field, a key that is not the booking id) or
  a transient error. The mapping retries from it (bounded, bisecting), then sends it to the
  on-failure destination and moves on;
* an unknown ``eventType`` header (a newer producer): acknowledged, logged,
  ``UnknownEventTypesIgnored``;
* failed as well (``RecordsSkipped``) when an earlier record of the same partition failed in
  this batch: the partition's order holds (the key is the booking id, so a booking's events
  are never applied out of order).

The ``correlationId`` header is the correlation id of every log line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.kafka import SchemaConfig, kafka_consumer
from handler_kit.clients import lazy_client
from handler_kit.consumer import load_settings
from handler_kit.contract import (
    MALFORMED_MESSAGES,
    RECORDS_FAILED,
    RECORDS_SKIPPED,
    UNKNOWN_EVENT_TYPES_IGNORED,
)
from handler_kit.metrics import count, new_metrics
from handler_kit.settings import cached_settings

from .bookings import MalformedBooking, Notifier, UnknownEventType, parse_booking
from .config import ConsumerSettings
from .contract import BOOKING_ID, HEADER_CORRELATION_ID, HEADER_EVENT_TYPE, TOUR_BOOKED

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.kafka import ConsumerRecords
    from aws_lambda_powertools.utilities.kafka.consumer_records import ConsumerRecordRecords
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
metrics = new_metrics()
_settings = cached_settings(ConsumerSettings)
_dynamodb = lazy_client("dynamodb")
SCHEMA = SchemaConfig(value_schema_type="JSON")


def _header(record: ConsumerRecordRecords, name: str) -> str | None:
    value = record.headers.get(name)
    if value is None:
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def handle_record(notifier: Notifier, record: ConsumerRecordRecords) -> None:
    try:
        value = record.value
    except Exception as exc:  # KafkaConsumerDeserializationError: not JSON
        raise MalformedBooking(f"the value is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise MalformedBooking(f"the value is JSON {type(value).__name__}, not an object")
    booking = parse_booking(value, event_type=_header(record, HEADER_EVENT_TYPE) or TOUR_BOOKED)
    key = record.key
    key_text = key.decode() if isinstance(key, bytes) else (str(key) if key is not None else None)
    if key_text != booking.booking_id:
        raise MalformedBooking(f"the key {key_text!r} is not the record's {BOOKING_ID}")
    notifier.notify(booking, _header(record, HEADER_CORRELATION_ID) or "none")


@kafka_consumer(schema_config=SCHEMA)
@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: ConsumerRecords, context: LambdaContext) -> dict[str, Any]:
    records = list(event.records)
    settings = load_settings(logger, metrics, _settings, scope="the batch", failed=len(records))
    notifier = Notifier(logger, metrics, settings, _dynamodb(), context)
    failures: list[dict[str, Any]] = []
    failed_partitions: set[str] = set()
    for record in records:
        partition = f"{record.topic}-{record.partition}"
        identifier = {"partition": partition, "offset": record.offset}
        logger.set_correlation_id(_header(record, HEADER_CORRELATION_ID) or "none")
        with logger.append_context_keys(partition=partition, offset=record.offset):
            if partition in failed_partitions:
                count(metrics, RECORDS_SKIPPED)
                failures.append({"itemIdentifier": identifier})
                continue
            try:
                handle_record(notifier, record)
            except UnknownEventType as exc:
                count(metrics, UNKNOWN_EVENT_TYPES_IGNORED)
                logger.warning(
                    "Unknown event type: acknowledged and ignored", extra={"reason": str(exc)}
                )
            except MalformedBooking as exc:
                count(metrics, MALFORMED_MESSAGES)
                count(metrics, RECORDS_FAILED)
                logger.error(
                    "Malformed booking record: reported failed; after the mapping's retries "
                    "it goes to the on-failure destination",
                    extra={"reason": str(exc)},
                )
                failures.append({"itemIdentifier": identifier})
                failed_partitions.add(partition)
            except Exception:
                count(metrics, RECORDS_FAILED)
                logger.exception("Notification failed: the record will be retried")
                failures.append({"itemIdentifier": identifier})
                failed_partitions.add(partition)
    return {"batchItemFailures": failures}
