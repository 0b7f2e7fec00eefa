"""The orders table: one item per order, moved along ``created -> paid -> shipped``.

Each event is exactly one conditional write (no read before it), which makes processing
idempotent and keeps a state from ever regressing:

* ``created``: ``PutItem`` if ``attribute_not_exists(orderId)``; the first ``created`` wins,
  a later one (same or other content) changes nothing;
* ``paid``: ``UpdateItem`` if ``status = created`` and ``customerId`` matches;
* ``shipped``: ``UpdateItem`` if ``status = paid`` and ``customerId`` matches.

When the condition fails, ``ReturnValuesOnConditionCheckFailure=ALL_OLD`` returns the item as
it was, which tells the cases apart without a second read:

* the order already reached (or passed) the event's status: a duplicate or stale event,
  acknowledged as a no-op (a replayed ``paid`` after ``shipped`` leaves it ``shipped``);
* the order does not exist, or is a step behind (``shipped`` while ``created``): out of order,
  an OutOfOrderEvent (permanent: no retry of this message can make it valid);
* the order belongs to another customer (or has an unknown status): a ConflictingEvent
  (permanent).

Item: ``orderId`` (S, partition key), ``customerId``, ``status`` (created|paid|shipped),
``items`` (L of M: sku S, quantity N, unitPrice N), ``total`` (N), ``currency``, ``createdAt``;
``amount`` (N) and ``paidAt`` once paid; ``carrier``, ``trackingNumber`` (optional) and
``shippedAt`` once shipped; ``version`` (N: 1 when created, +1 per transition), ``updatedAt``,
``lastEvent``, ``lastMessageId``. ``<event>At`` is when SQS accepted the event (its
SentTimestamp); ``updatedAt`` is when it was written. Timestamps are ISO 8601 UTC strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from boto3.dynamodb.types import TypeSerializer
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from handler_kit.failures import is_conditional_check_failed

from .schema import (
    CREATED,
    EVENTS,
    PAID,
    SHIPPED,
    OrderCreated,
    OrderEvent,
    OrderPaid,
    OrderShipped,
    PermanentError,
)

# The status each event requires before it (``created`` requires that the order not exist).
_PREVIOUS = {PAID: CREATED, SHIPPED: PAID}
_RANK = {status: rank for rank, status in enumerate(EVENTS, 1)}
_FIRST_VERSION = 1
_serializer = TypeSerializer()


class OutOfOrderEvent(PermanentError):
    """The event skips a step of the state machine (``paid`` before ``created``...)."""

    metric = "OutOfOrderRejected"


class ConflictingEvent(PermanentError):
    """The order exists but cannot be this event's order (another customer's order...)."""

    metric = "ConflictsRejected"


@dataclass(frozen=True)
class Result:
    # False: a duplicate or stale event, nothing was written.
    applied: bool
    # The order's status after this event.
    status: str
    # The item's version after this event (None if the stored item has none).
    version: int | None


@dataclass(frozen=True)
class Delivery:
    """Facts about the SQS message that carried the event, stored on the item."""

    message_id: str
    # When SQS accepted the event (its SentTimestamp), ISO 8601 UTC.
    event_time: str
    # When this write happens, ISO 8601 UTC.
    now: str


def apply_event(client: BaseClient, table: str, event: OrderEvent, delivery: Delivery) -> Result:
    """Write ``event`` with one conditional write; raise OutOfOrderEvent / ConflictingEvent.

    Any other error (throttling, 5xx...) propagates: nothing was written, retrying is safe."""
    version: int | None
    try:
        if isinstance(event, OrderCreated):
            version = _put_created(client, table, event, delivery)
        else:
            version = _update(client, table, event, delivery)
    except ClientError as exc:
        if not is_conditional_check_failed(exc):
            raise
        return _not_applied(event, exc.response.get("Item"))
    return Result(applied=True, status=event.event, version=version)


def _put_created(client: BaseClient, table: str, event: OrderCreated, delivery: Delivery) -> int:
    item = {
        "orderId": event.order_id,
        "customerId": event.customer_id,
        "status": CREATED,
        "items": [
            {"sku": item.sku, "quantity": item.quantity, "unitPrice": item.unit_price}
            for item in event.items
        ],
        "total": event.total,
        "currency": event.currency,
        "createdAt": delivery.event_time,
        "version": _FIRST_VERSION,
        "updatedAt": delivery.now,
        "lastEvent": CREATED,
        "lastMessageId": delivery.message_id,
    }
    client.put_item(
        TableName=table,
        Item=_serialize(item),
        ConditionExpression="attribute_not_exists(#orderId)",
        ExpressionAttributeNames={"#orderId": "orderId"},
        ReturnValuesOnConditionCheckFailure="ALL_OLD",
    )
    return _FIRST_VERSION


def _update(client: BaseClient, table: str, event: OrderEvent, delivery: Delivery) -> int | None:
    """The item's new version."""
    fields: dict[str, Any] = {"status": event.event}
    if isinstance(event, OrderPaid):
        fields.update(amount=event.amount, paidAt=delivery.event_time)
    elif isinstance(event, OrderShipped):
        fields.update(carrier=event.carrier, shippedAt=delivery.event_time)
        if event.tracking_number is not None:
            fields["trackingNumber"] = event.tracking_number
    else:  # pragma: no cover - parse_event only builds the three kinds
        raise TypeError(f"unknown event {type(event).__name__}")
    fields.update(updatedAt=delivery.now, lastEvent=event.event, lastMessageId=delivery.message_id)

    assignments = [f"#{name} = :{name}" for name in fields]
    assignments.append("#version = if_not_exists(#version, :zero) + :one")
    names = {f"#{name}": name for name in (*fields, "version", "customerId")}
    values = {f":{name}": value for name, value in fields.items()}
    values.update({":expected": _PREVIOUS[event.event], ":customerId": event.customer_id})
    values.update({":zero": 0, ":one": 1})
    response = client.update_item(
        TableName=table,
        Key=_serialize({"orderId": event.order_id}),
        UpdateExpression="SET " + ", ".join(assignments),
        # Also false when the item does not exist (its status is then missing).
        ConditionExpression="#status = :expected AND #customerId = :customerId",
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=_serialize(values),
        ReturnValues="UPDATED_NEW",
        ReturnValuesOnConditionCheckFailure="ALL_OLD",
    )
    return _number(response.get("Attributes") or {}, "version")


def _not_applied(event: OrderEvent, old_item: dict[str, Any] | None) -> Result:
    """Why the condition failed, from the item as it was (None: there was no item)."""
    if old_item is None:
        if event.event == CREATED:  # pragma: no cover - attribute_not_exists fails on an item
            raise RuntimeError("PutItem condition failed but DynamoDB returned no item")
        raise OutOfOrderEvent(f"{event.event} before created: order does not exist")
    old_customer = _string(old_item, "customerId")
    if old_customer != event.customer_id:
        raise ConflictingEvent(
            f"order belongs to customer {old_customer!r}, the {event.event} event names "
            f"customer {event.customer_id!r}"
        )
    old_status = _string(old_item, "status")
    old_rank = _RANK.get(old_status or "")
    if old_rank is None:
        raise ConflictingEvent(f"order is in unknown status {old_status!r}")
    version = _number(old_item, "version")
    if old_rank >= _RANK[event.event]:
        return Result(applied=False, status=old_status or "", version=version)
    previous = _PREVIOUS[event.event]
    if old_status != previous:
        raise OutOfOrderEvent(f"{event.event} before {previous}: order is {old_status}")
    # The condition held on the item DynamoDB returned: not possible for one atomic write.
    raise RuntimeError(f"{event.event} condition failed although the order is {old_status}")


def _serialize(document: dict[str, Any]) -> dict[str, Any]:
    return {name: _serializer.serialize(value) for name, value in document.items()}


def _string(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name)
    return value.get("S") if isinstance(value, dict) else None


def _number(item: dict[str, Any], name: str) -> int | None:
    value = item.get(name)
    raw = value.get("N") if isinstance(value, dict) else None
    try:
        return None if raw is None else int(raw)
    except ValueError:
        return None
