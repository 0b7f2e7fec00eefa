"""A fake AWS environment for moto: dummy credentials and region, one reused boto3 session."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from moto import mock_aws

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
# Variables that could point boto3 at a real account or endpoint.
_HOST_VARIABLES = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")


def fake_aws_env(monkeypatch: pytest.MonkeyPatch, region: str = REGION) -> None:
    """Dummy credentials and region: nothing can reach a real AWS account."""
    for name in _HOST_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)
    monkeypatch.setenv("AWS_REGION", region)
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)


def powertools_env(monkeypatch: pytest.MonkeyPatch, *, service: str, namespace: str) -> None:
    """A handler's Powertools service and metrics namespace; metrics never disabled
    (POWERTOOLS_DEV=true in a developer's shell would silently disable those asserted on)."""
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", service)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", namespace)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")


@contextmanager
def mocked_aws(session: boto3.session.Session, **options: Any) -> Iterator[None]:
    """``moto.mock_aws()`` whose default boto3 session is ``session``.

    mock_aws() sets boto3.DEFAULT_SESSION to None so that a fresh session picks up its fake
    credentials; every test would then pay ~0.3 s re-parsing the service models. The
    credentials are always the same dummy ones, so one session is reused (the handlers'
    boto3.client() calls go through it too). moto restores the default session on exit.
    """
    with mock_aws(**options):
        boto3.DEFAULT_SESSION = session
        yield
