"""Helpers every Lambda handler test module shares (imported by the *_support modules)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


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


def sqs_event(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}
