"""Service Commande: places orders (publishes CommandeCréée) and cancels them on
StockIndisponible (publishes CommandeAnnulée).

``PlaceOrder`` is a command invoked directly (``{"command": "PlaceOrder", "customerId",
"lines": [{"sku", "quantity", "unitPrice"}], "orderId"?, "correlationId"?}``): the order is
stored (conditional put: placing the same ``orderId`` twice stores it once; the second time
CommandeCréée is published again with the stored correlation id and the same ``eventId``,
so a publish that failed after the write is not lost and consumers dedupe it), and a new
correlation id — created here, with the order, unless the caller passes one — starts the
flow. Answer: ``{"orderId", "correlationId", "status"}``.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError
from handler_kit.consumer import load_settings
from handler_kit.contract import MALFORMED_MESSAGES
from handler_kit.failures import is_conditional_check_failed
from handler_kit.metrics import count, new_metrics
from handler_kit.settings import cached_settings

from . import contract
from .config import OrdersSettings
from .service import Message, Outgoing, Service, _dynamodb_client

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = ["handler"]

logger = Logger()
metrics = new_metrics()
_settings = cached_settings(OrdersSettings)


class InvalidOrder(ValueError):
    """The PlaceOrder command is not valid (answered, nothing stored)."""


def validate_lines(lines: Any) -> list[dict[str, Any]]:
    if not isinstance(lines, list) or not lines:
        raise InvalidOrder(f"{contract.LINES} must be a non-empty list")
    valid = []
    for line in lines:
        if not isinstance(line, dict):
            raise InvalidOrder("each line must be an object")
        sku, quantity, price = (
            line.get(contract.SKU),
            line.get(contract.QUANTITY),
            line.get(contract.UNIT_PRICE, 0),
        )
        if not isinstance(sku, str) or not sku:
            raise InvalidOrder(f"{contract.SKU} must be a non-empty string")
        for name, value, low in ((contract.QUANTITY, quantity, 1), (contract.UNIT_PRICE, price, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InvalidOrder(f"{name} must be an integer ≥ {low}, got {value!r}")
        valid.append({contract.SKU: sku, contract.QUANTITY: quantity, contract.UNIT_PRICE: price})
    return valid


def place_order(command: dict[str, Any], settings: OrdersSettings) -> dict[str, Any]:
    customer = command.get(contract.CUSTOMER_ID)
    if not isinstance(customer, str) or not customer:
        raise InvalidOrder(f"{contract.CUSTOMER_ID} must be a non-empty string")
    lines = validate_lines(command.get(contract.LINES))
    order_id = str(command.get(contract.ORDER_ID) or uuid.uuid4())
    correlation_id = str(command.get(contract.CORRELATION_ID) or uuid.uuid4())
    logger.set_correlation_id(correlation_id)
    logger.append_keys(order_id=order_id)
    try:
        _dynamodb_client().put_item(
            TableName=settings.table,
            Item={
                contract.ORDER_ID: {"S": order_id},
                contract.CUSTOMER_ID: {"S": customer},
                contract.STATUS: {"S": contract.ORDER_CREATED_STATUS},
                contract.CORRELATION_ID: {"S": correlation_id},
            },
            ConditionExpression=f"attribute_not_exists({contract.ORDER_ID})",
        )
    except ClientError as exc:
        if not is_conditional_check_failed(exc):
            raise
        # The command again (e.g. its publish failed after the write): CommandeCréée is
        # published again with the same eventId (derived from the order id), never lost.
        logger.info("Order already placed: its event is published again")
        stored = (
            _dynamodb_client()
            .get_item(
                TableName=settings.table,
                Key={contract.ORDER_ID: {"S": order_id}},
                ConsistentRead=True,
            )
            .get("Item", {})
        )
        correlation_id = stored.get(contract.CORRELATION_ID, {}).get("S", correlation_id)
        logger.set_correlation_id(correlation_id)
        status = "DUPLICATE"
    else:
        logger.info("Order placed")
        status = contract.ORDER_CREATED_STATUS
    service.publish(
        settings,
        [
            Outgoing(
                contract.ORDER_CREATED,
                {contract.CUSTOMER_ID: customer, contract.LINES: lines},
            )
        ],
        order_id=order_id,
        correlation_id=correlation_id,
        causation_id=None,
    )
    return {
        contract.ORDER_ID: order_id,
        contract.CORRELATION_ID: correlation_id,
        contract.STATUS: status,
    }


# The order item's attribute naming the StockIndisponible event that cancelled it.
CANCELLED_BY = "cancelledBy"


def cancel(message: Message, settings: OrdersSettings) -> list[Outgoing]:
    """StockIndisponible → the order is cancelled (once: only a CREATED order moves; the
    event that moved it is recorded as ``cancelledBy``, and a second run of that same event
    publishes CommandeAnnulée again with the same ``eventId``)."""
    try:
        _dynamodb_client().update_item(
            TableName=settings.table,
            Key={contract.ORDER_ID: {"S": message.order_id}},
            UpdateExpression="SET #s = :cancelled, #r = :reason, #by = :event",
            ConditionExpression="#s = :created",
            ExpressionAttributeNames={
                "#s": contract.STATUS,
                "#r": contract.REASON,
                "#by": CANCELLED_BY,
            },
            ExpressionAttributeValues={
                ":cancelled": {"S": contract.ORDER_CANCELLED_STATUS},
                ":created": {"S": contract.ORDER_CREATED_STATUS},
                ":reason": {"S": contract.STOCK_UNAVAILABLE},
                ":event": {"S": message.event_id},
            },
            ReturnValues="ALL_NEW",
        )
    except ClientError as exc:
        if not is_conditional_check_failed(exc):
            raise
        if not _cancelled_by(settings, message):
            logger.info("Order not in CREATED (unknown or already cancelled): nothing to cancel")
            return []
        # This very event cancelled it and the reaction runs again (its publish or its
        # completion write failed): CommandeAnnulée again, same eventId, never lost.
        logger.info("Order already cancelled by this event: its event is published again")
    else:
        logger.info("Order cancelled: stock unavailable")
    return [
        Outgoing(
            contract.ORDER_CANCELLED,
            {
                contract.CUSTOMER_ID: message.body.get(contract.CUSTOMER_ID, ""),
                contract.REASON: contract.STOCK_UNAVAILABLE,
            },
        )
    ]


def _cancelled_by(settings: OrdersSettings, message: Message) -> bool:
    item = (
        _dynamodb_client()
        .get_item(
            TableName=settings.table,
            Key={contract.ORDER_ID: {"S": message.order_id}},
            ConsistentRead=True,
        )
        .get("Item", {})
    )
    return bool(item.get(CANCELLED_BY, {}).get("S") == message.event_id)


service: Service[OrdersSettings] = Service(
    contract.ORDERS, logger, metrics, _settings, {contract.STOCK_UNAVAILABLE: cancel}
)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if isinstance(event, dict) and event.get(contract.COMMAND) == contract.PLACE_ORDER:
        settings = load_settings(logger, metrics, _settings, scope="the command")
        try:
            return place_order(event, settings)
        except InvalidOrder as exc:
            count(metrics, MALFORMED_MESSAGES)
            logger.warning("Invalid PlaceOrder command: rejected", extra={"reason": str(exc)})
            return {"error": "InvalidOrder", "message": str(exc)}
    return service.handle_event(event, context)
