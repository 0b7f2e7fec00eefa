"""Fixtures of the tour handler tests: import path, Powertools service, namespace."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.aws import powertools_env
from tests.support.handlers import powertools_environment, use_asset

HERE = Path(__file__).resolve().parent
SERVICE_NAME = "tours-test"
METRICS_NAMESPACE = "ConveyorTest"
use_asset("tours", HERE)

with powertools_environment(service=SERVICE_NAME, namespace=METRICS_NAMESPACE):
    import tours.kafka_consumer
    import tours.kafka_producer
    import tours.rabbit_consumer
    import tours.rabbit_producer  # noqa: F401


@pytest.fixture(autouse=True)
def powertools(monkeypatch: pytest.MonkeyPatch) -> None:
    powertools_env(monkeypatch, service=SERVICE_NAME, namespace=METRICS_NAMESPACE)


@pytest.fixture
def metrics_namespace() -> str:
    return METRICS_NAMESPACE
