"""Settings of the order-event Lambdas, read from environment variables and validated.

Powertools reads its own variables (``POWERTOOLS_SERVICE_NAME``,
``POWERTOOLS_METRICS_NAMESPACE``, ``POWERTOOLS_LOG_LEVEL``...) itself; they are not here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlparse

CONSUMER_NAMES = ("payment", "inventory", "shipping", "notification")

# Consumers (SQS): an SQS message lives at most 14 days (maximum retention, kept when it moves
# to the DLQ), so every redelivery of a processed message still finds its record.
DEFAULT_CONSUMER_IDEMPOTENCY_SECONDS = 14 * 24 * 60 * 60  # 1209600
# Routing handlers (SNS -> Lambda asynchronous invocation): events are retried for at most
# 6 hours (the maximum event age), SNS redelivers within hours.
DEFAULT_ROUTING_IDEMPOTENCY_SECONDS = 24 * 60 * 60  # 86400

# A DynamoDB table name (3-255 characters of letters, digits, '_', '-', '.') or a table ARN.
_TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")
_TABLE_ARN = re.compile(r"arn:aws[a-z-]*:dynamodb:[a-z0-9-]+:[0-9]{12}:table/[A-Za-z0-9_.-]{3,255}")
_UNSIGNED_INT = re.compile(r"[0-9]{1,10}")


class ConfigError(ValueError):
    """An environment variable is missing or invalid. ``variable`` names it."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable} {problem}")
        self.variable = variable


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
            consumer_name=_choice(environ, "CONSUMER_NAME", CONSUMER_NAMES),
            idempotency_table=_table(environ, "IDEMPOTENCY_TABLE"),
            idempotency_expires_after_seconds=_positive_int(
                environ, "IDEMPOTENCY_EXPIRES_AFTER_SECONDS", DEFAULT_CONSUMER_IDEMPOTENCY_SECONDS
            ),
            dead_letter_queue_url=_queue_url(environ, "DEAD_LETTER_QUEUE_URL"),
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
        table = _optional(environ, "IDEMPOTENCY_TABLE")
        return cls(
            idempotency_table=None if table is None else _table(environ, "IDEMPOTENCY_TABLE"),
            idempotency_expires_after_seconds=_positive_int(
                environ, "IDEMPOTENCY_EXPIRES_AFTER_SECONDS", DEFAULT_ROUTING_IDEMPOTENCY_SECONDS
            ),
        )


def _optional(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip()
    return value or None


def _required(environ: Mapping[str, str], name: str) -> str:
    value = _optional(environ, name)
    if value is None:
        raise ConfigError(name, "is required but is not set")
    return value


def _choice(environ: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    value = _required(environ, name)
    if value not in choices:
        raise ConfigError(name, f"must be one of {', '.join(choices)}, got {value!r}")
    return value


def _table(environ: Mapping[str, str], name: str) -> str:
    value = _required(environ, name)
    if not (_TABLE_NAME.fullmatch(value) or _TABLE_ARN.fullmatch(value)):
        raise ConfigError(name, f"must be a DynamoDB table name or table ARN, got {value!r}")
    return value


def _positive_int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = _optional(environ, name)
    if raw is None:
        return default
    if not _UNSIGNED_INT.fullmatch(raw) or int(raw) == 0:
        raise ConfigError(name, f"must be a positive integer (seconds), got {raw!r}")
    return int(raw)


def _queue_url(environ: Mapping[str, str], name: str) -> str | None:
    raw = _optional(environ, name)
    if raw is None:
        return None
    parsed = urlparse(raw)
    if parsed.scheme not in ("https", "http") or not parsed.netloc or len(parsed.path) <= 1:
        raise ConfigError(name, f"must be an SQS queue URL (https://...), got {raw!r}")
    return raw
