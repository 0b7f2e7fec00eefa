"""Helpers for test_order_events.py: OrderPlaced events in their SNS/SQS/Lambda shapes.

A plain module rather than conftest (test modules cannot import conftest with
--import-mode=importlib); conftest.py puts this folder and the ``order_events`` asset root on
sys.path. The generic pieces (idempotency table, Lambda context, logs, JSON edits) come from
tests/support and are re-exported for the tests.
"""

from __future__ import annotations

import json
from typing import Any

from tests.support import events
from tests.support.aws import ACCOUNT, REGION
from tests.support.documents import DELETE, with_field
from tests.support.events import sqs_event, sqs_string_attribute
from tests.support.idempotency import (
    IDEMPOTENCY_TABLE,
    Aws,
    create_idempotency_table,
    idempotency_key,
)
from tests.support.lambda_context import LambdaContext
from tests.support.observability import captured_logs

__all__ = [
    "DELETE",
    "IDEMPOTENCY_TABLE",
    "REGION",
    "Aws",
    "LambdaContext",
    "captured_logs",
    "create_idempotency_table",
    "idempotency_key",
    "sqs_event",
    "with_field",
]

TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:order-placed"
DLQ_NAME = "order-events-dlq"


# ------------------------------------------------------------------------------------------
# Order events (SNS -> SQS -> Lambda)


def order_placed(
    order_id: str = "o-123",
    *,
    event_type: str = "OrderPlaced",
    version: str = "1.0",
    event_id: str | None = None,
    **order_fields: Any,
) -> dict[str, Any]:
    """An OrderPlaced event as the order service publishes it (the SNS message)."""
    order = {
        "orderId": order_id,
        "customerId": "c-9",
        "total": 125.5,
        "currency": "EUR",
        "items": [
            {"sku": "BOOK-1", "quantity": 2, "unitPrice": 50.0},
            {"sku": "PEN-7", "quantity": 1, "unitPrice": 25.5},
        ],
        **order_fields,
    }
    return {
        "eventType": event_type,
        "version": version,
        "eventId": event_id or f"evt-{order_id}",
        "occurredAt": "2026-01-01T12:00:00Z",
        "order": order,
    }


def publisher_attributes(message: dict[str, Any] | str) -> dict[str, str]:
    """The eventType and version message attributes the publisher sets."""
    if not isinstance(message, dict):
        return {}
    return {
        name: message[name]
        for name in ("eventType", "version")
        if isinstance(message.get(name), str)
    }


def sns_envelope(
    message: dict[str, Any] | str,
    *,
    sns_message_id: str = "sns-1",
    attributes: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The JSON SNS writes into an SQS queue without raw message delivery."""
    if attributes is None:
        attributes = publisher_attributes(message)
    return {
        "Type": "Notification",
        "MessageId": sns_message_id,
        "TopicArn": TOPIC_ARN,
        "Message": message if isinstance(message, str) else json.dumps(message),
        "Timestamp": "2026-01-01T12:00:00.000Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLE==",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
        "MessageAttributes": {
            name: {"Type": "String", "Value": value} for name, value in attributes.items()
        },
    }


def sqs_record(
    body: dict[str, Any] | list[Any] | str,
    message_id: str,
    *,
    attributes: dict[str, str] | None = None,
    queue: str = "order-events-payment",
) -> dict[str, Any]:
    """One record of the SQS event Lambda delivers; a non-str body is JSON-encoded."""
    return events.sqs_record(
        body,
        message_id,
        queue=queue,
        message_attributes={
            name: sqs_string_attribute(value) for name, value in (attributes or {}).items()
        },
    )


def enveloped(
    message: dict[str, Any] | str, message_id: str = "msg-1", sns_message_id: str | None = None
) -> dict[str, Any]:
    """An SQS record holding ``message`` in its SNS envelope (no raw message delivery)."""
    envelope = sns_envelope(message, sns_message_id=sns_message_id or f"sns-{message_id}")
    return sqs_record(envelope, message_id)


def raw(
    message: dict[str, Any] | str,
    message_id: str = "msg-1",
    attributes: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An SQS record holding ``message`` itself (raw message delivery): the publisher's
    attributes arrive as SQS message attributes."""
    if attributes is None:
        attributes = publisher_attributes(message)
    return sqs_record(message, message_id, attributes=attributes)


# ------------------------------------------------------------------------------------------
# Routing (SNS -> Lambda)


def sns_lambda_event(
    message: dict[str, Any] | str,
    *,
    event_type: str | None = "invoice",
    message_id: str = "sns-msg-1",
) -> dict[str, Any]:
    """The event SNS invokes a subscribed Lambda function with (one record)."""
    attributes = (
        {} if event_type is None else {"eventType": {"Type": "String", "Value": event_type}}
    )
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": f"{TOPIC_ARN}:2bcfbf39-05c3-41de-beaa-fcfcc21c8f55",
                "Sns": {
                    "Type": "Notification",
                    "MessageId": message_id,
                    "TopicArn": TOPIC_ARN,
                    "Subject": None,
                    "Message": message if isinstance(message, str) else json.dumps(message),
                    "Timestamp": "2026-01-01T12:00:00.000Z",
                    "SignatureVersion": "1",
                    "Signature": "EXAMPLE==",
                    "SigningCertUrl": "https://sns.us-east-1.amazonaws.com/cert.pem",
                    "UnsubscribeUrl": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
                    "MessageAttributes": attributes,
                },
            }
        ]
    }
