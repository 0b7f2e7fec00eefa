"""Fixtures of the order-fulfilment step handler tests: import path, Powertools settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.aws import powertools_env
from tests.support.handlers import powertools_environment, use_asset

HERE = Path(__file__).resolve().parent
SERVICE_NAME = "fulfillment-test"
METRICS_NAMESPACE = "ConveyorTest"
use_asset("fulfillment", HERE)

with powertools_environment(service=SERVICE_NAME, namespace=METRICS_NAMESPACE):
    import fulfillment.steps  # noqa: F401


@pytest.fixture(autouse=True)
def powertools(monkeypatch: pytest.MonkeyPatch) -> None:
    powertools_env(monkeypatch, service=SERVICE_NAME, namespace=METRICS_NAMESPACE)
