"""Settings of the order pipeline Lambda, read from environment variables and validated.

Powertools reads its own variables (``POWERTOOLS_SERVICE_NAME``,
``POWERTOOLS_METRICS_NAMESPACE``, ``POWERTOOLS_LOG_LEVEL``...) itself; they are not here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlparse

# A DynamoDB table name (3-255 characters of letters, digits, '_', '-', '.') or a table ARN.
_TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")
_TABLE_ARN = re.compile(r"arn:aws[a-z-]*:dynamodb:[a-z0-9-]+:[0-9]{12}:table/[A-Za-z0-9_.-]{3,255}")
_FIFO_SUFFIX = ".fifo"


class ConfigError(ValueError):
    """An environment variable is missing or invalid. ``variable`` names it."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable} {problem}")
        self.variable = variable


@dataclass(frozen=True)
class Settings:
    """Settings of ``order_pipeline.handler``."""

    # The orders table: partition key ``orderId`` (string), no sort key.
    orders_table: str
    # The FIFO queue permanent errors are sent to directly (so that they do not block their
    # message group); None: they fail, blocking their group until the source queue's redrive
    # policy moves them to its DLQ after maxReceiveCount.
    dead_letter_queue_url: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Build the settings from ``environ`` (normally ``os.environ``); raise ConfigError."""
        return cls(
            orders_table=_table(environ, "ORDERS_TABLE"),
            dead_letter_queue_url=_fifo_queue_url(environ, "DEAD_LETTER_QUEUE_URL"),
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


def _fifo_queue_url(environ: Mapping[str, str], name: str) -> str | None:
    raw = _optional(environ, name)
    if raw is None:
        return None
    parsed = urlparse(raw)
    if parsed.scheme not in ("https", "http") or not parsed.netloc or len(parsed.path) <= 1:
        raise ConfigError(name, f"must be an SQS queue URL (https://...), got {raw!r}")
    if not parsed.path.endswith(_FIFO_SUFFIX):
        # A standard queue would reject MessageGroupId, and would lose the group's order.
        raise ConfigError(
            name, f"must be the URL of a FIFO queue (name ending in {_FIFO_SUFFIX}), got {raw!r}"
        )
    return raw
