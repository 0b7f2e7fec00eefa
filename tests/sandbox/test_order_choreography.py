"""The order choreography through the sandbox: the synthesized stack deployed into moto, each
service's rules on the one bus delivering to its own function (asynchronous invocation),
every service publishing its own events. Expected values come from the orders placed and
the stock seeded here."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import moto
import pytest

from conveyor.lambdas.choreography.choreography import contract
from conveyor.sandbox.choreography import ChoreographyDemo, CorrelationTrace
from conveyor.sandbox.deployer import deploy
from conveyor.sandbox.model import REGION
from conveyor.sandbox.runtime import Runtime
from conveyor.sandbox.scenarios import stack_for

STACK = "Conveyor-test-OrderChoreography"
SERVICES = {"commande", "stock", "facturation", "notification"}


@pytest.fixture
def choreography(synthesized, monkeypatch) -> Iterator[tuple[ChoreographyDemo, CorrelationTrace]]:
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
        stack = stack_for(deployment, "OrderChoreography")
        trace = CorrelationTrace()
        with Runtime(deployment, session=session, on_event=trace) as runtime:

            def client(service: str) -> Any:
                return session.client(service, region_name=REGION)

            demo = ChoreographyDemo(client, stack.outputs.__getitem__, runtime, stack=STACK)
            demo.tap()
            demo.seed_stock({"SKU-A": 10, "SKU-B": 1})
            yield demo, trace


def test_an_order_in_stock_is_reserved_invoiced_and_the_customer_notified(choreography):
    demo, _ = choreography
    placed = demo.place("o-1", "c-1", [("SKU-A", 2, 1500), ("SKU-B", 1, 500)])

    assert demo.order_status("o-1") == "CREATED"
    assert (demo.available("SKU-A"), demo.available("SKU-B")) == (8, 0)
    assert demo.invoice("o-1") == ("ISSUED", 3500)
    assert demo.notifications("o-1") == [contract.INVOICE_CREATED, contract.STOCK_UPDATED]
    published = sorted((e["source"], e["detail-type"]) for e in demo.published())
    assert published == sorted(
        [
            (contract.SOURCES["commande"], contract.ORDER_CREATED),
            (contract.SOURCES["stock"], contract.STOCK_UPDATED),
            (contract.SOURCES["facturation"], contract.INVOICE_CREATED),
            (contract.SOURCES["notification"], contract.CUSTOMER_NOTIFIED),
            (contract.SOURCES["notification"], contract.CUSTOMER_NOTIFIED),
        ]
    )
    assert placed.correlation_id


def test_the_correlation_id_travels_in_every_event_and_every_log_line(choreography):
    demo, trace = choreography
    placed = demo.place("o-1", "c-1", [("SKU-A", 1, 100)])
    demo.place("o-2", "c-2", [("SKU-A", 1, 100)])

    events = [e["detail"] for e in demo.published() if e["detail"]["orderId"] == "o-1"]
    assert len(events) == 5
    assert {e["correlationId"] for e in events} == {placed.correlation_id}
    created = next(e for e in events if e["type"] == contract.ORDER_CREATED)
    assert created["causationId"] is None
    assert {e["causationId"] for e in events if e["type"] != contract.ORDER_CREATED} >= {
        created["eventId"]
    }
    lines = [line for line in trace.lines() if line.fields.get("order_id") == "o-1"]
    assert {line.service for line in lines} == SERVICES
    assert {line.fields.get("correlation_id") for line in lines} == {placed.correlation_id}
    followed = trace.lines(placed.correlation_id)
    assert {line.service for line in followed} == SERVICES
    assert all(line.fields.get("order_id") in (None, "o-1") for line in followed)


def test_stock_unavailable_cancels_the_order_voids_the_invoice_and_tells_the_customer(
    choreography,
):
    demo, _ = choreography
    demo.place("o-2", "c-2", [("SKU-B", 3, 500)])

    assert demo.order_status("o-2") == "CANCELLED"
    assert demo.available("SKU-B") == 1  # nothing reserved
    assert demo.invoice("o-2") == ("VOID", 1500)
    assert contract.ORDER_CANCELLED in demo.notifications("o-2")
    types = [e["detail-type"] for e in demo.published()]
    for expected in (
        contract.STOCK_UNAVAILABLE,
        contract.ORDER_CANCELLED,
        contract.INVOICE_CANCELLED,
    ):
        assert types.count(expected) == 1


def test_a_duplicate_commande_creee_changes_nothing(choreography):
    demo, trace = choreography
    placed = demo.place("o-1", "c-1", [("SKU-A", 2, 1500)])
    seen = demo.published()
    (created,) = [e for e in seen if e["detail-type"] == contract.ORDER_CREATED]
    before = (demo.available("SKU-A"), demo.invoice("o-1"), demo.notifications("o-1"))

    demo.redeliver(created)

    assert (demo.available("SKU-A"), demo.invoice("o-1"), demo.notifications("o-1")) == before
    duplicates = [
        line.service
        for line in trace.lines(placed.correlation_id)
        if line.message.startswith("Duplicate event")
    ]
    assert sorted(duplicates) == ["facturation", "stock"]
    new = demo.published()[len(seen) :]
    assert [e["detail-type"] for e in new] == [contract.ORDER_CREATED]  # only the duplicate


def test_an_event_with_a_broken_envelope_ends_in_the_services_failure_queue(choreography):
    demo, _ = choreography
    demo.client("events").put_events(
        Entries=[
            {
                "EventBusName": demo.output("EventBusName"),
                "Source": contract.SOURCES["commande"],
                "DetailType": contract.ORDER_CREATED,
                "Detail": json.dumps({"orderId": "o-9"}),  # no eventId, type, correlationId
            }
        ]
    )
    demo.runtime.pump()

    assert demo.queue_depth("StockFailureQueueUrl") == 1
    assert demo.queue_depth("FacturationFailureQueueUrl") == 1
    assert demo.available("SKU-A") == 10


def test_a_service_whose_invoke_is_throttled_gets_the_event_in_the_routers_dlq(choreography):
    """EventBridge cannot invoke Stock (throttled on every Invoke): the rule's target retry
    policy of the template (1 hour, 185 attempts) runs out by age in sandbox time, the event
    lands in the router's dead-letter queue with EventBridge's attributes, and the other
    services still get it."""
    demo, _ = choreography
    stock = demo.output("StockFunctionName")
    with demo.runtime.faults.throttle("lambda", "Invoke", target=stock, times=None):
        demo.place("o-20", "c-20", [("SKU-A", 1, 100)])
    assert demo.available("SKU-A") == 10  # Stock never ran
    assert demo.invoice("o-20") is not None  # Facturation did
    sqs = demo.client("sqs")
    (dead,) = sqs.receive_message(
        QueueUrl=demo.output("DeadLetterQueueUrl"),
        MaxNumberOfMessages=10,
        MessageAttributeNames=["All"],
    )["Messages"]
    found = {k: v["StringValue"] for k, v in dead["MessageAttributes"].items()}
    assert found["ERROR_CODE"] == "THROTTLING"
    assert found["EXHAUSTED_RETRY_CONDITION"] == "MaximumEventAgeInSeconds"
    assert found["TARGET_ARN"].endswith(f":function:{stock}")
    assert json.loads(dead["Body"])["detail-type"] == contract.ORDER_CREATED
