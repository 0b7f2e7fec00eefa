"""Fixtures every handler test shares: a fake AWS environment, one boto3 session, the Lambda
context, and the EMF metrics a handler printed. Each asset's own fixtures (its import path,
Powertools service and namespace, moto resources, events) live in ``<asset>/conftest.py``."""

from __future__ import annotations

from collections.abc import Callable

import boto3
import pytest

from tests.support.aws import fake_aws_env
from tests.support.lambda_context import LambdaContext
from tests.support.observability import emf_totals


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials and region: nothing here can reach a real AWS account."""
    fake_aws_env(monkeypatch)
    # POWERTOOLS_DEV=true in a developer's shell would silently disable the metrics asserted on.
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")


@pytest.fixture(scope="session")
def boto3_session() -> boto3.session.Session:
    """One session for every test, so botocore parses each service model only once."""
    return boto3.session.Session()


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext()


@pytest.fixture
def metrics_namespace() -> str | None:
    """The namespace every EMF blob must be in (an asset's conftest says which); None: any."""
    return None


@pytest.fixture
def emitted_metrics(
    capsys: pytest.CaptureFixture[str], metrics_namespace: str | None
) -> Callable[[], dict[str, float]]:
    """Totals by metric name of the EMF blobs printed to stdout since the last read."""
    return lambda: emf_totals(capsys.readouterr().out, namespace=metrics_namespace)
