"""Settings of the accounts Lambdas, read from environment variables and validated."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from handler_kit.contract import (
    EVENT_STORE_TABLE,
    IDEMPOTENCY_EXPIRES_AFTER_SECONDS,
    IDEMPOTENCY_TABLE,
    READ_MODEL_TABLE,
    REBUILD_TABLE,
    SNAPSHOT_EVERY,
    SNAPSHOT_TABLE,
)
from handler_kit.settings import (
    ConfigError,
    int_between,
    optional_table,
    positive_int,
    required,
    table,
)

from . import contract

__all__ = [
    "AuditSettings",
    "CommandSettings",
    "ConfigError",
    "NotificationSettings",
    "ProjectionSettings",
    "QuerySettings",
    "RebuildSettings",
]


@dataclass(frozen=True)
class CommandSettings:
    """``accounts.commands``: the event store (and its snapshots)."""

    event_store_table: str
    snapshot_table: str | None
    snapshot_every: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> CommandSettings:
        snapshot_table = optional_table(environ, SNAPSHOT_TABLE)
        every = int_between(environ, SNAPSHOT_EVERY, 0, 0, 10_000)
        if every and snapshot_table is None:
            raise ConfigError(SNAPSHOT_EVERY, f"needs {SNAPSHOT_TABLE} (got {every})")
        return cls(table(environ, EVENT_STORE_TABLE), snapshot_table, every)


@dataclass(frozen=True)
class QuerySettings:
    """``accounts.queries``: the balance read model."""

    read_model_table: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> QuerySettings:
        return cls(table(environ, READ_MODEL_TABLE))


@dataclass(frozen=True)
class ProjectionSettings:
    """``accounts.projection.handler``: the read model, and the store for catch-ups."""

    event_store_table: str
    read_model_table: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ProjectionSettings:
        return cls(table(environ, EVENT_STORE_TABLE), table(environ, READ_MODEL_TABLE))


@dataclass(frozen=True)
class RebuildSettings:
    """``accounts.projection.rebuild_handler``: the store, and the fresh read model."""

    event_store_table: str
    rebuild_table: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> RebuildSettings:
        return cls(table(environ, EVENT_STORE_TABLE), table(environ, REBUILD_TABLE))


@dataclass(frozen=True)
class NotificationSettings:
    """``accounts.subscribers.notification_handler``: the SMS topic, idempotency."""

    topic_arn: str
    idempotency_table: str
    idempotency_expires_after_seconds: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> NotificationSettings:
        topic = required(environ, contract.NOTIFICATION_TOPIC_ARN)
        if not topic.startswith("arn:") or ":sns:" not in topic:
            raise ConfigError(contract.NOTIFICATION_TOPIC_ARN, f"must be an SNS ARN, got {topic!r}")
        expires = positive_int(environ, IDEMPOTENCY_EXPIRES_AFTER_SECONDS, 24 * 3600, unit="s")
        return cls(topic, table(environ, IDEMPOTENCY_TABLE), expires)


@dataclass(frozen=True)
class AuditSettings:
    """``accounts.subscribers.audit_handler``: the audit table."""

    audit_table: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> AuditSettings:
        return cls(table(environ, contract.AUDIT_TABLE))
