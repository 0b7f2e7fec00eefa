"""The order-fulfilment saga through the sandbox: the synthesized stack deployed into moto,
executions run by moto's ASL interpreter, Lambda tasks run by the in-process handlers.

Each test places one OrderPlaced event on the bus and checks what the workflow promises.
Expected values come from the order sent and the stock seeded here."""

from __future__ import annotations

import json
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
from conveyor.sandbox.traces import TraceEvent

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
        events: list[TraceEvent] = []
        with Runtime(deployment, session=session, on_event=events.append) as runtime:

            def client(service: str) -> Any:
                return session.client(service, region_name=REGION)

            demo = OrderSagaDemo(client, stack.outputs.__getitem__, runtime, wait_s=30)
            demo.seed_stock()  # SKU-A 10, SKU-B 5, SKU-GONE 0
            demo.trace_events = events  # type: ignore[attr-defined]
            demo.stack = stack  # type: ignore[attr-defined]
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


def test_a_redelivered_order_placed_event_starts_no_second_execution_and_is_not_retried(saga):
    """EventBridge delivers at least once. The sandbox names an execution after its event, so
    the redelivered copy meets ExecutionAlreadyExists: it is traced as a duplicate and deleted
    (not left to be retried forever), and the order is charged and reserved once."""
    run = saga.place(order("o-11", "tok_ok", [("SKU-B", 1)]))
    route = next(r for r in saga.stack.routes if r.kind == "stepfunctions")
    sfn, sqs = saga.client("stepfunctions"), saga.client("sqs")
    event = sfn.describe_execution(executionArn=run.arn)["input"]
    sqs.send_message(QueueUrl=route.queue_url, MessageBody=event)  # the redelivery

    saga.runtime.pump()

    executions = sfn.list_executions(stateMachineArn=saga.output("StateMachineArn"))["executions"]
    assert [e["executionArn"] for e in executions] == [run.arn]
    kinds = [e.kind for e in saga.trace_events if e.route == route.source]
    assert kinds.count("execution") == 1
    assert kinds.count("duplicate") == 1
    queued = sqs.get_queue_attributes(
        QueueUrl=route.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]["ApproximateNumberOfMessages"]
    assert queued == "0"
    assert saga.available("SKU-B") == 4
    assert saga.order_item("o-11")["paymentAttempts"] == {"N": "1"}


def test_the_history_text_shows_retries_and_the_compensation_path(saga):
    run = saga.place(order("o-9", "tok_refund_fails", [("SKU-GONE", 1)]))
    text = "\n".join(describe_history(run))

    assert "✗ OutOfStock (attempt 1)" in text
    assert "→ RefundPayment  (compensation)" in text
    assert "✗ RefundRejected" in text
    assert "■ FAILED CompensationFailed" in text


def test_the_history_text_shows_each_state_input_output_and_each_retry_on_its_own_line(saga):
    run = saga.place(order("o-10", "tok_flaky", [("SKU-B", 1)]))
    lines = describe_history(run, width=400)

    read = next(line for line in lines if "→ ReadOrder" in line)
    assert '"detail-type":"OrderPlaced"' in read  # the first state shows the event it got
    entered = next(line for line in lines if "→ ProcessPayment" in line)
    assert entered.endswith("→ ProcessPayment")  # its input is ReadOrder's output: not repeated
    stock = next(line for line in lines if "→ ReserveStock" in line)
    assert stock.endswith('in {"orderId":"o-10","line":{"sku":"SKU-B","quantity":1}}')
    failed, retried = (
        next(line for line in lines if "✗ TransientError" in line),
        next(line for line in lines if "↻" in line),
    )
    assert "(attempt 1)" in failed
    assert retried.endswith("↻ ProcessPayment: retry 1 after TransientError")
    assert lines.index(failed) < lines.index(retried)
    exited = next(line for line in lines if "← ProcessPayment" in line)
    # ResultPath $.payment: the state adds the payment and keeps the order
    assert '+payment={"status":"CHARGED","paymentId":"pay-o-10"}' in exited
    assert "+order" not in exited
    assert [line.split("⋯ ")[1] for line in lines if "⋯" in line] == ["UpdateInventory[0]"]
    assert sum("↻" in line for line in lines) == 1  # only the payment was retried


def test_retry_waits_are_scaled_down_in_the_sandbox():
    assert STEP_FUNCTIONS_RETRY_SCALE == 0.01
    assert contract.TRANSIENT_ERROR == "TransientError"


def _outcome_events(saga: OrderSagaDemo) -> list[dict[str, Any]]:
    """Every outcome event the OrderOutcomes rule delivered to the outcomes queue (drained)."""
    sqs, url = saga.client("sqs"), saga.output("OutcomesQueueUrl")
    events: list[dict[str, Any]] = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            events.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return events


def _second_execution(saga: OrderSagaDemo, run: Any, name: str) -> Any:
    sfn = saga.client("stepfunctions")
    again = sfn.start_execution(
        stateMachineArn=saga.output("StateMachineArn"),
        name=name,
        input=sfn.describe_execution(executionArn=run.arn)["input"],
    )
    return saga.wait(again["executionArn"])


def test_two_executions_of_the_same_order_publish_one_order_fulfilled(saga):
    """Each execution used to publish its own OrderFulfilled: the outcome is now claimed on the
    order's item (conditional write) and the execution that loses the claim publishes nothing."""
    run = saga.place(order("o-12", "tok_ok", [("SKU-A", 1)]))
    second = _second_execution(saga, run, "o-12-redelivered")

    assert (run.status, second.status) == ("SUCCEEDED", "SUCCEEDED")
    events = _outcome_events(saga)
    assert [(e["detail-type"], e["detail"]["orderId"]) for e in events] == [
        ("OrderFulfilled", "o-12")
    ]
    assert events[0]["detail"]["execution"] == run.arn  # the first execution published it
    assert "PublishFulfilled" not in second.entered()
    assert second.entered()[-1] == "FulfilledAlreadyPublished"
    assert saga.order_item("o-12")["outcomePublished"] == {"S": "OrderFulfilled"}


def test_two_executions_of_a_declined_order_publish_one_order_failed(saga):
    run = saga.place(order("o-13", "tok_declined", [("SKU-A", 1)]))
    second = _second_execution(saga, run, "o-13-redelivered")

    assert (run.status, second.status) == ("SUCCEEDED", "SUCCEEDED")
    assert [(e["detail-type"], e["detail"]["orderId"]) for e in _outcome_events(saga)] == [
        ("OrderFailed", "o-13")
    ]
    assert second.entered()[-1] == "DeclinedAlreadyPublished"


def test_two_executions_of_a_compensated_order_publish_one_order_failed(saga):
    run = saga.place(order("o-14", "tok_ok", [("SKU-GONE", 1)]))
    second = _second_execution(saga, run, "o-14-redelivered")

    assert (run.status, second.status) == ("SUCCEEDED", "SUCCEEDED")
    assert [(e["detail-type"], e["detail"]["orderId"]) for e in _outcome_events(saga)] == [
        ("OrderFailed", "o-14")
    ]
    assert second.entered()[-1] == "FailedAlreadyPublished"
