"""The order-fulfilment saga through the sandbox: the synthesized stack deployed into moto,
executions run by moto's ASL interpreter, Lambda tasks run by the in-process handlers.

Each test places one OrderPlaced event on the bus and checks what the workflow promises.
Expected values come from the order sent and the stock seeded here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import moto
import pytest

from conveyor.lambdas.fulfillment.fulfillment import contract
from conveyor.sandbox.deployer import deploy
from conveyor.sandbox.model import REGION
from conveyor.sandbox.runtime import STEP_FUNCTIONS_RETRY_SCALE, Runtime
from conveyor.sandbox.sagas import OrderSagaDemo, describe_history, order
from conveyor.sandbox.scenarios import stack_for

STACK = "Conveyor-test-OrderFulfillment"


@pytest.fixture
def saga(synthesized, monkeypatch) -> Iterator[OrderSagaDemo]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    with moto.mock_aws():
        session = boto3.session.Session(region_name=REGION)
        deployment = deploy(Path(synthesized["outdir"]), session=session, stack_names=[STACK])
        stack = stack_for(deployment, "OrderFulfillment")
        with Runtime(deployment, session=session) as runtime:

            def client(service: str) -> Any:
                return session.client(service, region_name=REGION)

            demo = OrderSagaDemo(client, stack.outputs.__getitem__, runtime, wait_s=30)
            demo.seed_stock()  # SKU-A 10, SKU-B 5, SKU-GONE 0
            yield demo


def test_an_order_in_stock_is_paid_reserved_shipped_and_announced(saga):
    run = saga.place(order("o-1", "tok_ok", [("SKU-A", 2), ("SKU-B", 1)]))

    assert run.status == "SUCCEEDED"
    assert saga.order_item("o-1")["status"] == {"S": "SHIPPED"}
    assert (saga.available("SKU-A"), saga.available("SKU-B")) == (8, 4)
    assert run.entered().count("ReserveStock") == 2  # the Map ran once per line
    assert {"UpdateInventory", "ReserveShipping", "ShipOrder"} <= set(run.entered())
    assert saga.outcomes() == {"o-1": "OrderFulfilled"}


def test_a_declined_payment_notifies_the_customer_and_touches_no_inventory(saga):
    run = saga.place(order("o-2", "tok_declined", [("SKU-A", 1)]))

    assert run.status == "SUCCEEDED"
    assert run.entered()[-1] == "PaymentDeclined"
    assert "NotifyCustomerDeclined" in run.entered()
    assert "PrepareOrder" not in run.entered()
    assert saga.available("SKU-A") == 10
    assert saga.order_item("o-2")["status"] == {"S": "PAYMENT_DECLINED"}
    assert saga.outcomes() == {"o-2": "OrderFailed"}


def test_out_of_stock_after_payment_cancels_releases_and_refunds_in_reverse_order(saga):
    run = saga.place(order("o-3", "tok_ok", [("SKU-A", 3), ("SKU-GONE", 1)]))

    assert run.status == "SUCCEEDED"
    assert run.task_errors().count("OutOfStock") == 1  # permanent: not retried
    compensations = [
        s for s in run.entered() if s in ("CancelShipping", "ReleaseStock", "RefundPayment")
    ]
    assert compensations == ["CancelShipping", "ReleaseStock", "RefundPayment"]
    item = saga.order_item("o-3")
    assert item["status"] == {"S": "REFUNDED"}
    assert item["shippingStatus"] == {"S": "CANCELLED"}
    assert saga.available("SKU-A") == 10  # the 3 reserved units are back
    assert "reservedSkus" not in item
    assert saga.outcomes() == {"o-3": "OrderFailed"}


def test_the_catch_keeps_the_input_so_compensations_see_the_order_and_the_error(saga):
    run = saga.place(order("o-4", "tok_ok", [("SKU-GONE", 1)]))

    compensated = next(
        e
        for e in run.history
        if e.get("stateEnteredEventDetails", {}).get("name") == "CancelShipping"
    )
    state_input = compensated["stateEnteredEventDetails"]["input"]
    assert '"orderId":"o-4"' in state_input.replace(" ", "")
    assert '"Error":"OutOfStock"' in state_input.replace(" ", "")


def test_a_transient_payment_error_is_retried_then_the_order_ships(saga):
    run = saga.place(order("o-5", "tok_flaky", [("SKU-B", 1)]))

    assert run.status == "SUCCEEDED"
    assert run.task_errors() == ["TransientError"]
    assert run.entered().count("ProcessPayment") == 1  # a retry is not a new state entry
    item = saga.order_item("o-5")
    assert item["paymentAttempts"] == {"N": "2"}
    assert item["status"] == {"S": "SHIPPED"}


def test_a_failing_compensation_notifies_the_operators_and_fails_the_execution(saga):
    run = saga.place(order("o-6", "tok_refund_fails", [("SKU-A", 1), ("SKU-GONE", 1)]))

    assert run.status == "FAILED"
    assert run.error == "CompensationFailed"
    # (a Parallel branch cancelled by the failure may report its own error in between)
    assert run.task_errors().count("OutOfStock") == 1
    assert run.task_errors()[-1] == "RefundRejected"
    assert run.entered()[-2:] == ["NotifyOperators", "CompensationFailed"]
    assert saga.available("SKU-A") == 10  # the compensations before the refund still ran
    assert saga.order_item("o-6")["paymentStatus"] == {"S": "CHARGED"}
    assert saga.outcomes() == {}  # no OrderFailed: the order is not settled


def test_an_invalid_order_fails_the_payment_step_and_every_compensation_is_a_no_op(saga):
    detail = order("o-7", "tok_ok", [("SKU-A", 1)])
    detail["amount"] = "lots"
    run = saga.place(detail)

    assert run.status == "SUCCEEDED"
    assert run.task_errors() == ["InvalidOrder"]
    assert [s for s in run.entered() if s == "RefundPayment"] == ["RefundPayment"]
    assert saga.available("SKU-A") == 10
    assert saga.outcomes() == {"o-7": "OrderFailed"}


def test_a_duplicate_execution_of_the_same_order_changes_nothing(saga):
    """EventBridge delivers at least once: a second execution for the same OrderPlaced finds
    every step already recorded (conditional writes) and charges, reserves, ships nothing more."""
    run = saga.place(order("o-8", "tok_ok", [("SKU-B", 1)]))
    sfn = saga.client("stepfunctions")
    again = sfn.start_execution(
        stateMachineArn=saga.output("StateMachineArn"),
        name="o-8-redelivered",
        input=sfn.describe_execution(executionArn=run.arn)["input"],
    )
    second = saga.wait(again["executionArn"])

    assert (run.status, second.status) == ("SUCCEEDED", "SUCCEEDED")
    assert saga.available("SKU-B") == 4  # reserved once
    item = saga.order_item("o-8")
    assert item["status"] == {"S": "SHIPPED"}
    assert item["paymentAttempts"] == {"N": "2"}  # both executions asked; one charge recorded


def test_the_history_text_shows_retries_and_the_compensation_path(saga):
    run = saga.place(order("o-9", "tok_refund_fails", [("SKU-GONE", 1)]))
    text = "\n".join(describe_history(run))

    assert "✗ OutOfStock" in text
    assert "→ RefundPayment" in text
    assert "✗ RefundRejected" in text
    assert "■ FAILED CompensationFailed" in text


def test_retry_waits_are_scaled_down_in_the_sandbox():
    assert STEP_FUNCTIONS_RETRY_SCALE == 0.01
    assert contract.TRANSIENT_ERROR == "TransientError"
