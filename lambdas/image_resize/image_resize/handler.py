"""Lambda handler: S3 upload -> SQS -> this function (resize) -> S3 (processed).

Every SQS record's body is an S3 event notification. Each record ends in exactly one way:

* acknowledged after its work is done (thumbnails written), or
* acknowledged as a counted drop (test event, ignored event, missing object, stale event,
  rejected image, recursion guard): retrying could never change the outcome, or
* dead-lettered directly (malformed body and DEAD_LETTER_QUEUE_URL set), once per source
  message when IDEMPOTENCY_TABLE names the ledger table (``handler_kit.dead_letter.
  DeadLetterLedger``: a redelivery after a lost delete, or after a timeout that followed the
  copy, is acknowledged as ``DuplicatesSkipped`` without a second copy; what remains is the
  kit's window between the send and the ledger write). Without that table the copy is
  at-least-once (duplicates share ``SourceMessageId``). Thumbnails themselves are idempotent
  (deterministic keys, overwritten with the same bytes), or
* reported in ``batchItemFailures`` (transient or unexpected error, or a malformed body that
  could not be dead-lettered): SQS retries it and its redrive policy moves it to the DLQ
  after maxReceiveCount. If every record of the batch fails, the invocation raises instead
  (same retry, but Lambda counts an error and backs off).

Nothing is dropped without a log line and a metric.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote_plus

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes import S3Event
from botocore.exceptions import ClientError
from handler_kit.clients import lazy_client
from handler_kit.consumer import SqsConsumer
from handler_kit.dead_letter import DeadLetterLedger, DeadLetterQueue
from handler_kit.failures import error_code, http_status, is_transient
from handler_kit.messages import load_json_object
from handler_kit.metrics import count, new_metrics
from handler_kit.settings import cached_settings

from .config import Settings
from .thumbnails import ImageTooLarge, RejectedImage, Thumbnail, make_thumbnails

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.s3_event import S3EventRecord
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

__all__ = ["handler", "is_transient", "output_key", "parse_notification", "process_object_event"]

logger = Logger()
metrics = new_metrics()
# When every record of a batch fails, process_partial_response raises BatchProcessingError
# (Powertools' default) rather than listing them all: the invocation then counts as an error,
# so the Lambda Errors metric shows it and the SQS event source backs off (e.g. S3 throttling).
processor = BatchProcessor(event_type=EventType.SQS)

# S3 notification bodies that are not about an object.
_TEST_EVENT = "s3:TestEvent"
_OBJECT_CREATED = "ObjectCreated:"
# Log keys naming the object being processed, set per S3 record, removed after each message.
_OBJECT_LOG_KEYS = ("bucket", "key", "event_name")


class MalformedMessage(Exception):
    """The SQS body is not a usable S3 event notification: retrying cannot fix it."""


class _ObjectMissing(Exception):
    """The object was deleted before it was processed."""


class _StaleEvent(Exception):
    """The object was overwritten after this event was sent; a newer event will follow."""


@dataclass(frozen=True)
class ObjectEvent:
    """One record of an S3 event notification, validated, key already URL-decoded."""

    event_name: str
    bucket: str
    key: str
    size: int | None = None
    etag: str | None = None
    sequencer: str | None = None


# ---------------------------------------------------------------------------------------------
# Lazily created, cached per execution environment (nothing AWS is touched at import time).


_settings = cached_settings(Settings)


_s3_client = lazy_client("s3")
_sqs_client = lazy_client("sqs")
_dynamodb_client = lazy_client("dynamodb")
# One DLQ copy per source message when the stack gives the function its ledger table.
_dead_letter_queue = DeadLetterQueue(
    logger,
    metrics,
    _sqs_client,
    label="Malformed message",
    ledger=DeadLetterLedger(_dynamodb_client, lambda: _settings().dead_letter_ledger_table),
)


# ---------------------------------------------------------------------------------------------
# Entry point


consumer = SqsConsumer(logger, metrics, _settings, processor)


@consumer.record_logic(logged_errors=(MalformedMessage,), log_keys=_OBJECT_LOG_KEYS)
def _handle_message(record: SQSRecord, settings: Settings) -> None:
    try:
        body = load_json_object(record.body, "body", error=MalformedMessage, decimals=False)
        if body.get("Event") == _TEST_EVENT:
            logger.info("Ignoring s3:TestEvent", extra={"test_event_bucket": body.get("Bucket")})
            count(metrics, "TestEventsIgnored")
            return
        events = parse_notification(body)
    except MalformedMessage as exc:
        _dead_letter_queue.send(
            record, str(exc), MalformedMessage(str(exc)), settings.dead_letter_queue_url
        )
        return
    for event in events:
        process_object_event(event, settings)


record_handler = consumer.record_handler
handler = consumer.lambda_handler()


# ---------------------------------------------------------------------------------------------
# Parsing: any shape problem is a MalformedMessage


def parse_notification(body: dict[str, Any]) -> list[ObjectEvent]:
    """Validate every record of an S3 event notification before any of them is processed."""
    records = body.get("Records")
    if not isinstance(records, list) or not records:
        raise MalformedMessage("body has no non-empty 'Records' list")
    events = []
    for index, record in enumerate(S3Event(body).records):
        try:
            events.append(_parse_record(record))
        except KeyError as exc:
            raise MalformedMessage(f"Records[{index}]: missing field {exc}") from exc
        except (TypeError, ValueError, AttributeError) as exc:
            raise MalformedMessage(f"Records[{index}]: {exc}") from exc
    return events


def _parse_record(record: S3EventRecord) -> ObjectEvent:
    if not isinstance(record.raw_event, dict):
        raise TypeError("record is not an object")
    if record.get("eventSource") != "aws:s3":
        raise ValueError(f"eventSource is {record.get('eventSource')!r}, not 'aws:s3'")
    event_name = _text(record.event_name, "eventName").removeprefix("s3:")
    s3_object = record.s3.get_object
    key = unquote_plus(_text(s3_object.key, "s3.object.key"))
    size = s3_object.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise TypeError(f"s3.object.size must be a non-negative integer, got {size!r}")
    return ObjectEvent(
        event_name=event_name,
        bucket=_text(record.s3.bucket.name, "s3.bucket.name"),
        key=key,
        size=size,
        etag=_optional_text(s3_object.get("eTag"), "s3.object.eTag"),
        sequencer=_optional_text(s3_object.get("sequencer"), "s3.object.sequencer"),
    )


def _text(value: object, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(f"{field} must be a non-empty string, got {value!r}")
    return value


def _optional_text(value: object, field: str) -> str | None:
    return None if value is None or value == "" else _text(value, field)


# ---------------------------------------------------------------------------------------------
# One object


def process_object_event(event: ObjectEvent, settings: Settings) -> None:
    """Write the thumbnails of one object, or drop the event with a log line and a metric."""
    # Kept until the end of the SQS message, so that record_handler's failure log has them.
    logger.append_keys(bucket=event.bucket, key=event.key, event_name=event.event_name)
    if not event.event_name.startswith(_OBJECT_CREATED):
        logger.info("Ignoring event that is not ObjectCreated")
        count(metrics, "EventsIgnored")
        return
    if event.bucket == settings.destination_bucket:
        logger.warning("Event for the destination bucket dropped to prevent a recursive loop")
        count(metrics, "RecursionPrevented")
        return
    if event.key.endswith("/") and not event.size:
        logger.info("Ignoring folder marker object")
        count(metrics, "EventsIgnored")
        return

    try:
        data, etag = _download(event, settings.max_source_bytes)
        thumbnails = make_thumbnails(
            data, settings.thumbnail_sizes, max_pixels=settings.max_image_pixels
        )
    except _ObjectMissing:
        logger.info("Object no longer exists; nothing to resize")
        count(metrics, "ObjectsMissing")
        return
    except _StaleEvent:
        logger.info(
            "Object was overwritten after this event; the newer event will resize it",
            extra={"event_etag": event.etag, "sequencer": event.sequencer},
        )
        count(metrics, "StaleEventsIgnored")
        return
    except RejectedImage as exc:
        logger.warning(
            f"Image rejected ({exc.reason}): {event.key}",
            extra={"reason": exc.reason, "detail": str(exc)},
        )
        count(metrics, "ImagesRejected")
        return

    for thumbnail in thumbnails:
        _put_thumbnail(thumbnail, event, etag, settings)
    logger.info(
        "Thumbnails written",
        extra={"sizes": [t.size for t in thumbnails], "format": thumbnails[0].extension},
    )
    count(metrics, "ThumbnailsWritten", len(thumbnails))
    count(metrics, "ImagesProcessed")


def _download(event: ObjectEvent, max_bytes: int) -> tuple[bytes, str]:
    """The object's bytes and ETag (unquoted). Sizes are checked before the body is read."""
    if event.size is not None and event.size > max_bytes:
        raise ImageTooLarge(
            f"object is {event.size} bytes, more than the {max_bytes} allowed",
            reason="too_many_bytes",
        )
    request: dict[str, Any] = {"Bucket": event.bucket, "Key": event.key}
    if event.etag:
        # Only the version this event announced: a 412 means it has been overwritten since.
        request["IfMatch"] = event.etag if event.etag.startswith('"') else f'"{event.etag}"'
    try:
        response = _s3_client().get_object(**request)
    except ClientError as exc:
        code = error_code(exc)
        if code in ("NoSuchKey", "404", "NotFound"):
            raise _ObjectMissing from exc
        if code == "PreconditionFailed" or http_status(exc) == 412:
            raise _StaleEvent from exc
        raise

    body = response["Body"]
    try:
        length = response.get("ContentLength")
        if length is not None and length > max_bytes:
            raise ImageTooLarge(
                f"object is {length} bytes, more than the {max_bytes} allowed",
                reason="too_many_bytes",
            )
        data = body.read(max_bytes + 1)  # never more than the limit, whatever the headers say
    finally:
        body.close()
    if len(data) > max_bytes:
        raise ImageTooLarge(
            f"object is more than the {max_bytes} bytes allowed", reason="too_many_bytes"
        )
    return data, str(response.get("ETag") or event.etag or "").strip('"')


def output_key(source_key: str, size: int, extension: str, prefix: str) -> str:
    """Deterministic: a redelivered event overwrites the same objects instead of adding any."""
    stem, _ = posixpath.splitext(source_key)
    return f"{prefix}{size}/{stem}.{extension}"


def _put_thumbnail(thumbnail: Thumbnail, event: ObjectEvent, etag: str, settings: Settings) -> None:
    _s3_client().put_object(
        Bucket=settings.destination_bucket,
        Key=output_key(event.key, thumbnail.size, thumbnail.extension, settings.output_prefix),
        Body=thumbnail.data,
        ContentType=thumbnail.content_type,
        # User metadata travels as HTTP headers, which must be ASCII: the key is URL-encoded.
        Metadata={
            "source-bucket": event.bucket,
            "source-key": quote(event.key, safe="/"),
            "source-etag": etag,
        },
    )
