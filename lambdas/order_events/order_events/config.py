"""Settings of the order-event Lambdas, read from environment variables and validated.

Powertools reads its own variables (``POWERTOOLS_SERVICE_NAME``,
``POWERTOOLS_METRICS_NAMESPACE``, ``POWERTOOLS_LOG_LEVEL``...) itself; they are not here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from handler_kit.contract import (
    DEAD_LETTER_QUEUE_URL,
    IDEMPOTENCY_EXPIRES_AFTER_SECONDS,
    IDEMPOTENCY_TABLE,
)
from handler_kit.settings import ConfigError, choice, optional_table, positive_int, queue_url, table

from . import contract
from .contract import CONSUMER_NAMES

__all__ = [
    "CONSUMER_NAMES",
    "DEFAULT_CONSUMER_IDEMPOTENCY_SECONDS",
    "DEFAULT_ROUTING_IDEMPOTENCY_SECONDS",
    "ConfigError",
    "ConsumerSettings",
    "RoutingSettings",
]

# Consumers (SQS): an SQS message lives at most 14 days (maximum retention, kept when it moves
# to the DLQ), so every redelivery of a processed message still finds its record.
DEFAULT_CONSUMER_IDEMPOTENCY_SECONDS = 14 * 24 * 60 * 60  # 1209600
# Routing handlers (SNS -> Lambda asynchronous invocation): events are retried for at most
# 6 hours (the maximum event age), SNS redelivers within hours.
DEFAULT_ROUTING_IDEMPOTENCY_SECONDS = 24 * 60 * 60  # 86400


@dataclass(frozen=True)
class ConsumerSettings:
    """Settings of ``order_events.handler`` (one deployment per consumer)."""

    # Which consumer this deployment is: payment, inventory, shipping or notification.
    consumer_name: str
    # Powertools idempotency table (partition key ``id`` string, TTL attribute ``expiration``).
    idempotency_table: str
    idempotency_expires_after_seconds: int = DEFAULT_CONSUMER_IDEMPOTENCY_SECONDS
    # Where poison messages are sent directly; None: they fail and SQS redrives them.
    dead_letter_queue_url: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ConsumerSettings:
        """Build the settings from ``environ`` (normally ``os.environ``); raise ConfigError."""
        return cls(
            consumer_name=choice(environ, contract.CONSUMER_NAME, CONSUMER_NAMES),
            idempotency_table=table(environ, IDEMPOTENCY_TABLE),
            idempotency_expires_after_seconds=_expiry(
                environ, DEFAULT_CONSUMER_IDEMPOTENCY_SECONDS
            ),
            dead_letter_queue_url=queue_url(environ, DEAD_LETTER_QUEUE_URL),
        )


@dataclass(frozen=True)
class RoutingSettings:
    """Settings of ``order_events.routing`` (the invoice and user handlers)."""

    # None: no idempotency, every delivery is processed.
    idempotency_table: str | None = None
    idempotency_expires_after_seconds: int = DEFAULT_ROUTING_IDEMPOTENCY_SECONDS

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> RoutingSettings:
        """Build the settings from ``environ`` (normally ``os.environ``); raise ConfigError."""
        return cls(
            idempotency_table=optional_table(environ, IDEMPOTENCY_TABLE),
            idempotency_expires_after_seconds=_expiry(environ, DEFAULT_ROUTING_IDEMPOTENCY_SECONDS),
        )


def _expiry(environ: Mapping[str, str], default: int) -> int:
    return positive_int(environ, IDEMPOTENCY_EXPIRES_AFTER_SECONDS, default, unit="seconds")
