"""What every Conveyor handler and the CDK code that deploys it agree on. Stdlib only: the CDK
code imports it as ``conveyor.lambdas.handler_kit.handler_kit.contract``."""

from __future__ import annotations

from typing import Final

# The queue poison messages are sent to directly (set by QueueConsumer when allowed).
DEAD_LETTER_QUEUE_URL: Final = "DEAD_LETTER_QUEUE_URL"
# Powertools idempotency (DynamoDB): the table (set by IdempotencyTable) and the record expiry.
IDEMPOTENCY_TABLE: Final = "IDEMPOTENCY_TABLE"
IDEMPOTENCY_EXPIRES_AFTER_SECONDS: Final = "IDEMPOTENCY_EXPIRES_AFTER_SECONDS"
# Powertools' own variables (read by Powertools itself, never by the settings parsers).
POWERTOOLS_SERVICE_NAME: Final = "POWERTOOLS_SERVICE_NAME"
POWERTOOLS_METRICS_NAMESPACE: Final = "POWERTOOLS_METRICS_NAMESPACE"
POWERTOOLS_VARIABLES: Final = (POWERTOOLS_SERVICE_NAME, POWERTOOLS_METRICS_NAMESPACE)
# The variables of the kit that any handler may read.
ENVIRONMENT: Final = (
    DEAD_LETTER_QUEUE_URL,
    IDEMPOTENCY_TABLE,
    IDEMPOTENCY_EXPIRES_AFTER_SECONDS,
    *POWERTOOLS_VARIABLES,
)
# The metrics namespace when POWERTOOLS_METRICS_NAMESPACE is not set.
DEFAULT_METRICS_NAMESPACE: Final = "Conveyor"

# Metrics every consumer may emit (CloudWatch metric names, Count unit).
RECORDS_FAILED: Final = "RecordsFailed"
RECORDS_SKIPPED: Final = "RecordsSkipped"
MESSAGES_DEAD_LETTERED: Final = "MessagesDeadLettered"
MALFORMED_MESSAGES: Final = "MalformedMessages"
UNSUPPORTED_VERSIONS: Final = "UnsupportedVersions"
UNKNOWN_EVENT_TYPES_IGNORED: Final = "UnknownEventTypesIgnored"
NEWER_MINOR_VERSION_PROCESSED: Final = "NewerMinorVersionProcessed"
DUPLICATES_SKIPPED: Final = "DuplicatesSkipped"
SHARED_METRICS: Final = (
    RECORDS_FAILED,
    RECORDS_SKIPPED,
    MESSAGES_DEAD_LETTERED,
    MALFORMED_MESSAGES,
    UNSUPPORTED_VERSIONS,
    UNKNOWN_EVENT_TYPES_IGNORED,
    NEWER_MINOR_VERSION_PROCESSED,
    DUPLICATES_SKIPPED,
)

# -- Event sourcing (handler_kit.event_store, handler_kit.projection, handler_kit.outbox) -------
# Attributes of an event store item (table keyed by aggregateId + version) and of the
# published event's detail (the outbox publishes the stored event exactly).
ES_AGGREGATE_ID: Final = "aggregateId"
ES_VERSION: Final = "version"
ES_EVENT_TYPE: Final = "type"
ES_SCHEMA_VERSION: Final = "schemaVersion"
ES_DATA: Final = "data"
ES_EVENT_ID: Final = "eventId"
ES_CORRELATION_ID: Final = "correlationId"
ES_CAUSATION_ID: Final = "causationId"
ES_RECORDED_AT: Final = "recordedAt"
ES_SNAPSHOT_STATE: Final = "state"
# A read model item records the last event version applied to it (older ones are ignored).
ES_LAST_VERSION: Final = "lastVersion"
# Environment variables set by the EventStore / StreamProjector / OutboxPublisher constructs.
EVENT_STORE_TABLE: Final = "EVENT_STORE_TABLE"
SNAPSHOT_TABLE: Final = "SNAPSHOT_TABLE"
SNAPSHOT_EVERY: Final = "SNAPSHOT_EVERY"
READ_MODEL_TABLE: Final = "READ_MODEL_TABLE"
REBUILD_TABLE: Final = "REBUILD_TABLE"
OUTBOX_EVENT_BUS: Final = "OUTBOX_EVENT_BUS"
OUTBOX_SOURCE: Final = "OUTBOX_SOURCE"
EVENT_SOURCING_ENVIRONMENT: Final = (
    EVENT_STORE_TABLE,
    SNAPSHOT_TABLE,
    SNAPSHOT_EVERY,
    READ_MODEL_TABLE,
    REBUILD_TABLE,
    OUTBOX_EVENT_BUS,
    OUTBOX_SOURCE,
)
# Metrics of the projection and the outbox (Count unit).
EVENTS_PROJECTED: Final = "EventsProjected"
PROJECTION_CATCH_UPS: Final = "ProjectionCatchUps"
EVENTS_PUBLISHED: Final = "EventsPublished"
