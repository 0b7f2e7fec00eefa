"""The order-fulfilment saga's Lambda tasks: one handler per step and per compensation.

Step Functions invokes each handler synchronously (``lambda:invoke``) with the state's input
(``{"order": {...}, ...}``; ``reserve_stock`` gets one Map item ``{"orderId", "line"}``).
The order's state is recorded in the orders table at every step with conditional writes, so
every handler is idempotent: a retry or a duplicate invocation after success returns the
same result and changes nothing.

Every input ends in exactly one way:

* a result (returned): charged / declined, stock reserved, shipping reserved, shipped;
  compensations: refunded, released, cancelled — or **skipped** (``"SKIPPED"``, counted
  ``CompensationsSkipped``, logged) when their step never ran for this order (no payment, no
  reservation, even an order id that cannot be read): a compensation is a no-op then;
* ``TransientError`` (raised): throttling, 5xx, connection errors (``handler_kit.failures``)
  and the payment provider being unavailable; the workflow retries it with backoff and jitter;
* a permanent error (raised, not retried): ``InvalidOrder`` (malformed or missing fields, wrong
  types, too many lines — counted ``InvalidOrders``), ``OutOfStock`` (unknown SKU or not enough
  stock), ``RefundRejected``; the workflow catches it and compensates;
* any other exception and an invalid configuration (``ConfigError``): raised, counted
  ``StepsFailed``, caught by the workflow like a permanent error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError
from handler_kit.clients import lazy_client
from handler_kit.consumer import load_settings
from handler_kit.failures import is_conditional_check_failed, is_transient
from handler_kit.metrics import count, new_metrics
from handler_kit.settings import cached_settings

from . import contract
from .config import Settings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
metrics = new_metrics()
_settings = cached_settings(Settings)
_dynamodb = lazy_client("dynamodb")

_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_MAX_AMOUNT = Decimal(1_000_000)
_MAX_QUANTITY = 1000
SKIPPED = "SKIPPED"


class TransientError(Exception):
    """Retried by the workflow (``ErrorEquals: ["TransientError"]``)."""


class InvalidOrder(Exception):
    """The order cannot be fulfilled as given: permanent."""


class OutOfStock(Exception):
    """A line's SKU is unknown or has not enough stock: permanent."""


class RefundRejected(Exception):
    """The payment provider refuses the refund: the compensation cannot complete."""


@dataclass(frozen=True)
class Line:
    sku: str
    quantity: int


@dataclass(frozen=True)
class Order:
    order_id: str
    customer_id: str
    amount: Decimal
    currency: str
    payment_token: str
    lines: tuple[Line, ...]


# -- parsing ---------------------------------------------------------------------------------


def _identifier(value: object, what: str) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise InvalidOrder(f"{what} must be 1-64 characters of [A-Za-z0-9_.:-], got {value!r}")
    return value


def parse_line(value: object) -> Line:
    if not isinstance(value, Mapping):
        raise InvalidOrder(f"a line must be an object, got {type(value).__name__}")
    quantity = value.get("quantity")
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise InvalidOrder(f"quantity must be an integer, got {quantity!r}")
    if not 1 <= quantity <= _MAX_QUANTITY:
        raise InvalidOrder(f"quantity must be 1-{_MAX_QUANTITY}, got {quantity}")
    return Line(_identifier(value.get("sku"), "sku"), quantity)


def parse_order(event: object) -> Order:
    """The ``order`` of a state input; InvalidOrder names the first problem."""
    order = event.get("order") if isinstance(event, Mapping) else None
    if not isinstance(order, Mapping):
        raise InvalidOrder("the input has no 'order' object")
    amount = order.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, int | float | str):
        raise InvalidOrder(f"amount must be a number, got {amount!r}")
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        raise InvalidOrder(f"amount must be a number, got {amount!r}") from None
    if not (value.is_finite() and Decimal(0) < value <= _MAX_AMOUNT):
        raise InvalidOrder(f"amount must be > 0 and <= {_MAX_AMOUNT}, got {amount!r}")
    currency = order.get("currency")
    if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
        raise InvalidOrder(f"currency must be an ISO 4217 code like 'EUR', got {currency!r}")
    token = order.get("paymentToken")
    if not isinstance(token, str) or not token:
        raise InvalidOrder("paymentToken must be a non-empty string")
    lines = order.get("lines")
    if not isinstance(lines, list) or not 1 <= len(lines) <= contract.MAX_LINES:
        raise InvalidOrder(f"lines must be a list of 1-{contract.MAX_LINES} lines")
    return Order(
        order_id=_identifier(order.get("orderId"), "orderId"),
        customer_id=_identifier(order.get("customerId"), "customerId"),
        amount=value,
        currency=currency,
        payment_token=token,
        lines=tuple(parse_line(line) for line in lines),
    )


def _order_id_or_none(event: object) -> str | None:
    """For compensations: the order id if it can be read at all (else nothing ran for it)."""
    for holder in (event.get("order") if isinstance(event, Mapping) else None, event):
        if isinstance(holder, Mapping):
            value = holder.get("orderId")
            if isinstance(value, str) and _ID.fullmatch(value):
                return value
    return None


# -- the handler skeleton --------------------------------------------------------------------

Step = Callable[[Any, Settings], dict[str, Any]]


def step(work: Step) -> Callable[[Any, LambdaContext], dict[str, Any]]:
    """A Lambda handler running ``work``: logs, metrics, and the error names the workflow's
    Retry and Catch match (transient errors become ``TransientError``)."""

    @logger.inject_lambda_context(clear_state=True)
    @metrics.log_metrics
    def handler(event: Any, context: LambdaContext) -> dict[str, Any]:
        settings = load_settings(logger, metrics, _settings, metric=contract.STEPS_FAILED)
        order_id = _order_id_or_none(event)
        if order_id is not None:
            logger.append_keys(order_id=order_id)
        try:
            return work(event, settings)
        except InvalidOrder as exc:
            count(metrics, contract.INVALID_ORDERS)
            logger.error(
                "Invalid order: failing the step (not retried)", extra={"reason": str(exc)}
            )
            raise
        except (OutOfStock, RefundRejected) as exc:
            logger.warning("Step failed permanently", extra={"reason": str(exc)})
            raise
        except TransientError as exc:
            count(metrics, contract.STEPS_FAILED)
            logger.warning("Transient error: the workflow retries", extra={"reason": str(exc)})
            raise
        except Exception as exc:
            count(metrics, contract.STEPS_FAILED)
            if is_transient(exc):
                logger.warning("Transient error: the workflow retries", exc_info=exc)
                raise TransientError(f"{type(exc).__name__}: {exc}") from exc
            logger.exception("Unexpected error: failing the step")
            raise

    handler.__wrapped_step__ = work  # type: ignore[attr-defined]
    return handler


def _skip(what: str, reason: str) -> dict[str, Any]:
    count(metrics, "CompensationsSkipped")
    logger.info(f"{what}: nothing to undo", extra={"reason": reason})
    return {"status": SKIPPED, "reason": reason}


# -- DynamoDB helpers ------------------------------------------------------------------------


def _key(name: str, value: str) -> dict[str, dict[str, str]]:
    return {name: {"S": value}}


def _order_item(settings: Settings, order_id: str) -> dict[str, Any]:
    response = _dynamodb().get_item(
        TableName=settings.orders_table, Key=_key("orderId", order_id), ConsistentRead=True
    )
    item: dict[str, Any] = response.get("Item", {})
    return item


def _text(item: Mapping[str, Any], name: str) -> str | None:
    value = item.get(name, {}).get("S")
    return str(value) if value is not None else None


def _conditional_update(**request: Any) -> bool:
    """An UpdateItem; False when its condition failed (the state already moved on)."""
    try:
        _dynamodb().update_item(**request)
    except ClientError as exc:
        if is_conditional_check_failed(exc):
            return False
        raise
    return True


# -- payment ---------------------------------------------------------------------------------


def _charge(event: Any, settings: Settings) -> dict[str, Any]:
    order = parse_order(event)
    table = settings.orders_table
    response = _dynamodb().update_item(
        TableName=table,
        Key=_key("orderId", order.order_id),
        UpdateExpression="SET customerId = :c, amount = :a, currency = :cur "
        "ADD paymentAttempts :one",
        ExpressionAttributeValues={
            ":c": {"S": order.customer_id},
            ":a": {"N": str(order.amount)},
            ":cur": {"S": order.currency},
            ":one": {"N": "1"},
        },
        ReturnValues="ALL_NEW",
    )
    item = response["Attributes"]
    if _text(item, "paymentStatus") == contract.PAYMENT_CHARGED:
        logger.info("Payment already charged: returning the recorded charge")
        return {"status": contract.PAYMENT_CHARGED, "paymentId": _text(item, "paymentId")}
    attempts = int(item["paymentAttempts"]["N"])
    if order.payment_token == contract.TOKEN_FLAKY and attempts == 1:
        raise TransientError("the payment provider is unavailable (simulated, first attempt)")
    if order.payment_token == contract.TOKEN_DECLINED:
        _conditional_update(
            TableName=table,
            Key=_key("orderId", order.order_id),
            UpdateExpression="SET paymentStatus = :d, #s = :declined",
            ConditionExpression="attribute_not_exists(paymentStatus) OR paymentStatus = :d",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":d": {"S": contract.PAYMENT_DECLINED},
                ":declined": {"S": contract.STATUS_DECLINED},
            },
        )
        count(metrics, "PaymentsDeclined")
        logger.info("Payment declined")
        return {"status": contract.PAYMENT_DECLINED, "reason": "card declined by the issuer"}
    payment_id = f"pay-{order.order_id}"
    recorded = _conditional_update(
        TableName=table,
        Key=_key("orderId", order.order_id),
        UpdateExpression="SET paymentStatus = :charged, paymentId = :p, paymentToken = :t, "
        "#s = :paid",
        ConditionExpression="attribute_not_exists(paymentStatus) OR paymentStatus = :charged",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={
            ":charged": {"S": contract.PAYMENT_CHARGED},
            ":p": {"S": payment_id},
            ":t": {"S": order.payment_token},
            ":paid": {"S": contract.STATUS_PAID},
        },
    )
    if not recorded:
        raise InvalidOrder(f"order {order.order_id} was already settled as {item}")
    count(metrics, "PaymentsCharged")
    logger.info("Payment charged", extra={"payment_id": payment_id})
    return {"status": contract.PAYMENT_CHARGED, "paymentId": payment_id}


def _refund(event: Any, settings: Settings) -> dict[str, Any]:
    order_id = _order_id_or_none(event)
    if order_id is None:
        return _skip("Refund", "no readable orderId: no payment was made")
    item = _order_item(settings, order_id)
    state = _text(item, "paymentStatus")
    if state != contract.PAYMENT_CHARGED:
        return _skip("Refund", f"payment is {state or 'absent'}, not CHARGED")
    if _text(item, "paymentToken") == contract.TOKEN_REFUND_FAILS:
        raise RefundRejected(f"the payment provider rejects the refund of order {order_id}")
    refunded = _conditional_update(
        TableName=settings.orders_table,
        Key=_key("orderId", order_id),
        UpdateExpression="SET paymentStatus = :refunded, #s = :refunded",
        ConditionExpression="paymentStatus = :charged",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={
            ":refunded": {"S": contract.STATUS_REFUNDED},
            ":charged": {"S": contract.PAYMENT_CHARGED},
        },
    )
    if not refunded:
        return _skip("Refund", "refunded concurrently")
    count(metrics, "PaymentsRefunded")
    logger.info("Payment refunded")
    return {"status": contract.STATUS_REFUNDED, "paymentId": _text(item, "paymentId")}


# -- inventory -------------------------------------------------------------------------------


def _reserve(event: Any, settings: Settings) -> dict[str, Any]:
    if not isinstance(event, Mapping):
        raise InvalidOrder("a Map item must be an object {orderId, line}")
    order_id = _identifier(event.get("orderId"), "orderId")
    line = parse_line(event.get("line"))
    table, key = settings.inventory_table, _key("sku", line.sku)
    names = {"#o": order_id}
    if not _conditional_update(
        TableName=table,
        Key=key,
        UpdateExpression="SET reservations = if_not_exists(reservations, :empty)",
        ConditionExpression="attribute_exists(sku)",
        ExpressionAttributeValues={":empty": {"M": {}}},
    ):
        raise OutOfStock(f"unknown SKU {line.sku}")
    reserved = _conditional_update(
        TableName=table,
        Key=key,
        UpdateExpression="SET available = available - :q, reservations.#o = :q",
        ConditionExpression="attribute_not_exists(reservations.#o) AND available >= :q",
        ExpressionAttributeNames=names,
        ExpressionAttributeValues={":q": {"N": str(line.quantity)}},
    )
    if not reserved:
        item = _dynamodb().get_item(TableName=table, Key=key, ConsistentRead=True).get("Item", {})
        if order_id not in item.get("reservations", {}).get("M", {}):
            available = item.get("available", {}).get("N", "0")
            raise OutOfStock(f"SKU {line.sku}: {line.quantity} wanted, {available} available")
        logger.info("Stock already reserved for this order", extra={"sku": line.sku})
    _dynamodb().update_item(
        TableName=settings.orders_table,
        Key=_key("orderId", order_id),
        UpdateExpression="ADD reservedSkus :sku",
        ExpressionAttributeValues={":sku": {"SS": [line.sku]}},
    )
    if reserved:
        count(metrics, "StockReserved")
    return {"sku": line.sku, "quantity": line.quantity, "reserved": True}


def _release(event: Any, settings: Settings) -> dict[str, Any]:
    order_id = _order_id_or_none(event)
    if order_id is None:
        return _skip("Release", "no readable orderId: no stock was reserved")
    skus = sorted(_order_item(settings, order_id).get("reservedSkus", {}).get("SS", []))
    if not skus:
        return _skip("Release", "no stock reserved for this order")
    released = []
    for sku in skus:
        key = _key("sku", sku)
        item = (
            _dynamodb()
            .get_item(TableName=settings.inventory_table, Key=key, ConsistentRead=True)
            .get("Item", {})
        )
        quantity = item.get("reservations", {}).get("M", {}).get(order_id, {}).get("N")
        if quantity is not None and _conditional_update(
            TableName=settings.inventory_table,
            Key=key,
            UpdateExpression="SET available = available + :q REMOVE reservations.#o",
            ConditionExpression="reservations.#o = :q",
            ExpressionAttributeNames={"#o": order_id},
            ExpressionAttributeValues={":q": {"N": quantity}},
        ):
            released.append(sku)
        _dynamodb().update_item(
            TableName=settings.orders_table,
            Key=_key("orderId", order_id),
            UpdateExpression="DELETE reservedSkus :sku",
            ExpressionAttributeValues={":sku": {"SS": [sku]}},
        )
    count(metrics, "StockReleased", len(released))
    logger.info("Stock released", extra={"skus": released})
    return {"status": "RELEASED", "skus": released}


# -- shipping --------------------------------------------------------------------------------


def _reserve_shipping(event: Any, settings: Settings) -> dict[str, Any]:
    order = parse_order(event)
    reservation = f"shp-{order.order_id}"
    _conditional_update(
        TableName=settings.orders_table,
        Key=_key("orderId", order.order_id),
        UpdateExpression="SET shippingStatus = :r, shippingReservation = :id",
        ConditionExpression="attribute_not_exists(shippingStatus) OR shippingStatus = :r",
        ExpressionAttributeValues={":r": {"S": "RESERVED"}, ":id": {"S": reservation}},
    )
    return {"reservationId": reservation}


def _cancel_shipping(event: Any, settings: Settings) -> dict[str, Any]:
    order_id = _order_id_or_none(event)
    if order_id is None:
        return _skip("Cancel shipping", "no readable orderId: nothing was reserved")
    if not _conditional_update(
        TableName=settings.orders_table,
        Key=_key("orderId", order_id),
        UpdateExpression="SET shippingStatus = :c",
        ConditionExpression="shippingStatus = :r",
        ExpressionAttributeValues={":c": {"S": "CANCELLED"}, ":r": {"S": "RESERVED"}},
    ):
        return _skip("Cancel shipping", "no shipping reservation for this order")
    return {"status": "CANCELLED"}


def _ship(event: Any, settings: Settings) -> dict[str, Any]:
    order = parse_order(event)
    tracking = f"trk-{order.order_id}"
    shipped = _conditional_update(
        TableName=settings.orders_table,
        Key=_key("orderId", order.order_id),
        UpdateExpression="SET shippingStatus = :s, trackingNumber = :t, #s = :s",
        ConditionExpression="shippingStatus IN (:r, :s) AND paymentStatus = :charged",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={
            ":s": {"S": contract.STATUS_SHIPPED},
            ":r": {"S": "RESERVED"},
            ":t": {"S": tracking},
            ":charged": {"S": contract.PAYMENT_CHARGED},
        },
    )
    if not shipped:
        raise InvalidOrder(f"order {order.order_id} is not paid with shipping reserved")
    count(metrics, "OrdersShipped")
    return {"trackingNumber": tracking}


charge_payment = step(_charge)
refund_payment = step(_refund)
reserve_stock = step(_reserve)
release_stock = step(_release)
reserve_shipping = step(_reserve_shipping)
cancel_shipping = step(_cancel_shipping)
ship_order = step(_ship)
