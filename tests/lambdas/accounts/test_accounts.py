"""The accounts handlers under moto: commands and queries with API Gateway proxy events, the
projection with DynamoDB Streams events, the subscribers with EventBridge events; each bad
input's outcome."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from conveyor.sandbox.lambda_events import api_gateway_proxy_event
from tests.support.aws import REGION, mocked_aws
from tests.support.lambda_context import LambdaContext

# isort: split
from accounts import commands, projection, queries, subscribers
from accounts.config import CommandSettings, ConfigError
from handler_kit import event_store

STORE, BALANCES, AUDIT, IDEMPOTENCY = "events", "balances", "audit", "idempotency"
MODULES = (commands, projection, queries, subscribers)


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENT_STORE_TABLE", STORE)
    monkeypatch.setenv("READ_MODEL_TABLE", BALANCES)
    monkeypatch.setenv("AUDIT_TABLE", AUDIT)
    monkeypatch.setenv("IDEMPOTENCY_TABLE", IDEMPOTENCY)
    monkeypatch.setenv("NOTIFICATION_TOPIC_ARN", f"arn:aws:sns:{REGION}:123456789012:customer-sms")


@pytest.fixture(autouse=True)
def reset() -> Iterator[None]:
    def clear() -> None:
        for module in MODULES:
            module.metrics.clear_metrics()
            module._dynamodb_client.cache_clear()
        commands._settings.cache_clear()
        queries._settings.cache_clear()
        projection._settings.cache_clear()
        subscribers._notification_settings.cache_clear()
        subscribers._audit_settings.cache_clear()
        subscribers._sns_client.cache_clear()
        subscribers._notifier.cache_clear()

    clear()
    yield
    clear()


@pytest.fixture
def aws(boto3_session: boto3.session.Session) -> Iterator[Any]:
    with mocked_aws(boto3_session):
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        dynamodb.create_table(
            TableName=STORE,
            KeySchema=[
                {"AttributeName": "aggregateId", "KeyType": "HASH"},
                {"AttributeName": "version", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "aggregateId", "AttributeType": "S"},
                {"AttributeName": "version", "AttributeType": "N"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        for name, key in ((BALANCES, "aggregateId"), (AUDIT, "eventId"), (IDEMPOTENCY, "id")):
            dynamodb.create_table(
                TableName=name,
                KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
        boto3.client("sns", region_name=REGION).create_topic(Name="customer-sms")
        yield dynamodb


def command(path: str, resource: str, body: Any, account: str | None = None) -> dict[str, Any]:
    event = api_gateway_proxy_event(
        "POST",
        path,
        resource=resource,
        body=body,
        path_parameters={"accountId": account} if account else None,
        headers={"X-Correlation-Id": "corr-7"},
    )
    response = commands.handler(event, LambdaContext())
    return {"status": response["statusCode"], **json.loads(response["body"])}


def open_account() -> str:
    answer = command("/accounts", "/accounts", {"owner": "Alice"})
    assert answer["status"] == 201
    return str(answer["accountId"])


def money(kind: str, account: str, body: Any) -> dict[str, Any]:
    return command(f"/accounts/{account}/{kind}", f"/accounts/{{accountId}}/{kind}", body, account)


def test_commands_append_the_courses_events_with_the_callers_correlation_id(aws):
    account = open_account()
    money("deposits", account, {"amount": 100})
    answer = money("withdrawals", account, {"amount": 30})

    assert (answer["balance"], answer["version"]) == (70, 3)
    stored = list(event_store.EventStore(lambda: aws, STORE).events(account))
    assert [e.type for e in stored] == ["CompteCréé", "DépôtEffectué", "RetraitEffectué"]
    assert {e.correlation_id for e in stored} == {"corr-7"}


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"amount": 0}, 400, "InvalidAmount"),
        ({"amount": "ten"}, 400, "InvalidAmount"),
        ({"amount": 500}, 422, "InsufficientFunds"),
        ({"amount": 10, "expectedVersion": 1}, 409, "ConcurrencyConflict"),
        ({"amount": 10, "expectedVersion": "two"}, 400, "InvalidExpectedVersion"),
    ],
)
def test_a_refused_withdrawal_answers_why_and_appends_nothing(aws, body, status, error):
    account = open_account()
    money("deposits", account, {"amount": 100})

    answer = money("withdrawals", account, body)

    assert (answer["status"], answer["error"]) == (status, error)
    assert len(list(event_store.EventStore(lambda: aws, STORE).events(account))) == 2


def test_a_body_that_is_not_json_is_a_400_and_counted(aws, emitted_metrics):
    answer = command("/accounts", "/accounts", "{not json")
    assert answer["status"] == 400
    assert emitted_metrics()["MalformedMessages"] == 1


def test_the_query_reads_the_read_model_only(aws):
    aws.put_item(
        TableName=BALANCES,
        Item={
            "aggregateId": {"S": "a-1"},
            "balance": {"N": "70"},
            "status": {"S": "OPEN"},
            "lastVersion": {"N": "3"},
        },
    )
    event = api_gateway_proxy_event(
        "GET",
        "/accounts/a-1",
        resource="/accounts/{accountId}",
        path_parameters={"accountId": "a-1"},
    )
    found = queries.handler(event, LambdaContext())
    missing = queries.handler(
        api_gateway_proxy_event(
            "GET",
            "/accounts/zz",
            resource="/accounts/{accountId}",
            path_parameters={"accountId": "zz"},
        ),
        LambdaContext(),
    )

    assert json.loads(found["body"]) == {
        "accountId": "a-1",
        "balance": 70,
        "status": "OPEN",
        "version": 3,
    }
    assert missing["statusCode"] == 404


def test_the_projection_reports_a_poison_record_and_applies_the_rest(aws, emitted_metrics):
    account = open_account()
    money("deposits", account, {"amount": 100})
    items = aws.query(
        TableName=STORE,
        KeyConditionExpression="aggregateId = :a",
        ExpressionAttributeValues={":a": {"S": account}},
    )["Items"]
    records = [
        {
            "eventID": str(n),
            "eventName": "INSERT",
            "eventSource": "aws:dynamodb",
            "dynamodb": {"NewImage": item, "SequenceNumber": str(100 + n)},
        }
        for n, item in enumerate(items)
    ]
    poison = {
        "eventID": "p",
        "eventName": "INSERT",
        "eventSource": "aws:dynamodb",
        "dynamodb": {"NewImage": {"aggregateId": {"S": "x"}}, "SequenceNumber": "150"},
    }

    response = projection.handler({"Records": [records[0], poison, records[1]]}, LambdaContext())

    assert response["batchItemFailures"] == [{"itemIdentifier": "150"}]
    item = aws.get_item(TableName=BALANCES, Key={"aggregateId": {"S": account}})["Item"]
    assert (item["balance"], item["lastVersion"]) == ({"N": "100"}, {"N": "2"})
    metrics = emitted_metrics()
    assert (metrics["MalformedMessages"], metrics["EventsProjected"]) == (1, 2)


def published(account: str, version: int, event_type: str, **data: Any) -> dict[str, Any]:
    return {
        "id": f"bus-{version}",
        "source": "conveyor.accounts",
        "detail-type": event_type,
        "detail": {
            "aggregateId": account,
            "version": version,
            "type": event_type,
            "schemaVersion": 1,
            "data": data,
            "eventId": f"evt-{version}",
            "correlationId": "corr-7",
            "causationId": None,
            "recordedAt": "2026-12-02T10:00:00Z",
        },
    }


def test_the_audit_records_each_event_once(aws, emitted_metrics):
    event = published("a-1", 2, "DépôtEffectué", amount=100)
    first = subscribers.audit_handler(event, LambdaContext())
    again = subscribers.audit_handler({**event, "id": "bus-other"}, LambdaContext())

    assert (first, again) == ({"audited": True}, {"audited": False})
    assert len(aws.scan(TableName=AUDIT)["Items"]) == 1
    assert emitted_metrics()["DuplicatesSkipped"] == 1


def test_a_notification_is_sent_once_per_stored_event(aws, emitted_metrics):
    event = published("a-1", 3, "RetraitEffectué", amount=30)
    subscribers.notification_handler(event, LambdaContext())
    subscribers.notification_handler({**event, "id": "bus-republished"}, LambdaContext())

    metrics = emitted_metrics()
    assert (metrics["NotificationsSent"], metrics["DuplicatesSkipped"]) == (1, 1)


@pytest.mark.parametrize(
    "detail_change",
    [{"version": "3"}, {"type": "Unknown"}, {"data": "x"}, {"eventId": ""}],
)
def test_a_subscriber_raises_on_a_malformed_event_for_the_on_failure_queue(
    aws, emitted_metrics, detail_change
):
    event = published("a-1", 3, "RetraitEffectué", amount=30)
    event["detail"].update(detail_change)
    with pytest.raises(subscribers.MalformedEvent):
        subscribers.audit_handler(event, LambdaContext())
    assert emitted_metrics()["MalformedMessages"] == 1


def test_snapshots_need_their_table(monkeypatch):
    monkeypatch.setenv("SNAPSHOT_EVERY", "20")
    with pytest.raises(ConfigError, match="SNAPSHOT_EVERY needs SNAPSHOT_TABLE"):
        CommandSettings.from_env(dict(__import__("os").environ))


def test_every_copy_of_a_notification_carries_the_stored_event_id(aws):
    """SNS Publish is at-least-once here (a standard topic cannot deduplicate): each copy
    carries the stored event's id, which subscribers dedupe by."""
    event = published("a-1", 3, "RetraitEffectué", amount=30)
    sent: list[dict[str, Any]] = []

    def capture(params: dict[str, Any], **_: Any) -> None:
        sent.append(params)

    client = subscribers._sns_client()
    client.meta.events.register("provide-client-params.sns.Publish", capture)
    try:
        subscribers.notification_handler(event, LambdaContext())
    finally:
        client.meta.events.unregister("provide-client-params.sns.Publish", capture)

    (params,) = sent
    assert params["MessageAttributes"]["eventId"] == {
        "DataType": "String",
        "StringValue": event["detail"]["eventId"],
    }
