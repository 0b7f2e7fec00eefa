"""Settings of the order pipeline Lambda, read from environment variables and validated.

Powertools reads its own variables (``POWERTOOLS_SERVICE_NAME``,
``POWERTOOLS_METRICS_NAMESPACE``, ``POWERTOOLS_LOG_LEVEL``...) itself; they are not here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from handler_kit.contract import DEAD_LETTER_QUEUE_URL
from handler_kit.settings import ConfigError, queue_url, table

from . import contract

__all__ = ["ConfigError", "Settings"]


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
            orders_table=table(environ, contract.ORDERS_TABLE),
            dead_letter_queue_url=queue_url(environ, DEAD_LETTER_QUEUE_URL, fifo=True),
        )
