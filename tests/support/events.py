"""Generic Lambda event shapes: SQS, SNS, EventBridge, S3 notifications.

Small functions with test-friendly arguments. The SQS, SNS and EventBridge shapes are built by
the sandbox's own module (``conveyor.sandbox.lambda_events``), so a handler test gets exactly
the event the sandbox delivers; S3 notification records are built here (moto builds them in
the sandbox).
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote_plus

from conveyor.sandbox import lambda_events
from tests.support.aws import ACCOUNT, REGION

EPOCH_MS = "1767268800000"  # 2026-01-01T12:00:00Z


def sqs_record(
    body: str | dict[str, Any] | list[Any],
    message_id: str = "msg-1",
    *,
    queue: str = "queue",
    attributes: dict[str, str] | None = None,
    message_attributes: dict[str, dict[str, Any]] | None = None,
    group_id: str | None = None,
) -> dict[str, Any]:
    """One record of an SQS event (a non-string body is JSON-encoded); ``group_id``: FIFO.
    ``message_attributes`` are in the event's shape (see :func:`sqs_string_attribute`)."""
    system = {
        "ApproximateReceiveCount": "1",
        "SentTimestamp": EPOCH_MS,
        "SenderId": ACCOUNT,
        "ApproximateFirstReceiveTimestamp": EPOCH_MS,
        **(attributes or {}),
    }
    if group_id is not None:
        system.update(MessageGroupId=group_id, MessageDeduplicationId=message_id)
    received = {  # what boto3's ReceiveMessage returns for it
        "MessageId": message_id,
        "ReceiptHandle": f"handle-{message_id}",
        "Body": body if isinstance(body, str) else json.dumps(body),
        "Attributes": system,
        "MessageAttributes": {
            name: _received_attribute(value) for name, value in (message_attributes or {}).items()
        },
    }
    return lambda_events.sqs_record(
        received, queue_arn=f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue}", region=REGION
    )


def _received_attribute(attribute: dict[str, Any]) -> dict[str, Any]:
    """A message attribute in the event's shape -> as boto3's ReceiveMessage returns it."""
    received: dict[str, Any] = {"DataType": attribute.get("dataType", "String")}
    if "stringValue" in attribute:
        received["StringValue"] = attribute["stringValue"]
    if "binaryValue" in attribute:
        received["BinaryValue"] = base64.b64decode(attribute["binaryValue"])
    return received


def sqs_event(*records: dict[str, Any]) -> dict[str, Any]:
    return lambda_events.sqs_event(records)


def sqs_string_attribute(value: str, data_type: str = "String") -> dict[str, Any]:
    """A message attribute as SQS hands it to Lambda."""
    return lambda_events.sqs_message_attribute({"DataType": data_type, "StringValue": value})


def sns_envelope(
    message: str | dict[str, Any],
    *,
    message_id: str = "sns-1",
    topic: str = "topic",
    attributes: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The JSON envelope SNS wraps a message in (SQS body, or the ``Sns`` of a Lambda record)."""
    return {
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:{topic}",
        "Message": message if isinstance(message, str) else json.dumps(message),
        "Timestamp": "2026-01-01T00:00:00.000Z",
        "SignatureVersion": "1",
        "MessageAttributes": {
            name: {"Type": "String", "Value": value} for name, value in (attributes or {}).items()
        },
    }


def sns_event(*envelopes: dict[str, Any]) -> dict[str, Any]:
    """An SNS -> Lambda event, one record per envelope."""
    return {
        "Records": [
            record
            for envelope in envelopes
            for record in lambda_events.sns_event(
                lambda_events.sns_notification(envelope),
                subscription_arn=f"{envelope['TopicArn']}:subscription",
            )["Records"]
        ]
    }


def eventbridge_event(
    detail: Any,
    *,
    source: str = "app.test",
    detail_type: str = "test",
    event_id: str = "evt-1",
    bus: str = "default",
) -> dict[str, Any]:
    event = {
        "version": "0",
        "id": event_id,
        "detail-type": detail_type,
        "source": source,
        "time": "2026-01-01T12:00:00Z",
        "region": REGION,
        "resources": [],
        "detail": detail,
        "event-bus-name": bus,
    }
    return dict(lambda_events.eventbridge_event(event, account_id=ACCOUNT))


def s3_event_record(
    key: str,
    *,
    bucket: str = "bucket",
    event_name: str = "ObjectCreated:Put",
    size: int | None = 1024,
    etag: str | None = "0123456789abcdef0123456789abcdef",
    sequencer: str | None = "0055AED6DCD90281E5",
) -> dict[str, Any]:
    """One record of an S3 event notification (the key URL-encoded, as S3 sends it)."""
    s3_object: dict[str, Any] = {"key": quote_plus(key, safe="/")}
    for name, value in (("size", size), ("eTag", etag), ("sequencer", sequencer)):
        if value is not None:
            s3_object[name] = value
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": REGION,
        "eventTime": "2026-01-01T00:00:00.000Z",
        "eventName": event_name,
        "s3": {
            "s3SchemaVersion": "1.0",
            "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
            "object": s3_object,
        },
    }


def s3_notification(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}
