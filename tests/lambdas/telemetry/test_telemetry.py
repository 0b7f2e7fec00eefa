"""Tests of the telemetry Lambda: Kinesis (key = device) -> Lambda -> DynamoDB aggregates.

moto DynamoDB holds the aggregates table; Kinesis events are built here in Lambda's shape."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from tests.support.aws import REGION, mocked_aws
from tests.support.lambda_context import LambdaContext

# isort: split
from telemetry import handler
from telemetry.config import ConfigError, Settings

TABLE = "aggregates-test"
SHARD = "shardId-000000000000"


@pytest.fixture(autouse=True)
def telemetry_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGGREGATES_TABLE", TABLE)


@pytest.fixture(autouse=True)
def reset_state() -> Iterator[None]:
    def reset() -> None:
        handler._settings.cache_clear()
        handler._dynamodb_client.cache_clear()
        handler.metrics.clear_metrics()

    reset()
    yield
    reset()


@pytest.fixture
def dynamodb(boto3_session: boto3.session.Session) -> Iterator[Any]:
    with mocked_aws(boto3_session):
        client = boto3.client("dynamodb", region_name=REGION)
        client.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "deviceId", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "deviceId", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client


def record(sequence: int, data: Any, key: str = "d-1") -> dict[str, Any]:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": key,
            "sequenceNumber": str(sequence),
            "data": base64.b64encode(raw).decode(),
            "approximateArrivalTimestamp": 1764669600.0,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{SHARD}:{sequence}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/test",
        "awsRegion": REGION,
        "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/readings",
    }


def reading(device: str, value: float | int) -> dict[str, Any]:
    return {"deviceId": device, "value": value, "readAt": "2026-12-02T10:00:00Z"}


def invoke(*records: dict[str, Any]) -> Any:
    return handler.handler({"Records": list(records)}, LambdaContext())


def aggregate(dynamodb: Any, device: str) -> tuple[int, str] | None:
    item = dynamodb.get_item(TableName=TABLE, Key={"deviceId": {"S": device}}).get("Item")
    return None if item is None else (int(item["readings"]["N"]), item["total"]["N"])


def failed(response: Any) -> list[str]:
    return [f["itemIdentifier"] for f in response["batchItemFailures"]]


def test_readings_are_aggregated_per_device(dynamodb, emitted_metrics):
    response = invoke(
        record(1, reading("d-1", 10)),
        record(2, reading("d-2", 2.5), key="d-2"),
        record(3, reading("d-1", 5)),
    )
    assert failed(response) == []
    assert aggregate(dynamodb, "d-1") == (2, "15")
    assert aggregate(dynamodb, "d-2") == (1, "2.5")
    assert emitted_metrics()["ReadingsAggregated"] == 3


def test_a_duplicate_or_replayed_record_counts_once(dynamodb, emitted_metrics):
    first = record(7, reading("d-1", 10))
    invoke(first)
    emitted_metrics()
    assert failed(invoke(first, record(6, reading("d-1", 99)))) == []  # replay, out of order
    assert aggregate(dynamodb, "d-1") == (1, "10")
    assert emitted_metrics()["DuplicatesSkipped"] == 2


def test_a_poison_record_mid_batch_fails_alone_and_the_rest_is_applied(dynamodb, emitted_metrics):
    response = invoke(
        record(1, reading("d-1", 1)),
        record(2, b"{not json"),
        record(3, {"deviceId": "d-1", "value": "high", "readAt": "x"}),
        record(4, reading("d-1", 4)),
    )
    assert failed(response) == ["2", "3"]
    assert aggregate(dynamodb, "d-1") == (2, "5")
    metrics = emitted_metrics()
    assert metrics["MalformedMessages"] == 2
    assert metrics["RecordsFailed"] == 2


def test_a_partition_key_of_another_device_is_malformed(dynamodb):
    response = invoke(record(1, reading("d-1", 1), key="d-2"), record(2, reading("d-3", 1), "d-3"))
    assert failed(response) == ["1"]
    assert aggregate(dynamodb, "d-1") is None
    assert aggregate(dynamodb, "d-3") == (1, "1")


def test_after_a_transient_failure_the_devices_later_records_wait(dynamodb, monkeypatch):
    """A throttled write fails its record and the later records of that device (they would
    make it look like a duplicate on retry); other devices carry on."""
    client = handler._dynamodb_client()
    real = client.update_item
    calls = {"n": 0}

    def flaky(**kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            from botocore.exceptions import ClientError

            raise ClientError(
                {"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "UpdateItem"
            )
        return real(**kwargs)

    monkeypatch.setattr(client, "update_item", flaky)
    response = invoke(
        record(1, reading("d-1", 1)),
        record(2, reading("d-2", 2), key="d-2"),
        record(3, reading("d-1", 3)),
    )
    assert failed(response) == ["1", "3"]
    assert aggregate(dynamodb, "d-2") == (1, "2")
    assert aggregate(dynamodb, "d-1") is None
    retried = invoke(record(1, reading("d-1", 1)), record(3, reading("d-1", 3)))
    assert failed(retried) == []
    assert aggregate(dynamodb, "d-1") == (2, "4")


def test_a_batch_where_every_record_fails_raises(dynamodb):
    with pytest.raises(BatchProcessingError):
        invoke(record(1, b"nope"), record(2, b"[]"))


def test_the_settings_require_the_table(monkeypatch):
    monkeypatch.delenv("AGGREGATES_TABLE")
    with pytest.raises(ConfigError, match="AGGREGATES_TABLE"):
        Settings.from_env({})
