"""Lazily created boto3 clients, cached per execution environment.

Nothing AWS is touched at import time, so a test's moto mock (started after import) still
catches every call. Every client uses botocore's standard retry mode.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from botocore.client import BaseClient

BOTO_CONFIG = Config(retries={"mode": "standard"})


def lazy_client(service: str) -> functools._lru_cache_wrapper[BaseClient]:
    """A cached zero-argument factory of the ``service`` client (``cache_clear()`` resets it)."""

    def create() -> BaseClient:
        return boto3.client(service, config=BOTO_CONFIG)

    create.__name__ = create.__qualname__ = f"{service}_client"
    return functools.cache(create)


def lazy_regional_client(service: str) -> functools._lru_cache_wrapper[BaseClient]:
    """A cached factory of the ``service`` client of a given region: ``factory(region)``."""

    def create(region: str) -> BaseClient:
        return boto3.client(service, region_name=region, config=BOTO_CONFIG)

    create.__name__ = create.__qualname__ = f"{service}_client"
    return functools.cache(create)
