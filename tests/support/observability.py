"""Reading what a Powertools handler emitted: EMF metrics on stdout, structured log lines."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def emf_totals(stdout: str, *, namespace: str | None = None) -> dict[str, float]:
    """Totals by metric name of the EMF blobs in ``stdout`` (each in ``namespace`` if given)."""
    totals: dict[str, float] = {}
    for line in stdout.splitlines():
        try:
            blob = json.loads(line)
        except ValueError:
            continue
        if not isinstance(blob, dict) or "_aws" not in blob:
            continue
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            if namespace is not None:
                assert directive["Namespace"] == namespace
            for metric in directive["Metrics"]:
                value = blob[metric["Name"]]
                values = value if isinstance(value, list) else [value]
                totals[metric["Name"]] = totals.get(metric["Name"], 0) + sum(values)
    return totals


class JsonLogCapture(logging.Handler):
    """Keeps each record as the JSON object Powertools would print for it."""

    def __init__(self, formatter: logging.Formatter) -> None:
        super().__init__()
        self.setFormatter(formatter)
        self.logs: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.logs.append(json.loads(self.format(record)))


@contextmanager
def captured_logs(powertools_logger: Any) -> Iterator[list[dict[str, Any]]]:
    """The structured log lines of a Powertools Logger (its own handler writes to the
    sys.stdout of import time, which capsys cannot see)."""
    capture = JsonLogCapture(powertools_logger.registered_formatter)
    stdlib_logger = logging.getLogger(powertools_logger.name)
    stdlib_logger.addHandler(capture)
    try:
        yield capture.logs
    finally:
        stdlib_logger.removeHandler(capture)
