"""Helpers for test_remediation.py: alarm notifications, moto resources, the move-task stub.

A plain module rather than conftest (test modules cannot import conftest with
--import-mode=importlib); conftest.py puts this folder and the ``remediation`` asset root on
sys.path, so that the tests import the handler exactly as the
Lambda runtime does (``remediation.handler``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse

from tests.support.aws import ACCOUNT, REGION
from tests.support.lambda_context import LambdaContext
from tests.support.observability import captured_logs, emf_totals

__all__ = ["LambdaContext", "captured_logs", "emf_totals"]

AUDIT_TABLE = "conveyor-remediation-audit"
ALARM_TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:conveyor-alarms"

DLQ_NAME = "orders-dlq"
SOURCE_QUEUE_NAME = "orders"
MISSING_DLQ_NAME = "legacy-dlq"  # configured, never created (a deleted queue)
MISSING_SOURCE_NAME = "legacy"


def queue_arn(name: str) -> str:
    return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"


DLQ_ARN = queue_arn(DLQ_NAME)
SOURCE_QUEUE_ARN = queue_arn(SOURCE_QUEUE_NAME)

# Alarm names of REMEDIATION_RULES (see RULES).
DLQ_ALARM = "orders-dlq-messages-visible"  # record_incident on orders-dlq
ERROR_ALARM = "orders-consumer-errors"  # redrive orders-dlq -> orders
REPLAY_ALARM = "orders-replay-errors"  # a second redrive rule on the same DLQ
MISSING_DLQ_ALARM = "legacy-dlq-messages-visible"  # record_incident on a deleted queue
MISSING_ERROR_ALARM = "legacy-consumer-errors"  # redrive of a deleted queue

RULES: dict[str, dict[str, str]] = {
    DLQ_ALARM: {"action": "record_incident", "dead_letter_queue_arn": DLQ_ARN},
    ERROR_ALARM: {
        "action": "redrive",
        "dead_letter_queue_arn": DLQ_ARN,
        "source_queue_arn": SOURCE_QUEUE_ARN,
    },
    REPLAY_ALARM: {
        "action": "redrive",
        "dead_letter_queue_arn": DLQ_ARN,
        "source_queue_arn": SOURCE_QUEUE_ARN,
    },
    MISSING_DLQ_ALARM: {
        "action": "record_incident",
        "dead_letter_queue_arn": queue_arn(MISSING_DLQ_NAME),
    },
    MISSING_ERROR_ALARM: {
        "action": "redrive",
        "dead_letter_queue_arn": queue_arn(MISSING_DLQ_NAME),
        "source_queue_arn": queue_arn(MISSING_SOURCE_NAME),
    },
}

# Marks a field to remove in alarm_message().
DELETE = object()


# ------------------------------------------------------------------------------------------
# Alarm notifications


def alarm_message(
    alarm_name: str = DLQ_ALARM,
    new_state: str = "ALARM",
    old_state: str = "OK",
    state_change_time: str = "2026-01-01T12:00:00.000+0000",
    **overrides: Any,
) -> dict[str, Any]:
    """The JSON CloudWatch publishes to the alarm's SNS topic (a real notification's fields).

    ``overrides`` replace top-level fields; DELETE removes one.
    """
    is_error_alarm = alarm_name not in (DLQ_ALARM, MISSING_DLQ_ALARM)
    if is_error_alarm:
        trigger = {
            "MetricName": "Errors",
            "Namespace": "AWS/Lambda",
            "StatisticType": "Statistic",
            "Statistic": "SUM",
            "Unit": None,
            "Dimensions": [{"value": "orders-consumer", "name": "FunctionName"}],
            "Period": 60,
            "EvaluationPeriods": 3,
            "DatapointsToAlarm": 2,
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": 0.0,
            "TreatMissingData": "notBreaching",
            "EvaluateLowSampleCountPercentile": "",
        }
        description = "Errors of the orders consumer (its failed messages end in orders-dlq)"
    else:
        trigger = {
            "MetricName": "ApproximateNumberOfMessagesVisible",
            "Namespace": "AWS/SQS",
            "StatisticType": "Statistic",
            "Statistic": "MAXIMUM",
            "Unit": None,
            "Dimensions": [{"value": DLQ_NAME, "name": "QueueName"}],
            "Period": 60,
            "EvaluationPeriods": 1,
            "DatapointsToAlarm": 1,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "Threshold": 1.0,
            "TreatMissingData": "notBreaching",
            "EvaluateLowSampleCountPercentile": "",
        }
        description = "Messages are waiting in the orders DLQ"
    crossed = new_state == "ALARM"
    message: dict[str, Any] = {
        "AlarmName": alarm_name,
        "AlarmDescription": description,
        "AWSAccountId": ACCOUNT,
        "AlarmConfigurationUpdatedTimestamp": "2025-12-01T09:30:00.000+0000",
        "NewStateValue": new_state,
        "NewStateReason": (
            "Threshold Crossed: 1 out of the last 1 datapoints [3.0 (01/01/26 11:59:00)] was "
            "greater than or equal to the threshold (1.0) (minimum 1 datapoint for OK -> "
            "ALARM transition)."
            if crossed
            else "Threshold Crossed: 1 out of the last 1 datapoints [0.0 (01/01/26 11:59:00)] "
            "was not greater than or equal to the threshold (1.0) (minimum 1 datapoint for "
            "ALARM -> OK transition)."
        ),
        "StateChangeTime": state_change_time,
        "Region": "US East (N. Virginia)",
        "AlarmArn": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{alarm_name}",
        "OldStateValue": old_state,
        "OKActions": [ALARM_TOPIC_ARN],
        "AlarmActions": [ALARM_TOPIC_ARN],
        "InsufficientDataActions": [],
        "Trigger": trigger,
    }
    for name, value in overrides.items():
        if value is DELETE:
            message.pop(name, None)
        else:
            message[name] = value
    return message


def sns_event(*messages: dict[str, Any] | str) -> dict[str, Any]:
    """The event SNS invokes a subscribed Lambda function with; a dict is JSON-encoded."""
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": f"{ALARM_TOPIC_ARN}:2bcfbf39-05c3-41de-beaa-fcfcc21c8f55",
                "Sns": {
                    "Type": "Notification",
                    "MessageId": f"95df01b4-ee98-5cb9-9903-4c221d41eb5{n}",
                    "TopicArn": ALARM_TOPIC_ARN,
                    "Subject": 'ALARM: "orders" in US East (N. Virginia)',
                    "Message": message if isinstance(message, str) else json.dumps(message),
                    "Timestamp": "2026-01-01T12:00:01.123Z",
                    "SignatureVersion": "1",
                    "Signature": "EXAMPLE==",
                    "SigningCertUrl": "https://sns.us-east-1.amazonaws.com/cert.pem",
                    "UnsubscribeUrl": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
                    "MessageAttributes": {},
                },
            }
            for n, message in enumerate(messages)
        ]
    }


def eventbridge_event(
    alarm_name: str = DLQ_ALARM,
    new_state: str = "ALARM",
    old_state: str | None = "OK",
    state_change_time: str = "2026-01-01T12:00:00.000+0000",
    *,
    detail_type: str = "CloudWatch Alarm State Change",
    source: str = "aws.cloudwatch",
) -> dict[str, Any]:
    """The "CloudWatch Alarm State Change" event EventBridge invokes a target with.

    ``old_state`` None: no previousState (a brand-new alarm's first change).
    """
    metric = (
        {
            "name": "ApproximateNumberOfMessagesVisible",
            "namespace": "AWS/SQS",
            "dimensions": {"QueueName": DLQ_NAME},
        }
        if alarm_name in (DLQ_ALARM, MISSING_DLQ_ALARM)
        else {
            "name": "Errors",
            "namespace": "AWS/Lambda",
            "dimensions": {"FunctionName": "orders-consumer"},
        }
    )
    detail: dict[str, Any] = {
        "alarmName": alarm_name,
        "state": {
            "value": new_state,
            "reason": f"Threshold Crossed: state is now {new_state}",
            "reasonData": '{"version":"1.0","queryDate":"2026-01-01T12:00:00.000+0000"}',
            "timestamp": state_change_time,
        },
        "configuration": {
            "description": "An alarm of the orders pipeline",
            "metrics": [
                {
                    "id": "30b6c6b2-a864-43a2-4877-c09a1afc3b87",
                    "metricStat": {"metric": metric, "period": 60, "stat": "Maximum"},
                    "returnData": True,
                }
            ],
        },
    }
    if old_state is not None:
        detail["previousState"] = {
            "value": old_state,
            "reason": f"Threshold Crossed: state was {old_state}",
            "timestamp": "2026-01-01T11:00:00.000+0000",
        }
    return {
        "version": "0",
        "id": "c4c1c1c9-6542-e61b-6ef0-8c4d36933a92",
        "detail-type": detail_type,
        "source": source,
        "account": ACCOUNT,
        "time": "2026-01-01T12:00:00Z",
        "region": REGION,
        "resources": [f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{alarm_name}"],
        "detail": detail,
    }


# ------------------------------------------------------------------------------------------
# SQS message move tasks (moto does not implement them)


@dataclass
class MoveTaskStub:
    """Answers ListMessageMoveTasks and StartMessageMoveTask on ONE botocore client.

    moto 5.2.5 raises NotImplementedError for both, and botocore's Stubber cannot stub only
    some operations of a client (once active it answers every call, so the moto-backed
    GetQueueUrl/GetQueueAttributes would fail). This registers handlers on the client's own
    event hooks for these two operations only, the way Stubber does it: the call's keyword
    arguments are recorded at ``before-parameter-build``, botocore then validates them against
    the SQS model, and ``before-call`` returns the canned response instead of sending the
    request. Every other operation of the client still goes to moto.
    """

    # Keyword arguments of every StartMessageMoveTask / ListMessageMoveTasks call.
    started: list[dict[str, Any]] = field(default_factory=list)
    listed: list[dict[str, Any]] = field(default_factory=list)
    # What ListMessageMoveTasks answers (most recent first).
    tasks: list[dict[str, Any]] = field(default_factory=list)
    # (code, HTTP status) errors answered instead, in order, one per call.
    start_errors: list[tuple[str, int]] = field(default_factory=list)
    list_errors: list[tuple[str, int]] = field(default_factory=list)

    def attach(self, client: Any) -> MoveTaskStub:
        events = client.meta.events
        for operation, calls in (
            ("StartMessageMoveTask", self.started),
            ("ListMessageMoveTasks", self.listed),
        ):
            events.register(
                f"before-parameter-build.sqs.{operation}",
                lambda params, calls=calls, **_: calls.append(dict(params)),
            )
        events.register("before-call.sqs.StartMessageMoveTask", self._start)
        events.register("before-call.sqs.ListMessageMoveTasks", self._list)
        return self

    def _start(self, **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        if self.start_errors:
            return _error(*self.start_errors.pop(0))
        handle = f"task-handle-{len(self.started)}"
        return _ok({"TaskHandle": handle})

    def _list(self, **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        if self.list_errors:
            return _error(*self.list_errors.pop(0))
        return _ok({"Results": list(self.tasks)})


def _ok(body: dict[str, Any]) -> tuple[AWSResponse, dict[str, Any]]:
    return AWSResponse(None, 200, {}, None), {
        **body,
        "ResponseMetadata": {"HTTPStatusCode": 200},
    }


def _error(code: str, status: int) -> tuple[AWSResponse, dict[str, Any]]:
    return AWSResponse(None, status, {}, None), {
        "Error": {"Code": code, "Message": f"stubbed {code}"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }


def move_task(status: str, handle: str = "earlier-task") -> dict[str, Any]:
    """One ListMessageMoveTasks result."""
    return {
        "TaskHandle": handle,
        "Status": status,
        "SourceArn": DLQ_ARN,
        "DestinationArn": SOURCE_QUEUE_ARN,
        "MaxNumberOfMessagesPerSecond": 10,
        "ApproximateNumberOfMessagesMoved": 1,
        "ApproximateNumberOfMessagesToMove": 3,
        "StartedTimestamp": 1767268800000,
    }


# ------------------------------------------------------------------------------------------
# moto


def create_audit_table(dynamodb: Any, name: str = AUDIT_TABLE) -> None:
    """The audit table the CDK stack creates: pk/sk strings, TTL attribute ``expiresAt``."""
    dynamodb.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiresAt"}
    )


@dataclass
class Aws:
    """Clients on the moto backend plus the reads the tests repeat."""

    dynamodb: Any
    sqs: Any
    dlq_url: str
    move_tasks: MoveTaskStub

    def send_to_dlq(self, count: int) -> None:
        for n in range(count):
            self.sqs.send_message(QueueUrl=self.dlq_url, MessageBody=json.dumps({"n": n}))

    def items(self, prefix: str = "") -> list[dict[str, Any]]:
        """Every item whose pk starts with ``prefix``, as plain values, sorted by pk and sk."""
        from boto3.dynamodb.types import TypeDeserializer

        deserializer = TypeDeserializer()
        items = [
            {name: deserializer.deserialize(value) for name, value in item.items()}
            for item in self.dynamodb.scan(TableName=AUDIT_TABLE)["Items"]
        ]
        selected = [item for item in items if str(item["pk"]).startswith(prefix)]
        return sorted(selected, key=lambda item: (item["pk"], item["sk"]))

    def incidents(self, alarm_name: str = DLQ_ALARM) -> list[dict[str, Any]]:
        return self.items(f"INCIDENT#{alarm_name}")

    def audit_records(self, alarm_name: str) -> list[dict[str, Any]]:
        return self.items(f"AUDIT#{alarm_name}")

    def ledger(self, dlq_arn: str = DLQ_ARN) -> list[dict[str, Any]]:
        return self.items(f"REDRIVE#{dlq_arn}")


# ------------------------------------------------------------------------------------------
# Lambda
