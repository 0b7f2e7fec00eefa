"""Tests of the order pipeline Lambda: SQS FIFO (group = customer) -> Lambda -> DynamoDB.

Everything AWS runs on moto: the orders table and a FIFO dead-letter queue. SQS FIFO records
are built by the factories of order_pipeline_support. Transient DynamoDB errors are injected
either with botocore's Stubber on the handler's cached client (it then answers every call of
that client) or by patching one method of that client to fail for one order id only.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from botocore.exceptions import ClientError, EndpointConnectionError
from botocore.stub import Stubber
from order_pipeline_support import (
    DELETE,
    DLQ_NAME,
    ORDERS_TABLE,
    REGION,
    SENT_AT,
    SENT_TIMESTAMP,
    Aws,
    LambdaContext,
    batch,
    captured_logs,
    create_orders_table,
    created,
    failed_ids,
    fifo_record,
    paid,
    shipped,
    sqs_event,
    with_field,
)

from tests.support.aws import mocked_aws

# isort: split
# order_pipeline_support (imported above) puts the asset root on sys.path.
from order_pipeline import handler
from order_pipeline.config import ConfigError, Settings
from order_pipeline.schema import MAX_ITEMS, MalformedMessage, OrderShipped, parse_event

DLQ_URL = f"https://sqs.{REGION}.amazonaws.com/123456789012/{DLQ_NAME}"
ISO_UTC = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def client_error(code: str, status: int = 400, operation: str = "UpdateItem") -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": "injected"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        operation,
    )


THROTTLING = client_error("ProvisionedThroughputExceededException")


# ==========================================================================================
# Fixtures


@pytest.fixture(autouse=True)
def order_pipeline_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A valid configuration without a DLQ; ``aws`` adds the DLQ."""
    monkeypatch.setenv("ORDERS_TABLE", ORDERS_TABLE)
    monkeypatch.delenv("DEAD_LETTER_QUEUE_URL", raising=False)


@pytest.fixture(autouse=True)
def reset_order_pipeline_state() -> Iterator[None]:
    """Forget cached settings, clients and metrics between tests."""

    def reset() -> None:
        handler._settings.cache_clear()
        handler._dynamodb_client.cache_clear()
        handler._sqs_client.cache_clear()
        handler.metrics.clear_metrics()

    reset()
    yield
    reset()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, boto3_session: boto3.session.Session) -> Iterator[Aws]:
    """moto DynamoDB (the orders table) and SQS (the FIFO DLQ, in DEAD_LETTER_QUEUE_URL).

    Replaces conftest's image-resize ``aws``; reuses its session-wide boto3 session (moto's
    mock resets boto3.DEFAULT_SESSION, re-parsing the service models costs ~0.3 s a test).
    """
    with mocked_aws(boto3_session):
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        create_orders_table(dynamodb)
        dlq_url = sqs.create_queue(QueueName=DLQ_NAME, Attributes={"FifoQueue": "true"})["QueueUrl"]
        monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", dlq_url)
        yield Aws(dynamodb=dynamodb, sqs=sqs, dlq_url=dlq_url)


@pytest.fixture
def invoke() -> Callable[[dict[str, Any]], Any]:
    """Call the Lambda entry point the way the runtime does."""
    return lambda event: handler.handler(event, LambdaContext())


@dataclasses.dataclass
class InjectedError:
    """Makes one method of the handler's DynamoDB client raise ``error`` for one order id."""

    order_id: str
    error: Exception
    # Set to False when the problem is over: calls go to moto again.
    active: bool = True
    # Order id of each call that was failed.
    failed: list[str] = dataclasses.field(default_factory=list)


@pytest.fixture
def fail_order(monkeypatch: pytest.MonkeyPatch) -> Callable[..., InjectedError]:
    """fail_order(order_id, error, method="update_item"): while active, the handler's cached
    DynamoDB client raises ``error`` for that order id; other orders go to moto."""

    def install(order_id: str, error: Exception, method: str = "update_item") -> InjectedError:
        injected = InjectedError(order_id, error)
        client = handler._dynamodb_client()
        real = getattr(client, method)

        def call(**kwargs: Any) -> Any:
            key = kwargs.get("Key") or kwargs.get("Item") or {}
            if injected.active and key.get("orderId") == {"S": order_id}:
                injected.failed.append(order_id)
                raise error
            return real(**kwargs)

        monkeypatch.setattr(client, method, call)
        return injected

    return install


@pytest.fixture
def pipeline_logs() -> Iterator[list[dict[str, Any]]]:
    with captured_logs(handler.logger) as logs:
        yield logs


# ==========================================================================================
# config.py


class TestSettings:
    def test_only_the_table_is_required(self) -> None:
        assert Settings.from_env({"ORDERS_TABLE": ORDERS_TABLE}) == Settings(
            orders_table=ORDERS_TABLE, dead_letter_queue_url=None
        )

    def test_every_variable_is_read(self) -> None:
        table_arn = "arn:aws:dynamodb:us-east-1:123456789012:table/orders"
        env = {"ORDERS_TABLE": table_arn, "DEAD_LETTER_QUEUE_URL": DLQ_URL}

        assert Settings.from_env(env) == Settings(table_arn, DLQ_URL)

    def test_settings_are_immutable(self) -> None:
        settings = Settings.from_env({"ORDERS_TABLE": ORDERS_TABLE})

        with pytest.raises(dataclasses.FrozenInstanceError):
            settings.orders_table = "other"  # type: ignore[misc]

    @pytest.mark.parametrize("value", [None, "", "  "])
    def test_missing_table_is_a_config_error_naming_it(self, value: str | None) -> None:
        env = {} if value is None else {"ORDERS_TABLE": value}

        with pytest.raises(ConfigError, match=r"^ORDERS_TABLE is required") as raised:
            Settings.from_env(env)

        assert raised.value.variable == "ORDERS_TABLE"

    @pytest.mark.parametrize(
        ("variable", "value", "problem"),
        [
            ("ORDERS_TABLE", "a b", "must be a DynamoDB table name"),
            ("ORDERS_TABLE", "ab", "must be a DynamoDB table name"),
            ("DEAD_LETTER_QUEUE_URL", DLQ_NAME, "must be an SQS queue URL"),
            ("DEAD_LETTER_QUEUE_URL", f"arn:aws:sqs:{REGION}:1:{DLQ_NAME}", "must be an SQS"),
            ("DEAD_LETTER_QUEUE_URL", DLQ_URL.removesuffix(".fifo"), "must be the URL of a FIFO"),
        ],
    )
    def test_invalid_value_is_a_config_error_naming_the_variable(
        self, variable: str, value: str, problem: str
    ) -> None:
        env = {"ORDERS_TABLE": ORDERS_TABLE, variable: value}

        with pytest.raises(ConfigError, match=rf"^{variable} {problem}") as raised:
            Settings.from_env(env)

        assert raised.value.variable == variable


def test_invalid_configuration_fails_the_whole_batch(
    aws, invoke, monkeypatch, emitted_metrics
) -> None:
    monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", DLQ_URL.removesuffix(".fifo"))

    with pytest.raises(ConfigError, match=r"^DEAD_LETTER_QUEUE_URL"):
        invoke(batch(created("o-1"), created("o-2", "c-2")))

    assert aws.orders() == {}
    assert emitted_metrics() == {"RecordsFailed": 2}


# ==========================================================================================
# The state machine, in order


def test_created_paid_shipped_in_one_batch_are_applied_in_order(
    aws, invoke, emitted_metrics
) -> None:
    response = invoke(batch(created(), paid(), shipped(trackingNumber="JD0001")))

    assert response == {"batchItemFailures": []}
    order = aws.order("o-1")
    assert order is not None
    updated_at = order.pop("updatedAt")
    assert order == {
        "orderId": "o-1",
        "customerId": "c-1",
        "status": "shipped",
        "items": [
            {"sku": "A", "quantity": Decimal(2), "unitPrice": Decimal("9.5")},
            {"sku": "B", "quantity": Decimal(1), "unitPrice": Decimal("0.1")},
        ],
        "total": Decimal("19.1"),
        "currency": "EUR",
        "createdAt": SENT_AT,
        "amount": Decimal("19.1"),
        "paidAt": SENT_AT,
        "carrier": "DHL",
        "trackingNumber": "JD0001",
        "shippedAt": SENT_AT,
        "version": Decimal(3),
        "lastEvent": "shipped",
        "lastMessageId": "msg-3",
    }
    assert re.fullmatch(ISO_UTC, updated_at)
    assert aws.dead_letters() == []
    assert emitted_metrics() == {"OrdersCreated": 1, "OrdersPaid": 1, "OrdersShipped": 1}


def test_each_transition_bumps_the_version_and_records_the_last_event(aws, invoke) -> None:
    seen = []
    for number, body in enumerate((created(), paid(), shipped()), 1):
        invoke(
            sqs_event(fifo_record(body, f"msg-{number}", sent_timestamp=SENT_TIMESTAMP + number))
        )
        order = aws.order("o-1")
        seen.append((order["status"], order["version"], order["lastEvent"], order["lastMessageId"]))

    assert seen == [
        ("created", 1, "created", "msg-1"),
        ("paid", 2, "paid", "msg-2"),
        ("shipped", 3, "shipped", "msg-3"),
    ]
    order = aws.order("o-1")
    assert (order["createdAt"], order["paidAt"], order["shippedAt"]) == (
        "2026-01-01T12:00:00.001Z",
        "2026-01-01T12:00:00.002Z",
        "2026-01-01T12:00:00.003Z",
    )


def test_amounts_are_stored_as_exact_decimals(aws, invoke) -> None:
    invoke(batch(created(total=0.3, items=[{"sku": "A", "quantity": 3, "unitPrice": 0.1}])))

    order = aws.order("o-1")
    assert order["total"] == Decimal("0.3")
    assert order["items"][0]["unitPrice"] == Decimal("0.1")
    item = aws.dynamodb.get_item(TableName=ORDERS_TABLE, Key={"orderId": {"S": "o-1"}})["Item"]
    assert item["total"] == {"N": "0.3"}


# ==========================================================================================
# Failures: a failing record stops its own message group only


def test_transient_failure_stops_its_group_but_not_the_other_groups(
    aws, invoke, fail_order, emitted_metrics
) -> None:
    injected = fail_order("o-A", THROTTLING)
    event = batch(
        created("o-A", "c-A"),  # msg-1
        created("o-B", "c-B"),  # msg-2
        paid("o-A", "c-A"),  # msg-3: throttled
        paid("o-B", "c-B"),  # msg-4
        shipped("o-A", "c-A"),  # msg-5: skipped, A's previous record failed
        shipped("o-B", "c-B"),  # msg-6
    )

    response = invoke(event)

    assert failed_ids(response) == ["msg-3", "msg-5"]
    assert injected.failed == ["o-A"], "msg-5 was not even attempted"
    assert aws.statuses() == {"o-A": "created", "o-B": "shipped"}
    assert aws.dead_letters() == []
    assert emitted_metrics() == {
        "OrdersCreated": 2,
        "OrdersPaid": 1,
        "OrdersShipped": 1,
        "RecordsFailed": 1,
        "RecordsSkipped": 1,
    }


def test_failed_records_retried_later_are_applied_in_order(aws, invoke, fail_order) -> None:
    event = batch(created("o-A", "c-A"), paid("o-A", "c-A"), shipped("o-A", "c-A"))
    injected = fail_order("o-A", THROTTLING)
    first = invoke(event)
    injected.active = False  # the throttling is over
    retried = [r for r in event["Records"] if r["messageId"] in failed_ids(first)]

    second = invoke(sqs_event(*retried))

    assert failed_ids(first) == ["msg-2", "msg-3"]
    assert second == {"batchItemFailures": []}
    assert aws.order("o-A")["status"] == "shipped"


@pytest.mark.parametrize(
    "error",
    [
        client_error("ProvisionedThroughputExceededException"),
        client_error("ThrottlingException"),
        client_error("RequestLimitExceeded"),
        client_error("InternalServerError", 500),
        EndpointConnectionError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com"),
    ],
    ids=["provisioned-throughput", "throttling", "request-limit", "5xx", "connection"],
)
def test_transient_dynamodb_error_is_retried_not_dead_lettered(
    aws, invoke, fail_order, pipeline_logs, emitted_metrics, error
) -> None:
    fail_order("o-A", error, method="put_item")

    response = invoke(batch(created("o-A", "c-A"), created("o-B", "c-B")))

    assert failed_ids(response) == ["msg-1"]
    assert aws.statuses() == {"o-B": "created"}
    assert aws.dead_letters() == []
    [warning] = [log for log in pipeline_logs if log["message"].startswith("Transient error")]
    assert (warning["message_id"], warning["order_id"]) == ("msg-1", "o-A")
    assert emitted_metrics() == {"OrdersCreated": 1, "RecordsFailed": 1}


def test_throttling_from_a_stubbed_client_is_a_batch_item_failure(aws, invoke) -> None:
    """botocore's Stubber answers every call of the client: one error, then one success."""
    client = handler._dynamodb_client()
    with Stubber(client) as stubber:
        stubber.add_client_error(
            "put_item",
            service_error_code="ProvisionedThroughputExceededException",
            service_message="Rate of requests exceeds the allowed throughput",
            http_status_code=400,
        )
        stubber.add_response("put_item", {})

        response = invoke(batch(created("o-A", "c-A"), created("o-B", "c-B")))

        stubber.assert_no_pending_responses()
    assert failed_ids(response) == ["msg-1"]
    assert aws.dead_letters() == []


def test_when_every_record_fails_the_invocation_raises(
    aws, invoke, fail_order, emitted_metrics
) -> None:
    """Powertools' default: the whole batch is retried and Lambda counts an error."""
    fail_order("o-A", THROTTLING, method="put_item")

    with pytest.raises(BatchProcessingError):
        invoke(batch(created("o-A", "c-A"), paid("o-A", "c-A")))

    assert aws.orders() == {}
    assert emitted_metrics() == {"RecordsFailed": 1, "RecordsSkipped": 1}


def test_unexpected_dynamodb_error_is_retried_not_dead_lettered(
    aws, invoke, monkeypatch, pipeline_logs
) -> None:
    monkeypatch.setenv("ORDERS_TABLE", "no-such-table")

    with pytest.raises(BatchProcessingError):
        invoke(batch(created()))

    assert aws.dead_letters() == []
    assert any(log["message"].startswith("Unexpected error") for log in pipeline_logs)


# ==========================================================================================
# Duplicates and replays change nothing


def test_redelivered_message_changes_nothing(aws, invoke, emitted_metrics) -> None:
    invoke(batch(created(), paid()))
    before = aws.order("o-1")
    emitted_metrics()
    redelivered = fifo_record(paid(), "msg-2", receive_count=2)

    response = invoke(sqs_event(redelivered))

    assert response == {"batchItemFailures": []}
    assert aws.order("o-1") == before
    assert emitted_metrics() == {"DuplicatesIgnored": 1}


@pytest.mark.parametrize("factory", [created, paid, shipped], ids=lambda f: f.__name__)
def test_same_event_sent_twice_is_applied_once(aws, invoke, emitted_metrics, factory) -> None:
    """Another message id (sent again after the 5-minute deduplication interval)."""
    steps = [created, paid, shipped]
    bodies = [step() for step in steps[: steps.index(factory) + 1]]
    invoke(batch(*bodies))
    before = aws.order("o-1")
    emitted_metrics()

    response = invoke(sqs_event(fifo_record(factory(), "msg-again")))

    assert response == {"batchItemFailures": []}
    assert aws.order("o-1") == before
    assert emitted_metrics() == {"DuplicatesIgnored": 1}


def test_second_created_never_overwrites_the_order(aws, invoke) -> None:
    first = created(total=19.1)
    second = created(total=99, currency="USD", items=[{"sku": "Z", "quantity": 1, "unitPrice": 99}])

    invoke(batch(first, second))

    order = aws.order("o-1")
    assert (order["total"], order["currency"], order["lastMessageId"]) == (
        Decimal("19.1"),
        "EUR",
        "msg-1",
    )


@pytest.mark.parametrize("replayed", [created, paid], ids=lambda f: f.__name__)
def test_replayed_earlier_event_after_shipped_does_not_regress(
    aws, invoke, emitted_metrics, replayed
) -> None:
    invoke(batch(created(), paid(), shipped()))
    before = aws.order("o-1")
    emitted_metrics()

    response = invoke(sqs_event(fifo_record(replayed(amount=1), "msg-replay")))

    assert response == {"batchItemFailures": []}
    assert aws.order("o-1") == before
    assert before["status"] == "shipped"
    assert aws.dead_letters() == []
    assert emitted_metrics() == {"DuplicatesIgnored": 1}


# ==========================================================================================
# Out-of-order transitions and conflicts: dead-lettered, acknowledged, group not blocked


@pytest.mark.parametrize(
    ("history", "event", "reason", "status"),
    [
        ([], paid(), "paid before created: order does not exist", None),
        ([], shipped(), "shipped before created: order does not exist", None),
        ([created()], shipped(), "shipped before paid: order is created", "created"),
    ],
    ids=["paid-before-created", "shipped-before-created", "shipped-before-paid"],
)
def test_out_of_order_event_is_dead_lettered_and_acknowledged(
    aws, invoke, emitted_metrics, history, event, reason, status
) -> None:
    if history:
        invoke(batch(*history))
    emitted_metrics()
    record = fifo_record(event, "msg-late", message_attributes={"IdempotencyKey": "k-1"})

    response = invoke(sqs_event(record))

    assert response == {"batchItemFailures": []}
    [dead] = aws.dead_letters()
    assert dead == {
        "body": record["body"],
        "group": "c-1",
        "deduplication_id": "msg-late",
        "attributes": {
            "ErrorReason": reason,
            "SourceMessageId": "msg-late",
            "IdempotencyKey": "k-1",
        },
    }
    assert (aws.order("o-1") or {}).get("status") == status
    assert emitted_metrics() == {"OutOfOrderRejected": 1, "MessagesDeadLettered": 1}


def test_out_of_order_event_blocks_neither_its_group_nor_the_others(
    aws, invoke, emitted_metrics
) -> None:
    response = invoke(
        batch(
            paid("o-A1", "c-A"),  # msg-1: out of order
            created("o-B", "c-B"),  # msg-2
            created("o-A2", "c-A"),  # msg-3: same group as msg-1
            paid("o-B", "c-B"),  # msg-4
        )
    )

    assert response == {"batchItemFailures": []}
    assert aws.statuses() == {"o-A2": "created", "o-B": "paid"}
    assert [dead["attributes"]["SourceMessageId"] for dead in aws.dead_letters()] == ["msg-1"]
    assert emitted_metrics() == {
        "OrdersCreated": 2,
        "OrdersPaid": 1,
        "OutOfOrderRejected": 1,
        "MessagesDeadLettered": 1,
    }


def test_permanent_error_does_not_block_the_next_record_of_its_group(aws, invoke) -> None:
    response = invoke(batch("{not json", created("o-1", "c-1"), paid("o-1", "c-1")))

    assert response == {"batchItemFailures": []}
    assert aws.statuses() == {"o-1": "paid"}
    [dead] = aws.dead_letters()
    assert dead["body"] == "{not json"


def test_dead_lettered_event_applies_when_redriven_after_the_missing_event(aws, invoke) -> None:
    invoke(batch(paid()))  # the client sent paid before created
    invoke(sqs_event(fifo_record(created(), "msg-2")))
    [dead] = aws.dead_letters()

    # A redrive (DLQ -> source queue) delivers the same body with a new message id.
    response = invoke(sqs_event(fifo_record(dead["body"], "msg-redriven", group=dead["group"])))

    assert response == {"batchItemFailures": []}
    assert aws.order("o-1")["status"] == "paid"


@pytest.mark.parametrize(
    ("history", "event"),
    [
        ([created("o-1", "c-1")], paid("o-1", "c-2")),
        ([created("o-1", "c-1")], created("o-1", "c-2")),
    ],
    ids=["paid", "created"],
)
def test_event_for_another_customers_order_is_dead_lettered(
    aws, invoke, emitted_metrics, history, event
) -> None:
    invoke(batch(*history))
    before = aws.order("o-1")
    emitted_metrics()

    response = invoke(sqs_event(fifo_record(event, "msg-other")))

    assert response == {"batchItemFailures": []}
    assert aws.order("o-1") == before
    [dead] = aws.dead_letters()
    assert dead["group"] == "c-2"
    assert dead["attributes"]["ErrorReason"].startswith("order belongs to customer 'c-1'")
    assert emitted_metrics() == {"ConflictsRejected": 1, "MessagesDeadLettered": 1}


# ==========================================================================================
# Malformed messages


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param("{not json", "body is not JSON", id="not-json"),
        pytest.param(with_field(created(), "items", DELETE), "items must be", id="missing-field"),
        pytest.param(with_field(paid(), "amount", "19.1"), "amount must be a number", id="type"),
        pytest.param(
            with_field(created(), "event", "refunded"), "event must be one of", id="unknown-event"
        ),
    ],
)
def test_malformed_message_is_dead_lettered_with_its_reason(
    aws, invoke, emitted_metrics, body, reason
) -> None:
    record = fifo_record(body, "msg-1", group="c-1")

    response = invoke(sqs_event(record))

    assert response == {"batchItemFailures": []}
    [dead] = aws.dead_letters()
    assert dead["body"] == record["body"]
    assert (dead["group"], dead["deduplication_id"]) == ("c-1", "msg-1")
    assert dead["attributes"]["ErrorReason"].startswith(reason)
    assert dead["attributes"]["SourceMessageId"] == "msg-1"
    assert aws.orders() == {}
    assert emitted_metrics() == {"MalformedMessages": 1, "MessagesDeadLettered": 1}


CREATED = created()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param("[1, 2]", "body is JSON list, not an object", id="json-array"),
        pytest.param('{"total": NaN}', "body is not JSON", id="nan"),
        pytest.param("[" * 100_000 + "]" * 100_000, "body is not JSON", id="absurd-nesting"),
        pytest.param(with_field(CREATED, "event", DELETE), "event must be one of", id="no-event"),
        pytest.param(with_field(CREATED, "event", 1), "event must be one of", id="event-int"),
        pytest.param(with_field(CREATED, "event", "Created"), "event must be", id="event-case"),
        pytest.param(with_field(CREATED, "orderId", DELETE), "orderId must be", id="no-order-id"),
        pytest.param(with_field(CREATED, "orderId", ""), "orderId must be", id="empty-order-id"),
        pytest.param(with_field(CREATED, "orderId", 7), "orderId must be", id="order-id-int"),
        pytest.param(
            with_field(CREATED, "orderId", "o" * 129), "orderId is longer", id="order-id-long"
        ),
        pytest.param(with_field(CREATED, "customerId", DELETE), "customerId", id="no-customer"),
        pytest.param(with_field(CREATED, "items", []), "items must be", id="no-items"),
        pytest.param(with_field(CREATED, "items", {}), "items must be", id="items-object"),
        pytest.param(
            with_field(CREATED, "items", [{"sku": "A", "quantity": 1, "unitPrice": 1}] * 1001),
            f"items has 1001 entries, more than the {MAX_ITEMS}",
            id="too-many-items",
        ),
        pytest.param(with_field(CREATED, "items.1", "B"), "items[1] must be", id="item-str"),
        pytest.param(with_field(CREATED, "items.0.sku", DELETE), "items[0].sku", id="no-sku"),
        pytest.param(with_field(CREATED, "items.0.quantity", 0), "items[0].quantity", id="qty-0"),
        pytest.param(
            with_field(CREATED, "items.0.quantity", 1.5), "items[0].quantity", id="qty-1.5"
        ),
        pytest.param(
            with_field(CREATED, "items.0.quantity", True), "items[0].quantity", id="qty-bool"
        ),
        pytest.param(
            with_field(CREATED, "items.0.quantity", "2"), "items[0].quantity", id="qty-str"
        ),
        pytest.param(
            with_field(CREATED, "items.0.unitPrice", -1), "items[0].unitPrice", id="price-negative"
        ),
        pytest.param(with_field(CREATED, "total", DELETE), "total must be", id="no-total"),
        pytest.param(with_field(CREATED, "total", "19.1"), "total must be", id="total-str"),
        pytest.param(with_field(CREATED, "total", False), "total must be", id="total-bool"),
        pytest.param('{"total": 1e-200}', "event must be", id="event-checked-first"),
        pytest.param(
            '{"orderId": "o-1", "customerId": "c-1", "event": "created", "currency": "EUR",'
            ' "items": [{"sku": "A", "quantity": 1, "unitPrice": 1}], "total": 1e-200}',
            "total cannot be stored exactly as a DynamoDB number",
            id="total-underflow",
        ),
        pytest.param(
            with_field(CREATED, "total", int("9" * 39)), "total cannot be stored", id="39-digits"
        ),
        pytest.param(with_field(CREATED, "currency", DELETE), "currency must be", id="no-currency"),
        pytest.param(with_field(CREATED, "currency", "eur"), "currency must be", id="currency-lc"),
        pytest.param(with_field(paid(), "amount", DELETE), "amount must be", id="no-amount"),
        pytest.param(with_field(paid(), "amount", -0.01), "amount must be", id="amount-negative"),
        pytest.param(with_field(shipped(), "carrier", DELETE), "carrier must be", id="no-carrier"),
        pytest.param(with_field(shipped(), "carrier", 5), "carrier must be", id="carrier-int"),
        pytest.param(
            with_field(shipped(), "trackingNumber", 5), "trackingNumber must be", id="tracking-int"
        ),
    ],
)
def test_invalid_body_is_a_malformed_message(body: Any, reason: str) -> None:
    text = body if isinstance(body, str) else json.dumps(body)

    with pytest.raises(MalformedMessage) as raised:
        parse_event(text)

    assert raised.value.reason.startswith(reason)


def test_unknown_fields_are_ignored_and_tracking_number_is_optional() -> None:
    event = parse_event(json.dumps(shipped(note="fragile")))

    assert event == OrderShipped(order_id="o-1", customer_id="c-1", carrier="DHL")


# ==========================================================================================
# When dead-lettering is not possible, the message fails (never lost)


def test_without_a_dlq_a_permanent_error_fails_and_blocks_only_its_group(
    aws, invoke, monkeypatch, emitted_metrics
) -> None:
    monkeypatch.delenv("DEAD_LETTER_QUEUE_URL")

    response = invoke(batch(paid("o-A", "c-A"), created("o-A2", "c-A"), created("o-B", "c-B")))

    assert failed_ids(response) == ["msg-1", "msg-2"]
    assert aws.statuses() == {"o-B": "created"}
    assert aws.dead_letters() == []
    assert emitted_metrics() == {
        "OutOfOrderRejected": 1,
        "RecordsFailed": 1,
        "RecordsSkipped": 1,
        "OrdersCreated": 1,
    }


def test_failed_dlq_send_fails_the_message(aws, invoke, monkeypatch, emitted_metrics) -> None:
    monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", DLQ_URL.replace(DLQ_NAME, "deleted-dlq.fifo"))

    response = invoke(batch("{not json", created("o-B", "c-B")))

    assert failed_ids(response) == ["msg-1"]
    assert aws.statuses() == {"o-B": "created"}
    assert emitted_metrics() == {"MalformedMessages": 1, "RecordsFailed": 1, "OrdersCreated": 1}


# ==========================================================================================
# Observability and reuse


def test_log_lines_name_the_message_group_and_order(aws, invoke, pipeline_logs) -> None:
    invoke(batch(created("o-1", "c-1")))

    [applied] = [log for log in pipeline_logs if log["message"] == "Order created"]
    assert (applied["message_id"], applied["message_group_id"]) == ("msg-1", "c-1")
    assert (applied["order_id"], applied["order_event"]) == ("o-1", "created")
    assert (applied["status"], applied["version"]) == ("created", 1)


def test_clients_and_settings_are_created_once_and_reused(aws, invoke) -> None:
    assert handler._dynamodb_client.cache_info().currsize == 0, "no client before an event"

    invoke(batch(created("o-1")))
    invoke(batch(created("o-2")))

    assert handler._dynamodb_client.cache_info().misses == 1
    assert handler._settings.cache_info().misses == 1
