"""Settings of the payments Lambdas, read from environment variables and validated.

Powertools reads its own variables (``POWERTOOLS_SERVICE_NAME``,
``POWERTOOLS_METRICS_NAMESPACE``, ``POWERTOOLS_LOG_LEVEL``...) itself; they are not here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

# The EventBridge rule's pattern: {"detail": {"montant": [{"numeric": [">", 5000]}]}}.
DEFAULT_REVIEW_THRESHOLD = Decimal(5000)
# EventBridge retries delivery for up to 24 hours, Lambda's asynchronous retries for up to 6.
DEFAULT_IDEMPOTENCY_SECONDS = 24 * 60 * 60  # 86400

# A DynamoDB table name (3-255 characters of letters, digits, '_', '-', '.') or a table ARN.
_TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")
_TABLE_ARN = re.compile(r"arn:aws[a-z-]*:dynamodb:[a-z0-9-]+:[0-9]{12}:table/[A-Za-z0-9_.-]{3,255}")
_UNSIGNED_INT = re.compile(r"[0-9]{1,10}")
_DECIMAL = re.compile(r"[0-9]{1,15}(\.[0-9]{1,6})?")


class ConfigError(ValueError):
    """An environment variable is missing or invalid. ``variable`` names it."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable} {problem}")
        self.variable = variable


@dataclass(frozen=True)
class ReviewSettings:
    """Settings of ``payments.review`` (high-value invoice review)."""

    # Powertools idempotency table (partition key ``id`` string, TTL attribute ``expiration``).
    idempotency_table: str
    # Invoices of a montant <= this are not reviewed (the rule should not have sent them).
    review_threshold: Decimal = DEFAULT_REVIEW_THRESHOLD
    idempotency_expires_after_seconds: int = DEFAULT_IDEMPOTENCY_SECONDS

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ReviewSettings:
        """Build the settings from ``environ`` (normally ``os.environ``); raise ConfigError."""
        return cls(
            idempotency_table=_table(environ, "IDEMPOTENCY_TABLE"),
            review_threshold=_decimal(environ, "REVIEW_THRESHOLD", DEFAULT_REVIEW_THRESHOLD),
            idempotency_expires_after_seconds=_positive_int(
                environ, "IDEMPOTENCY_EXPIRES_AFTER_SECONDS", DEFAULT_IDEMPOTENCY_SECONDS
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


def _table(environ: Mapping[str, str], name: str) -> str:
    value = _required(environ, name)
    if not (_TABLE_NAME.fullmatch(value) or _TABLE_ARN.fullmatch(value)):
        raise ConfigError(name, f"must be a DynamoDB table name or table ARN, got {value!r}")
    return value


def _decimal(environ: Mapping[str, str], name: str, default: Decimal) -> Decimal:
    raw = _optional(environ, name)
    if raw is None:
        return default
    if not _DECIMAL.fullmatch(raw):
        raise ConfigError(name, f"must be a non-negative decimal number like '5000', got {raw!r}")
    try:
        return Decimal(raw)
    except InvalidOperation as exc:  # pragma: no cover - the pattern only lets numbers through
        raise ConfigError(name, f"must be a decimal number, got {raw!r}") from exc


def _positive_int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = _optional(environ, name)
    if raw is None:
        return default
    if not _UNSIGNED_INT.fullmatch(raw) or int(raw) == 0:
        raise ConfigError(name, f"must be a positive integer (seconds), got {raw!r}")
    return int(raw)
