"""Service Notification: reacts to FactureCréée or StockMisAJour (and CommandeAnnulée) —
notifies the customer (one item per incoming event in the notifications table, the
customer's inbox, written once, keyed by the incoming ``eventId``) and publishes ClientNotifié
(at-least-once with a deterministic ``eventId``, see ``service``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError
from handler_kit.failures import is_conditional_check_failed
from handler_kit.metrics import new_metrics
from handler_kit.settings import cached_settings

from . import contract
from .config import NotificationSettings
from .service import Message, Outgoing, Service, _dynamodb_client

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = ["handler"]

logger = Logger()
metrics = new_metrics()
_settings = cached_settings(NotificationSettings)


def text_for(message: Message) -> str:
    if message.type == contract.INVOICE_CREATED:
        total = int(message.body.get(contract.TOTAL, 0))
        return f"Your invoice {message.body.get(contract.INVOICE_ID)} ({total / 100:.2f}) is ready."
    if message.type == contract.STOCK_UPDATED:
        return f"Your order {message.order_id} is reserved and being prepared."
    return f"Your order {message.order_id} was cancelled: an item is out of stock."


def notify(message: Message, settings: NotificationSettings) -> list[Outgoing]:
    customer = str(message.body.get(contract.CUSTOMER_ID, ""))
    text = text_for(message)
    try:
        _dynamodb_client().put_item(
            TableName=settings.table,
            Item={
                contract.NOTIFICATION_ID: {"S": message.event_id},
                contract.ORDER_ID: {"S": message.order_id},
                contract.CUSTOMER_ID: {"S": customer},
                "about": {"S": message.type},
                "message": {"S": text},
                contract.CORRELATION_ID: {"S": message.correlation_id},
            },
            ConditionExpression=f"attribute_not_exists({contract.NOTIFICATION_ID})",
        )
    except ClientError as exc:
        if not is_conditional_check_failed(exc):
            raise
        # A second run: the inbox item is written once; ClientNotifié again, same eventId.
        logger.info("Customer already notified of this event: its event is published again")
    else:
        logger.info("Customer notified", extra={"about": message.type})
    return [
        Outgoing(
            contract.CUSTOMER_NOTIFIED,
            {contract.CUSTOMER_ID: customer, "about": message.type, "message": text},
        )
    ]


service: Service[NotificationSettings] = Service(
    contract.NOTIFICATION,
    logger,
    metrics,
    _settings,
    {
        contract.INVOICE_CREATED: notify,
        contract.STOCK_UPDATED: notify,
        contract.ORDER_CANCELLED: notify,
    },
)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return service.handle_event(event, context)
