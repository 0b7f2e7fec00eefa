"""Lambda handler: devices -> Kinesis (partition key = device id) -> this function -> DynamoDB.

Each record is one device reading (``{"deviceId", "value", "readAt"}``). Powertools'
``BatchProcessor(EventType.KinesisDataStreams)`` runs the records of the batch in shard order
and reports failures by sequence number in ``batchItemFailures``; the mapping
(``ReportBatchItemFailures`` + bisect on error + bounded retries and record age) checkpoints
before the lowest failed record and retries from there.

Each record ends in exactly one way:

* applied to its device's aggregate (``ReadingsAggregated``) by a conditional update that
  also stores the record's sequence number;
* skipped as a duplicate (``DuplicatesSkipped``): its sequence number is not above the one
  its device's aggregate holds — a retried batch re-delivers records after the failed one, a
  replay from a timestamp re-reads old records; nothing is counted twice;
* failed (``RecordsFailed``), reported in ``batchItemFailures``: a malformed reading
  (``MalformedMessages``: not JSON, missing or wrong-typed field, a partition key that is not
  the device's) or a transient error. The mapping retries it (bounded), then writes it to the
  on-failure destination (S3: the records themselves) and moves on: the shard is never
  blocked for longer than the retries;
* failed as well (``RecordsSkipped``) when an earlier record of the *same device* failed in
  this batch: applying it first would make the earlier one look like a duplicate on retry and
  lose it (per-device order, as the SQS FIFO consumer keeps per-group order).

Nothing is dropped without a log line and a metric.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from handler_kit.clients import lazy_client
from handler_kit.consumer import load_settings, record_count
from handler_kit.contract import (
    DUPLICATES_SKIPPED,
    MALFORMED_MESSAGES,
    RECORDS_FAILED,
    RECORDS_SKIPPED,
)
from handler_kit.failures import is_transient
from handler_kit.metrics import count, new_metrics
from handler_kit.settings import cached_settings

from .config import Settings
from .contract import READINGS_AGGREGATED
from .readings import MalformedReading, aggregate, parse_reading

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import (
        KinesisStreamRecord,
    )
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = ["handler", "record_handler"]

logger = Logger()
metrics = new_metrics()
processor = BatchProcessor(event_type=EventType.KinesisDataStreams)

_settings = cached_settings(Settings)
_dynamodb_client = lazy_client("dynamodb")
# Devices with a failed record in the current batch (their later records fail too).
_failed_devices: set[str] = set()


class EarlierRecordFailed(RuntimeError):
    """A record of the same device failed earlier in the batch: retried after it, in order."""


def record_handler(record: KinesisStreamRecord) -> bool:
    """Handle one reading. Returning acknowledges it; raising makes it a batch item failure."""
    kinesis = record.kinesis
    sequence = kinesis.sequence_number
    with logger.append_context_keys(sequence_number=sequence, shard=record.event_id.split(":")[0]):
        try:
            reading = parse_reading(kinesis.data_as_text(), kinesis.partition_key)
        except (MalformedReading, ValueError) as exc:
            count(metrics, MALFORMED_MESSAGES)
            count(metrics, RECORDS_FAILED)
            logger.error(
                "Malformed reading: failing it; after the mapping's retries it goes to the "
                "on-failure destination",
                extra={"reason": str(exc), "partition_key": kinesis.partition_key},
            )
            raise
        if reading.device_id in _failed_devices:
            count(metrics, RECORDS_SKIPPED)
            raise EarlierRecordFailed(f"an earlier record of {reading.device_id} failed")
        try:
            applied = aggregate(_dynamodb_client(), _settings().aggregates_table, reading, sequence)
        except Exception as exc:
            _failed_devices.add(reading.device_id)
            count(metrics, RECORDS_FAILED)
            if is_transient(exc):
                logger.warning("Transient error: the reading will be retried", exc_info=exc)
            else:
                logger.exception("Unexpected error: the reading will be retried")
            raise
        if applied:
            count(metrics, READINGS_AGGREGATED)
        else:
            count(metrics, DUPLICATES_SKIPPED)
            logger.info(
                "Duplicate or replayed reading skipped", extra={"device_id": reading.device_id}
            )
        return applied


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    load_settings(logger, metrics, _settings, scope="the whole batch", failed=record_count(event))
    _failed_devices.clear()
    try:
        return process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    finally:
        _failed_devices.clear()
