"""Lambda handlers: subscribers of the accounts bus (EventBridge rules, asynchronous).

The course's CQRS + EDA example: ArgentRetiré(50) (here RetraitEffectué) reaches the read
model (the projection), a **notification** service that texts the customer, and an **audit**
service that records the event. Neither knows the command side: they read the event the
outbox published, exactly as stored.

- ``notification_handler``: an SMS per event through the notifications topic (Powertools
  idempotency keyed by the stored event's ``eventId`` and the service, completion write
  retried by the kit: an outbox retry or an EventBridge redelivery normally sends nothing
  twice). **At-least-once**, not once: a standard SNS ``Publish`` cannot be deduplicated, so
  if the completion write still fails after its retries (or the function dies between the
  publish and it), the retried event publishes again once the in-progress record expires.
  Each message carries the stored event's id as the ``eventId`` message attribute (the same
  on every copy): subscribers must dedupe by it;
- ``audit_handler``: one item per event in the audit table (a conditional put: a redelivery
  is a counted duplicate).

A detail that is not a stored event is logged, counted (``MalformedMessages``) and raised:
Lambda retries it, then it goes to the function's on-failure queue. Other errors too.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError
from handler_kit.clients import lazy_client
from handler_kit.consumer import load_settings, log_invocation_failure, reject_malformed
from handler_kit.contract import DUPLICATES_SKIPPED, MALFORMED_MESSAGES, RECORDS_FAILED
from handler_kit.event_store import MalformedStoredEvent, StoredEvent, from_json
from handler_kit.failures import is_conditional_check_failed
from handler_kit.idempotency import duplicate_hook, idempotency_config, once
from handler_kit.metrics import count, new_metrics
from handler_kit.settings import cached_settings

from . import contract
from .config import AuditSettings, NotificationSettings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = ["audit_handler", "notification_handler"]

logger = Logger()
metrics = new_metrics()
_notification_settings = cached_settings(NotificationSettings)
_audit_settings = cached_settings(AuditSettings)
_dynamodb_client = lazy_client("dynamodb")
_sns_client = lazy_client("sns")
NOTIFICATION_SERVICE = "accounts-notification"


class MalformedEvent(ValueError):
    """The EventBridge event's detail is not a stored account event."""


def _event(event: dict[str, Any]) -> StoredEvent:
    try:
        stored = from_json(event.get("detail"))
    except MalformedStoredEvent as exc:
        reject_malformed(
            logger, metrics, str(exc), what="event", metric=MALFORMED_MESSAGES, error=MalformedEvent
        )
    if stored.type not in contract.EVENT_TYPES:
        reject_malformed(
            logger,
            metrics,
            f"unknown event type {stored.type!r}",
            what="event",
            metric=MALFORMED_MESSAGES,
            error=MalformedEvent,
        )
    logger.set_correlation_id(stored.correlation_id)
    logger.append_keys(
        aggregate_id=stored.aggregate_id, version=stored.version, event_type=stored.type
    )
    return stored


def sms_text(event: StoredEvent) -> str:
    amount = int(event.data.get(contract.AMOUNT, 0))
    if event.type == contract.ACCOUNT_OPENED:
        return f"Welcome {event.data.get(contract.OWNER)}: your account is open."
    if event.type == contract.DEPOSITED:
        return f"Deposit of {amount} received."
    return f"Withdrawal of {amount} made."


def _send(event: dict[str, Any]) -> dict[str, Any]:
    """Text the customer (run once per stored event id)."""
    stored = from_json(event)
    phone = stored.data.get(contract.PHONE) or ""
    response = _sns_client().publish(
        TopicArn=_notification_settings().topic_arn,
        Message=sms_text(stored),
        MessageAttributes={
            "eventType": {"DataType": "String", "StringValue": stored.type},
            "accountId": {"DataType": "String", "StringValue": stored.aggregate_id},
            # The same on every copy of this event's SMS: what subscribers dedupe by.
            "eventId": {"DataType": "String", "StringValue": stored.event_id},
            **({"phone": {"DataType": "String", "StringValue": phone}} if phone else {}),
        },
    )
    count(metrics, contract.NOTIFICATIONS_SENT)
    logger.info("Customer notified", extra={"message_id": response["MessageId"]})
    return {"messageId": response["MessageId"]}


@functools.cache
def _notifier() -> tuple[Callable[..., dict[str, Any]], IdempotencyConfig]:
    """``_send`` made idempotent on the stored event's id (built once, settings first)."""
    settings = _notification_settings()
    config = idempotency_config(
        "eventId",
        settings.idempotency_expires_after_seconds,
        duplicate_hook(logger, metrics, "Duplicate event: the customer was notified"),
    )
    send = once(
        _send,
        data_keyword_argument="event",
        table=settings.idempotency_table,
        client=_dynamodb_client(),
        config=config,
        key_prefix=NOTIFICATION_SERVICE,
    )
    return send, config


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def notification_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    load_settings(logger, metrics, _notification_settings, scope="the event")
    stored = _event(event)
    notify, config = _notifier()
    config.register_lambda_context(context)
    try:
        result: dict[str, Any] = notify(event=stored.as_json())
    except Exception as exc:
        log_invocation_failure(logger, metrics, exc, metric=RECORDS_FAILED)
        raise
    return result


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def audit_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = load_settings(logger, metrics, _audit_settings, scope="the event")
    stored = _event(event)
    item = {
        contract.AUDIT_KEY: {"S": stored.event_id},
        "aggregateId": {"S": stored.aggregate_id},
        "version": {"N": str(stored.version)},
        "type": {"S": stored.type},
        "correlationId": {"S": stored.correlation_id},
        "recordedAt": {"S": stored.recorded_at},
        "busEventId": {"S": str(event.get("id", ""))},
        "event": {"S": json.dumps(stored.as_json(), ensure_ascii=False, sort_keys=True)},
    }
    try:
        _dynamodb_client().put_item(
            TableName=settings.audit_table,
            Item=item,
            ConditionExpression=f"attribute_not_exists({contract.AUDIT_KEY})",
        )
    except Exception as exc:
        if _is_duplicate(exc):
            count(metrics, DUPLICATES_SKIPPED)
            logger.info("Duplicate event: already audited")
            return {"audited": False}
        log_invocation_failure(logger, metrics, exc, metric=RECORDS_FAILED)
        raise
    count(metrics, contract.EVENTS_AUDITED)
    logger.info("Event audited")
    return {"audited": True}


def _is_duplicate(exc: Exception) -> bool:
    return isinstance(exc, ClientError) and is_conditional_check_failed(exc)
