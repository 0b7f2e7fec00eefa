"""Tests of the order_events Lambdas: the OrderPlaced SQS consumers and the SNS routing handlers.

Everything AWS runs on moto: a real idempotency table (Powertools' schema) and a real SQS
dead-letter queue. Events are built by the factories of events_support.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyPersistenceLayerError,
)
from botocore.exceptions import ClientError
from handler_kit import idempotency as kit_idempotency
from order_events import handler, routing
from order_events.config import (
    DEFAULT_CONSUMER_IDEMPOTENCY_SECONDS,
    DEFAULT_ROUTING_IDEMPOTENCY_SECONDS,
    ConfigError,
    ConsumerSettings,
    RoutingSettings,
)
from order_events.consumers import shipment_id
from order_events.schema import MalformedMessage
from order_events_support import (
    DELETE,
    DLQ_NAME,
    IDEMPOTENCY_TABLE,
    REGION,
    Aws,
    LambdaContext,
    captured_logs,
    create_idempotency_table,
    enveloped,
    idempotency_key,
    order_placed,
    raw,
    sns_envelope,
    sns_lambda_event,
    sqs_event,
    sqs_record,
    with_field,
)

from tests.support.aws import mocked_aws

VALID_ENV = {"CONSUMER_NAME": "payment", "IDEMPOTENCY_TABLE": IDEMPOTENCY_TABLE}
DLQ_URL = f"https://sqs.{REGION}.amazonaws.com/123456789012/{DLQ_NAME}"
OUR_VARIABLES = (
    "CONSUMER_NAME",
    "IDEMPOTENCY_TABLE",
    "IDEMPOTENCY_EXPIRES_AFTER_SECONDS",
    "DEAD_LETTER_QUEUE_URL",
    "POWERTOOLS_IDEMPOTENCY_DISABLED",
    "AWS_LAMBDA_FUNCTION_NAME",
)

# What each consumer does with order_placed("o-123").
EXPECTED_RESULTS = {
    "payment": {
        "consumer": "payment",
        "orderId": "o-123",
        "amountToCharge": "125.50",
        "currency": "EUR",
    },
    "inventory": {
        "consumer": "inventory",
        "orderId": "o-123",
        "reserved": {"BOOK-1": 2, "PEN-7": 1},
    },
    "shipping": {
        "consumer": "shipping",
        "orderId": "o-123",
        "shipmentId": shipment_id("o-123"),
        "customerId": "c-9",
    },
    "notification": {
        "consumer": "notification",
        "orderId": "o-123",
        "customerId": "c-9",
        "message": "Order o-123 confirmed: 125.50 EUR",
    },
}


def throttling(operation: str = "PutItem") -> ClientError:
    return ClientError(
        {
            "Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        },
        operation,
    )


def failing_first(real: Callable[..., Any], error: Exception, times: int = 1) -> Callable[..., Any]:
    """A stand-in for a client method that raises ``error`` ``times`` times, then works."""
    calls = {"n": 0}

    def call(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] <= times:
            raise error
        return real(*args, **kwargs)

    return call


# ==========================================================================================
# Fixtures


@pytest.fixture(autouse=True)
def order_events_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A valid consumer configuration without AWS resources; ``aws`` adds table and DLQ."""
    for name in OUR_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CONSUMER_NAME", "payment")
    monkeypatch.setenv("IDEMPOTENCY_TABLE", IDEMPOTENCY_TABLE)


@pytest.fixture(autouse=True)
def reset_order_events_state() -> Iterator[None]:
    """Forget cached settings, clients, idempotent functions and metrics between tests."""

    def reset() -> None:
        for cached in (
            handler._settings,
            handler._sqs_client,
            handler._dynamodb_client,
            handler._idempotency_config,
            handler._process_once,
            routing._settings,
            routing._dynamodb_client,
            routing._idempotency_config,
            routing._process_once,
        ):
            cached.cache_clear()
        handler.metrics.clear_metrics()
        routing.metrics.clear_metrics()

    reset()
    yield
    reset()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, boto3_session: boto3.session.Session) -> Iterator[Aws]:
    """moto DynamoDB (the idempotency table) and SQS (the DLQ), both in the environment.

    Replaces conftest's image-resize ``aws``; reuses its session-wide boto3 session (moto's
    mock resets boto3.DEFAULT_SESSION, re-parsing the service models costs ~0.3 s a test).
    """
    with mocked_aws(boto3_session):
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        create_idempotency_table(dynamodb)
        dlq_url = sqs.create_queue(QueueName=DLQ_NAME)["QueueUrl"]
        monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", dlq_url)
        yield Aws(dynamodb=dynamodb, sqs=sqs, dlq_url=dlq_url)


@pytest.fixture
def invoke() -> Callable[[dict[str, Any]], Any]:
    """Call the consumer entry point the way the runtime does."""
    return lambda event: handler.handler(event, LambdaContext())


@pytest.fixture
def work_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """(consumer, order id) of every time a consumer's work actually ran."""
    calls: list[tuple[str, str]] = []
    real_perform = handler.perform

    def perform(consumer: str, order: Any) -> dict[str, Any]:
        calls.append((consumer, order.order_id))
        return real_perform(consumer, order)

    monkeypatch.setattr(handler, "perform", perform)
    return calls


@pytest.fixture
def consumer_logs() -> Iterator[list[dict[str, Any]]]:
    with captured_logs(handler.logger) as logs:
        yield logs


def record_key(consumer: str, order_id: str) -> str:
    return idempotency_key(handler.idempotency_key_prefix(consumer), order_id)


# ==========================================================================================
# config.py


class TestConsumerSettings:
    def test_defaults_apply_when_only_required_variables_are_set(self) -> None:
        assert ConsumerSettings.from_env(VALID_ENV) == ConsumerSettings(
            consumer_name="payment",
            idempotency_table=IDEMPOTENCY_TABLE,
            idempotency_expires_after_seconds=DEFAULT_CONSUMER_IDEMPOTENCY_SECONDS,
            dead_letter_queue_url=None,
        )

    def test_every_variable_is_read(self) -> None:
        env = {
            "CONSUMER_NAME": "shipping",
            "IDEMPOTENCY_TABLE": "arn:aws:dynamodb:us-east-1:123456789012:table/idem",
            "IDEMPOTENCY_EXPIRES_AFTER_SECONDS": "3600",
            "DEAD_LETTER_QUEUE_URL": DLQ_URL,
        }

        settings = ConsumerSettings.from_env(env)

        assert (settings.consumer_name, settings.idempotency_expires_after_seconds) == (
            "shipping",
            3600,
        )
        assert settings.idempotency_table == env["IDEMPOTENCY_TABLE"]
        assert settings.dead_letter_queue_url == DLQ_URL

    def test_settings_are_immutable(self) -> None:
        settings = ConsumerSettings.from_env(VALID_ENV)

        with pytest.raises(dataclasses.FrozenInstanceError):
            settings.consumer_name = "inventory"  # type: ignore[misc]

    @pytest.mark.parametrize("variable", ["CONSUMER_NAME", "IDEMPOTENCY_TABLE"])
    @pytest.mark.parametrize("value", [None, "", "  "])
    def test_missing_required_variable_is_a_config_error_naming_it(
        self, variable: str, value: str | None
    ) -> None:
        env = dict(VALID_ENV)
        if value is None:
            del env[variable]
        else:
            env[variable] = value

        with pytest.raises(ConfigError, match=rf"^{variable} is required") as raised:
            ConsumerSettings.from_env(env)

        assert raised.value.variable == variable

    @pytest.mark.parametrize(
        ("variable", "value", "problem"),
        [
            ("CONSUMER_NAME", "billing", "must be one of payment, inventory"),
            ("CONSUMER_NAME", "Payment", "must be one of"),
            ("IDEMPOTENCY_TABLE", "a b", "must be a DynamoDB table name"),
            ("IDEMPOTENCY_TABLE", "ab", "must be a DynamoDB table name"),
            ("IDEMPOTENCY_EXPIRES_AFTER_SECONDS", "0", "must be a positive integer"),
            ("IDEMPOTENCY_EXPIRES_AFTER_SECONDS", "1h", "must be a positive integer"),
            ("DEAD_LETTER_QUEUE_URL", "order-events-dlq", "must be an SQS queue URL"),
            ("DEAD_LETTER_QUEUE_URL", "arn:aws:sqs:us-east-1:1:q", "must be an SQS queue URL"),
        ],
    )
    def test_invalid_value_is_a_config_error_naming_the_variable(
        self, variable: str, value: str, problem: str
    ) -> None:
        with pytest.raises(ConfigError, match=rf"^{variable} {problem}") as raised:
            ConsumerSettings.from_env({**VALID_ENV, variable: value})

        assert raised.value.variable == variable


class TestRoutingSettings:
    def test_idempotency_is_off_without_a_table(self) -> None:
        assert RoutingSettings.from_env({}) == RoutingSettings(
            idempotency_table=None,
            idempotency_expires_after_seconds=DEFAULT_ROUTING_IDEMPOTENCY_SECONDS,
        )

    def test_table_and_expiry_are_read(self) -> None:
        env = {"IDEMPOTENCY_TABLE": "idem", "IDEMPOTENCY_EXPIRES_AFTER_SECONDS": "60"}

        assert RoutingSettings.from_env(env) == RoutingSettings("idem", 60)

    def test_invalid_table_is_a_config_error(self) -> None:
        with pytest.raises(ConfigError, match=r"^IDEMPOTENCY_TABLE must be"):
            RoutingSettings.from_env({"IDEMPOTENCY_TABLE": "not a table"})


# ==========================================================================================
# handler.py: processing


@pytest.mark.parametrize("consumer", sorted(EXPECTED_RESULTS))
@pytest.mark.parametrize("delivery", [enveloped, raw], ids=["sns-envelope", "raw-delivery"])
def test_order_placed_is_processed_once_with_the_consumer_result(
    aws, invoke, monkeypatch, emitted_metrics, work_calls, consumer, delivery
) -> None:
    monkeypatch.setenv("CONSUMER_NAME", consumer)

    response = invoke(sqs_event(delivery(order_placed("o-123"))))

    assert response == {"batchItemFailures": []}
    assert work_calls == [(consumer, "o-123")]
    assert (
        aws.idempotency_records()[record_key(consumer, "o-123")]["data"]
        == (EXPECTED_RESULTS[consumer])
    )
    assert aws.dead_letters() == []
    assert emitted_metrics() == {"OrdersProcessed": 1}


def test_idempotency_record_is_keyed_by_consumer_and_order_id_and_expires(aws, invoke) -> None:
    before = int(time.time())

    invoke(sqs_event(enveloped(order_placed("o-123"), "msg-1")))

    records = aws.idempotency_records()
    assert list(records) == [record_key("payment", "o-123")]
    assert next(iter(records)).startswith("order_events.payment.OrderPlaced#")
    [record] = records.values()
    assert record["status"] == "COMPLETED"
    assert before + DEFAULT_CONSUMER_IDEMPOTENCY_SECONDS <= record["expiration"]
    assert record["expiration"] <= int(time.time()) + DEFAULT_CONSUMER_IDEMPOTENCY_SECONDS


def test_idempotency_expiry_is_configurable(aws, invoke, monkeypatch) -> None:
    monkeypatch.setenv("IDEMPOTENCY_EXPIRES_AFTER_SECONDS", "600")

    invoke(sqs_event(enveloped(order_placed())))

    [record] = aws.idempotency_records().values()
    assert record["expiration"] <= int(time.time()) + 600


def test_inventory_sums_the_quantities_of_a_repeated_sku(aws, invoke, monkeypatch) -> None:
    monkeypatch.setenv("CONSUMER_NAME", "inventory")
    items = [
        {"sku": "B", "quantity": 1, "unitPrice": 1},
        {"sku": "A", "quantity": 2, "unitPrice": 1},
        {"sku": "B", "quantity": 3, "unitPrice": 1},
    ]

    invoke(sqs_event(enveloped(order_placed(items=items))))

    [record] = aws.idempotency_records().values()
    assert record["data"]["reserved"] == {"A": 2, "B": 4}


def test_shipment_id_is_derived_deterministically_from_the_order_id() -> None:
    """The same in every process and on every retry (no random or salted hash)."""
    assert shipment_id("o-123") == "shp-e8334e022561abf5"
    assert shipment_id("o-124") != shipment_id("o-123")


@pytest.mark.parametrize(
    ("total", "shown"),
    [(125, "125.00"), (0, "0.00"), (0.125, "0.125"), (1e2, "100.00"), (10.1, "10.10")],
)
def test_amounts_are_shown_with_two_decimals_and_never_rounded(
    aws, invoke, monkeypatch, total, shown
) -> None:
    monkeypatch.setenv("CONSUMER_NAME", "notification")

    invoke(sqs_event(raw(order_placed(total=total))))

    [record] = aws.idempotency_records().values()
    assert record["data"]["message"] == f"Order o-123 confirmed: {shown} EUR"


def test_newer_minor_version_is_processed_ignoring_unknown_fields(
    aws, invoke, emitted_metrics, work_calls
) -> None:
    event = order_placed(version="1.3", loyaltyPoints=12)
    event["channel"] = "mobile"

    response = invoke(sqs_event(enveloped(event)))

    assert response == {"batchItemFailures": []}
    assert work_calls == [("payment", "o-123")]
    assert emitted_metrics() == {"OrdersProcessed": 1, "NewerMinorVersionProcessed": 1}


def test_duplicate_sqs_delivery_is_processed_once(aws, invoke, emitted_metrics, work_calls) -> None:
    event = sqs_event(enveloped(order_placed("o-123"), "msg-1"))

    first = invoke(event)
    second = invoke(event)

    assert first == second == {"batchItemFailures": []}
    assert work_calls == [("payment", "o-123")]
    assert len(aws.idempotency_records()) == 1
    assert emitted_metrics() == {"OrdersProcessed": 1, "DuplicatesSkipped": 1}


def test_same_order_published_twice_is_processed_once(
    aws, invoke, emitted_metrics, work_calls, consumer_logs
) -> None:
    """Two SNS messages (different message and event ids), one in each delivery mode."""
    first = enveloped(order_placed("o-123", event_id="evt-1"), "msg-1", sns_message_id="sns-a")
    second = raw(order_placed("o-123", event_id="evt-2"), "msg-2")

    response = invoke(sqs_event(first, second))

    assert response == {"batchItemFailures": []}
    assert work_calls == [("payment", "o-123")]
    assert emitted_metrics() == {"OrdersProcessed": 1, "DuplicatesSkipped": 1}
    [duplicate] = [log for log in consumer_logs if log["message"].startswith("Duplicate")]
    assert duplicate["message_id"] == "msg-2"
    assert duplicate["event_id"] == "evt-2"
    assert duplicate["result"] == EXPECTED_RESULTS["payment"]


def test_each_consumer_processes_the_same_order_once(aws, invoke, monkeypatch, work_calls) -> None:
    """The four consumers can share one table: the key includes the consumer name."""
    event = sqs_event(enveloped(order_placed("o-123")))
    for consumer in ("payment", "shipping", "payment"):
        monkeypatch.setenv("CONSUMER_NAME", consumer)
        handler._settings.cache_clear()
        handler._idempotency_config.cache_clear()
        handler._process_once.cache_clear()
        invoke(event)

    assert work_calls == [("payment", "o-123"), ("shipping", "o-123")]
    assert set(aws.idempotency_records()) == {
        record_key("payment", "o-123"),
        record_key("shipping", "o-123"),
    }


def test_clients_and_settings_are_created_once_and_reused(aws, invoke) -> None:
    assert handler._dynamodb_client.cache_info().currsize == 0, "no client before an event"

    invoke(sqs_event(enveloped(order_placed("o-1"))))
    invoke(sqs_event(enveloped(order_placed("o-2"))))

    assert handler._dynamodb_client.cache_info().misses == 1
    assert handler._process_once.cache_info().misses == 1
    assert handler._settings.cache_info().misses == 1


def test_log_lines_name_the_consumer_message_and_order(aws, invoke, consumer_logs) -> None:
    invoke(sqs_event(enveloped(order_placed("o-123"), "msg-1", sns_message_id="sns-a")))

    [processed] = [log for log in consumer_logs if log["message"] == "Order processed"]
    assert processed["consumer"] == "payment"
    assert (processed["message_id"], processed["sns_message_id"]) == ("msg-1", "sns-a")
    assert (processed["order_id"], processed["event_id"]) == ("o-123", "evt-o-123")
    assert processed["result"] == EXPECTED_RESULTS["payment"]


# ==========================================================================================
# handler.py: every bad input has a defined outcome


def test_malformed_json_is_dead_lettered_with_its_reason_and_acknowledged(
    aws, invoke, emitted_metrics
) -> None:
    response = invoke(sqs_event(sqs_record("{not json", "msg-1")))

    assert response == {"batchItemFailures": []}
    [message] = aws.dead_letters()
    assert message["Body"] == "{not json"
    attributes = message["MessageAttributes"]
    assert attributes["ErrorReason"]["StringValue"].startswith("body is not JSON")
    assert attributes["SourceMessageId"]["StringValue"] == "msg-1"
    assert aws.idempotency_records() == {}
    assert emitted_metrics() == {"MalformedMessages": 1, "MessagesDeadLettered": 1}


VALID = order_placed()


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        pytest.param("[1, 2]", "body is JSON list", id="json-array"),
        pytest.param('{"total": NaN}', "body is not JSON", id="nan"),
        pytest.param("[" * 100_000 + "]" * 100_000, "body is not JSON", id="absurd-nesting"),
        pytest.param(with_field(VALID, "eventType", DELETE), "eventType must be", id="no-type"),
        pytest.param(with_field(VALID, "eventType", 7), "eventType must be", id="type-int"),
        pytest.param(with_field(VALID, "version", DELETE), "version must be", id="no-version"),
        pytest.param(with_field(VALID, "version", 1.0), "version must be", id="version-float"),
        pytest.param(with_field(VALID, "version", "1"), "version must be", id="version-major"),
        pytest.param(with_field(VALID, "version", "v1.0"), "version must be", id="version-v"),
        pytest.param(with_field(VALID, "order", DELETE), "order must be an object", id="no-order"),
        pytest.param(with_field(VALID, "order", []), "order must be an object", id="order-list"),
        pytest.param(with_field(VALID, "order.orderId", DELETE), "order.orderId", id="no-id"),
        pytest.param(with_field(VALID, "order.orderId", ""), "order.orderId", id="empty-id"),
        pytest.param(with_field(VALID, "order.orderId", 123), "order.orderId", id="id-int"),
        pytest.param(
            with_field(VALID, "order.customerId", DELETE), "order.customerId", id="no-customer"
        ),
        pytest.param(with_field(VALID, "order.total", DELETE), "order.total", id="no-total"),
        pytest.param(with_field(VALID, "order.total", "125.5"), "order.total", id="total-str"),
        pytest.param(with_field(VALID, "order.total", True), "order.total", id="total-bool"),
        pytest.param(with_field(VALID, "order.total", -0.01), "order.total", id="total-negative"),
        pytest.param(
            with_field(VALID, "order.currency", "EURO"), "order.currency", id="currency-4"
        ),
        pytest.param(
            with_field(VALID, "order.currency", "eur"), "order.currency", id="currency-lc"
        ),
        pytest.param(with_field(VALID, "order.currency", 978), "order.currency", id="currency-int"),
        pytest.param(with_field(VALID, "order.items", []), "order.items must be", id="no-items"),
        pytest.param(with_field(VALID, "order.items", {}), "order.items must be", id="items-dict"),
        pytest.param(
            with_field(VALID, "order.items.1", "PEN-7"), "order.items[1] must be", id="item-str"
        ),
        pytest.param(
            with_field(VALID, "order.items.0.sku", DELETE), "order.items[0].sku", id="no-sku"
        ),
        pytest.param(
            with_field(VALID, "order.items.0.quantity", 0), "items[0].quantity", id="quantity-0"
        ),
        pytest.param(
            with_field(VALID, "order.items.0.quantity", 1.5), "items[0].quantity", id="quantity-1.5"
        ),
        pytest.param(
            with_field(VALID, "order.items.0.quantity", True), "items[0].quantity", id="qty-bool"
        ),
        pytest.param(
            with_field(VALID, "order.items.0.unitPrice", -1), "items[0].unitPrice", id="price-neg"
        ),
        pytest.param(
            with_field(VALID, "order.items.0.unitPrice", None),
            "items[0].unitPrice",
            id="price-null",
        ),
    ],
)
@pytest.mark.parametrize("delivery", [enveloped, raw], ids=["sns-envelope", "raw-delivery"])
def test_malformed_message_is_dead_lettered_with_its_reason(
    aws, invoke, emitted_metrics, work_calls, message, reason, delivery
) -> None:
    if delivery is enveloped and isinstance(message, str):
        reason = reason.replace("body", "SNS Message")
    record = delivery(message)

    response = invoke(sqs_event(record))

    assert response == {"batchItemFailures": []}
    [dead] = aws.dead_letters()
    assert reason in dead["MessageAttributes"]["ErrorReason"]["StringValue"]
    assert dead["Body"] == record["body"]
    assert work_calls == []
    assert emitted_metrics() == {"MalformedMessages": 1, "MessagesDeadLettered": 1}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(
            {**sns_envelope(VALID), "Type": "SubscriptionConfirmation"},
            "SNS envelope Type is 'SubscriptionConfirmation'",
            id="not-a-notification",
        ),
        pytest.param(
            {**sns_envelope(VALID), "Message": {"eventType": "OrderPlaced"}},
            "SNS Message is dict, not a JSON string",
            id="message-not-a-string",
        ),
        pytest.param(
            {**sns_envelope(VALID), "Message": "{oops"}, "SNS Message is not JSON", id="bad-json"
        ),
        pytest.param(
            with_field(sns_envelope(VALID), "Message", DELETE),
            "SNS Message is missing",
            id="notification-without-message",
        ),
        pytest.param(
            {**sns_envelope(VALID), "MessageAttributes": "eventType"},
            "SNS MessageAttributes is str",
            id="attributes-not-an-object",
        ),
        pytest.param(
            sns_envelope(VALID, attributes={"eventType": "OrderCancelled"}),
            "message attribute eventType='OrderCancelled' contradicts the body's",
            id="attribute-contradicts-body",
        ),
        pytest.param(
            sns_envelope(VALID, attributes={"eventType": "OrderPlaced", "version": "2.0"}),
            "message attribute version='2.0' contradicts the body's version='1.0'",
            id="version-attribute-contradicts-body",
        ),
    ],
)
def test_malformed_sns_envelope_is_dead_lettered_with_its_reason(
    aws, invoke, emitted_metrics, body, reason
) -> None:
    response = invoke(sqs_event(sqs_record(body, "msg-1")))

    assert response == {"batchItemFailures": []}
    [dead] = aws.dead_letters()
    assert reason in dead["MessageAttributes"]["ErrorReason"]["StringValue"]
    assert emitted_metrics() == {"MalformedMessages": 1, "MessagesDeadLettered": 1}


def test_raw_message_whose_attribute_contradicts_the_body_is_dead_lettered(
    aws, invoke, emitted_metrics
) -> None:
    record = raw(VALID, attributes={"eventType": "OrderPlaced", "version": "1.1"})

    invoke(sqs_event(record))

    [dead] = aws.dead_letters()
    assert "version='1.1' contradicts" in dead["MessageAttributes"]["ErrorReason"]["StringValue"]


def test_dead_letter_copy_keeps_the_original_message_attributes(aws, invoke) -> None:
    """With raw delivery a redrive from the DLQ must look like the original message."""
    record = raw(
        order_placed(version="2.0"),
        "msg-7",
        attributes={"eventType": "OrderPlaced", "version": "2.0"},
    )

    invoke(sqs_event(record))

    [dead] = aws.dead_letters()
    attributes = {name: value["StringValue"] for name, value in dead["MessageAttributes"].items()}
    assert attributes == {
        "ErrorReason": "unsupported version 2.0: this consumer supports 1.x (up to 1.0)",
        "SourceMessageId": "msg-7",
        "eventType": "OrderPlaced",
        "version": "2.0",
    }


@pytest.mark.parametrize("version", ["2.0", "10.4", "0.9"])
@pytest.mark.parametrize("delivery", [enveloped, raw], ids=["sns-envelope", "raw-delivery"])
def test_unsupported_major_version_is_dead_lettered_for_a_later_redrive(
    aws, invoke, emitted_metrics, work_calls, version, delivery
) -> None:
    # A newer major may change the order's shape: it is not validated as 1.x.
    event = order_placed(version=version)
    del event["order"]["items"]
    record = delivery(event, "msg-1")

    response = invoke(sqs_event(record))

    assert response == {"batchItemFailures": []}
    [dead] = aws.dead_letters()
    assert dead["Body"] == record["body"]
    reason = dead["MessageAttributes"]["ErrorReason"]["StringValue"]
    assert reason.startswith(f"unsupported version {version}")
    assert work_calls == []
    assert emitted_metrics() == {"UnsupportedVersions": 1, "MessagesDeadLettered": 1}


@pytest.mark.parametrize("delivery", [enveloped, raw], ids=["sns-envelope", "raw-delivery"])
def test_unknown_event_type_is_acknowledged_logged_and_counted(
    aws, invoke, emitted_metrics, consumer_logs, work_calls, delivery
) -> None:
    # Its version and payload are unknown too: they are not validated.
    message = {"eventType": "OrderCancelled", "version": "7", "orderId": "o-123"}

    response = invoke(sqs_event(delivery(message)))

    assert response == {"batchItemFailures": []}
    assert aws.dead_letters() == []
    assert work_calls == []
    assert emitted_metrics() == {"UnknownEventTypesIgnored": 1}
    [warning] = [log for log in consumer_logs if log["level"] == "WARNING"]
    assert warning["message"].startswith("Unknown eventType ignored")
    assert warning["event_type"] == "OrderCancelled"


def test_poison_message_without_dead_letter_queue_is_a_batch_item_failure(
    aws, invoke, monkeypatch, emitted_metrics
) -> None:
    monkeypatch.delenv("DEAD_LETTER_QUEUE_URL")

    response = invoke(sqs_event(sqs_record("{not json", "msg-1"), raw(VALID, "msg-2")))

    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-1"}]}
    assert aws.dead_letters() == []
    assert emitted_metrics() == {"MalformedMessages": 1, "RecordsFailed": 1, "OrdersProcessed": 1}


def test_poison_message_is_a_batch_item_failure_when_dead_lettering_fails(
    aws, invoke, monkeypatch, consumer_logs
) -> None:
    monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", DLQ_URL.replace(DLQ_NAME, "deleted"))

    response = invoke(sqs_event(raw(order_placed(version="3.0"), "msg-1"), raw(VALID, "msg-2")))

    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-1"}]}
    [error] = [log for log in consumer_logs if log["level"] == "ERROR"]
    assert error["message"].startswith("Poison message could not be sent")
    assert error["reason"].startswith("unsupported version 3.0")
    assert "NonExistentQueue" in error["exception"]


@pytest.mark.parametrize("with_dlq", [True, False], ids=["dlq", "no-dlq"])
def test_one_poison_record_in_a_batch_of_three_is_the_only_one_to_fail(
    aws, invoke, monkeypatch, emitted_metrics, work_calls, with_dlq
) -> None:
    if not with_dlq:
        monkeypatch.delenv("DEAD_LETTER_QUEUE_URL")
    event = sqs_event(
        enveloped(order_placed("o-1"), "msg-1"),
        enveloped(with_field(order_placed("o-2"), "order.total", "lots"), "msg-2"),
        raw(order_placed("o-3"), "msg-3"),
    )

    response = invoke(event)

    assert work_calls == [("payment", "o-1"), ("payment", "o-3")]
    if with_dlq:
        assert response == {"batchItemFailures": []}
        [dead] = aws.dead_letters()
        assert dead["MessageAttributes"]["SourceMessageId"]["StringValue"] == "msg-2"
        assert emitted_metrics() == {
            "OrdersProcessed": 2,
            "MalformedMessages": 1,
            "MessagesDeadLettered": 1,
        }
    else:
        assert response == {"batchItemFailures": [{"itemIdentifier": "msg-2"}]}
        assert emitted_metrics() == {
            "OrdersProcessed": 2,
            "MalformedMessages": 1,
            "RecordsFailed": 1,
        }


def test_dynamodb_throttling_is_a_batch_item_failure_and_the_retry_succeeds(
    aws, invoke, monkeypatch, emitted_metrics, work_calls, consumer_logs
) -> None:
    client = handler._dynamodb_client()
    monkeypatch.setattr(client, "put_item", failing_first(client.put_item, throttling()))
    throttled = enveloped(order_placed("o-1"), "msg-1")

    response = invoke(sqs_event(throttled, enveloped(order_placed("o-2"), "msg-2")))

    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-1"}]}
    assert work_calls == [("payment", "o-2")]
    assert aws.dead_letters() == []
    [warning] = [log for log in consumer_logs if log["level"] == "WARNING"]
    assert warning["message"] == "Transient error: the message will be retried"
    assert "ProvisionedThroughputExceededException" in warning["exception"]
    assert emitted_metrics() == {"RecordsFailed": 1, "OrdersProcessed": 1}

    assert invoke(sqs_event(throttled)) == {"batchItemFailures": []}  # SQS redelivers it

    assert work_calls == [("payment", "o-2"), ("payment", "o-1")]


@contextlib.contextmanager
def throttled_calls(client: Any, operation: str, times: int) -> Iterator[list[str]]:
    """Fault injection through botocore's event hooks on the handler's own client: the first
    ``times`` calls of ``operation`` are throttled before they are sent (botocore's own retries
    never see them, as with a throttle that outlasts them)."""
    throttled: list[str] = []

    def hook(**_: Any) -> None:
        if len(throttled) < times:
            throttled.append(operation)
            raise throttling(operation)

    event = f"before-call.dynamodb.{operation}"
    client.meta.events.register(event, hook)
    try:
        yield throttled
    finally:
        client.meta.events.unregister(event, hook)


def test_completion_write_throttled_once_is_retried_and_the_work_runs_once(
    aws, invoke, work_calls, emitted_metrics
) -> None:
    """Powertools' save_success throttled once: the kit retries it with backoff, so the record
    is COMPLETED and a redelivery is a duplicate, not a second run of the work."""
    client = handler._dynamodb_client()
    with throttled_calls(client, "UpdateItem", times=1) as throttled:
        response = invoke(sqs_event(raw(VALID, "msg-1")))

    assert throttled == ["UpdateItem"]
    assert response == {"batchItemFailures": []}
    assert aws.idempotency_records()[record_key("payment", "o-123")]["status"] == "COMPLETED"
    assert invoke(sqs_event(raw(VALID, "msg-1"))) == {"batchItemFailures": []}  # redelivered
    assert work_calls == [("payment", "o-123")]
    assert emitted_metrics() == {"OrdersProcessed": 1, "DuplicatesSkipped": 1}


def test_completion_write_that_keeps_failing_fails_the_record(aws, invoke, work_calls) -> None:
    """Throttled on every attempt: the record fails and stays INPROGRESS until it expires
    with the invocation; the work (pure, see consumers.py) may then run again."""
    client = handler._dynamodb_client()
    with throttled_calls(
        client, "UpdateItem", times=kit_idempotency.COMPLETION_WRITE_ATTEMPTS
    ) as throttled:
        response = invoke(sqs_event(raw(VALID, "msg-1"), raw(order_placed("o-9"), "msg-2")))

    assert len(throttled) == kit_idempotency.COMPLETION_WRITE_ATTEMPTS
    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-1"}]}
    assert work_calls == [("payment", "o-123"), ("payment", "o-9")]
    assert aws.idempotency_records()[record_key("payment", "o-123")]["status"] == "INPROGRESS"


def test_batch_where_every_record_fails_raises_so_lambda_backs_off(
    aws, invoke, monkeypatch, emitted_metrics
) -> None:
    client = handler._dynamodb_client()
    monkeypatch.setattr(client, "put_item", failing_first(client.put_item, throttling(), times=9))

    with pytest.raises(BatchProcessingError, match="All records failed processing"):
        invoke(sqs_event(raw(order_placed("o-1"), "msg-1"), raw(order_placed("o-2"), "msg-2")))

    assert emitted_metrics() == {"RecordsFailed": 2}


def test_order_being_processed_elsewhere_is_a_batch_item_failure(
    aws, invoke, emitted_metrics, work_calls
) -> None:
    """A concurrent delivery holds the in-progress record: retry later, never run twice."""
    now = time.time()
    aws.dynamodb.put_item(
        TableName=IDEMPOTENCY_TABLE,
        Item={
            "id": {"S": record_key("payment", "o-1")},
            "status": {"S": "INPROGRESS"},
            "expiration": {"N": str(int(now) + 3600)},
            "in_progress_expiration": {"N": str(int(now * 1000) + 60_000)},
        },
    )

    response = invoke(
        sqs_event(raw(order_placed("o-1"), "msg-1"), raw(order_placed("o-2"), "msg-2"))
    )

    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-1"}]}
    assert work_calls == [("payment", "o-2")]
    assert emitted_metrics() == {"RecordsFailed": 1, "OrdersProcessed": 1}


def test_unexpected_error_in_the_work_fails_the_record_and_frees_its_key(
    aws, invoke, monkeypatch, consumer_logs
) -> None:
    def broken(consumer: str, order: Any) -> dict[str, Any]:
        raise RuntimeError("bug")

    monkeypatch.setattr(handler, "perform", broken)

    response = invoke(sqs_event(raw(VALID, "msg-1"), sqs_record("{", "msg-2")))

    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-1"}]}
    assert aws.idempotency_records() == {}, "the retry must be able to run the work"
    [error] = [log for log in consumer_logs if log["level"] == "ERROR"]
    assert error["message"].startswith("Unexpected error")
    assert error["order_id"] == "o-123"
    assert "RuntimeError: bug" in error["exception"]


def test_missing_idempotency_table_fails_the_record(aws, invoke, monkeypatch) -> None:
    monkeypatch.setenv("IDEMPOTENCY_TABLE", "no-such-table")

    response = invoke(sqs_event(raw(VALID, "msg-1"), sqs_record("{", "msg-2")))

    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-1"}]}


# ==========================================================================================
# handler.py: configuration


@pytest.mark.parametrize(
    ("variable", "value"),
    [("CONSUMER_NAME", None), ("CONSUMER_NAME", "billing"), ("IDEMPOTENCY_TABLE", None)],
)
def test_invalid_config_fails_the_whole_batch_with_a_clear_error(
    aws, invoke, monkeypatch, consumer_logs, emitted_metrics, work_calls, variable, value
) -> None:
    if value is None:
        monkeypatch.delenv(variable)
    else:
        monkeypatch.setenv(variable, value)

    with pytest.raises(ConfigError, match=rf"^{variable} ") as raised:
        invoke(sqs_event(raw(order_placed("o-1"), "msg-1"), raw(order_placed("o-2"), "msg-2")))

    assert raised.value.variable == variable
    assert work_calls == []
    [error] = [log for log in consumer_logs if log["level"] == "ERROR"]
    assert error["message"] == "Invalid configuration: failing the whole batch"
    assert error["variable"] == variable
    assert emitted_metrics() == {"RecordsFailed": 2}


def test_config_is_read_again_after_a_failure(aws, invoke, monkeypatch) -> None:
    """functools.cache does not cache exceptions: a fixed environment is picked up."""
    monkeypatch.delenv("CONSUMER_NAME")
    event = sqs_event(raw(VALID))
    with pytest.raises(ConfigError):
        invoke(event)

    monkeypatch.setenv("CONSUMER_NAME", "shipping")

    assert invoke(event) == {"batchItemFailures": []}


# ==========================================================================================
# routing.py: SNS -> Lambda


INVOICE = {"invoiceId": "i-1", "amount": 120.5}
USER = {"userId": "u-1", "action": "created"}


@pytest.fixture
def route_logs() -> Iterator[list[dict[str, Any]]]:
    with captured_logs(routing.logger) as logs:
        yield logs


@pytest.fixture
def routed(aws, monkeypatch: pytest.MonkeyPatch) -> Aws:
    """The routing handlers with an idempotency table (optional for them)."""
    monkeypatch.setenv("IDEMPOTENCY_TABLE", IDEMPOTENCY_TABLE)
    return aws


def invoice(event: dict[str, Any]) -> Any:
    return routing.invoice_handler(event, LambdaContext(function_name="invoice"))


def user(event: dict[str, Any]) -> Any:
    return routing.user_handler(event, LambdaContext(function_name="user"))


def test_invoice_is_recorded(routed, emitted_metrics) -> None:
    result = invoice(sns_lambda_event(INVOICE, event_type="invoice"))

    assert result == {
        "processed": [{"invoiceId": "i-1", "amount": "120.50", "status": "RECORDED"}],
        "ignored": 0,
    }
    assert list(routed.idempotency_records()) == [
        idempotency_key("order_events.routing.invoice", "i-1")
    ]
    assert emitted_metrics() == {"MessagesProcessed": 1}


def test_user_event_is_applied(routed, emitted_metrics) -> None:
    result = user(sns_lambda_event(USER, event_type="user"))

    assert result == {
        "processed": [{"userId": "u-1", "action": "created", "status": "APPLIED"}],
        "ignored": 0,
    }
    assert list(routed.idempotency_records()) == [
        idempotency_key("order_events.routing.user", "u-1")
    ]
    assert emitted_metrics() == {"MessagesProcessed": 1}


def test_event_type_comes_from_the_message_without_the_attribute(routed) -> None:
    message = {**USER, "eventType": "user"}

    result = user(sns_lambda_event(message, event_type=None))

    assert result["processed"] == [{"userId": "u-1", "action": "created", "status": "APPLIED"}]


@pytest.mark.parametrize(
    ("handle", "event"),
    [
        pytest.param(invoice, sns_lambda_event(USER, event_type="user"), id="user-to-invoice"),
        pytest.param(user, sns_lambda_event(INVOICE, event_type="invoice"), id="invoice-to-user"),
        pytest.param(invoice, sns_lambda_event("not even json", event_type="x"), id="other-type"),
        pytest.param(invoice, sns_lambda_event(INVOICE, event_type=None), id="no-type-at-all"),
    ],
)
def test_unknown_event_type_is_dropped_logged_and_counted(
    routed, emitted_metrics, route_logs, handle, event
) -> None:
    assert handle(event) == {"processed": [], "ignored": 1}

    assert routed.idempotency_records() == {}
    assert emitted_metrics() == {"UnknownEventTypesIgnored": 1}
    [warning] = [log for log in route_logs if log["level"] == "WARNING"]
    assert "ignored" in warning["message"]


@pytest.mark.parametrize(
    ("handle", "event", "reason"),
    [
        pytest.param(invoice, sns_lambda_event("{oops"), "SNS Message is not JSON", id="json"),
        pytest.param(invoice, sns_lambda_event("[]"), "SNS Message is JSON list", id="array"),
        pytest.param(invoice, sns_lambda_event({"amount": 1}), "invoiceId must", id="no-id"),
        pytest.param(
            invoice, sns_lambda_event({"invoiceId": "i-1", "amount": -5}), "amount", id="negative"
        ),
        pytest.param(
            invoice, sns_lambda_event({"invoiceId": "i-1", "amount": True}), "amount", id="bool"
        ),
        pytest.param(invoice, sns_lambda_event({"invoiceId": "i-1"}), "amount", id="no-amount"),
        pytest.param(
            user, sns_lambda_event({"userId": "u-1"}, event_type="user"), "action", id="no-action"
        ),
        pytest.param(
            user,
            sns_lambda_event({"userId": "", "action": "x"}, event_type="user"),
            "userId",
            id="empty-user",
        ),
        pytest.param(
            invoice,
            sns_lambda_event({**INVOICE, "eventType": "user"}),
            "contradicts",
            id="contradicting-type",
        ),
        pytest.param(invoice, {"Records": []}, "not an SNS event", id="no-records"),
        pytest.param(invoice, {"detail": {}}, "not an SNS event", id="not-sns"),
    ],
)
def test_malformed_message_is_logged_counted_and_raised_for_the_async_retries(
    routed, emitted_metrics, route_logs, handle, event, reason
) -> None:
    with pytest.raises(MalformedMessage, match=reason):
        handle(event)

    assert routed.idempotency_records() == {}
    assert emitted_metrics() == {"MalformedMessages": 1}, "flushed although the handler raised"
    [error] = [log for log in route_logs if log["level"] == "ERROR"]
    assert error["message"].startswith("Malformed message: raising")
    assert reason in error["reason"]


def test_duplicate_invoice_is_processed_once_and_returns_the_same_result(
    routed, emitted_metrics
) -> None:
    first = invoice(sns_lambda_event(INVOICE, message_id="sns-1"))
    second = invoice(sns_lambda_event({**INVOICE, "amount": 120.5}, message_id="sns-2"))

    assert first == second
    assert emitted_metrics() == {"MessagesProcessed": 1, "DuplicatesSkipped": 1}


def test_without_idempotency_table_every_delivery_is_processed(
    aws, monkeypatch, emitted_metrics
) -> None:
    monkeypatch.delenv("IDEMPOTENCY_TABLE")
    event = sns_lambda_event(INVOICE)

    invoice(event)
    invoice(event)

    assert routing._dynamodb_client.cache_info().currsize == 0, "DynamoDB is never called"
    assert aws.idempotency_records() == {}
    assert emitted_metrics() == {"MessagesProcessed": 2}


def test_routing_dynamodb_throttling_raises_for_the_async_retries(
    routed, monkeypatch, route_logs
) -> None:
    client = routing._dynamodb_client()
    monkeypatch.setattr(client, "put_item", failing_first(client.put_item, throttling()))

    with pytest.raises(IdempotencyPersistenceLayerError, match="Failed to save in progress"):
        invoice(sns_lambda_event(INVOICE))

    [warning] = [log for log in route_logs if log["level"] == "WARNING"]
    assert warning["message"].startswith("Transient error")
    assert invoice(sns_lambda_event(INVOICE))["processed"][0]["invoiceId"] == "i-1"


def test_routing_invalid_config_raises_naming_the_variable(monkeypatch) -> None:
    monkeypatch.setenv("IDEMPOTENCY_EXPIRES_AFTER_SECONDS", "soon")

    with pytest.raises(ConfigError, match=r"^IDEMPOTENCY_EXPIRES_AFTER_SECONDS") as raised:
        invoice(sns_lambda_event(INVOICE))

    assert raised.value.variable == "IDEMPOTENCY_EXPIRES_AFTER_SECONDS"


def test_routing_result_is_json_serializable(routed) -> None:
    result = user(sns_lambda_event(USER, event_type="user"))

    assert json.loads(json.dumps(result)) == result


def test_poison_message_redelivered_after_a_lost_delete_is_dead_lettered_once(
    aws, invoke, emitted_metrics, consumer_logs
) -> None:
    """The copy is made, then the delete is lost (or the invocation times out): SQS delivers
    the same message again. The ledger in the idempotency table keeps it to one DLQ copy."""
    poison = sqs_record("{not json", "msg-1")

    assert invoke(sqs_event(poison)) == {"batchItemFailures": []}
    assert invoke(sqs_event(poison)) == {"batchItemFailures": []}  # redelivered

    [copy] = aws.dead_letters()
    assert copy["MessageAttributes"]["SourceMessageId"]["StringValue"] == "msg-1"
    assert list(aws.dead_letter_ledger().values()) == [copy["MessageId"]]
    assert emitted_metrics() == {
        "MalformedMessages": 2,
        "MessagesDeadLettered": 1,
        "DuplicatesSkipped": 1,
    }
    assert any("already sent to the dead-letter queue" in log["message"] for log in consumer_logs)


def test_poison_message_is_still_dead_lettered_when_the_ledger_cannot_be_read(
    aws, invoke, emitted_metrics
) -> None:
    """A ledger read that fails must not lose the message: it is copied (maybe twice)."""
    client = handler._dynamodb_client()
    with throttled_calls(client, "GetItem", times=1):
        assert invoke(sqs_event(sqs_record("{not json", "msg-1"))) == {"batchItemFailures": []}

    assert len(aws.dead_letters()) == 1
    assert emitted_metrics() == {"MalformedMessages": 1, "MessagesDeadLettered": 1}
