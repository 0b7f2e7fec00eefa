"""Reading message bodies: JSON objects, short renderings of offending values, and the order
line the course's order events share."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any


def load_json_object(
    text: object, what: str, *, error: type[Exception], decimals: bool = True
) -> dict[str, Any]:
    """Parse ``text`` as a JSON object; raise ``error(reason)`` when it is not one.

    ``decimals``: numbers with a fraction are ``Decimal`` (never binary floats) and ``NaN`` /
    ``Infinity`` are rejected; otherwise Python's defaults apply.
    """
    if text is None:
        raise error(f"{what} is missing")
    if not isinstance(text, str):
        raise error(f"{what} is {type(text).__name__}, not a JSON string")
    try:
        if decimals:
            value = json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
        else:
            value = json.loads(text)
    except (TypeError, ValueError, RecursionError) as exc:  # RecursionError: absurd nesting
        raise error(f"{what} is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise error(f"{what} is JSON {type(value).__name__}, not an object")
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid JSON number")


def shown(value: object, limit: int = 80) -> str:
    """The offending value for an error reason: missing, or its repr (shortened to ``limit``)."""
    if value is None:
        return "nothing (missing or null)"
    text = str(value) if isinstance(value, Decimal) else repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


@dataclass(frozen=True)
class LineItem:
    """One line of an order event's items (``sku``, ``quantity``, ``unitPrice``): the shape
    the course's order events share (OrderPlaced, the order pipeline's ``created``)."""

    sku: str
    quantity: int
    unit_price: Decimal
