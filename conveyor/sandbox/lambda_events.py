"""Lambda event shapes: what a handler receives from each event source, as AWS builds it.

Small pure functions (no AWS calls, no clock unless you leave ``timestamp`` out) that the
sandbox's event sources use and that tests can reuse to build the events a handler gets:

- SQS event source mapping: :func:`sqs_record` (one record from a boto3 ``ReceiveMessage``
  message, with :func:`sqs_message_attribute` for each attribute) and :func:`sqs_event`;
- SNS → Lambda: :func:`sns_notification` (the ``Sns`` object from the SNS envelope an SQS
  subscription receives), :func:`sns_notification_from_sqs_message` (the fallback when the
  message is not an envelope) and :func:`sns_event`;
- EventBridge → Lambda: :func:`eventbridge_event` (the event with ``account`` where
  EventBridge puts it) and :func:`eventbridge_event_id`;
- asynchronous invocation: :func:`async_failure_record`, the record an on-failure
  destination receives after the retries.

S3 notification records are built by moto itself (the deployer configures the bucket), so
there is no function for them here.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "async_failure_record",
    "eventbridge_event",
    "eventbridge_event_id",
    "iso_timestamp",
    "kinesis_event",
    "kinesis_record",
    "parse_sns_envelope",
    "sns_event",
    "sns_notification",
    "sns_notification_from_sqs_message",
    "sqs_event",
    "sqs_message_attribute",
    "sqs_record",
    "stream_failure_record",
]


def iso_timestamp(now: datetime | None = None) -> str:
    """``2026-12-02T03:04:05.678Z``: the timestamps of SNS and destination records."""
    moment = now or datetime.now(UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _b64(value: bytes | str) -> str:
    return base64.b64encode(value if isinstance(value, bytes) else value.encode()).decode()


# -- SQS -----------------------------------------------------------------------------------


def sqs_message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    """boto3's SQS message attribute -> the shape of Lambda's SQS event
    (``stringValue``/``binaryValue`` base64, list values, ``dataType``)."""
    attribute: dict[str, Any] = {}
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        attribute["binaryValue"] = _b64(value["BinaryValue"])
    attribute["stringListValues"] = list(value.get("StringListValues", []))
    attribute["binaryListValues"] = [_b64(v) for v in value.get("BinaryListValues", [])]
    attribute["dataType"] = value.get("DataType", "String")
    return attribute


def sqs_record(
    message: Mapping[str, Any],
    *,
    queue_arn: str,
    region: str,
    sequence_number: str | None = None,
) -> dict[str, Any]:
    """One record of Lambda's SQS event from a boto3 ``ReceiveMessage`` message (received
    with ``MessageSystemAttributeNames=["All"]`` and ``MessageAttributeNames=["All"]``).

    :param sequence_number: set as ``attributes.SequenceNumber`` when the message has none
        (FIFO queues: moto numbers only messages sent with an explicit deduplication id).
    """
    attributes = {str(k): str(v) for k, v in message.get("Attributes", {}).items()}
    if sequence_number is not None and "SequenceNumber" not in attributes:
        attributes["SequenceNumber"] = sequence_number
    body = message.get("Body", "")
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": body,
        "attributes": attributes,
        "messageAttributes": {
            name: sqs_message_attribute(value)
            for name, value in message.get("MessageAttributes", {}).items()
        },
    }
    if message.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    record["md5OfBody"] = (
        message.get("MD5OfBody") or hashlib.md5(body.encode()).hexdigest()  # noqa: S324 - SQS's
    )
    record["eventSource"] = "aws:sqs"
    record["eventSourceARN"] = queue_arn
    record["awsRegion"] = region
    return record


def sqs_event(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The event of one SQS batch: ``{"Records": [...]}``."""
    return {"Records": list(records)}


# -- SNS -----------------------------------------------------------------------------------


def parse_sns_envelope(body: str) -> dict[str, Any] | None:
    """The SNS envelope (``"Type": "Notification"``) an SQS subscription without raw delivery
    receives, or None when ``body`` is not one."""
    try:
        envelope = json.loads(body)
    except ValueError:
        return None
    if isinstance(envelope, dict) and envelope.get("Type") == "Notification":
        return envelope
    return None


def sns_notification(
    envelope: Mapping[str, Any], *, timestamp: str | None = None
) -> dict[str, Any]:
    """The ``Sns`` object of Lambda's SNS event, from the envelope (SNS's own field names:
    ``SigningCertURL`` becomes ``SigningCertUrl``, ``UnsubscribeURL`` ``UnsubscribeUrl``)."""
    return {
        "Type": "Notification",
        "MessageId": envelope.get("MessageId"),
        "TopicArn": str(envelope.get("TopicArn", "")),
        "Subject": envelope.get("Subject"),
        "Message": envelope.get("Message"),
        "Timestamp": envelope.get("Timestamp") or timestamp or iso_timestamp(),
        "SignatureVersion": envelope.get("SignatureVersion", "1"),
        "Signature": envelope.get("Signature", "EXAMPLE"),
        "SigningCertUrl": envelope.get("SigningCertURL", envelope.get("SigningCertUrl")),
        "UnsubscribeUrl": envelope.get("UnsubscribeURL", envelope.get("UnsubscribeUrl")),
        "MessageAttributes": envelope.get("MessageAttributes") or {},
    }


def sns_notification_from_sqs_message(
    message: Mapping[str, Any], *, timestamp: str | None = None
) -> dict[str, Any]:
    """An ``Sns`` object built from a plain SQS message (its body is the message, its SQS
    message attributes the SNS ones; no topic)."""
    return {
        "Type": "Notification",
        "MessageId": message["MessageId"],
        "TopicArn": "",
        "Subject": None,
        "Message": message.get("Body", ""),
        "Timestamp": timestamp or iso_timestamp(),
        "SignatureVersion": "1",
        "Signature": "EXAMPLE",
        "SigningCertUrl": None,
        "UnsubscribeUrl": None,
        "MessageAttributes": {
            name: {
                "Type": value.get("DataType", "String"),
                "Value": value.get("StringValue")
                or base64.b64encode(value.get("BinaryValue", b"")).decode(),
            }
            for name, value in message.get("MessageAttributes", {}).items()
        },
    }


def sns_event(notification: Mapping[str, Any], *, subscription_arn: str) -> dict[str, Any]:
    """Lambda's SNS event: one record holding the ``Sns`` object."""
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": subscription_arn,
                "Sns": dict(notification),
            }
        ]
    }


# -- EventBridge ---------------------------------------------------------------------------


def eventbridge_event(event: Any, *, account_id: str) -> Any:
    """The event a rule's Lambda target receives. An event without ``account`` (moto's) gets
    it after ``source``, where EventBridge puts it; any other input is returned unchanged."""
    if isinstance(event, dict) and "detail-type" in event and "account" not in event:
        ordered = ("version", "id", "detail-type", "source")
        return {
            **{k: event[k] for k in ordered if k in event},
            "account": account_id,
            **{k: v for k, v in event.items() if k not in ordered},
        }
    return event


def eventbridge_event_id(event: Any, fallback: str) -> str:
    """The event's ``id``; ``fallback`` for an input that has none."""
    event_id = event.get("id") if isinstance(event, dict) else None
    return str(event_id or fallback)


# -- asynchronous invocation ---------------------------------------------------------------


def async_failure_record(
    event: Any,
    *,
    request_id: str,
    function_arn: str,
    attempts: int,
    error_payload: Mapping[str, Any],
    timestamp: str | None = None,
) -> dict[str, Any]:
    """What an on-failure destination receives when an asynchronous invocation exhausted its
    retries (``condition: RetriesExhausted``; ``function_arn`` without qualifier)."""
    return {
        "version": "1.0",
        "timestamp": timestamp or iso_timestamp(),
        "requestContext": {
            "requestId": request_id,
            "functionArn": f"{function_arn}:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": attempts,
        },
        "requestPayload": event,
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled",
        },
        "responsePayload": dict(error_payload),
    }


# -- Kinesis Data Streams ---------------------------------------------------------------------


def kinesis_record(
    record: Mapping[str, Any], *, shard_id: str, stream_arn: str, region: str, role_arn: str
) -> dict[str, Any]:
    """One record of a Kinesis → Lambda event, from a ``GetRecords`` record (boto3 shape:
    ``Data`` bytes, ``ApproximateArrivalTimestamp`` a datetime)."""
    arrival = record["ApproximateArrivalTimestamp"]
    arrival_s = arrival.timestamp() if isinstance(arrival, datetime) else float(arrival)
    sequence = str(record["SequenceNumber"])
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": record["PartitionKey"],
            "sequenceNumber": sequence,
            "data": _b64(record["Data"]),
            "approximateArrivalTimestamp": round(arrival_s, 3),
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard_id}:{sequence}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": role_arn,
        "awsRegion": region,
        "eventSourceARN": stream_arn,
    }


def kinesis_event(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {"Records": list(records)}


def dynamodb_stream_record(
    record: Mapping[str, Any], *, stream_arn: str, region: str
) -> dict[str, Any]:
    """One record of a DynamoDB Streams → Lambda event, from a ``GetRecords`` record (boto3
    shape: ``ApproximateCreationDateTime`` a datetime): Lambda's shape, epoch seconds."""
    body = dict(record["dynamodb"])
    created = body.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        body["ApproximateCreationDateTime"] = float(int(created.timestamp()))
    return {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": body,
        "eventSourceARN": stream_arn,
    }


def stream_failure_record(
    records: Sequence[Mapping[str, Any]],
    *,
    shard_id: str,
    stream_arn: str,
    request_id: str,
    function_arn: str,
    condition: str,
    attempts: int,
    function_error: str | None,
    timestamp: str | None = None,
) -> dict[str, Any]:
    """What a Kinesis (``KinesisBatchInfo``) or DynamoDB Streams (``DDBStreamBatchInfo``)
    mapping's on-failure destination receives for a batch it gave up on
    (``condition``: ``RetryAttemptsExhausted`` or ``RecordAgeExceeded``): the shard and the
    sequence range, not the records (an S3 destination adds ``payload``: the event)."""

    dynamodb = "dynamodb" in records[0]  # a DynamoDB Streams batch (else Kinesis)

    def arrival(event_record: Mapping[str, Any]) -> str:
        seconds = float(
            event_record["dynamodb"]["ApproximateCreationDateTime"]
            if dynamodb
            else event_record["kinesis"]["approximateArrivalTimestamp"]
        )
        return iso_timestamp(datetime.fromtimestamp(seconds, UTC))

    def sequence(event_record: Mapping[str, Any]) -> str:
        return str(
            event_record["dynamodb"]["SequenceNumber"]
            if dynamodb
            else event_record["kinesis"]["sequenceNumber"]
        )

    failure: dict[str, Any] = {
        "requestContext": {
            "requestId": request_id,
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": attempts,
        },
        "version": "1.0",
        "timestamp": timestamp or iso_timestamp(),
        ("DDBStreamBatchInfo" if dynamodb else "KinesisBatchInfo"): {
            "shardId": shard_id,
            "startSequenceNumber": sequence(records[0]),
            "endSequenceNumber": sequence(records[-1]),
            "approximateArrivalOfFirstRecord": arrival(records[0]),
            "approximateArrivalOfLastRecord": arrival(records[-1]),
            "batchSize": len(records),
            "streamArn": stream_arn,
        },
    }
    if function_error is not None:
        failure["responseContext"] = {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": function_error,
        }
    return failure


def api_gateway_proxy_event(
    method: str,
    path: str,
    *,
    resource: str,
    path_parameters: Mapping[str, str] | None = None,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    stage: str = "v1",
    request_id: str | None = None,
) -> dict[str, Any]:
    """A REST API (v1) Lambda proxy integration event: what API Gateway sends the function
    for ``method path`` matched by ``resource`` (e.g. ``/accounts/{accountId}``)."""

    text = body if isinstance(body, str) or body is None else json.dumps(body)
    all_headers = {"Content-Type": "application/json", **dict(headers or {})}
    request = request_id or str(uuid.uuid4())
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": all_headers,
        "multiValueHeaders": {k: [v] for k, v in all_headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": dict(path_parameters) if path_parameters else None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/{stage}{path}",
            "stage": stage,
            "requestId": request,
            "identity": {"sourceIp": "127.0.0.1", "userAgent": "conveyor-sandbox"},
            "requestTimeEpoch": int(time.time() * 1000),
        },
        "body": text,
        "isBase64Encoded": False,
    }


# -- Amazon MQ (RabbitMQ) and MSK (Kafka) --------------------------------------------------------


def _rabbitmq_header(value: Any) -> Any:
    """Lambda renders a string header as ``{"bytes": [...]}`` and keeps numbers as they are."""
    if isinstance(value, bytes):
        return {"bytes": list(value)}
    if isinstance(value, str):
        return {"bytes": list(value.encode())}
    return value


def rabbitmq_message(body: bytes, properties: Any, *, redelivered: bool) -> dict[str, Any]:
    """One message of ``rmqMessagesByQueue`` from pika's ``BasicProperties``."""
    stamp = getattr(properties, "timestamp", None)
    moment = (
        datetime.fromtimestamp(int(stamp), UTC).strftime("%b %-d, %Y, %-I:%M:%S %p")
        if stamp
        else None
    )
    headers = getattr(properties, "headers", None) or {}
    return {
        "basicProperties": {
            "contentType": properties.content_type,
            "contentEncoding": properties.content_encoding,
            "headers": {str(k): _rabbitmq_header(v) for k, v in headers.items()},
            "deliveryMode": properties.delivery_mode,
            "priority": properties.priority,
            "correlationId": properties.correlation_id,
            "replyTo": properties.reply_to,
            "expiration": properties.expiration,
            "messageId": properties.message_id,
            "timestamp": moment,
            "type": properties.type,
            "userId": properties.user_id,
            "appId": properties.app_id,
            "clusterId": properties.cluster_id,
            "bodySize": len(body),
        },
        "redelivered": redelivered,
        "data": _b64(body),
    }


def rabbitmq_event(
    messages: Sequence[Mapping[str, Any]], *, broker_arn: str, queue: str, virtual_host: str
) -> dict[str, Any]:
    """The Amazon MQ (RabbitMQ) event: messages keyed ``<queue>::<virtual host>``."""
    return {
        "eventSource": "aws:rmq",
        "eventSourceArn": broker_arn,
        "rmqMessagesByQueue": {f"{queue}::{virtual_host}": list(messages)},
    }


def kafka_record(
    *,
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes | None]],
) -> dict[str, Any]:
    """One MSK record: base64 key and value, headers as lists of byte values."""
    record: dict[str, Any] = {
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "timestamp": timestamp_ms,
        "timestampType": "CREATE_TIME",
        "value": _b64(value or b""),
        "headers": [{name: list(data or b"")} for name, data in headers],
    }
    if key is not None:
        record["key"] = _b64(key)
    return record


def kafka_event(
    records: Sequence[Mapping[str, Any]], *, cluster_arn: str, bootstrap_servers: str
) -> dict[str, Any]:
    """The MSK event: records grouped by ``<topic>-<partition>``."""
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        grouped.setdefault(f"{record['topic']}-{record['partition']}", []).append(record)
    return {
        "eventSource": "aws:kafka",
        "eventSourceArn": cluster_arn,
        "bootstrapServers": bootstrap_servers,
        "records": grouped,
    }


def kafka_failure_record(
    records: Sequence[Mapping[str, Any]],
    *,
    cluster_arn: str,
    bootstrap_servers: str,
    request_id: str,
    function_arn: str,
    condition: str,
    attempts: int,
    function_error: str | None,
) -> dict[str, Any]:
    """What an MSK mapping's on-failure destination receives for a batch it gave up on: the
    topic-partition and offset range, not the records."""
    first, last = records[0], records[-1]
    failure: dict[str, Any] = {
        "requestContext": {
            "requestId": request_id,
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": attempts,
        },
        "version": "1.0",
        "timestamp": iso_timestamp(),
        "KafkaBatchInfo": {
            "batchSize": len(records),
            "eventSourceArn": cluster_arn,
            "bootstrapServers": bootstrap_servers,
            "payloadSize": sum(len(str(r.get("value", ""))) for r in records),
            "recordsInfo": {
                f"{first['topic']}-{first['partition']}": {
                    "firstRecordOffset": str(first["offset"]),
                    "firstRecordTimestamp": iso_timestamp(
                        datetime.fromtimestamp(first["timestamp"] / 1000, UTC)
                    ),
                    "lastRecordOffset": str(last["offset"]),
                    "lastRecordTimestamp": iso_timestamp(
                        datetime.fromtimestamp(last["timestamp"] / 1000, UTC)
                    ),
                }
            },
        },
    }
    if function_error is not None:
        failure["responseContext"] = {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": function_error,
        }
    return failure
