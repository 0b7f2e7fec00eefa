"""The choreography services' handlers under moto, with EventBridge events built here: each
bad input's outcome (malformed envelope, unknown type, duplicate, configuration error), and
each service's reaction and published events."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyPersistenceLayerError,
)
from botocore.exceptions import ClientError

from tests.support.aws import REGION, mocked_aws
from tests.support.lambda_context import LambdaContext

# isort: split
from choreography import billing, contract, notification, orders, service, stock
from choreography.config import ConfigError, StockSettings
from handler_kit import idempotency as kit_idempotency

TABLES = {
    "ORDERS_TABLE": ("orders", "orderId"),
    "INVENTORY_TABLE": ("inventory", "sku"),
    "RESERVATIONS_TABLE": ("reservations", "orderId"),
    "INVOICES_TABLE": ("invoices", "orderId"),
    "NOTIFICATIONS_TABLE": ("notifications", "notificationId"),
    "IDEMPOTENCY_TABLE": ("idempotency", "id"),
}
MODULES = (orders, stock, billing, notification)


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENT_BUS_NAME", "orders")
    for variable, (name, _) in TABLES.items():
        monkeypatch.setenv(variable, name)


@pytest.fixture(autouse=True)
def reset() -> Iterator[None]:
    def clear() -> None:
        for module in MODULES:
            module._settings.cache_clear()
            module.metrics.clear_metrics()
            module.service._once = None
            module.service._config = None
        service._events_client.cache_clear()
        service._dynamodb_client.cache_clear()

    clear()
    yield
    clear()


@pytest.fixture
def aws(boto3_session: boto3.session.Session) -> Iterator[dict[str, Any]]:
    with mocked_aws(boto3_session):
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        for name, key in TABLES.values():
            dynamodb.create_table(
                TableName=name,
                KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
        events = boto3.client("events", region_name=REGION)
        events.create_event_bus(Name="orders")
        sqs = boto3.client("sqs", region_name=REGION)
        url = sqs.create_queue(QueueName="published")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        events.put_rule(
            Name="all",
            EventBusName="orders",
            EventPattern=json.dumps({"source": [{"prefix": "conveyor.choreography."}]}),
        )
        events.put_targets(Rule="all", EventBusName="orders", Targets=[{"Id": "q", "Arn": arn}])
        dynamodb.put_item(
            TableName="inventory", Item={"sku": {"S": "SKU-A"}, "available": {"N": "5"}}
        )

        def published() -> list[dict[str, Any]]:
            found = []
            while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get(
                "Messages"
            ):
                for message in messages:
                    found.append(json.loads(message["Body"]))
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            return found

        yield {"dynamodb": dynamodb, "published": published}


def event(event_type: str, publisher: str, **fields: Any) -> dict[str, Any]:
    detail = {
        "eventId": str(uuid.uuid4()),
        "type": event_type,
        "schemaVersion": 1,
        "correlationId": "corr-1",
        "causationId": None,
        "orderId": "o-1",
        "customerId": "c-1",
        **fields,
    }
    return {
        "id": str(uuid.uuid4()),
        "source": contract.SOURCES[publisher],
        "detail-type": event_type,
        "detail": detail,
    }


def created(quantity: int = 2) -> dict[str, Any]:
    return event(
        contract.ORDER_CREATED,
        "commande",
        lines=[{"sku": "SKU-A", "quantity": quantity, "unitPrice": 1500}],
    )


def test_place_order_stores_it_and_publishes_commande_creee_with_a_new_correlation_id(aws):
    answer = orders.handler(
        {
            "command": "PlaceOrder",
            "orderId": "o-1",
            "customerId": "c-1",
            "lines": [{"sku": "SKU-A", "quantity": 1, "unitPrice": 100}],
        },
        LambdaContext(),
    )

    (published,) = aws["published"]()
    assert published["detail-type"] == contract.ORDER_CREATED
    assert published["source"] == contract.SOURCES["commande"]
    assert published["detail"]["correlationId"] == answer["correlationId"]
    assert published["detail"]["causationId"] is None
    assert answer["status"] == "CREATED"


def test_an_invalid_place_order_is_rejected_and_counted(aws, emitted_metrics):
    answer = orders.handler({"command": "PlaceOrder", "lines": []}, LambdaContext())

    assert answer["error"] == "InvalidOrder"
    assert aws["published"]() == []
    assert emitted_metrics()["MalformedMessages"] == 1


def test_stock_reserves_all_lines_and_publishes_stock_mis_a_jour_with_the_causation(aws):
    incoming = created()
    stock.handler(incoming, LambdaContext())

    (published,) = aws["published"]()
    assert published["detail-type"] == contract.STOCK_UPDATED
    assert published["detail"]["causationId"] == incoming["detail"]["eventId"]
    assert published["detail"]["correlationId"] == "corr-1"
    item = aws["dynamodb"].get_item(TableName="inventory", Key={"sku": {"S": "SKU-A"}})["Item"]
    assert item["available"] == {"N": "3"}


def test_stock_short_publishes_stock_indisponible_and_reserves_nothing(aws):
    stock.handler(created(quantity=9), LambdaContext())

    (published,) = aws["published"]()
    assert published["detail-type"] == contract.STOCK_UNAVAILABLE
    assert published["detail"]["missing"] == [{"sku": "SKU-A", "requested": 9, "available": 5}]
    item = aws["dynamodb"].get_item(TableName="inventory", Key={"sku": {"S": "SKU-A"}})["Item"]
    assert item["available"] == {"N": "5"}


def test_a_duplicate_event_is_skipped_by_each_service_and_counted(aws, emitted_metrics):
    incoming = created()
    stock.handler(incoming, LambdaContext())
    billing.handler(incoming, LambdaContext())
    aws["published"]()
    emitted_metrics()

    stock.handler(incoming, LambdaContext())
    billing.handler(incoming, LambdaContext())

    assert aws["published"]() == []
    assert emitted_metrics()["DuplicatesSkipped"] == 2
    item = aws["dynamodb"].get_item(TableName="inventory", Key={"sku": {"S": "SKU-A"}})["Item"]
    assert item["available"] == {"N": "3"}


def test_the_idempotency_key_is_the_event_id_and_the_service(aws):
    incoming = created()
    stock.handler(incoming, LambdaContext())
    billing.handler(incoming, LambdaContext())

    keys = sorted(
        i["id"]["S"].split("#")[0] for i in aws["dynamodb"].scan(TableName="idempotency")["Items"]
    )
    assert keys == ["facturation", "stock"]


def test_a_broken_envelope_is_raised_for_the_on_failure_queue_and_counted(aws, emitted_metrics):
    broken = created()
    del broken["detail"]["correlationId"]

    with pytest.raises(service.MalformedEvent, match="correlationId"):
        stock.handler(broken, LambdaContext())

    assert emitted_metrics()["MalformedMessages"] == 1


def test_a_detail_type_that_differs_from_the_envelope_is_malformed(aws):
    mismatched = created()
    mismatched["detail-type"] = contract.ORDER_CANCELLED
    with pytest.raises(service.MalformedEvent, match="differ"):
        billing.handler(mismatched, LambdaContext())


def test_a_newer_schema_version_is_malformed(aws):
    newer = created()
    newer["detail"]["schemaVersion"] = 2
    with pytest.raises(service.MalformedEvent, match="schemaVersion"):
        stock.handler(newer, LambdaContext())


def test_an_event_type_without_a_reaction_is_ignored_and_counted(aws, emitted_metrics):
    answer = stock.handler(event(contract.INVOICE_CREATED, "facturation"), LambdaContext())

    assert answer == {"ignored": contract.INVOICE_CREATED}
    assert emitted_metrics()["UnknownEventTypesIgnored"] == 1


def test_billing_invoices_then_voids_on_cancellation(aws):
    billing.handler(created(), LambdaContext())
    billing.handler(event(contract.ORDER_CANCELLED, "commande"), LambdaContext())

    types = [e["detail-type"] for e in aws["published"]()]
    assert sorted(types) == sorted([contract.INVOICE_CREATED, contract.INVOICE_CANCELLED])
    item = aws["dynamodb"].get_item(TableName="invoices", Key={"orderId": {"S": "o-1"}})["Item"]
    assert (item["status"], item["total"]) == ({"S": "VOID"}, {"N": "3000"})


def test_notification_writes_the_customers_inbox_once_per_event(aws):
    invoiced = event(contract.INVOICE_CREATED, "facturation", invoiceId="INV-o-1", total=3000)
    notification.handler(invoiced, LambdaContext())

    (item,) = aws["dynamodb"].scan(TableName="notifications")["Items"]
    assert item["notificationId"] == {"S": invoiced["detail"]["eventId"]}
    assert item["message"]["S"] == "Your invoice INV-o-1 (30.00) is ready."
    assert [e["detail-type"] for e in aws["published"]()] == [contract.CUSTOMER_NOTIFIED]


def test_orders_cancels_a_created_order_once(aws):
    orders.handler(
        {
            "command": "PlaceOrder",
            "orderId": "o-1",
            "customerId": "c-1",
            "lines": [{"sku": "SKU-A", "quantity": 9, "unitPrice": 1}],
        },
        LambdaContext(),
    )
    aws["published"]()
    unavailable = event(contract.STOCK_UNAVAILABLE, "stock", missing=[])
    orders.handler(unavailable, LambdaContext())
    orders.handler(event(contract.STOCK_UNAVAILABLE, "stock", missing=[]), LambdaContext())

    assert [e["detail-type"] for e in aws["published"]()] == [contract.ORDER_CANCELLED]
    item = aws["dynamodb"].get_item(TableName="orders", Key={"orderId": {"S": "o-1"}})["Item"]
    assert item["status"] == {"S": "CANCELLED"}


def test_a_missing_variable_is_a_config_error_naming_it(monkeypatch):
    monkeypatch.delenv("RESERVATIONS_TABLE")
    with pytest.raises(ConfigError, match="RESERVATIONS_TABLE is required"):
        StockSettings.from_env(dict(__import__("os").environ))


# ---------------------------------------------------------------------------------------------
# A second run of a reaction (issue 17): same writes, same published event ids


@contextlib.contextmanager
def failing_calls(client: Any, operation: str, code: str, times: int) -> Iterator[list[str]]:
    """Fault injection through botocore's event hooks on the handler's own client: the first
    ``times`` calls of ``operation`` fail with ``code`` before they are sent."""
    failed: list[str] = []

    def hook(**_: Any) -> None:
        if len(failed) < times:
            failed.append(operation)
            raise ClientError({"Error": {"Code": code, "Message": "injected"}}, operation)

    event_name = f"before-call.{client.meta.service_model.service_name}.{operation}"
    client.meta.events.register(event_name, hook)
    try:
        yield failed
    finally:
        client.meta.events.unregister(event_name, hook)


def expire_idempotency_records(dynamodb: Any) -> None:
    """What the in-progress record's expiry does on AWS (with the invocation's timeout)."""
    for item in dynamodb.scan(TableName="idempotency")["Items"]:
        dynamodb.delete_item(TableName="idempotency", Key={"id": item["id"]})


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kit_idempotency.random, "uniform", lambda low, high: 0.0)


def test_billing_rerun_after_a_lost_completion_write_notifies_the_customer_once(
    aws, no_backoff
) -> None:
    """The completion write fails on every attempt: the event fails, its record expires,
    Lambda's retry runs the reaction again. The invoice is written once and the second
    FactureCréée carries the same eventId, so Notification writes one inbox item."""
    incoming = created()
    with (
        failing_calls(
            service._dynamodb_client(),
            "UpdateItem",
            "ThrottlingException",
            times=kit_idempotency.COMPLETION_WRITE_ATTEMPTS,
        ) as failed,
        pytest.raises(IdempotencyPersistenceLayerError, match="ThrottlingException"),
    ):
        billing.handler(incoming, LambdaContext())
    assert len(failed) == kit_idempotency.COMPLETION_WRITE_ATTEMPTS
    expire_idempotency_records(aws["dynamodb"])

    billing.handler(incoming, LambdaContext())  # Lambda's asynchronous retry

    published = aws["published"]()
    assert [e["detail-type"] for e in published] == [contract.INVOICE_CREATED] * 2
    assert len({e["detail"]["eventId"] for e in published}) == 1
    assert len(aws["dynamodb"].scan(TableName="invoices")["Items"]) == 1
    for delivered in published:  # EventBridge delivers both copies to Notification
        notification.handler(delivered, LambdaContext())
    assert len(aws["dynamodb"].scan(TableName="notifications")["Items"]) == 1


def test_a_publish_that_failed_after_the_write_is_published_on_the_retry(aws, no_backoff) -> None:
    """PutEvents throttled after the reservation was written: the retry reserves nothing again
    (5 - 2 = 3 left) and publishes StockMisAJour, instead of losing it."""
    incoming = created(quantity=2)
    with (
        failing_calls(service._events_client(), "PutEvents", "ThrottlingException", times=1),
        pytest.raises(ClientError, match="ThrottlingException"),
    ):
        stock.handler(incoming, LambdaContext())
    assert aws["published"]() == []

    stock.handler(incoming, LambdaContext())  # Lambda's asynchronous retry

    assert [e["detail-type"] for e in aws["published"]()] == [contract.STOCK_UPDATED]
    item = aws["dynamodb"].get_item(TableName="inventory", Key={"sku": {"S": "SKU-A"}})["Item"]
    assert item["available"] == {"N": "3"}


def test_placing_an_order_again_after_a_failed_publish_publishes_it_with_the_same_id(aws) -> None:
    command = {
        "command": "PlaceOrder",
        "orderId": "o-7",
        "customerId": "c-1",
        "lines": [{"sku": "SKU-A", "quantity": 1, "unitPrice": 100}],
    }
    with (
        failing_calls(service._events_client(), "PutEvents", "ThrottlingException", times=1),
        pytest.raises(ClientError, match="ThrottlingException"),
    ):
        orders.handler(dict(command), LambdaContext())
    stored = aws["dynamodb"].get_item(TableName="orders", Key={"orderId": {"S": "o-7"}})["Item"]

    answer = orders.handler(dict(command), LambdaContext())  # the caller retries
    orders.handler(dict(command), LambdaContext())  # and once more

    published = aws["published"]()
    assert [e["detail-type"] for e in published] == [contract.ORDER_CREATED] * 2
    assert len({e["detail"]["eventId"] for e in published}) == 1
    assert {e["detail"]["correlationId"] for e in published} == {stored["correlationId"]["S"]}
    assert answer["status"] == "DUPLICATE"


def test_a_cancellation_whose_publish_failed_is_published_on_the_retry_only(aws) -> None:
    """PutEvents throttled after the order moved to CANCELLED: the retry of the same
    StockIndisponible publishes CommandeAnnulée (not lost); another StockIndisponible for the
    same order publishes nothing."""
    orders.handler(
        {
            "command": "PlaceOrder",
            "orderId": "o-1",
            "customerId": "c-1",
            "lines": [{"sku": "SKU-A", "quantity": 9, "unitPrice": 1}],
        },
        LambdaContext(),
    )
    aws["published"]()
    unavailable = event(contract.STOCK_UNAVAILABLE, "stock", missing=[])
    with (
        failing_calls(service._events_client(), "PutEvents", "ThrottlingException", times=1),
        pytest.raises(ClientError, match="ThrottlingException"),
    ):
        orders.handler(unavailable, LambdaContext())

    orders.handler(unavailable, LambdaContext())  # Lambda's asynchronous retry
    orders.handler(event(contract.STOCK_UNAVAILABLE, "stock", missing=[]), LambdaContext())

    assert [e["detail-type"] for e in aws["published"]()] == [contract.ORDER_CANCELLED]


def test_a_void_whose_publish_failed_is_published_on_the_retry_only(aws) -> None:
    billing.handler(created(), LambdaContext())
    aws["published"]()
    cancelled = event(contract.ORDER_CANCELLED, "commande")
    with (
        failing_calls(service._events_client(), "PutEvents", "ThrottlingException", times=1),
        pytest.raises(ClientError, match="ThrottlingException"),
    ):
        billing.handler(cancelled, LambdaContext())

    billing.handler(cancelled, LambdaContext())  # Lambda's asynchronous retry
    billing.handler(event(contract.ORDER_CANCELLED, "commande"), LambdaContext())

    assert [e["detail-type"] for e in aws["published"]()] == [contract.INVOICE_CANCELLED]
