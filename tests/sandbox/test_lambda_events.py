"""The Lambda event shapes of ``conveyor.sandbox.lambda_events`` (pure functions)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from conveyor.sandbox import lambda_events
from conveyor.sandbox.model import ACCOUNT_ID, REGION

QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:orders.fifo"
TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:orders"


def boto3_message(**overrides: object) -> dict[str, object]:
    message: dict[str, object] = {
        "MessageId": "m-1",
        "ReceiptHandle": "rh-1",
        "Body": "hello",
        "Attributes": {"ApproximateReceiveCount": "1", "MessageGroupId": "g"},
        "MessageAttributes": {"blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"}},
    }
    message.update(overrides)
    return message


def test_sqs_record_has_lambdas_field_names_and_order() -> None:
    record = lambda_events.sqs_record(boto3_message(), queue_arn=QUEUE_ARN, region=REGION)

    assert list(record) == [
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfBody",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    ]
    assert record["md5OfBody"] == "5d41402abc4b2a76b9719d911017c592"  # computed when missing
    assert (record["eventSource"], record["eventSourceARN"]) == ("aws:sqs", QUEUE_ARN)
    assert record["messageAttributes"]["blob"] == {
        "binaryValue": "AAE=",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "Binary",
    }


def test_sqs_record_sequence_number_only_fills_a_missing_one() -> None:
    missing = lambda_events.sqs_record(
        boto3_message(), queue_arn=QUEUE_ARN, region=REGION, sequence_number="18"
    )
    present = lambda_events.sqs_record(
        boto3_message(Attributes={"SequenceNumber": "7"}),
        queue_arn=QUEUE_ARN,
        region=REGION,
        sequence_number="18",
    )

    assert missing["attributes"]["SequenceNumber"] == "18"
    assert present["attributes"]["SequenceNumber"] == "7"
    assert lambda_events.sqs_event([missing]) == {"Records": [missing]}


def test_sns_event_from_an_envelope_renames_the_url_fields() -> None:
    envelope = lambda_events.parse_sns_envelope(
        json.dumps(
            {
                "Type": "Notification",
                "MessageId": "n-1",
                "TopicArn": TOPIC_ARN,
                "Message": "{}",
                "Timestamp": "2026-12-02T00:00:00.000Z",
                "SigningCertURL": "https://cert",
                "UnsubscribeURL": "https://unsubscribe",
            }
        )
    )
    assert envelope is not None

    event = lambda_events.sns_event(
        lambda_events.sns_notification(envelope), subscription_arn=f"{TOPIC_ARN}:sub"
    )

    (record,) = event["Records"]
    assert (record["EventSource"], record["EventSubscriptionArn"]) == (
        "aws:sns",
        f"{TOPIC_ARN}:sub",
    )
    sns = record["Sns"]
    assert (sns["MessageId"], sns["TopicArn"], sns["Message"]) == ("n-1", TOPIC_ARN, "{}")
    assert (sns["SigningCertUrl"], sns["UnsubscribeUrl"]) == ("https://cert", "https://unsubscribe")
    assert (sns["Subject"], sns["MessageAttributes"]) == (None, {})


def test_a_body_that_is_not_an_envelope_is_recognised() -> None:
    assert lambda_events.parse_sns_envelope("not json") is None
    assert lambda_events.parse_sns_envelope('{"Type": "SubscriptionConfirmation"}') is None
    sns = lambda_events.sns_notification_from_sqs_message(
        boto3_message(MessageAttributes={"k": {"DataType": "String", "StringValue": "v"}}),
        timestamp="2026-12-02T00:00:00.000Z",
    )
    assert (sns["MessageId"], sns["Message"], sns["TopicArn"]) == ("m-1", "hello", "")
    assert sns["MessageAttributes"] == {"k": {"Type": "String", "Value": "v"}}


def test_eventbridge_event_gets_the_account_after_source() -> None:
    event = {"version": "0", "id": "e-1", "detail-type": "T", "source": "s", "detail": {}}

    shaped = lambda_events.eventbridge_event(event, account_id=ACCOUNT_ID)

    assert list(shaped) == ["version", "id", "detail-type", "source", "account", "detail"]
    assert lambda_events.eventbridge_event_id(shaped, "fallback") == "e-1"
    assert lambda_events.eventbridge_event("constant", account_id=ACCOUNT_ID) == "constant"
    assert lambda_events.eventbridge_event_id("constant", "m-1") == "m-1"


def test_async_failure_record_is_what_an_on_failure_destination_receives() -> None:
    record = lambda_events.async_failure_record(
        {"a": 1},
        request_id="r-1",
        function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:f",
        attempts=3,
        error_payload={"errorType": "ValueError"},
        timestamp=lambda_events.iso_timestamp(datetime(2026, 12, 2, tzinfo=UTC)),
    )

    assert record["timestamp"] == "2026-12-02T00:00:00.000Z"
    assert record["requestContext"] == {
        "requestId": "r-1",
        "functionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:f:$LATEST",
        "condition": "RetriesExhausted",
        "approximateInvokeCount": 3,
    }
    assert (record["requestPayload"], record["responsePayload"]) == (
        {"a": 1},
        {"errorType": "ValueError"},
    )
    assert record["responseContext"]["functionError"] == "Unhandled"
