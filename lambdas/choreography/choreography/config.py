"""Settings of the choreography services, read from environment variables and validated."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Self

from handler_kit.contract import IDEMPOTENCY_EXPIRES_AFTER_SECONDS, IDEMPOTENCY_TABLE
from handler_kit.settings import ConfigError, positive_int, required, table

from . import contract

__all__ = [
    "BillingSettings",
    "ConfigError",
    "NotificationSettings",
    "OrdersSettings",
    "ServiceSettings",
    "StockSettings",
]


@dataclass(frozen=True)
class ServiceSettings:
    """What every service needs: the bus, its idempotency table and record expiry."""

    event_bus: str
    idempotency_table: str
    idempotency_expires_after_seconds: int
    table: str

    TABLE_VARIABLE = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Self:
        bus = required(environ, contract.EVENT_BUS_NAME)
        if bus.startswith("arn:") and ":events:" not in bus:
            raise ConfigError(contract.EVENT_BUS_NAME, f"must be a bus name or ARN, got {bus!r}")
        return cls(
            event_bus=bus,
            idempotency_table=table(environ, IDEMPOTENCY_TABLE),
            idempotency_expires_after_seconds=positive_int(
                environ, IDEMPOTENCY_EXPIRES_AFTER_SECONDS, 24 * 3600, unit="seconds"
            ),
            table=table(environ, cls.TABLE_VARIABLE),
        )


@dataclass(frozen=True)
class OrdersSettings(ServiceSettings):
    TABLE_VARIABLE = contract.ORDERS_TABLE


@dataclass(frozen=True)
class BillingSettings(ServiceSettings):
    TABLE_VARIABLE = contract.INVOICES_TABLE


@dataclass(frozen=True)
class NotificationSettings(ServiceSettings):
    TABLE_VARIABLE = contract.NOTIFICATIONS_TABLE


@dataclass(frozen=True)
class StockSettings(ServiceSettings):
    reservations_table: str = ""

    TABLE_VARIABLE = contract.INVENTORY_TABLE

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> StockSettings:
        base = super().from_env(environ)
        return replace(base, reservations_table=table(environ, contract.RESERVATIONS_TABLE))
