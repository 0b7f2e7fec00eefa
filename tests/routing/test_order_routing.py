"""Order events: publish to the synthesized topic deployed by the sandbox deployer, observe.

Which subscriber receives what is decided by moto with the filter policies of the real
template: SQS subscribers are the deployed queues, the invoice/user Lambda subscriptions are
the deployer's internal queues (see conftest). The e-mail subscription is not delivered by
the sandbox (the deployer reports it skipped): a probe queue stands in for it, subscribed with
the template's own filter policy.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

CONSUMERS = ("payment", "inventory", "shipping", "notification")


def _email_probe(routing: Any) -> str:
    """A queue subscribed like the e-mail subscription (its template filter policy)."""
    topic = routing.stack.outputs["TopicArn"]
    (subscription,) = [
        r["Properties"]
        for r in routing.stack.template["Resources"].values()
        if r["Type"] == "AWS::SNS::Subscription"
        and r["Properties"]["Protocol"] == "email"
        and routing.stack.resources[r["Properties"]["TopicArn"]["Ref"]].physical_id == topic
    ]
    sqs = routing.client("sqs")
    url = sqs.create_queue(QueueName="email-probe")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    routing.client("sns").subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=arn["QueueArn"],
        Attributes={"FilterPolicy": json.dumps(subscription["FilterPolicy"])},
    )
    return str(url)


@pytest.fixture
def routing(deployed):
    routing = deployed("OrderEvents")
    outputs = routing.stack.outputs
    queues = {name: outputs[f"{name.capitalize()}QueueUrl"] for name in CONSUMERS}
    queues["large_orders"] = outputs["LargeOrdersQueueUrl"]
    queues["invoice"] = routing.function_queue("order_events.routing.invoice_handler")
    queues["user"] = routing.function_queue("order_events.routing.user_handler")
    queues["email"] = _email_probe(routing)
    sns = routing.client("sns")

    def publish(body: dict[str, Any], event_type: str | None) -> None:
        attributes = (
            {"eventType": {"DataType": "String", "StringValue": event_type}}
            if event_type is not None
            else {}
        )
        sns.publish(
            TopicArn=outputs["TopicArn"], Message=json.dumps(body), MessageAttributes=attributes
        )

    def received() -> dict[str, int]:
        return {name: len(routing.drain(url)) for name, url in queues.items()}

    return publish, received, routing, queues


def test_the_email_subscription_is_reported_as_not_delivered_by_the_sandbox(deployed):
    skipped = deployed("OrderEvents").stack.skipped.values()
    assert any(reason.startswith("protocol email:") for reason in skipped), skipped


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
    publish, _, deployment, queues = routing
    publish(order_placed(150.0), "OrderPlaced")
    (shipping,) = deployment.drain(queues["shipping"])
    (payment,) = deployment.drain(queues["payment"])
    assert json.loads(shipping["Body"]) == order_placed(150.0)
    assert shipping["MessageAttributes"]["eventType"]["StringValue"] == "OrderPlaced"
    envelope = json.loads(payment["Body"])
    assert envelope["Type"] == "Notification"
    assert json.loads(envelope["Message"]) == order_placed(150.0)
