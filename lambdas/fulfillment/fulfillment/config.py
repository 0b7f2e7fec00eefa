"""Settings of the order-fulfilment step handlers, read from the environment and validated."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from handler_kit.settings import ConfigError, table

from . import contract

__all__ = ["ConfigError", "Settings"]


@dataclass(frozen=True)
class Settings:
    """Every step handler reads the same two tables."""

    orders_table: str  # partition key ``orderId``: the order's state, step by step
    inventory_table: str  # partition key ``sku``: ``available`` and ``reservations`` per order

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        return cls(
            orders_table=table(environ, contract.ORDERS_TABLE),
            inventory_table=table(environ, contract.INVENTORY_TABLE),
        )
