"""The tour handlers' settings, parsed from their environment (``handler_kit.settings``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlparse

from handler_kit.backoff import Backoff
from handler_kit.contract import IDEMPOTENCY_TABLE
from handler_kit.settings import ConfigError, int_between, required, table

from .contract import (
    BROKER_ENDPOINT,
    BROKER_SECRET_ARN,
    CLUSTER_ARN,
    NOTIFICATIONS_TABLE,
    PUBLISH_ATTEMPTS,
    PUBLISH_BASE_DELAY_MS,
)

_AMQP_SCHEMES = ("amqps", "amqp")


def _backoff(environ: Mapping[str, str]) -> Backoff:
    attempts = int_between(environ, PUBLISH_ATTEMPTS, 5, 1, 10)
    base_ms = int_between(environ, PUBLISH_BASE_DELAY_MS, 100, 1, 10_000)
    return Backoff(attempts=attempts, base_delay_s=base_ms / 1000, max_delay_s=5.0)


def _secret_arn(environ: Mapping[str, str]) -> str:
    value = required(environ, BROKER_SECRET_ARN)
    if not value.startswith("arn:") or ":secretsmanager:" not in value:
        raise ConfigError(BROKER_SECRET_ARN, f"must be a Secrets Manager secret ARN, got {value!r}")
    return value


@dataclass(frozen=True)
class RabbitProducerSettings:
    endpoint: str  # amqps://b-….mq.<region>.amazonaws.com:5671 (amqp:// only on loopback)
    secret_arn: str
    backoff: Backoff

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> RabbitProducerSettings:
        endpoint = required(environ, BROKER_ENDPOINT)
        parsed = urlparse(endpoint)
        if parsed.scheme not in _AMQP_SCHEMES or not parsed.hostname:
            raise ConfigError(BROKER_ENDPOINT, f"must be an amqps:// URL, got {endpoint!r}")
        if parsed.scheme == "amqp" and parsed.hostname not in ("127.0.0.1", "localhost"):
            raise ConfigError(BROKER_ENDPOINT, "must use TLS (amqps://) off loopback")
        return cls(endpoint, _secret_arn(environ), _backoff(environ))


@dataclass(frozen=True)
class DefinitionsSettings:
    secret_arn: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> DefinitionsSettings:
        return cls(_secret_arn(environ))


@dataclass(frozen=True)
class KafkaProducerSettings:
    cluster_arn: str
    backoff: Backoff

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> KafkaProducerSettings:
        value = required(environ, CLUSTER_ARN)
        if not value.startswith("arn:") or ":kafka:" not in value:
            raise ConfigError(CLUSTER_ARN, f"must be an MSK cluster ARN, got {value!r}")
        return cls(value, _backoff(environ))


@dataclass(frozen=True)
class ConsumerSettings:
    notifications_table: str
    idempotency_table: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ConsumerSettings:
        return cls(table(environ, NOTIFICATIONS_TABLE), table(environ, IDEMPOTENCY_TABLE))
