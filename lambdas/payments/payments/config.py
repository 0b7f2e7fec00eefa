"""Settings of the payments Lambdas, read from environment variables and validated.

Powertools reads its own variables (``POWERTOOLS_SERVICE_NAME``,
``POWERTOOLS_METRICS_NAMESPACE``, ``POWERTOOLS_LOG_LEVEL``...) itself; they are not here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from handler_kit.contract import IDEMPOTENCY_EXPIRES_AFTER_SECONDS, IDEMPOTENCY_TABLE
from handler_kit.settings import ConfigError, optional, positive_int, table

from . import contract

__all__ = ["ConfigError", "ReviewSettings"]

# The EventBridge rule's pattern: {"detail": {"montant": [{"numeric": [">", 5000]}]}}.
DEFAULT_REVIEW_THRESHOLD = Decimal(5000)
# EventBridge retries delivery for up to 24 hours, Lambda's asynchronous retries for up to 6.
DEFAULT_IDEMPOTENCY_SECONDS = 24 * 60 * 60  # 86400

_DECIMAL = re.compile(r"[0-9]{1,15}(\.[0-9]{1,6})?")


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
            idempotency_table=table(environ, IDEMPOTENCY_TABLE),
            review_threshold=_decimal(environ, contract.REVIEW_THRESHOLD, DEFAULT_REVIEW_THRESHOLD),
            idempotency_expires_after_seconds=positive_int(
                environ,
                IDEMPOTENCY_EXPIRES_AFTER_SECONDS,
                DEFAULT_IDEMPOTENCY_SECONDS,
                unit="seconds",
            ),
        )


def _decimal(environ: Mapping[str, str], name: str, default: Decimal) -> Decimal:
    raw = optional(environ, name)
    if raw is None:
        return default
    if not _DECIMAL.fullmatch(raw):
        raise ConfigError(name, f"must be a non-negative decimal number like '5000', got {raw!r}")
    try:
        return Decimal(raw)
    except InvalidOperation as exc:  # pragma: no cover - the pattern only lets numbers through
        raise ConfigError(name, f"must be a decimal number, got {raw!r}") from exc
