"""Whole topologies, through the sandbox: the real synthesized templates deployed into moto and
the real handlers run in-process. Each test deploys only the stack it exercises."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import moto
import pytest

from conveyor.sandbox.deployer import deploy
from conveyor.sandbox.model import REGION, Deployment
from conveyor.sandbox.runtime import Runtime
from conveyor.sandbox.scenarios import SCENARIOS, stack_for
from conveyor.sandbox.vtl import render, resolve_join
from tests.support.aws import fake_aws_env


@pytest.fixture
def sandbox(synthesized, monkeypatch, local_brokers) -> Iterator[Any]:
    """``sandbox("OrderPipeline")`` → (deployment, runtime, session) for that stack only."""
    fake_aws_env(monkeypatch)
    runtimes: list[Runtime] = []
    with moto.mock_aws():

        def start(topology: str) -> tuple[Deployment, Runtime, Any]:
            session = boto3.session.Session(region_name=REGION)
            deployment = deploy(
                Path(synthesized["outdir"]),
                session=session,
                stack_names=[f"Conveyor-test-{topology}"],
                brokers=local_brokers,
            )
            runtime = Runtime(deployment, session=session)
            runtimes.append(runtime)
            return deployment, runtime, session

        yield start
        for runtime in runtimes:
            runtime.close()


@pytest.mark.parametrize("scenario_type", SCENARIOS, ids=lambda s: s.topology)
def test_each_topologys_demo_scenario_observes_its_expected_outcome(sandbox, scenario_type):
    """Image → thumbnails; OrderPlaced → exactly the matching subscribers; only the 6000
    invoice is reviewed, 5000 is not; the order pipeline's API mapping → order shipped."""
    deployment, runtime, session = sandbox(scenario_type.topology)
    checks = scenario_type(deployment, runtime, session).run()
    failed = [c for c in checks if not c.ok]
    assert checks
    assert failed == []


def _remove_function(deployment: Deployment, topology: str, handler: str, **env: str) -> None:
    """What a deployer that lost a function would leave: no spec, no route to it."""
    stack = stack_for(deployment, topology)
    (logical_id,) = [
        lid
        for lid, spec in stack.functions.items()
        if spec.handler == handler and all(spec.environment.get(k) == v for k, v in env.items())
    ]
    del stack.functions[logical_id]
    stack.routes = [r for r in stack.routes if r.function_logical_id != logical_id]


@pytest.mark.parametrize(
    ("topology", "handler", "env", "failing_check"),
    [
        ("ImagePipeline", "image_resize.handler.handler", {}, "thumbnails written"),
        (
            "OrderEvents",
            "order_events.handler.handler",
            {"CONSUMER_NAME": "shipping"},
            "every service consumer received both deliveries",
        ),
        (
            "OrderEvents",
            "order_events.routing.user_handler",
            {},
            "invoice and user functions deployed",
        ),
        ("PaymentsRouting", "payments.review.handler", {}, "review invoked for 6000 only"),
        ("OrderPipeline", "order_pipeline.handler.handler", {}, "order went created"),
    ],
)
def test_a_demo_scenario_fails_when_a_function_of_its_topology_is_missing(
    sandbox, topology, handler, env, failing_check
):
    """Expected values come from what the topology promises, not from what was deployed."""
    deployment, _, session = sandbox(topology)
    _remove_function(deployment, topology, handler, **env)
    (scenario_type,) = [s for s in SCENARIOS if s.topology == topology]
    with Runtime(deployment, session=session) as runtime:
        checks = scenario_type(deployment, runtime, session).run()
    failed = [c.name for c in checks if not c.ok]
    assert any(name.startswith(failing_check) for name in failed), failed


def test_a_demo_scenario_fails_when_an_output_it_relies_on_is_missing(sandbox, capsys):
    from conveyor.sandbox.scenarios import run_all

    deployment, runtime, session = sandbox("ImagePipeline")
    del stack_for(deployment, "ImagePipeline").outputs["ThumbnailSizes"]
    ((topology, checks),) = run_all(deployment, runtime, session)
    assert topology == "ImagePipeline"
    assert [(c.name, c.ok) for c in checks] == [("scenario ran to the end", False)]
    assert "KeyError" in checks[0].observed


def depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def test_a_poison_message_lands_in_the_dlq_after_max_receive_count(sandbox):
    """An S3 event for a bucket that does not exist: the resize handler cannot tell it from a
    transient fault, reports a batch item failure each time, and SQS redrives it after 5."""
    deployment, runtime, session = sandbox("ImagePipeline")
    stack = stack_for(deployment, "ImagePipeline")
    sqs = session.client("sqs")
    event = {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "bucket": {"name": "no-such-bucket", "arn": "arn:aws:s3:::no-such-bucket"},
                    "object": {"key": "photo.jpg", "size": 10, "eTag": "abc"},
                },
            }
        ]
    }
    sqs.send_message(QueueUrl=stack.outputs["QueueUrl"], MessageBody=json.dumps(event))
    report = runtime.pump()
    assert depth(sqs, stack.outputs["DeadLetterQueueUrl"]) == 1
    assert depth(sqs, stack.outputs["QueueUrl"]) == 0
    (stats,) = [s for s in report.functions.values() if s.records_failed]
    assert stats.records_failed == 5  # maxReceiveCount
    assert report.moved_to_dlq == 1


def send_order(sqs: Any, request: str, body: dict[str, Any]) -> None:
    rendered, _ = render(request, json.dumps(body))
    sqs.send_message(**json.loads(rendered))


def test_a_fifo_group_stays_ordered_when_one_record_fails(sandbox):
    """Group A's out-of-order 'paid' is a permanent error, but its DLQ is unreachable (deleted
    for the test), so the record fails and A's later record waits behind it while group B goes
    on. Once the DLQ is back, A resumes in order: the failed record goes to the DLQ first."""
    deployment, runtime, session = sandbox("OrderPipeline")
    stack = stack_for(deployment, "OrderPipeline")
    sqs, dynamodb = session.client("sqs"), session.client("dynamodb")
    post = next(
        r["Properties"]["Integration"]["RequestTemplates"]["application/json"]
        for r in stack.template["Resources"].values()
        if r["Type"] == "AWS::ApiGateway::Method" and r["Properties"]["HttpMethod"] == "POST"
    )
    request = resolve_join(post, {lid: r.physical_id for lid, r in stack.resources.items()})
    dlq_url = next(
        spec.environment["DEAD_LETTER_QUEUE_URL"]
        for spec in stack.functions.values()
        if "ORDERS_TABLE" in spec.environment
    )
    dlq_name = dlq_url.rsplit("/", 1)[1]
    dlq_attributes = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["All"])
    sqs.delete_queue(QueueUrl=dlq_url)

    created = {
        "items": [{"sku": "A", "quantity": 1, "unitPrice": 5}],
        "total": 5,
        "currency": "EUR",
    }
    send_order(sqs, request, {"orderId": "a-1", "customerId": "A", "event": "paid", "amount": 5})
    send_order(sqs, request, {"orderId": "a-2", "customerId": "A", "event": "created", **created})
    send_order(sqs, request, {"orderId": "b-1", "customerId": "B", "event": "created", **created})
    send_order(sqs, request, {"orderId": "b-1", "customerId": "B", "event": "paid", "amount": 5})
    first = runtime.pump(until_idle=False, max_rounds=1)  # one delivery, DLQ unreachable
    assert first.records_failed == 2  # a-1 (its DLQ send failed) and a-2 behind it

    table = stack.outputs["OrdersTableName"]

    def status(order_id: str) -> str | None:
        item = dynamodb.get_item(TableName=table, Key={"orderId": {"S": order_id}}).get("Item")
        return item["status"]["S"] if item else None

    assert status("b-1") == "paid"  # group B was not blocked
    assert status("a-2") is None  # A's later record waited behind the failing one

    attributes = {
        k: v
        for k, v in dlq_attributes["Attributes"].items()
        if k in ("FifoQueue", "ContentBasedDeduplication", "MessageRetentionPeriod")
    }
    sqs.create_queue(QueueName=dlq_name, Attributes=attributes)
    runtime.pump()

    assert status("a-2") == "created"
    (dead,) = sqs.receive_message(
        QueueUrl=dlq_url, MessageAttributeNames=["All"], MaxNumberOfMessages=10
    )["Messages"]
    assert json.loads(dead["Body"])["orderId"] == "a-1"
    assert (
        "created" in dead["MessageAttributes"]["ErrorReason"]["StringValue"].lower()
        or dead["MessageAttributes"]["ErrorReason"]["StringValue"]
    )
