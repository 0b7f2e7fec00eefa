"""Parsing and validation of order events. Any shape problem is a MalformedMessage.

The SQS body is the client's JSON request, sent as is by the API Gateway integration::

    {"orderId": "o-1", "customerId": "c-1", "event": "created",
     "items": [{"sku": "A", "quantity": 2, "unitPrice": 9.5}], "total": 19.0, "currency": "EUR"}
    {"orderId": "o-1", "customerId": "c-1", "event": "paid", "amount": 19.0}
    {"orderId": "o-1", "customerId": "c-1", "event": "shipped", "carrier": "DHL"}

Unknown fields are ignored. Numbers are parsed as ``Decimal`` (never binary floats: these are
amounts of money) and must be storable as a DynamoDB number; ``NaN`` and ``Infinity`` are
rejected.
"""

from __future__ import annotations

import decimal
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

from boto3.dynamodb.types import DYNAMODB_CONTEXT
from handler_kit import messages
from handler_kit.messages import LineItem
from handler_kit.messages import shown as _shown

from .contract import CREATED, EVENTS, PAID, SHIPPED

__all__ = ["CREATED", "EVENTS", "PAID", "SHIPPED"]

# orderId and customerId also become SQS MessageDeduplicationId / MessageGroupId (at most 128
# characters); the other strings are bounded so that an order always fits in a 400 KB item.
MAX_ID_CHARS = 128
MAX_TEXT_CHARS = 128
MAX_ITEMS = 1000

# ISO 4217 alphabetic code: three uppercase ASCII letters.
_CURRENCY = re.compile(r"[A-Z]{3}")


class PermanentError(Exception):
    """Retrying the message can never succeed: it is dead-lettered directly.

    ``metric`` is the name of the metric counting this kind of error."""

    metric = "PermanentErrors"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MalformedMessage(PermanentError):
    """The body is not a valid order event (JSON, missing or wrong-typed field, unknown event)."""

    metric = "MalformedMessages"


# One entry of the event's items: the kit's shared order line.
OrderItem = LineItem


@dataclass(frozen=True)
class OrderEvent:
    """Fields common to every event."""

    # "created", "paid" or "shipped".
    event: ClassVar[str]

    order_id: str
    customer_id: str


@dataclass(frozen=True)
class OrderCreated(OrderEvent):
    event: ClassVar[str] = CREATED

    items: tuple[OrderItem, ...]
    total: Decimal
    currency: str


@dataclass(frozen=True)
class OrderPaid(OrderEvent):
    event: ClassVar[str] = PAID

    amount: Decimal


@dataclass(frozen=True)
class OrderShipped(OrderEvent):
    event: ClassVar[str] = SHIPPED

    carrier: str
    tracking_number: str | None = None


# ---------------------------------------------------------------------------------------------
# Body


def parse_event(body: object) -> OrderEvent:
    """Validate an SQS body; raise MalformedMessage naming the first problem found."""
    document = load_json_object(body)
    event = document.get("event")
    if not isinstance(event, str) or event not in EVENTS:
        raise MalformedMessage(f"event must be one of {', '.join(EVENTS)}, got {_shown(event)}")
    order_id = text(document.get("orderId"), "orderId", MAX_ID_CHARS)
    customer_id = text(document.get("customerId"), "customerId", MAX_ID_CHARS)
    if event == CREATED:
        return OrderCreated(
            order_id=order_id,
            customer_id=customer_id,
            items=_items(document.get("items")),
            total=amount(document.get("total"), "total"),
            currency=currency(document.get("currency"), "currency"),
        )
    if event == PAID:
        return OrderPaid(
            order_id=order_id,
            customer_id=customer_id,
            amount=amount(document.get("amount"), "amount"),
        )
    tracking_number = document.get("trackingNumber")
    return OrderShipped(
        order_id=order_id,
        customer_id=customer_id,
        carrier=text(document.get("carrier"), "carrier", MAX_TEXT_CHARS),
        tracking_number=None
        if tracking_number is None
        else text(tracking_number, "trackingNumber", MAX_TEXT_CHARS),
    )


def load_json_object(body: object) -> dict[str, Any]:
    """Parse ``body`` as a JSON object (numbers as Decimal); raise MalformedMessage."""
    return messages.load_json_object(body, "body", error=MalformedMessage)


def _items(raw: object) -> tuple[OrderItem, ...]:
    if not isinstance(raw, list) or not raw:
        raise MalformedMessage(f"items must be a non-empty list, got {_shown(raw)}")
    if len(raw) > MAX_ITEMS:
        raise MalformedMessage(f"items has {len(raw)} entries, more than the {MAX_ITEMS} allowed")
    return tuple(_item(item, f"items[{n}]") for n, item in enumerate(raw))


def _item(raw: object, field: str) -> OrderItem:
    if not isinstance(raw, dict):
        raise MalformedMessage(f"{field} must be an object, got {_shown(raw)}")
    quantity = raw.get("quantity")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
        raise MalformedMessage(f"{field}.quantity must be an integer > 0, got {_shown(quantity)}")
    _storable(Decimal(quantity), f"{field}.quantity", quantity)
    return OrderItem(
        sku=text(raw.get("sku"), f"{field}.sku", MAX_TEXT_CHARS),
        quantity=quantity,
        unit_price=amount(raw.get("unitPrice"), f"{field}.unitPrice"),
    )


# ---------------------------------------------------------------------------------------------
# Fields


def text(value: object, field: str, max_chars: int) -> str:
    """A non-blank string of at most ``max_chars`` characters."""
    if not isinstance(value, str) or not value.strip():
        raise MalformedMessage(f"{field} must be a non-empty string, got {_shown(value)}")
    if len(value) > max_chars:
        raise MalformedMessage(f"{field} is longer than {max_chars} characters")
    return value


def amount(value: object, field: str) -> Decimal:
    """A finite JSON number >= 0 that DynamoDB can store exactly; booleans are not numbers."""
    number: Decimal | None = None
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int) and not isinstance(value, bool):
        number = Decimal(value)
    if number is None or not number.is_finite() or number < 0:
        raise MalformedMessage(f"{field} must be a number >= 0, got {_shown(value)}")
    return _storable(number, field, value)


def currency(value: object, field: str) -> str:
    if not isinstance(value, str) or not _CURRENCY.fullmatch(value):
        raise MalformedMessage(
            f"{field} must be a 3-letter ISO 4217 code like 'EUR', got {_shown(value)}"
        )
    return value


def _storable(number: Decimal, field: str, shown: object) -> Decimal:
    """``number`` if DynamoDB stores it exactly (38 significant digits, 1E-130 to 1E+126)."""
    try:
        # What boto3's serializer does: it raises on rounding, overflow and underflow.
        DYNAMODB_CONTEXT.create_decimal(number)
    except decimal.DecimalException as exc:
        raise MalformedMessage(
            f"{field} cannot be stored exactly as a DynamoDB number, got {_shown(shown)}"
        ) from exc
    return number
