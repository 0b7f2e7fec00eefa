"""Settings of the telemetry Lambda, read from environment variables and validated."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from handler_kit.settings import ConfigError, table

from . import contract

__all__ = ["ConfigError", "Settings"]


@dataclass(frozen=True)
class Settings:
    """Settings of ``telemetry.handler``."""

    # One item per device (partition key ``deviceId``): readings, total, last value/sequence.
    aggregates_table: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Build the settings from ``environ`` (normally ``os.environ``); raise ConfigError."""
        return cls(aggregates_table=table(environ, contract.AGGREGATES_TABLE))
