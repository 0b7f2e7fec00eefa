"""Parsing and validation of alarm notifications. Any shape problem is a MalformedNotification.

Two event shapes carry the same facts:

* SNS -> Lambda: ``{"Records": [{"EventSource": "aws:sns", "Sns": {"Message": "<alarm JSON>"}}]}``
  where the message is CloudWatch's alarm notification (``AlarmName``, ``NewStateValue``,
  ``OldStateValue``, ``StateChangeTime``, ``NewStateReason``, ``AlarmArn``, ``Trigger``...);
* EventBridge -> Lambda: ``{"source": "aws.cloudwatch", "detail-type": "CloudWatch Alarm State
  Change", "detail": {"alarmName", "state": {"value", "reason", "timestamp"},
  "previousState": {"value", ...}, "configuration": {...}}}``.

Both become an ``AlarmChange``. The state change time is normalised to UTC with milliseconds
(``2026-01-01T12:00:00.000Z``): it is part of every idempotency key, so the same transition
delivered through SNS and through EventBridge is recognised as one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, SNSEvent
from handler_kit.messages import shown as _shown

OK = "OK"
ALARM = "ALARM"
INSUFFICIENT_DATA = "INSUFFICIENT_DATA"
STATES = (OK, ALARM, INSUFFICIENT_DATA)

EVENTBRIDGE_SOURCE = "aws.cloudwatch"
EVENTBRIDGE_DETAIL_TYPE = "CloudWatch Alarm State Change"
MAX_REASON_CHARS = 1024


class MalformedNotification(Exception):
    """The event is not a usable alarm notification: retrying cannot fix it."""


@dataclass(frozen=True)
class AlarmChange:
    """One alarm state transition, whatever the delivery."""

    alarm_name: str
    new_state: str
    # None when the notification does not say (EventBridge: a brand-new alarm's first change).
    old_state: str | None
    # Normalised, see format_time(); part of every idempotency key.
    state_change_time: str
    reason: str | None
    alarm_arn: str | None
    # "sns" or "eventbridge".
    delivery: str
    # SNS MessageId or EventBridge event id (logged only, never used as a key).
    delivery_id: str | None

    def log_keys(self) -> dict[str, Any]:
        return {
            "alarm_name": self.alarm_name,
            "new_state": self.new_state,
            "old_state": self.old_state,
            "state_change_time": self.state_change_time,
            "delivery": self.delivery,
            "delivery_id": self.delivery_id,
        }


def parse_event(event: object) -> list[AlarmChange]:
    """Every alarm change of an SNS or EventBridge event, all validated before any is used."""
    if not isinstance(event, dict):
        raise MalformedNotification(f"event is {type(event).__name__}, not an object")
    if "Records" in event:
        return _parse_sns_event(event)
    if "detail-type" in event:
        return [_parse_eventbridge_event(event)]
    raise MalformedNotification(
        "event is neither an SNS event ('Records') nor an EventBridge event ('detail-type')"
    )


# ---------------------------------------------------------------------------------------------
# SNS


def _parse_sns_event(event: dict[str, Any]) -> list[AlarmChange]:
    records = event.get("Records")
    if not isinstance(records, list) or not records:
        raise MalformedNotification("SNS event has no non-empty 'Records' list")
    changes = []
    for index, record in enumerate(SNSEvent(event).records):
        raw = record.raw_event
        if not isinstance(raw, dict) or not isinstance(raw.get("Sns"), dict):
            raise MalformedNotification(f"Records[{index}] has no 'Sns' object")
        if record.get("EventSource") != "aws:sns":
            raise MalformedNotification(
                f"Records[{index}].EventSource is {_shown(record.get('EventSource'))}, "
                "not 'aws:sns'"
            )
        try:
            changes.append(
                parse_alarm_message(
                    record.sns.get("Message"), delivery_id=record.sns.get("MessageId")
                )
            )
        except MalformedNotification as exc:
            raise MalformedNotification(f"Records[{index}]: {exc}") from exc
    return changes


def parse_alarm_message(message: object, *, delivery_id: object = None) -> AlarmChange:
    """CloudWatch's alarm notification JSON (the SNS message)."""
    if not isinstance(message, str):
        raise MalformedNotification(f"Sns.Message is {_shown(message)}, not a JSON string")
    try:
        alarm = json.loads(message)
    except (ValueError, RecursionError) as exc:
        raise MalformedNotification(f"Sns.Message is not JSON: {exc}") from exc
    if not isinstance(alarm, dict):
        raise MalformedNotification(f"Sns.Message is JSON {type(alarm).__name__}, not an object")
    return AlarmChange(
        alarm_name=_text(alarm.get("AlarmName"), "AlarmName"),
        new_state=_state(alarm.get("NewStateValue"), "NewStateValue"),
        old_state=_optional_state(alarm.get("OldStateValue"), "OldStateValue"),
        state_change_time=_time(alarm.get("StateChangeTime"), "StateChangeTime"),
        reason=_reason(alarm.get("NewStateReason")),
        alarm_arn=_optional_text(alarm.get("AlarmArn")),
        delivery="sns",
        delivery_id=_optional_text(delivery_id),
    )


# ---------------------------------------------------------------------------------------------
# EventBridge


def _parse_eventbridge_event(event: dict[str, Any]) -> AlarmChange:
    bridge = EventBridgeEvent(event)
    if bridge.get("source") != EVENTBRIDGE_SOURCE:
        raise MalformedNotification(
            f"EventBridge source is {_shown(bridge.get('source'))}, not {EVENTBRIDGE_SOURCE!r}"
        )
    if bridge.get("detail-type") != EVENTBRIDGE_DETAIL_TYPE:
        raise MalformedNotification(
            f"EventBridge detail-type is {_shown(bridge.get('detail-type'))}, "
            f"not {EVENTBRIDGE_DETAIL_TYPE!r}"
        )
    detail = bridge.get("detail")
    if not isinstance(detail, dict):
        raise MalformedNotification(f"detail must be an object, got {_shown(detail)}")
    state = detail.get("state")
    if not isinstance(state, dict):
        raise MalformedNotification(f"detail.state must be an object, got {_shown(state)}")
    previous = detail.get("previousState")
    if previous is not None and not isinstance(previous, dict):
        raise MalformedNotification(
            f"detail.previousState must be an object, got {_shown(previous)}"
        )
    resources = bridge.get("resources")
    alarm_arn = resources[0] if isinstance(resources, list) and resources else None
    return AlarmChange(
        alarm_name=_text(detail.get("alarmName"), "detail.alarmName"),
        new_state=_state(state.get("value"), "detail.state.value"),
        old_state=(
            None
            if previous is None
            else _optional_state(previous.get("value"), "detail.previousState.value")
        ),
        state_change_time=_time(state.get("timestamp"), "detail.state.timestamp"),
        reason=_reason(state.get("reason")),
        alarm_arn=_optional_text(alarm_arn),
        delivery="eventbridge",
        delivery_id=_optional_text(bridge.get("id")),
    )


# ---------------------------------------------------------------------------------------------
# Fields


def format_time(moment: datetime) -> str:
    """UTC, millisecond precision, fixed width: sorts like the instants it names."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_time(value: str) -> datetime:
    """CloudWatch writes ``2026-01-01T12:00:00.000+0000``; any ISO 8601 with an offset is
    accepted. ValueError if it is not one."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("no UTC offset")
    return moment


def _time(value: object, field: str) -> str:
    text = _text(value, field)
    try:
        return format_time(parse_time(text))
    except ValueError as exc:
        raise MalformedNotification(
            f"{field} must be an ISO 8601 timestamp with an offset, got {_shown(value)}"
        ) from exc


def _state(value: object, field: str) -> str:
    if value not in STATES:
        raise MalformedNotification(
            f"{field} must be one of {', '.join(STATES)}, got {_shown(value)}"
        )
    return str(value)


def _optional_state(value: object, field: str) -> str | None:
    return None if value is None else _state(value, field)


def _text(value: object, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise MalformedNotification(f"{field} must be a non-empty string, got {_shown(value)}")
    return value


def _optional_text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _reason(value: object) -> str | None:
    text = _optional_text(value)
    return None if text is None else text[:MAX_REASON_CHARS]
