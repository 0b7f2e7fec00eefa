"""Metrics shared by every consumer: names (see ``contract``) and small helpers."""

from __future__ import annotations

import os

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

from .contract import (
    DEFAULT_METRICS_NAMESPACE,
    DUPLICATES_SKIPPED,
    MALFORMED_MESSAGES,
    MESSAGES_DEAD_LETTERED,
    NEWER_MINOR_VERSION_PROCESSED,
    POWERTOOLS_METRICS_NAMESPACE,
    RECORDS_FAILED,
    RECORDS_SKIPPED,
    SHARED_METRICS,
    UNKNOWN_EVENT_TYPES_IGNORED,
    UNSUPPORTED_VERSIONS,
)

__all__ = [
    "DUPLICATES_SKIPPED",
    "MALFORMED_MESSAGES",
    "MESSAGES_DEAD_LETTERED",
    "NEWER_MINOR_VERSION_PROCESSED",
    "RECORDS_FAILED",
    "RECORDS_SKIPPED",
    "SHARED_METRICS",
    "UNKNOWN_EVENT_TYPES_IGNORED",
    "UNSUPPORTED_VERSIONS",
    "count",
    "new_metrics",
]


def new_metrics() -> Metrics:
    """The handler's Metrics, in ``POWERTOOLS_METRICS_NAMESPACE`` (default ``Conveyor``)."""
    return Metrics(
        namespace=os.environ.get(POWERTOOLS_METRICS_NAMESPACE) or DEFAULT_METRICS_NAMESPACE
    )


def count(metrics: Metrics, name: str, value: int = 1) -> None:
    """Add ``value`` to the Count metric ``name``."""
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
