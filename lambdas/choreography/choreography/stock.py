"""Service Stock: reacts to CommandeCréée — reserves every line, all or none, then publishes
StockMisAJour; if a line cannot be reserved, publishes StockIndisponible with what is missing.

The reservation is one DynamoDB transaction: a reservation item for the order (written once:
``attribute_not_exists``) and, per line, ``available = available - quantity`` on the
condition ``available >= quantity``. A retried event whose reservation already exists reserves
nothing again and publishes the same StockMisAJour again, with the same ``eventId`` (the
idempotency record normally catches it first; publishing is at-least-once, see ``service``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError
from handler_kit.metrics import new_metrics
from handler_kit.settings import cached_settings

from . import contract
from .config import StockSettings
from .service import MalformedEvent, Message, Outgoing, Service, _dynamodb_client

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = ["handler"]

logger = Logger()
metrics = new_metrics()
_settings = cached_settings(StockSettings)


def _lines(message: Message) -> list[dict[str, Any]]:
    lines = message.body.get(contract.LINES)
    if not isinstance(lines, list) or not lines:
        raise MalformedEvent(f"{contract.LINES} must be a non-empty list")
    for line in lines:
        quantity = line.get(contract.QUANTITY) if isinstance(line, dict) else None
        if not isinstance(line, dict) or not isinstance(line.get(contract.SKU), str):
            raise MalformedEvent("each line needs a sku")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            raise MalformedEvent(f"{contract.QUANTITY} must be a positive integer")
    return lines


def reserve(message: Message, settings: StockSettings) -> list[Outgoing]:
    lines = _lines(message)
    customer = message.body.get(contract.CUSTOMER_ID, "")
    items: list[dict[str, Any]] = [
        {
            "Put": {
                "TableName": settings.reservations_table,
                "Item": {
                    contract.ORDER_ID: {"S": message.order_id},
                    contract.CORRELATION_ID: {"S": message.correlation_id},
                    contract.LINES: {
                        "L": [
                            {
                                "M": {
                                    contract.SKU: {"S": line[contract.SKU]},
                                    contract.QUANTITY: {"N": str(line[contract.QUANTITY])},
                                }
                            }
                            for line in lines
                        ]
                    },
                },
                "ConditionExpression": f"attribute_not_exists({contract.ORDER_ID})",
            }
        }
    ]
    for line in lines:
        items.append(
            {
                "Update": {
                    "TableName": settings.table,
                    "Key": {contract.SKU: {"S": line[contract.SKU]}},
                    "UpdateExpression": "SET #a = #a - :q",
                    "ConditionExpression": "#a >= :q",
                    "ExpressionAttributeNames": {"#a": contract.AVAILABLE},
                    "ExpressionAttributeValues": {":q": {"N": str(line[contract.QUANTITY])}},
                }
            }
        )
    client = _dynamodb_client()
    try:
        client.transact_write_items(TransactItems=items)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
            raise
        if "Item" in client.get_item(
            TableName=settings.reservations_table,
            Key={contract.ORDER_ID: {"S": message.order_id}},
            ConsistentRead=True,
        ):
            # A second run (the publish or the completion write failed after the
            # transaction): the same StockMisAJour again, same eventId; nothing reserved twice.
            logger.info("Stock already reserved for this order: its event is published again")
            return [
                Outgoing(
                    contract.STOCK_UPDATED,
                    {contract.CUSTOMER_ID: customer, contract.LINES: lines},
                )
            ]
        missing = _missing(client, settings, lines)
        if not missing:
            raise  # cancelled for another reason (a concurrent update): retried
        logger.info("Stock unavailable", extra={"missing": missing})
        return [
            Outgoing(
                contract.STOCK_UNAVAILABLE,
                {contract.CUSTOMER_ID: customer, contract.MISSING: missing},
            )
        ]
    logger.info("Stock reserved", extra={"lines": len(lines)})
    return [
        Outgoing(contract.STOCK_UPDATED, {contract.CUSTOMER_ID: customer, contract.LINES: lines})
    ]


def _missing(client: Any, settings: StockSettings, lines: list[dict[str, Any]]) -> list[Any]:
    missing = []
    for line in lines:
        item = client.get_item(
            TableName=settings.table,
            Key={contract.SKU: {"S": line[contract.SKU]}},
            ConsistentRead=True,
        ).get("Item")
        available = int(item[contract.AVAILABLE]["N"]) if item else 0
        if available < line[contract.QUANTITY]:
            missing.append(
                {
                    contract.SKU: line[contract.SKU],
                    "requested": line[contract.QUANTITY],
                    contract.AVAILABLE: available,
                }
            )
    return missing


service: Service[StockSettings] = Service(
    contract.STOCK, logger, metrics, _settings, {contract.ORDER_CREATED: reserve}
)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return service.handle_event(event, context)
