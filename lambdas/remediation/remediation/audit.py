"""The audit table: incidents, redrive ledger and the audit trail (one DynamoDB table).

Schema: partition key ``pk`` (S), sort key ``sk`` (S), TTL attribute ``expiresAt`` (epoch
seconds, ``AUDIT_RETENTION_DAYS`` after the write). Times are ``format_time`` strings (UTC,
milliseconds, fixed width), so sort keys sort chronologically.

=====================  ===============================  =====================================
item                   pk                               sk
=====================  ===============================  =====================================
audit record           ``AUDIT#<alarm name>``           ``<state change time>``
incident               ``INCIDENT#<alarm name>``        ``<state change time of the ALARM>``
redrive ledger entry   ``REDRIVE#<DLQ ARN>``            ``<started at>#<alarm name>``
=====================  ===============================  =====================================

* The audit record is written for every alarm change that has a rule and a transition the rule
  acts on. It is first written as a claim (``outcome`` PENDING, ``claimToken``,
  ``claimExpiresAt`` in epoch milliseconds) with a condition, so one notification delivered
  twice (SNS retries, SNS and EventBridge both subscribed...) is acted on once; it then gets the
  final ``outcome`` and its details. A claim whose invocation failed is released
  (``claimExpiresAt`` 0, ``lastError``) so that Lambda's retry can take it again.
* The incident is ``status`` OPEN, then RESOLVED (``resolvedAt``, ``resolvedReason``).
* The ledger has one entry per message move task started; the redrive cap counts the entries
  of the last 24 hours (sort key >= now - 24 h).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from handler_kit.failures import error_code, is_conditional_check_failed

from .alarms import AlarmChange, format_time

PENDING = "PENDING"
OPEN = "OPEN"
RESOLVED = "RESOLVED"

_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()


class ClaimLost(Exception):
    """Our claim on a notification was taken over: never expected (a claim lasts as long as
    the invocation that holds it)."""


class ClaimStatus(Enum):
    CLAIMED = "claimed"
    # Already handled: ``existing`` holds the recorded outcome.
    DUPLICATE = "duplicate"
    # Another invocation holds an unexpired claim.
    IN_PROGRESS = "in_progress"


@dataclass(frozen=True)
class Claim:
    status: ClaimStatus
    existing: dict[str, Any] | None = None


@dataclass(frozen=True)
class LedgerEntry:
    """A message move task that was started: counts towards the redrive cap."""

    dead_letter_queue_arn: str
    source_queue_arn: str
    task_handle: str
    started_at: str
    max_messages_per_second: int
    dlq_depth: int


def audit_key(alarm_name: str, state_change_time: str) -> dict[str, str]:
    return {"pk": f"AUDIT#{alarm_name}", "sk": state_change_time}


def incident_key(alarm_name: str, opened_at: str) -> dict[str, str]:
    return {"pk": f"INCIDENT#{alarm_name}", "sk": opened_at}


def ledger_partition(dead_letter_queue_arn: str) -> str:
    return f"REDRIVE#{dead_letter_queue_arn}"


class AuditStore:
    """Every read and write of the audit table."""

    def __init__(self, client: BaseClient, table: str, retention_days: int) -> None:
        self._client = client
        self._table = table
        self._retention = timedelta(days=retention_days)

    # -----------------------------------------------------------------------------------------
    # Audit records (claim -> outcome)

    def claim(
        self,
        change: AlarmChange,
        action: str,
        *,
        token: str,
        now: datetime,
        claim_until: datetime,
    ) -> Claim:
        """Claim the notification: CLAIMED unless it is already handled or being handled."""
        fields = {
            "alarmName": change.alarm_name,
            "action": action,
            "newState": change.new_state,
            "oldState": change.old_state,
            "stateChangeTime": change.state_change_time,
            "reason": change.reason,
            "alarmArn": change.alarm_arn,
            "delivery": change.delivery,
            "deliveryId": change.delivery_id,
            "outcome": PENDING,
            "claimToken": token,
            "claimExpiresAt": _epoch_ms(claim_until),
            "receivedAt": format_time(now),
            "expiresAt": self._expires_at(now),
        }
        update = _Update()
        update.set_all(fields)
        update.add_expression("#attempts = if_not_exists(#attempts, :zero) + :one")
        update.names["#attempts"] = "attempts"
        update.values.update(
            {":zero": 0, ":one": 1, ":now_ms": _epoch_ms(now), ":pending": PENDING}
        )
        try:
            self._client.update_item(
                TableName=self._table,
                Key=_marshal(audit_key(change.alarm_name, change.state_change_time)),
                ConditionExpression=(
                    "attribute_not_exists(pk) OR "
                    "(#outcome = :pending AND #claimExpiresAt < :now_ms)"
                ),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **update.request(),
            )
        except ClientError as exc:
            if not is_conditional_check_failed(exc):
                raise
            existing = _unmarshal(exc.response.get("Item") or {})
            if existing.get("outcome") == PENDING:
                return Claim(ClaimStatus.IN_PROGRESS, existing)
            return Claim(ClaimStatus.DUPLICATE, existing)
        return Claim(ClaimStatus.CLAIMED)

    def release(self, change: AlarmChange, *, token: str, error: str) -> None:
        """Let the next delivery (Lambda's retry) claim the notification again."""
        update = _Update()
        update.set_all({"claimExpiresAt": 0, "lastError": error[:1024]})
        update.values.update({":token": token, ":pending": PENDING})
        try:
            self._client.update_item(
                TableName=self._table,
                Key=_marshal(audit_key(change.alarm_name, change.state_change_time)),
                ConditionExpression="claimToken = :token AND #outcome = :pending",
                **update.request(extra_names={"#outcome": "outcome"}),
            )
        except ClientError as exc:
            if not is_conditional_check_failed(exc):
                raise

    def complete(
        self,
        change: AlarmChange,
        *,
        token: str,
        outcome: str,
        details: dict[str, Any],
        now: datetime,
        ledger: LedgerEntry | None = None,
    ) -> None:
        """Record the outcome (and, atomically, the ledger entry of a started redrive)."""
        update = _Update()
        update.set_all({**details, "outcome": outcome, "completedAt": format_time(now)})
        update.remove("claimExpiresAt")
        update.values.update({":token": token, ":pending": PENDING})
        audit_update = {
            "TableName": self._table,
            "Key": _marshal(audit_key(change.alarm_name, change.state_change_time)),
            "ConditionExpression": "claimToken = :token AND #outcome = :pending",
            **update.request(extra_names={"#outcome": "outcome"}),
        }
        try:
            if ledger is None:
                self._client.update_item(**audit_update)
                return
            self._client.transact_write_items(
                TransactItems=[
                    {"Update": audit_update},
                    {"Put": self._ledger_put(change, ledger, now)},
                ]
            )
        except ClientError as exc:
            if is_conditional_check_failed(exc) or _cancelled_by_condition(exc):
                raise ClaimLost(
                    f"the claim on {change.alarm_name!r} at {change.state_change_time} was "
                    "taken over before its outcome was recorded"
                ) from exc
            raise

    def _ledger_put(
        self, change: AlarmChange, ledger: LedgerEntry, now: datetime
    ) -> dict[str, Any]:
        item = {
            "pk": ledger_partition(ledger.dead_letter_queue_arn),
            "sk": f"{ledger.started_at}#{change.alarm_name}",
            "alarmName": change.alarm_name,
            "stateChangeTime": change.state_change_time,
            "dlqArn": ledger.dead_letter_queue_arn,
            "sourceQueueArn": ledger.source_queue_arn,
            "taskHandle": ledger.task_handle,
            "startedAt": ledger.started_at,
            "maxMessagesPerSecond": ledger.max_messages_per_second,
            "dlqDepth": ledger.dlq_depth,
            "expiresAt": self._expires_at(now),
        }
        return {
            "TableName": self._table,
            "Item": _marshal(item),
            "ConditionExpression": "attribute_not_exists(pk)",
        }

    # -----------------------------------------------------------------------------------------
    # Incidents

    def put_incident(
        self,
        change: AlarmChange,
        *,
        dead_letter_queue_arn: str,
        dlq_depth: int | None,
        now: datetime,
    ) -> bool:
        """Open the incident of this ALARM transition; False if it was already recorded."""
        item = {
            **incident_key(change.alarm_name, change.state_change_time),
            "alarmName": change.alarm_name,
            "status": OPEN,
            "openedAt": change.state_change_time,
            "reason": change.reason,
            "alarmArn": change.alarm_arn,
            "dlqArn": dead_letter_queue_arn,
            "dlqDepth": dlq_depth,
            "dlqMissing": dlq_depth is None,
            "recordedAt": format_time(now),
            "expiresAt": self._expires_at(now),
        }
        try:
            self._client.put_item(
                TableName=self._table,
                Item=_marshal(item),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if is_conditional_check_failed(exc):
                return False
            raise
        return True

    def open_incidents(self, alarm_name: str, *, until: str) -> list[str]:
        """The ``openedAt`` of every OPEN incident of the alarm opened at or before ``until``."""
        opened: list[str] = []
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND sk <= :until",
            "FilterExpression": "#status = :open",
            "ProjectionExpression": "sk",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": _marshal(
                {":pk": incident_key(alarm_name, "")["pk"], ":until": until, ":open": OPEN}
            ),
        }
        while True:
            response = self._client.query(**request)
            opened.extend(item["sk"]["S"] for item in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return opened
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def resolve_incident(self, change: AlarmChange, *, opened_at: str, now: datetime) -> bool:
        """Mark one incident RESOLVED; False if it no longer was OPEN."""
        update = _Update()
        update.set_all(
            {
                "status": RESOLVED,
                "resolvedAt": change.state_change_time,
                "resolvedReason": change.reason,
                "resolutionRecordedAt": format_time(now),
            }
        )
        update.values[":open"] = OPEN
        try:
            self._client.update_item(
                TableName=self._table,
                Key=_marshal(incident_key(change.alarm_name, opened_at)),
                ConditionExpression="#status = :open",
                **update.request(),
            )
        except ClientError as exc:
            if is_conditional_check_failed(exc):
                return False
            raise
        return True

    # -----------------------------------------------------------------------------------------
    # Redrive ledger

    def redrives_since(self, dead_letter_queue_arn: str, since: str) -> int:
        """How many move tasks were started for this DLQ at or after ``since``."""
        count = 0
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND sk >= :since",
            "ExpressionAttributeValues": _marshal(
                {":pk": ledger_partition(dead_letter_queue_arn), ":since": since}
            ),
            "Select": "COUNT",
        }
        while True:
            response = self._client.query(**request)
            count += int(response.get("Count", 0))
            if "LastEvaluatedKey" not in response:
                return count
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def _expires_at(self, now: datetime) -> int:
        return int((now + self._retention).timestamp())


# ---------------------------------------------------------------------------------------------
# Expression building and marshalling


class _Update:
    """An UpdateExpression built from plain values; None values are left out."""

    def __init__(self) -> None:
        self._set: list[str] = []
        self._remove: list[str] = []
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def set_all(self, fields: dict[str, Any]) -> None:
        for name, value in fields.items():
            if value is None:
                continue
            self.names[f"#{name}"] = name
            self.values[f":{name}"] = value
            self._set.append(f"#{name} = :{name}")

    def add_expression(self, expression: str) -> None:
        self._set.append(expression)

    def remove(self, name: str) -> None:
        self.names[f"#{name}"] = name
        self._remove.append(f"#{name}")

    def request(self, extra_names: dict[str, str] | None = None) -> dict[str, Any]:
        expression = "SET " + ", ".join(self._set)
        if self._remove:
            expression += " REMOVE " + ", ".join(self._remove)
        return {
            "UpdateExpression": expression,
            "ExpressionAttributeNames": {**self.names, **(extra_names or {})},
            "ExpressionAttributeValues": _marshal(self.values),
        }


def _marshal(values: dict[str, Any]) -> dict[str, Any]:
    return {
        name: _SERIALIZER.serialize(value) for name, value in values.items() if value is not None
    }


def _unmarshal(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _DESERIALIZER.deserialize(value) for name, value in item.items()}


def _epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _cancelled_by_condition(exc: ClientError) -> bool:
    if error_code(exc) != "TransactionCanceledException":
        return False
    reasons = exc.response.get("CancellationReasons") or []
    return any(
        isinstance(reason, dict) and reason.get("Code") == "ConditionalCheckFailed"
        for reason in reasons
    )
