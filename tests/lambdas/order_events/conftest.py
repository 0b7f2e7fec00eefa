"""Fixtures of the order_events handler tests: its import path and Powertools service/namespace."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.aws import powertools_env
from tests.support.handlers import powertools_environment, use_asset

HERE = Path(__file__).resolve().parent
SERVICE_NAME = "order-events-test"
METRICS_NAMESPACE = "ConveyorTest"
use_asset("order_events", HERE)

# The handler modules read the Powertools variables when imported (module-level Logger and
# Metrics), which happens when the test module is collected: import them here, under this
# asset's own environment.
with powertools_environment(service=SERVICE_NAME, namespace=METRICS_NAMESPACE):
    import order_events.handler
    import order_events.routing  # noqa: F401


@pytest.fixture(autouse=True)
def powertools(monkeypatch: pytest.MonkeyPatch) -> None:
    powertools_env(monkeypatch, service=SERVICE_NAME, namespace=METRICS_NAMESPACE)


@pytest.fixture
def metrics_namespace() -> str:
    return METRICS_NAMESPACE
