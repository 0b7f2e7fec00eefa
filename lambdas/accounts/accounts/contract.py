"""What the accounts handlers and the CDK code that deploys them agree on. Stdlib only: the CDK
code imports it as ``conveyor.lambdas.accounts.accounts.contract``."""

from __future__ import annotations

from typing import Final

COMMANDS_HANDLER: Final = "accounts.commands.handler"
QUERIES_HANDLER: Final = "accounts.queries.handler"
PROJECTION_HANDLER: Final = "accounts.projection.handler"
REBUILD_HANDLER: Final = "accounts.projection.rebuild_handler"
OUTBOX_HANDLER: Final = "accounts.outbox.handler"
NOTIFICATION_HANDLER: Final = "accounts.subscribers.notification_handler"
AUDIT_HANDLER: Final = "accounts.subscribers.audit_handler"

# The events of an account (the course's example: CompteCréé, DépôtEffectué(100),
# RetraitEffectué(30) → balance 70). RetraitEffectué is the course's ArgentRetiré (CQRS).
ACCOUNT_OPENED: Final = "CompteCréé"
DEPOSITED: Final = "DépôtEffectué"
WITHDRAWN: Final = "RetraitEffectué"
EVENT_TYPES: Final = (ACCOUNT_OPENED, DEPOSITED, WITHDRAWN)
SCHEMA_VERSION: Final = 1
# The outbox publishes them on the bus with this source.
SOURCE: Final = "conveyor.accounts"

# The API: POST /accounts (OpenAccount), POST /accounts/{accountId}/deposits (Deposit),
# POST /accounts/{accountId}/withdrawals (Withdraw), GET /accounts/{accountId} (the balance).
ACCOUNTS_RESOURCE: Final = "accounts"
ACCOUNT_ID_PARAMETER: Final = "accountId"
DEPOSITS_RESOURCE: Final = "deposits"
WITHDRAWALS_RESOURCE: Final = "withdrawals"
# Request bodies: {"owner": ..., "phone": ...} to open; {"amount": n, "expectedVersion": v?}.
OWNER: Final = "owner"
PHONE: Final = "phone"
AMOUNT: Final = "amount"  # a positive integer (whole units of the account's currency)
EXPECTED_VERSION: Final = "expectedVersion"  # optional: fail with 409 if the account moved
CORRELATION_HEADER: Final = "X-Correlation-Id"
# The balance read model: partition key accountId; balance, owner, status, lastVersion.
READ_MODEL_KEY: Final = "aggregateId"
BALANCE: Final = "balance"
STATUS: Final = "status"
# The audit table: partition key eventId (one item per event, written once).
AUDIT_KEY: Final = "eventId"

# Environment variables (besides the kit's event-sourcing ones).
NOTIFICATION_TOPIC_ARN: Final = "NOTIFICATION_TOPIC_ARN"
AUDIT_TABLE: Final = "AUDIT_TABLE"
ENVIRONMENT: Final = (
    "EVENT_STORE_TABLE",
    "SNAPSHOT_TABLE",
    "SNAPSHOT_EVERY",
    "READ_MODEL_TABLE",
    "REBUILD_TABLE",
    "OUTBOX_EVENT_BUS",
    "OUTBOX_SOURCE",
    NOTIFICATION_TOPIC_ARN,
    AUDIT_TABLE,
)

# Handler string -> "<module>:<settings class>" that parses the function's environment.
SETTINGS: Final = {
    COMMANDS_HANDLER: "accounts.config:CommandSettings",
    QUERIES_HANDLER: "accounts.config:QuerySettings",
    PROJECTION_HANDLER: "accounts.config:ProjectionSettings",
    REBUILD_HANDLER: "accounts.config:RebuildSettings",
    OUTBOX_HANDLER: "handler_kit.outbox:OutboxSettings",
    NOTIFICATION_HANDLER: "accounts.config:NotificationSettings",
    AUDIT_HANDLER: "accounts.config:AuditSettings",
}

# Metrics (namespace: POWERTOOLS_METRICS_NAMESPACE), besides the kit's shared ones.
COMMANDS_ACCEPTED: Final = "CommandsAccepted"
COMMANDS_REJECTED: Final = "CommandsRejected"
CONCURRENCY_CONFLICTS: Final = "ConcurrencyConflicts"
NOTIFICATIONS_SENT: Final = "NotificationsSent"
EVENTS_AUDITED: Final = "EventsAudited"
METRICS: Final = (
    COMMANDS_ACCEPTED,
    COMMANDS_REJECTED,
    CONCURRENCY_CONFLICTS,
    NOTIFICATIONS_SENT,
    EVENTS_AUDITED,
)
