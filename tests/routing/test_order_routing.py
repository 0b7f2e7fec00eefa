"""Order events: publish to the synthesized topic's subscriptions in moto and observe.

Which subscriber receives what is decided by the filter policies of the real template
(see moto_topology). The invoice/user Lambda and e-mail endpoints are SQS probes here: moto
cannot run Lambda without Docker; their handlers are tested directly in tests/lambdas.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.routing.moto_topology import deploy_sns_routing
from tests.template_helpers import logical_id


@pytest.fixture(scope="module")
def stack(synthesized):
    return synthesized["stacks"]["Conveyor-test-OrderEvents"]


@pytest.fixture(scope="module")
def template(synthesized, stack) -> dict[str, Any]:
    return json.loads((synthesized["outdir"] / f"{stack.artifact_id}.template.json").read_text())


@pytest.fixture
def routing(aws_credentials, template, stack):
    with mock_aws():
        sns = boto3.client("sns", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        topics, probes = deploy_sns_routing(template, sns, sqs)
        topic_arn = topics[logical_id(stack, "OrderEvents/Topic")]
        names = {
            name: logical_id(stack, f"OrderEvents/{name.capitalize()}/Queue")
            for name in ("payment", "inventory", "shipping", "notification")
        }
        names["large_orders"] = logical_id(stack, "LargeOrders")
        names["invoice"] = logical_id(stack, "Invoice/Function")
        names["user"] = logical_id(stack, "User/Function")
        names["email"] = "orders_at_example_com"

        def publish(body: dict[str, Any], event_type: str | None) -> None:
            attributes = (
                {"eventType": {"DataType": "String", "StringValue": event_type}}
                if event_type is not None
                else {}
            )
            sns.publish(TopicArn=topic_arn, Message=json.dumps(body), MessageAttributes=attributes)

        def received() -> dict[str, int]:
            return {name: len(probes.drain(probe)) for name, probe in names.items()}

        yield publish, received, probes, names


def order_placed(total: float | None = 150.0) -> dict[str, Any]:
    order: dict[str, Any] = {"orderId": "o-1", "customerId": "c-1", "currency": "EUR"}
    if total is not None:
        order["total"] = total
    return {"eventType": "OrderPlaced", "version": "1.0", "order": order}


def counts(**expected: int) -> dict[str, int]:
    everyone = dict.fromkeys(
        (
            "payment",
            "inventory",
            "shipping",
            "notification",
            "large_orders",
            "invoice",
            "user",
            "email",
        ),
        0,
    )
    return {**everyone, **expected}


SERVICES = {"payment": 1, "inventory": 1, "shipping": 1, "notification": 1, "email": 1}


def test_order_placed_reaches_every_service_and_large_orders(routing):
    publish, received, _, _ = routing
    publish(order_placed(150.0), "OrderPlaced")
    assert received() == counts(**SERVICES, large_orders=1)


def test_payload_filter_boundary_total_100_matches_and_99_99_does_not(routing):
    publish, received, _, _ = routing
    publish(order_placed(100), "OrderPlaced")
    assert received()["large_orders"] == 1
    publish(order_placed(99.99), "OrderPlaced")
    assert received() == counts(**SERVICES)


def test_body_filtered_subscriber_ignores_a_message_without_the_field(routing):
    publish, received, _, _ = routing
    publish(order_placed(None), "OrderPlaced")
    assert received() == counts(**SERVICES)


def test_invoice_and_user_events_reach_only_their_function(routing):
    publish, received, _, _ = routing
    publish({"invoiceId": "i-1", "amount": 10}, "invoice")
    assert received() == counts(invoice=1)
    publish({"userId": "u-1", "action": "created"}, "user")
    assert received() == counts(user=1)


def test_a_message_without_event_type_reaches_nobody(routing):
    publish, received, _, _ = routing
    publish({"orderId": "o-1"}, None)
    assert received() == counts()


def test_unknown_event_type_reaches_nobody(routing):
    publish, received, _, _ = routing
    publish({**order_placed(500), "eventType": "OrderCancelled"}, "OrderCancelled")
    assert received() == counts()


def test_shipping_gets_the_raw_message_others_the_envelope(routing):
    publish, _, probes, names = routing
    publish(order_placed(150.0), "OrderPlaced")
    (shipping,) = probes.drain(names["shipping"])
    (payment,) = probes.drain(names["payment"])
    assert json.loads(shipping["Body"]) == order_placed(150.0)
    assert shipping["MessageAttributes"]["eventType"]["StringValue"] == "OrderPlaced"
    envelope = json.loads(payment["Body"])
    assert envelope["Type"] == "Notification"
    assert json.loads(envelope["Message"]) == order_placed(150.0)
