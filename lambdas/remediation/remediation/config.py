"""Settings of the remediation Lambda, read from environment variables and validated.

Powertools reads its own variables (``POWERTOOLS_SERVICE_NAME``,
``POWERTOOLS_METRICS_NAMESPACE``, ``POWERTOOLS_LOG_LEVEL``...) itself; they are not here.

``REMEDIATION_RULES`` is a JSON object keyed by alarm name::

    {
      "orders-dlq-not-empty": {
        "action": "record_incident",
        "dead_letter_queue_arn": "arn:aws:sqs:eu-west-1:123456789012:orders-dlq"
      },
      "orders-consumer-errors": {
        "action": "redrive",
        "dead_letter_queue_arn": "arn:aws:sqs:eu-west-1:123456789012:orders-dlq",
        "source_queue_arn": "arn:aws:sqs:eu-west-1:123456789012:orders"
      }
    }

Unknown actions, unknown or missing keys and malformed ARNs are configuration errors: a typo
must fail loudly at the first invocation, not silently disable a remediation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from handler_kit.messages import shown
from handler_kit.settings import ConfigError, int_between, required, table

from . import contract
from .contract import ACTIONS, RECORD_INCIDENT, REDRIVE, RULE_KEYS

__all__ = ["ACTIONS", "RECORD_INCIDENT", "REDRIVE", "ConfigError", "QueueArn", "Rule", "Settings"]


DEFAULT_REDRIVE_MAX_PER_DAY = 3
MAX_REDRIVE_MAX_PER_DAY = 100
DEFAULT_REDRIVE_MAX_MESSAGES_PER_SECOND = 10
MAX_REDRIVE_MAX_MESSAGES_PER_SECOND = 500  # the StartMessageMoveTask maximum
DEFAULT_AUDIT_RETENTION_DAYS = 90
MAX_AUDIT_RETENTION_DAYS = 3650
MAX_ALARM_NAME_CHARS = 255  # CloudWatch's limit

# An SQS queue ARN: 1-80 characters of letters, digits, '-', '_' (FIFO: ending in ".fifo").
_QUEUE_ARN = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):sqs:(?P<region>[a-z]{2}(?:-[a-z]+)+-[0-9]):"
    r"(?P<account>[0-9]{12}):(?P<name>[A-Za-z0-9_-]{1,80}|[A-Za-z0-9_-]{1,75}\.fifo)"
)


@dataclass(frozen=True)
class QueueArn:
    """An SQS queue ARN, split into the parts the API calls need."""

    arn: str
    partition: str
    region: str
    account: str
    name: str

    @property
    def is_fifo(self) -> bool:
        return self.name.endswith(".fifo")

    @classmethod
    def parse(cls, value: object) -> QueueArn | None:
        """The parsed ARN, or None when ``value`` is not an SQS queue ARN."""
        match = _QUEUE_ARN.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            return None
        return cls(arn=match[0], **match.groupdict())


@dataclass(frozen=True)
class Rule:
    """What to do when the alarm ``alarm_name`` changes state."""

    alarm_name: str
    action: str
    # record_incident: the DLQ whose depth is recorded; redrive: the queue messages move out of.
    dead_letter_queue: QueueArn
    # redrive only: where the messages go back to (the DLQ's source queue).
    source_queue: QueueArn | None = None


@dataclass(frozen=True)
class Settings:
    """Settings of ``remediation.handler``."""

    # Alarm name -> rule (read-only mapping).
    rules: Mapping[str, Rule]
    # Audit table: partition key ``pk`` (S), sort key ``sk`` (S), TTL attribute ``expiresAt``.
    audit_table: str
    # Redrives started per DLQ in any rolling 24 hours; more are skipped (the loop breaker).
    # 0 disables redrives (every one is skipped and audited).
    redrive_max_per_day: int = DEFAULT_REDRIVE_MAX_PER_DAY
    redrive_max_messages_per_second: int = DEFAULT_REDRIVE_MAX_MESSAGES_PER_SECOND
    audit_retention_days: int = DEFAULT_AUDIT_RETENTION_DAYS

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Build the settings from ``environ`` (normally ``os.environ``); raise ConfigError."""
        return cls(
            rules=_rules(environ, contract.REMEDIATION_RULES),
            audit_table=table(environ, contract.AUDIT_TABLE),
            redrive_max_per_day=int_between(
                environ,
                contract.REDRIVE_MAX_PER_DAY,
                DEFAULT_REDRIVE_MAX_PER_DAY,
                0,
                MAX_REDRIVE_MAX_PER_DAY,
            ),
            redrive_max_messages_per_second=int_between(
                environ,
                contract.REDRIVE_MAX_MESSAGES_PER_SECOND,
                DEFAULT_REDRIVE_MAX_MESSAGES_PER_SECOND,
                1,
                MAX_REDRIVE_MAX_MESSAGES_PER_SECOND,
            ),
            audit_retention_days=int_between(
                environ,
                contract.AUDIT_RETENTION_DAYS,
                DEFAULT_AUDIT_RETENTION_DAYS,
                1,
                MAX_AUDIT_RETENTION_DAYS,
            ),
        )


# ---------------------------------------------------------------------------------------------
# REMEDIATION_RULES


def _rules(environ: Mapping[str, str], name: str) -> Mapping[str, Rule]:
    raw = required(environ, name)
    try:
        document = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise ConfigError(name, f"is not valid JSON: {exc}") from exc
    if not isinstance(document, dict) or not document:
        raise ConfigError(name, "must be a non-empty JSON object keyed by alarm name")
    rules = {}
    for alarm_name, spec in document.items():
        if not alarm_name.strip() or len(alarm_name) > MAX_ALARM_NAME_CHARS:
            raise ConfigError(
                name, f"has an invalid alarm name {alarm_name!r} (1-{MAX_ALARM_NAME_CHARS} chars)"
            )
        rules[alarm_name] = _rule(name, alarm_name, spec)
    return MappingProxyType(rules)


def _rule(name: str, alarm_name: str, spec: object) -> Rule:
    where = f"[{alarm_name!r}]"
    if not isinstance(spec, dict):
        raise ConfigError(name, f"{where} must be an object, got {_shown(spec)}")
    action = spec.get("action")
    if action not in ACTIONS:
        raise ConfigError(
            name, f"{where}.action must be one of {', '.join(ACTIONS)}, got {_shown(action)}"
        )
    allowed = RULE_KEYS[action]
    unknown = sorted(set(spec) - set(allowed))
    if unknown:
        raise ConfigError(
            name,
            f"{where} has unknown keys {', '.join(map(repr, unknown))} for action {action!r} "
            f"(allowed: {', '.join(allowed)})",
        )
    dead_letter_queue = _queue_arn(name, where, spec, "dead_letter_queue_arn")
    if action == RECORD_INCIDENT:
        return Rule(alarm_name, action, dead_letter_queue)

    source_queue = _queue_arn(name, where, spec, "source_queue_arn")
    if source_queue.arn == dead_letter_queue.arn:
        raise ConfigError(name, f"{where}: source_queue_arn and dead_letter_queue_arn are equal")
    if (source_queue.partition, source_queue.region, source_queue.account) != (
        dead_letter_queue.partition,
        dead_letter_queue.region,
        dead_letter_queue.account,
    ):
        raise ConfigError(
            name, f"{where}: the source queue and the DLQ must be in the same account and region"
        )
    if source_queue.is_fifo != dead_letter_queue.is_fifo:
        raise ConfigError(
            name, f"{where}: the source queue and the DLQ must both be FIFO or both be standard"
        )
    return Rule(alarm_name, action, dead_letter_queue, source_queue)


def _queue_arn(name: str, where: str, spec: dict[str, Any], key: str) -> QueueArn:
    value = spec.get(key)
    parsed = QueueArn.parse(value)
    if parsed is None:
        raise ConfigError(
            name,
            f"{where}.{key} must be an SQS queue ARN (arn:aws:sqs:<region>:<account>:<name>), "
            f"got {_shown(value)}",
        )
    return parsed


def _reject_constant(constant: str) -> Any:
    raise ValueError(f"{constant} is not valid JSON")


def _shown(value: object) -> str:
    return shown(value, limit=120)
