"""Helpers for test_order_pipeline.py: order events, SQS FIFO records, moto resources, logs.

A plain module rather than conftest (test modules cannot import conftest with
--import-mode=importlib); conftest.py puts this folder and the ``order_pipeline`` asset root
on sys.path, so that the tests import the handler exactly as
the Lambda runtime does (``order_pipeline.handler``).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from tests.support.aws import ACCOUNT, REGION
from tests.support.documents import DELETE, with_field
from tests.support.events import sqs_event
from tests.support.lambda_context import LambdaContext
from tests.support.observability import captured_logs

__all__ = ["DELETE", "LambdaContext", "captured_logs", "sqs_event", "with_field"]

ORDERS_TABLE = "conveyor-orders"
SOURCE_QUEUE_NAME = "orders.fifo"
DLQ_NAME = "orders-dlq.fifo"
# SentTimestamp of every record built here (unless told otherwise), and the same as ISO 8601.
SENT_TIMESTAMP = 1767268800000
SENT_AT = "2026-01-01T12:00:00.000Z"


# ------------------------------------------------------------------------------------------
# Order events (the client's JSON request, sent as is by API Gateway)


def created(order_id: str = "o-1", customer_id: str = "c-1", **fields: Any) -> dict[str, Any]:
    return {
        "orderId": order_id,
        "customerId": customer_id,
        "event": "created",
        "items": [
            {"sku": "A", "quantity": 2, "unitPrice": 9.5},
            {"sku": "B", "quantity": 1, "unitPrice": 0.1},
        ],
        "total": 19.1,
        "currency": "EUR",
        **fields,
    }


def paid(order_id: str = "o-1", customer_id: str = "c-1", **fields: Any) -> dict[str, Any]:
    return {
        "orderId": order_id,
        "customerId": customer_id,
        "event": "paid",
        "amount": 19.1,
        **fields,
    }


def shipped(order_id: str = "o-1", customer_id: str = "c-1", **fields: Any) -> dict[str, Any]:
    return {
        "orderId": order_id,
        "customerId": customer_id,
        "event": "shipped",
        "carrier": "DHL",
        **fields,
    }


# ------------------------------------------------------------------------------------------
# SQS FIFO -> Lambda

_sequence_numbers = itertools.count(18_849_496_460_467_696_128)


def fifo_record(
    body: dict[str, Any] | str,
    message_id: str,
    *,
    group: str | None = None,
    deduplication_id: str | None = None,
    receive_count: int = 1,
    sent_timestamp: int = SENT_TIMESTAMP,
    sequence_number: str | None = None,
    message_attributes: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One record of the event Lambda delivers from a FIFO queue; a dict body is JSON-encoded.

    As the API Gateway integration sends them: group = the body's customerId, deduplication
    id = orderId + event (for a body that has them)."""
    document = body if isinstance(body, dict) else {}
    if group is None:
        group = str(document.get("customerId", "no-customer"))
    if deduplication_id is None:
        deduplication_id = f"{document.get('orderId')}{document.get('event')}"
    return {
        "messageId": message_id,
        "receiptHandle": f"receipt-{message_id}-{receive_count}",
        "body": body if isinstance(body, str) else json.dumps(body),
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": str(sent_timestamp),
            "SequenceNumber": sequence_number or str(next(_sequence_numbers)),
            "MessageGroupId": group,
            "SenderId": "AROAEXAMPLE:apigateway",
            "MessageDeduplicationId": deduplication_id,
            "ApproximateFirstReceiveTimestamp": str(sent_timestamp + 5),
        },
        "messageAttributes": {
            name: {
                "stringValue": value,
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": "String",
            }
            for name, value in (message_attributes or {}).items()
        },
        "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{SOURCE_QUEUE_NAME}",
        "awsRegion": REGION,
    }


def batch(*bodies: dict[str, Any] | str) -> dict[str, Any]:
    """One FIFO record per body, in this order, message ids msg-1, msg-2, ..."""
    return sqs_event(*(fifo_record(body, f"msg-{n}") for n, body in enumerate(bodies, 1)))


def failed_ids(response: dict[str, Any]) -> list[str]:
    return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]


# ------------------------------------------------------------------------------------------
# moto


def create_orders_table(dynamodb: Any, name: str = ORDERS_TABLE) -> None:
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "orderId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "orderId", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


_deserializer = TypeDeserializer()


@dataclass
class Aws:
    """Clients on the moto backend plus the few reads the tests repeat."""

    dynamodb: Any
    sqs: Any
    dlq_url: str
    table: str = ORDERS_TABLE

    def order(self, order_id: str) -> dict[str, Any] | None:
        """The item of ``order_id`` as Python values (numbers as Decimal), or None."""
        item = self.dynamodb.get_item(
            TableName=self.table, Key={"orderId": {"S": order_id}}, ConsistentRead=True
        ).get("Item")
        return None if item is None else _deserialize(item)

    def orders(self) -> dict[str, dict[str, Any]]:
        """Every item of the table, by order id."""
        items = self.dynamodb.scan(TableName=self.table, ConsistentRead=True)["Items"]
        return {item["orderId"]["S"]: _deserialize(item) for item in items}

    def statuses(self) -> dict[str, str]:
        return {order_id: item["status"] for order_id, item in self.orders().items()}

    def dead_letters(self) -> list[dict[str, Any]]:
        """The DLQ's messages: body, group, deduplication id and message attributes."""
        response = self.sqs.receive_message(
            QueueUrl=self.dlq_url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return [
            {
                "body": message["Body"],
                "group": message["Attributes"]["MessageGroupId"],
                "deduplication_id": message["Attributes"]["MessageDeduplicationId"],
                "attributes": {
                    name: attribute["StringValue"]
                    for name, attribute in message.get("MessageAttributes", {}).items()
                },
            }
            for message in response.get("Messages", [])
        ]


def _deserialize(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _deserializer.deserialize(value) for name, value in item.items()}


# ------------------------------------------------------------------------------------------
# Logs
