"""The outbox publisher: events appended to the event store, published to EventBridge as stored.

The command side only appends to its event store; this function reads the store's stream
(INSERTs only, filtered by the mapping) and puts each event on the bus:
``Source`` = the store's publishing source, ``DetailType`` = the event type, ``Detail`` = the
stored event (:meth:`~handler_kit.event_store.StoredEvent.as_json`), so subscribers see the
same ids, version, correlation and causation as the store holds. Delivery is at-least-once
(a retried batch republishes): subscribers deduplicate by ``eventId``.

:func:`outbox_handler` builds the Lambda handler: Powertools' ``BatchProcessor`` over the
DynamoDB Streams records, ``batchItemFailures`` for what could not be put. Once one event of
an aggregate fails, the later events of that aggregate in the batch fail too without being
put, so subscribers never see version n+1 before version n from this publisher.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)

from .consumer import load_settings, record_count
from .contract import (
    EVENTS_PUBLISHED,
    MALFORMED_MESSAGES,
    OUTBOX_EVENT_BUS,
    OUTBOX_SOURCE,
    RECORDS_FAILED,
    RECORDS_SKIPPED,
)
from .event_store import MalformedStoredEvent, StoredEvent
from .metrics import count
from .projection import stored_event_of
from .settings import required

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger, Metrics
    from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
        DynamoDBRecord,
    )
    from aws_lambda_powertools.utilities.typing import LambdaContext


class PublishFailed(RuntimeError):
    """EventBridge did not accept the entry (its error code and message)."""


class EarlierEventFailed(RuntimeError):
    """An earlier event of the same aggregate failed in this batch: retried after it."""


@dataclass(frozen=True)
class OutboxSettings:
    event_bus: str
    source: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> OutboxSettings:
        return cls(
            event_bus=required(environ, OUTBOX_EVENT_BUS), source=required(environ, OUTBOX_SOURCE)
        )


def entry(event: StoredEvent, *, event_bus: str, source: str) -> dict[str, Any]:
    """The PutEvents entry of ``event``."""
    return {
        "EventBusName": event_bus,
        "Source": source,
        "DetailType": event.type,
        "Detail": json.dumps(event.as_json(), ensure_ascii=False, sort_keys=True),
        "Resources": [],
    }


def publish(client: Any, event: StoredEvent, *, event_bus: str, source: str) -> str:
    """Put one event on the bus; its EventBridge event id, or :class:`PublishFailed`."""
    response = client.put_events(Entries=[entry(event, event_bus=event_bus, source=source)])
    (result,) = response["Entries"]
    if response.get("FailedEntryCount") or "EventId" not in result:
        raise PublishFailed(f"{result.get('ErrorCode')}: {result.get('ErrorMessage')}")
    return str(result["EventId"])


def outbox_handler(
    logger: Logger,
    metrics: Metrics,
    settings: Callable[[], OutboxSettings],
    events_client: Callable[[], Any],
) -> Callable[[dict[str, Any], LambdaContext], Any]:
    """The publisher's Lambda handler (wrap it with the Logger and Metrics decorators)."""
    processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
    failed_aggregates: set[str] = set()

    def record_handler(record: DynamoDBRecord) -> str:
        try:
            event = stored_event_of(record.raw_event)
        except MalformedStoredEvent as exc:
            count(metrics, MALFORMED_MESSAGES)
            count(metrics, RECORDS_FAILED)
            logger.error(
                "Not an event of the store: failing it (after the retries it goes to the "
                "on-failure destination)",
                extra={"reason": str(exc), "event_name": record.event_name},
            )
            raise
        with logger.append_context_keys(
            aggregate_id=event.aggregate_id,
            version=event.version,
            event_type=event.type,
            correlation_id=event.correlation_id,
        ):
            if event.aggregate_id in failed_aggregates:
                count(metrics, RECORDS_SKIPPED)
                raise EarlierEventFailed(f"an earlier event of {event.aggregate_id} failed")
            current = settings()
            try:
                event_id = publish(
                    events_client(), event, event_bus=current.event_bus, source=current.source
                )
            except Exception:
                failed_aggregates.add(event.aggregate_id)
                count(metrics, RECORDS_FAILED)
                logger.exception("Publishing failed: the event will be retried")
                raise
            count(metrics, EVENTS_PUBLISHED)
            logger.info("Event published", extra={"bus_event_id": event_id})
            return event_id

    def handler(event: dict[str, Any], context: LambdaContext) -> Any:
        # A configuration error fails the batch before anything is published.
        load_settings(
            logger, metrics, settings, scope="the whole batch", failed=record_count(event)
        )
        failed_aggregates.clear()
        try:
            return process_partial_response(
                event=event, record_handler=record_handler, processor=processor, context=context
            )
        finally:
            failed_aggregates.clear()

    return handler
