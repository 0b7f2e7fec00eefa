"""Helpers for test_order_events.py and test_payments.py: events, moto resources, log capture.

A plain module rather than conftest (test modules cannot import conftest with
--import-mode=importlib); conftest.py puts this folder on sys.path. Importing this module puts
the ``order_events`` and ``payments`` asset roots on sys.path, so that the tests import the
handlers exactly as the Lambda runtime does (``order_events.handler``, ``payments.review``).
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lambda_support import JsonLogCapture, captured_logs, sqs_event  # noqa: F401 - re-exported

HERE = Path(__file__).resolve().parent
for _asset in ("order_events", "payments"):
    _root = str(HERE.parents[1] / "lambdas" / _asset)
    if _root not in sys.path:
        sys.path.insert(0, _root)

REGION = "us-east-1"
ACCOUNT = "123456789012"
TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:order-placed"
IDEMPOTENCY_TABLE = "conveyor-idempotency"
DLQ_NAME = "order-events-dlq"

# Marks a field to remove in with_field().
DELETE = object()


# ------------------------------------------------------------------------------------------
# moto


def create_idempotency_table(dynamodb: Any, name: str = IDEMPOTENCY_TABLE) -> None:
    """Powertools' default schema: partition key ``id`` (string), TTL attribute ``expiration``."""
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.update_time_to_live(
        TableName=name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"},
    )


def idempotency_key(prefix: str, business_key: str) -> str:
    """The record id Powertools writes for ``event_key_jmespath`` selecting ``business_key``."""
    return f"{prefix}#{hashlib.md5(json.dumps(business_key).encode()).hexdigest()}"


@dataclass
class Aws:
    """Clients on the moto backend plus the few reads the tests repeat."""

    dynamodb: Any
    sqs: Any | None = None
    dlq_url: str | None = None
    table: str = IDEMPOTENCY_TABLE

    def dead_letters(self) -> list[dict[str, Any]]:
        assert self.sqs is not None
        assert self.dlq_url is not None
        response = self.sqs.receive_message(
            QueueUrl=self.dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        )
        return response.get("Messages", [])

    def idempotency_records(self) -> dict[str, dict[str, Any]]:
        """Record id -> {"status", "data" (the stored result, decoded), "expiration"}."""
        records = {}
        for item in self.dynamodb.scan(TableName=self.table)["Items"]:
            data = item.get("data", {}).get("S")
            records[item["id"]["S"]] = {
                "status": item["status"]["S"],
                "data": None if data is None else json.loads(data),
                "expiration": int(item["expiration"]["N"]),
            }
        return records


# ------------------------------------------------------------------------------------------
# Lambda


@dataclass
class LambdaContext:
    """What Logger.inject_lambda_context and the idempotency utility read from the context."""

    function_name: str = "order-events"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:order-events"
    aws_request_id: str = "6f1a4b8e-0c55-4e3a-9d43-3b0c1d2e9f10"
    log_group_name: str = "/aws/lambda/order-events"
    log_stream_name: str = "2026/01/01/[$LATEST]abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


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


def with_field(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``document`` with the field at ``path`` ("order.items.0.sku") set to
    ``value``, or removed when ``value`` is DELETE."""
    copy = json.loads(json.dumps(document))
    *parents, leaf = path.split(".")
    target: Any = copy
    for parent in parents:
        target = target[int(parent)] if isinstance(target, list) else target[parent]
    key: Any = int(leaf) if isinstance(target, list) else leaf
    if value is DELETE:
        del target[key]
    else:
        target[key] = value
    return copy


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
    return {
        "messageId": message_id,
        "receiptHandle": f"receipt-{message_id}",
        "body": body if isinstance(body, str) else json.dumps(body),
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1767268800000",
            "SenderId": "AIDAIENQZJOLO23YVJ4VO",
            "ApproximateFirstReceiveTimestamp": "1767268800001",
        },
        "messageAttributes": {
            name: {
                "stringValue": value,
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": "String",
            }
            for name, value in (attributes or {}).items()
        },
        "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue}",
        "awsRegion": REGION,
    }


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


# ------------------------------------------------------------------------------------------
# Payments (EventBridge -> Lambda)


def facture(facture_id: str = "f-1", **fields: Any) -> dict[str, Any]:
    """The detail of a "facture" event."""
    return {
        "factureId": facture_id,
        "montant": 6000,
        "devise": "EUR",
        "client": "c-1",
        "version": "1.0",
        **fields,
    }


def eventbridge_event(
    detail: Any = None,
    *,
    detail_type: str = "facture",
    source: str = "app.paiement",
    event_id: str = "9f2b1c0e-1111-2222-3333-444455556666",
) -> dict[str, Any]:
    """The event EventBridge invokes a target Lambda function with."""
    return {
        "version": "0",
        "id": event_id,
        "detail-type": detail_type,
        "source": source,
        "account": ACCOUNT,
        "time": "2026-01-01T12:00:00Z",
        "region": REGION,
        "resources": [],
        "detail": facture() if detail is None else detail,
    }
