"""The work of each OrderPlaced consumer: pure, deterministic, JSON-serializable results.

The result is logged, counted and stored as the idempotency record's result, so that a
duplicate delivery returns exactly the same result without doing the work again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from .schema import Order, money


def perform(consumer: str, order: Order) -> dict[str, Any]:
    """The result of ``consumer``'s work for ``order``; KeyError for an unknown consumer."""
    work = _WORK[consumer]
    return {"consumer": consumer, "orderId": order.order_id, **work(order)}


def shipment_id(order_id: str) -> str:
    """Derived from the order id only: a redelivery can never create a second shipment."""
    return "shp-" + hashlib.sha256(order_id.encode()).hexdigest()[:16]


def _payment(order: Order) -> dict[str, Any]:
    return {"amountToCharge": money(order.total), "currency": order.currency}


def _inventory(order: Order) -> dict[str, Any]:
    reserved: dict[str, int] = {}
    for item in order.items:
        reserved[item.sku] = reserved.get(item.sku, 0) + item.quantity
    return {"reserved": dict(sorted(reserved.items()))}


def _shipping(order: Order) -> dict[str, Any]:
    return {"shipmentId": shipment_id(order.order_id), "customerId": order.customer_id}


def _notification(order: Order) -> dict[str, Any]:
    return {
        "customerId": order.customer_id,
        "message": f"Order {order.order_id} confirmed: {money(order.total)} {order.currency}",
    }


_WORK: dict[str, Callable[[Order], dict[str, Any]]] = {
    "payment": _payment,
    "inventory": _inventory,
    "shipping": _shipping,
    "notification": _notification,
}
