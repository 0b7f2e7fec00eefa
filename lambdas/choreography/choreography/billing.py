"""Service Facturation: reacts to CommandeCréée — issues the invoice (total of the lines),
publishes FactureCréée; reacts to CommandeAnnulée — voids the invoice, publishes
FactureAnnulée. Each write is conditional (one invoice per order; only an issued invoice is
voided), so a redelivered event writes nothing twice; a second run of CommandeCréée whose
invoice is already issued publishes FactureCréée again with the same ``eventId``, and a second
run of the CommandeAnnulée that voided it (``voidedBy``) publishes FactureAnnulée again
(publishing is at-least-once, see ``service``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError
from handler_kit.failures import is_conditional_check_failed
from handler_kit.metrics import new_metrics
from handler_kit.settings import cached_settings

from . import contract
from .config import BillingSettings
from .service import MalformedEvent, Message, Outgoing, Service, _dynamodb_client

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = ["handler"]

logger = Logger()
metrics = new_metrics()
_settings = cached_settings(BillingSettings)
ISSUED = "ISSUED"
VOID = "VOID"


def total_of(lines: Any) -> int:
    if not isinstance(lines, list) or not lines:
        raise MalformedEvent(f"{contract.LINES} must be a non-empty list")
    total = 0
    for line in lines:
        quantity = line.get(contract.QUANTITY) if isinstance(line, dict) else None
        price = line.get(contract.UNIT_PRICE, 0) if isinstance(line, dict) else None
        if not isinstance(quantity, int) or not isinstance(price, int):
            raise MalformedEvent("each line needs an integer quantity and unitPrice")
        total += quantity * price
    return total


# The invoice item's attribute naming the CommandeAnnulée event that voided it.
VOIDED_BY = "voidedBy"


def invoice(message: Message, settings: BillingSettings) -> list[Outgoing]:
    total = total_of(message.body.get(contract.LINES))
    customer = str(message.body.get(contract.CUSTOMER_ID, ""))
    invoice_id = f"INV-{message.order_id}"
    try:
        _dynamodb_client().put_item(
            TableName=settings.table,
            Item={
                contract.ORDER_ID: {"S": message.order_id},
                contract.INVOICE_ID: {"S": invoice_id},
                contract.TOTAL: {"N": str(total)},
                contract.STATUS: {"S": ISSUED},
                contract.CORRELATION_ID: {"S": message.correlation_id},
            },
            ConditionExpression=f"attribute_not_exists({contract.ORDER_ID})",
        )
    except ClientError as exc:
        if not is_conditional_check_failed(exc):
            raise
        # A second run (the publish or the completion write failed after the write): the
        # same event again, same eventId, so a lost FactureCréée is published and a consumer
        # that already has it dedupes it. Not once the invoice was voided.
        if _status(settings, message.order_id) != ISSUED:
            logger.info("Invoice already issued and voided for this order: nothing to publish")
            return []
        logger.info("Invoice already issued for this order: its event is published again")
    else:
        logger.info("Invoice issued", extra={"invoice_id": invoice_id, "total": total})
    return [
        Outgoing(
            contract.INVOICE_CREATED,
            {
                contract.CUSTOMER_ID: customer,
                contract.INVOICE_ID: invoice_id,
                contract.TOTAL: total,
            },
        )
    ]


def _invoice(settings: BillingSettings, order_id: str) -> dict[str, Any]:
    item: dict[str, Any] = (
        _dynamodb_client()
        .get_item(
            TableName=settings.table,
            Key={contract.ORDER_ID: {"S": order_id}},
            ConsistentRead=True,
        )
        .get("Item", {})
    )
    return item


def _status(settings: BillingSettings, order_id: str) -> str | None:
    value = _invoice(settings, order_id).get(contract.STATUS, {}).get("S")
    return str(value) if value is not None else None


def _voided_by(settings: BillingSettings, order_id: str) -> str | None:
    value = _invoice(settings, order_id).get(VOIDED_BY, {}).get("S")
    return str(value) if value is not None else None


def void(message: Message, settings: BillingSettings) -> list[Outgoing]:
    try:
        _dynamodb_client().update_item(
            TableName=settings.table,
            Key={contract.ORDER_ID: {"S": message.order_id}},
            UpdateExpression="SET #s = :void, #by = :event",
            ConditionExpression="#s = :issued",
            ExpressionAttributeNames={"#s": contract.STATUS, "#by": VOIDED_BY},
            ExpressionAttributeValues={
                ":void": {"S": VOID},
                ":issued": {"S": ISSUED},
                ":event": {"S": message.event_id},
            },
        )
    except ClientError as exc:
        if not is_conditional_check_failed(exc):
            raise
        if _voided_by(settings, message.order_id) != message.event_id:
            logger.info("No issued invoice for this order: nothing to void")
            return []
        # This very event voided it and the reaction runs again: FactureAnnulée again, same
        # eventId, never lost.
        logger.info("Invoice already voided by this event: its event is published again")
    else:
        logger.info("Invoice voided: the order was cancelled")
    return [
        Outgoing(
            contract.INVOICE_CANCELLED,
            {
                contract.CUSTOMER_ID: message.body.get(contract.CUSTOMER_ID, ""),
                contract.INVOICE_ID: f"INV-{message.order_id}",
            },
        )
    ]


service: Service[BillingSettings] = Service(
    contract.BILLING,
    logger,
    metrics,
    _settings,
    {contract.ORDER_CREATED: invoice, contract.ORDER_CANCELLED: void},
)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return service.handle_event(event, context)
