"""SNS -> Lambda routing example: one topic, one function per ``eventType``.

``invoice_handler`` (handler string ``order_events.routing.invoice_handler``) is subscribed with
the filter policy ``{"eventType": ["invoice"]}``, ``user_handler``
(``order_events.routing.user_handler``) with ``{"eventType": ["user"]}``. The message is JSON:
``{"invoiceId": "i-1", "amount": 120.0}`` or ``{"userId": "u-1", "action": "created"}``; the
event type comes from the ``eventType`` message attribute (or, without it, from an
``eventType`` field of the message).

SNS invokes the function asynchronously. Each SNS record ends in exactly one way:

* processed (``MessagesProcessed``), or found already processed (``DuplicatesSkipped``) when
  ``IDEMPOTENCY_TABLE`` is set (keyed by invoiceId / userId, not by the SNS message id);
* dropped with a log line and ``UnknownEventTypesIgnored``: another event type (the filter
  policy should have stopped it) - retrying could never change that;
* raised, after a log line and ``MalformedMessages`` for a malformed message, or
  ``RecordsFailed`` for a transient or unexpected error (DynamoDB throttling...) or an invalid
  configuration: Lambda's asynchronous invocation retries the
  event twice (MaximumRetryAttempts, default 2; malformed messages are retried too, in vain),
  then sends it to the function's on-failure destination or dead-letter queue. Both are
  configured by the CDK stack (``on_failure`` / ``dead_letter_queue`` / ``retry_attempts`` of
  the function), not here: without them the event is lost after the retries.

SNS delivers one record per invocation; should there be several, they are handled in order and
the first failure raises (with idempotency, a retry skips the ones already done).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, cast

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import SNSEvent
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig
from handler_kit import idempotency
from handler_kit.clients import lazy_client
from handler_kit.consumer import load_settings, log_invocation_failure, reject_malformed
from handler_kit.contract import MALFORMED_MESSAGES, RECORDS_FAILED, UNKNOWN_EVENT_TYPES_IGNORED
from handler_kit.metrics import count, new_metrics
from handler_kit.settings import cached_settings

from .config import RoutingSettings
from .schema import (
    MalformedMessage,
    amount,
    load_json_object,
    money,
    sns_string_attributes,
    text,
)

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sns_event import SNSEventRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = ["INVOICE", "ROUTES", "USER", "Route", "handle", "invoice_handler", "user_handler"]

logger = Logger()
metrics = new_metrics()


@dataclass(frozen=True)
class Route:
    """What one routed function accepts and does."""

    event_type: str
    # The business key: the idempotency key, also logged.
    key_field: str
    # Parsed message -> the validated fields, JSON-serializable (raises MalformedMessage).
    validate: Callable[[dict[str, Any]], dict[str, Any]]
    # Validated fields -> JSON-serializable result of the work (stored for duplicates).
    work: Callable[[dict[str, Any]], dict[str, Any]]


def _validate_invoice(message: dict[str, Any]) -> dict[str, Any]:
    return {
        "invoiceId": text(message.get("invoiceId"), "invoiceId"),
        "amount": money(amount(message.get("amount"), "amount")),
    }


def _record_invoice(invoice: dict[str, Any]) -> dict[str, Any]:
    return {**invoice, "status": "RECORDED"}


def _validate_user(message: dict[str, Any]) -> dict[str, Any]:
    return {
        "userId": text(message.get("userId"), "userId"),
        "action": text(message.get("action"), "action"),
    }


def _apply_user_event(user: dict[str, Any]) -> dict[str, Any]:
    return {**user, "status": "APPLIED"}


INVOICE = Route("invoice", "invoiceId", _validate_invoice, _record_invoice)
USER = Route("user", "userId", _validate_user, _apply_user_event)
ROUTES = {route.event_type: route for route in (INVOICE, USER)}


# ---------------------------------------------------------------------------------------------
# Lazily created, cached per execution environment (nothing AWS is touched at import time).


_settings = cached_settings(RoutingSettings)


_dynamodb_client = lazy_client("dynamodb")


@functools.cache
def _idempotency_config(event_type: str) -> IdempotencyConfig:
    return idempotency.idempotency_config(
        ROUTES[event_type].key_field, _settings().idempotency_expires_after_seconds, _on_duplicate
    )


@functools.cache
def _process_once(event_type: str) -> Callable[..., dict[str, Any]]:
    """The route's work, idempotent by its business key when IDEMPOTENCY_TABLE is set."""
    settings = _settings()
    if settings.idempotency_table is None:
        return _process
    return idempotency.once(
        _process,
        data_keyword_argument="message",
        table=settings.idempotency_table,
        client=_dynamodb_client(),
        config=_idempotency_config(event_type),
        key_prefix=f"order_events.routing.{event_type}",
    )


# ---------------------------------------------------------------------------------------------
# Entry points


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def invoice_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """SNS subscriber for ``eventType = "invoice"``."""
    return handle(event, context, INVOICE)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def user_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """SNS subscriber for ``eventType = "user"``."""
    return handle(event, context, USER)


def handle(event: dict[str, Any], context: LambdaContext, route: Route) -> dict[str, Any]:
    """``{"processed": [result, ...], "ignored": n}``; raises to have the event retried."""
    settings = load_settings(logger, metrics, _settings)
    if settings.idempotency_table is not None:
        _idempotency_config(route.event_type).register_lambda_context(context)
    logger.append_keys(route=route.event_type)

    processed: list[dict[str, Any]] = []
    ignored = 0
    for record in _records(event):
        with logger.append_context_keys(sns_message_id=record.sns.get("MessageId")):
            try:
                result = _handle_record(record, route)
            except MalformedMessage:
                raise  # logged and counted already
            except Exception as exc:
                log_invocation_failure(logger, metrics, exc, metric=RECORDS_FAILED)
                raise
        if result is None:
            ignored += 1
        else:
            processed.append(result)
    return {"processed": processed, "ignored": ignored}


def _records(event: object) -> list[SNSEventRecord]:
    records = event.get("Records") if isinstance(event, dict) else None
    if (
        not isinstance(records, list)
        or not records
        or not all(isinstance(r, dict) and isinstance(r.get("Sns"), dict) for r in records)
    ):
        _malformed("event is not an SNS event: no non-empty 'Records' list of 'Sns' records")
    return list(SNSEvent(cast(dict[str, Any], event)).records)


def _handle_record(record: SNSEventRecord, route: Route) -> dict[str, Any] | None:
    sns = record.sns
    try:
        attributes = sns_string_attributes(sns.get("MessageAttributes"))
        attribute_type = attributes.get("eventType")
        if attribute_type is not None and attribute_type != route.event_type:
            _ignore(attribute_type, route)
            return None
        message = load_json_object(sns.get("Message"), "SNS Message")
        body_type = message.get("eventType")
        if attribute_type is not None and body_type is not None and body_type != attribute_type:
            raise MalformedMessage(
                f"message attribute eventType={attribute_type!r} contradicts the message's "
                f"eventType={body_type!r}"
            )
        event_type = attribute_type if attribute_type is not None else body_type
        if event_type != route.event_type:
            _ignore(event_type, route)
            return None
        validated = route.validate(message)
    except MalformedMessage as exc:
        _malformed(str(exc))

    with logger.append_context_keys(**{route.key_field: validated[route.key_field]}):
        return _process_once(route.event_type)(message=validated, route=route)


def _process(*, message: dict[str, Any], route: Route) -> dict[str, Any]:
    """The route's work. ``message`` (validated) is what Powertools hashes."""
    result = route.work(message)
    logger.info("Message processed", extra={"result": result})
    count(metrics, "MessagesProcessed")
    return result


_on_duplicate = idempotency.duplicate_hook(
    logger, metrics, "Duplicate message skipped: already processed"
)


def _ignore(event_type: object, route: Route) -> None:
    logger.warning(
        f"Message of eventType {event_type!r} ignored by the {route.event_type} function: the "
        "subscription filter policy should have stopped it",
        extra={"event_type": str(event_type)[:200]},
    )
    count(metrics, UNKNOWN_EVENT_TYPES_IGNORED)


def _malformed(reason: str) -> NoReturn:
    reject_malformed(
        logger, metrics, reason, what="message", metric=MALFORMED_MESSAGES, error=MalformedMessage
    )
