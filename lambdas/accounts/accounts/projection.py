"""Lambda handlers: the balance read model, fed by the event store's DynamoDB stream.

``handler``: Powertools' ``BatchProcessor(EventType.DynamoDBStreams)``; each record (an
INSERT of an account event; the mapping's filter drops everything else before Lambda is
invoked) ends in exactly one way:

* applied (``EventsProjected``), or applied with the events it was ahead of
  (``ProjectionCatchUps``: it arrived before an earlier version);
* skipped as a duplicate (``DuplicatesSkipped``): its version is not above the read model's
  ``lastVersion`` (a retried batch, a replay, or a catch-up already applied it);
* failed (``RecordsFailed``) in ``batchItemFailures``: not an event of the store
  (``MalformedMessages``), an unknown event type or schema version, a conflict with a
  concurrent projection, a transient error. The mapping bisects, retries (bounded), then
  sends the record's shard and sequence range to the on-failure queue: the shard moves on.

``rebuild_handler``: invoked directly (``{}``); replays the whole store into the rebuild
table (a fresh read model) and returns how many accounts it wrote.
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
    EVENTS_PROJECTED,
    MALFORMED_MESSAGES,
    PROJECTION_CATCH_UPS,
    RECORDS_FAILED,
)
from handler_kit.event_store import EventStore, MalformedStoredEvent
from handler_kit.failures import is_transient
from handler_kit.metrics import count, new_metrics
from handler_kit.projection import (
    CAUGHT_UP,
    DUPLICATE,
    Projection,
    rebuild_read_model,
    stored_event_of,
)
from handler_kit.settings import cached_settings

from . import account
from .config import ProjectionSettings, RebuildSettings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
        DynamoDBRecord,
    )
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = ["handler", "rebuild_handler"]

logger = Logger()
metrics = new_metrics()
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
_settings = cached_settings(ProjectionSettings)
_rebuild_settings = cached_settings(RebuildSettings)
_dynamodb_client = lazy_client("dynamodb")


def _projection(event_store_table: str, read_model_table: str) -> Projection[account.Account]:
    return Projection(
        client=_dynamodb_client,
        table=read_model_table,
        store=EventStore(_dynamodb_client, event_store_table),
        apply=account.apply,
        initial=account.initial,
        encode=account.encode,
        decode=account.decode,
    )


def record_handler(record: DynamoDBRecord) -> str:
    try:
        event = stored_event_of(record.raw_event)
    except MalformedStoredEvent as exc:
        count(metrics, MALFORMED_MESSAGES)
        count(metrics, RECORDS_FAILED)
        logger.error(
            "Not an event of the store: failing it (after the retries its sequence range goes "
            "to the on-failure queue)",
            extra={"reason": str(exc), "event_name": record.event_name},
        )
        raise
    settings = _settings()
    with logger.append_context_keys(
        aggregate_id=event.aggregate_id,
        version=event.version,
        event_type=event.type,
        correlation_id=event.correlation_id,
    ):
        try:
            outcome = _projection(settings.event_store_table, settings.read_model_table).project(
                event
            )
        except Exception as exc:
            count(metrics, RECORDS_FAILED)
            if isinstance(exc, MalformedStoredEvent):
                count(metrics, MALFORMED_MESSAGES)
                logger.error("Event cannot be projected: failing it", extra={"reason": str(exc)})
            elif is_transient(exc):
                logger.warning("Transient error: the event will be retried", exc_info=exc)
            else:
                logger.exception("Unexpected error: the event will be retried")
            raise
        if outcome == DUPLICATE:
            count(metrics, DUPLICATES_SKIPPED)
            logger.info("Duplicate or already applied event skipped")
        else:
            count(metrics, EVENTS_PROJECTED)
            if outcome == CAUGHT_UP:
                count(metrics, PROJECTION_CATCH_UPS)
                logger.info("Event ahead of the read model: caught up from the event store")
        return outcome


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    load_settings(logger, metrics, _settings, scope="the whole batch", failed=record_count(event))
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def rebuild_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = load_settings(logger, metrics, _rebuild_settings, scope="the rebuild")
    projection = _projection(settings.event_store_table, settings.rebuild_table)
    written = rebuild_read_model(projection, settings.rebuild_table)
    logger.info("Read model rebuilt", extra={"accounts": written})
    return {"accounts": written, "table": settings.rebuild_table}
