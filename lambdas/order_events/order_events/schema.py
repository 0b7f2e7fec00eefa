"""Parsing and validation of order events. Any shape problem is a MalformedMessage.

Publishers send ``{"eventType", "version": "MAJOR.MINOR", ...}`` with the same ``eventType``
and ``version`` as SNS message attributes (the subscription filter policies select on them).
SNS delivers to SQS either wrapped in its JSON envelope (attributes inside the envelope) or,
with raw message delivery, as is (attributes as SQS message attributes): both are accepted.

Numbers are parsed as ``Decimal`` (never binary floats: these are amounts of money);
``NaN`` and ``Infinity`` are rejected.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from handler_kit import messages
from handler_kit.messages import LineItem
from handler_kit.messages import shown as _shown

ORDER_PLACED = "OrderPlaced"
SUPPORTED_MAJOR = 1
# The newest minor version this code was written for; newer minors only add optional fields.
SUPPORTED_MINOR = 0

_VERSION = re.compile(r"([0-9]{1,9})\.([0-9]{1,9})")
# ISO 4217 alphabetic code: three uppercase ASCII letters.
_CURRENCY = re.compile(r"[A-Z]{3}")


class MalformedMessage(Exception):
    """The message is not a usable event: retrying cannot fix it."""


class UnsupportedVersion(Exception):
    """A major version this code does not know: it may be processed once the code is upgraded."""

    def __init__(self, version: Version, what: str = "this consumer") -> None:
        super().__init__(
            f"unsupported version {version}: {what} supports {SUPPORTED_MAJOR}.x "
            f"(up to {SUPPORTED_MAJOR}.{SUPPORTED_MINOR})"
        )
        self.version = version


@dataclass(frozen=True, order=True)
class Version:
    major: int
    minor: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"

    @property
    def is_newer_minor(self) -> bool:
        return self.major == SUPPORTED_MAJOR and self.minor > SUPPORTED_MINOR


@dataclass(frozen=True)
class Message:
    """A message as its publisher sent it, whatever the SNS delivery mode."""

    payload: dict[str, Any]
    # String message attributes (from the SNS envelope, or the SQS attributes when raw).
    attributes: Mapping[str, str]
    # The SNS message id; None with raw message delivery (only the SQS message id is known).
    sns_message_id: str | None = None


# One entry of the event's items: the kit's shared order line.
OrderItem = LineItem


@dataclass(frozen=True)
class Order:
    order_id: str
    customer_id: str
    total: Decimal
    currency: str
    items: tuple[OrderItem, ...]


# ---------------------------------------------------------------------------------------------
# Envelopes


def load_json_object(text: object, what: str) -> dict[str, Any]:
    """Parse ``text`` as a JSON object (numbers as Decimal); raise MalformedMessage."""
    return messages.load_json_object(text, what, error=MalformedMessage)


def unwrap_sqs_body(body: str, sqs_attributes: Mapping[str, str]) -> Message:
    """The publisher's message from an SQS body: an SNS envelope, or the message itself (raw)."""
    document = load_json_object(body, "body")
    # An OrderPlaced event has no "Type"; an SNS envelope always has "Type" and "Message".
    is_envelope = document.get("Type") == "Notification" or (
        "Type" in document and "Message" in document
    )
    if not is_envelope:
        return Message(payload=document, attributes=dict(sqs_attributes))
    if document["Type"] != "Notification":
        raise MalformedMessage(f"SNS envelope Type is {document['Type']!r}, not 'Notification'")
    message_id = document.get("MessageId")
    return Message(
        payload=load_json_object(document.get("Message"), "SNS Message"),
        attributes=sns_string_attributes(document.get("MessageAttributes")),
        sns_message_id=message_id if isinstance(message_id, str) else None,
    )


def sns_string_attributes(raw: object) -> dict[str, str]:
    """``{"name": {"Type": "String", "Value": "..."}}`` (SNS) -> ``{"name": "..."}``."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise MalformedMessage(f"SNS MessageAttributes is {type(raw).__name__}, not an object")
    return {
        name: attribute["Value"]
        for name, attribute in raw.items()
        if isinstance(attribute, dict)
        and attribute.get("Type") == "String"
        and isinstance(attribute.get("Value"), str)
    }


def sqs_string_attributes(raw: object) -> dict[str, str]:
    """``{"name": {"dataType": "String", "stringValue": "..."}}`` (SQS) -> ``{"name": "..."}``."""
    if not isinstance(raw, dict):
        return {}
    return {
        name: attribute["stringValue"]
        for name, attribute in raw.items()
        if isinstance(attribute, dict)
        and str(attribute.get("dataType", "")).startswith("String")
        and isinstance(attribute.get("stringValue"), str)
    }


# ---------------------------------------------------------------------------------------------
# Event type and version


def event_type_of(message: Message) -> str:
    """The body's ``eventType``; a contradicting ``eventType`` attribute is malformed."""
    event_type = text(message.payload.get("eventType"), "eventType")
    _check_attribute(message, "eventType", event_type)
    return event_type


def version_of(message: Message) -> Version:
    """The body's ``version``; a contradicting ``version`` attribute is malformed."""
    raw = message.payload.get("version")
    version = parse_version(raw, "version")
    _check_attribute(message, "version", str(raw))
    return version


def parse_version(raw: object, field: str) -> Version:
    if not isinstance(raw, str):
        raise MalformedMessage(f"{field} must be a 'MAJOR.MINOR' string, got {raw!r}")
    match = _VERSION.fullmatch(raw)
    if match is None:
        raise MalformedMessage(f"{field} must be a 'MAJOR.MINOR' string, got {raw!r}")
    return Version(int(match[1]), int(match[2]))


def check_supported(version: Version, what: str = "this consumer") -> None:
    if version.major != SUPPORTED_MAJOR:
        raise UnsupportedVersion(version, what)


def _check_attribute(message: Message, name: str, body_value: str) -> None:
    attribute = message.attributes.get(name)
    if attribute is not None and attribute != body_value:
        raise MalformedMessage(
            f"message attribute {name}={attribute!r} contradicts the body's {name}={body_value!r}"
        )


# ---------------------------------------------------------------------------------------------
# OrderPlaced


def parse_order(raw: object) -> Order:
    """Validate the ``order`` object of an OrderPlaced event; unknown fields are ignored."""
    order = _object(raw, "order")
    items = order.get("items")
    if not isinstance(items, list) or not items:
        raise MalformedMessage(f"order.items must be a non-empty list, got {_shown(items)}")
    return Order(
        order_id=text(order.get("orderId"), "order.orderId"),
        customer_id=text(order.get("customerId"), "order.customerId"),
        total=amount(order.get("total"), "order.total"),
        currency=currency(order.get("currency"), "order.currency"),
        items=tuple(_item(item, f"order.items[{n}]") for n, item in enumerate(items)),
    )


def _item(raw: object, field: str) -> OrderItem:
    item = _object(raw, field)
    quantity = item.get("quantity")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
        raise MalformedMessage(f"{field}.quantity must be an integer > 0, got {_shown(quantity)}")
    return OrderItem(
        sku=text(item.get("sku"), f"{field}.sku"),
        quantity=quantity,
        unit_price=amount(item.get("unitPrice"), f"{field}.unitPrice"),
    )


# ---------------------------------------------------------------------------------------------
# Fields


def text(value: object, field: str) -> str:
    """A non-blank string."""
    if not isinstance(value, str) or not value.strip():
        raise MalformedMessage(f"{field} must be a non-empty string, got {_shown(value)}")
    return value


def amount(value: object, field: str, *, positive: bool = False) -> Decimal:
    """A finite JSON number >= 0 (> 0 if ``positive``); booleans are not numbers."""
    number: Decimal | None = None
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int) and not isinstance(value, bool):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))
    if number is None or not number.is_finite() or number < 0 or (positive and number == 0):
        bound = "> 0" if positive else ">= 0"
        raise MalformedMessage(f"{field} must be a number {bound}, got {_shown(value)}")
    return number


def currency(value: object, field: str) -> str:
    if not isinstance(value, str) or not _CURRENCY.fullmatch(value):
        raise MalformedMessage(
            f"{field} must be a 3-letter ISO 4217 code like 'EUR', got {_shown(value)}"
        )
    return value


def money(value: Decimal) -> str:
    """Two decimals (``125.5`` -> ``"125.50"``) without ever rounding a finer amount away."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2:
        return format(value, "f")
    return f"{value:.2f}"


def _object(value: object, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedMessage(f"{field} must be an object, got {_shown(value)}")
    return value
