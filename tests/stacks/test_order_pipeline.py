"""The FIFO order pipeline stack: queue, consumer, table and API wiring."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Template

from tests.template_helpers import logical_id


@pytest.fixture(scope="module")
def pipeline(synthesized):
    stack = synthesized["stacks"]["Conveyor-test-OrderPipeline"]
    return stack, Template.from_stack(stack).to_json()


def props(template: dict[str, Any], stack, path: str) -> dict[str, Any]:
    found: dict[str, Any] = template["Resources"][logical_id(stack, path)]["Properties"]
    return found


def test_fifo_queue_with_fifo_dead_letter_queue(pipeline):
    stack, template = pipeline
    queue = props(template, stack, "OrderEvents/Queue")
    dlq = props(template, stack, "OrderEvents/DeadLetterQueue")
    assert queue["FifoQueue"] is True
    assert dlq["FifoQueue"] is True
    assert queue["RedrivePolicy"]["maxReceiveCount"] == 5


def test_consumer_batches_at_most_ten_without_a_window(pipeline):
    _, template = pipeline
    mappings = [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
    ]
    (mapping,) = mappings
    assert mapping["BatchSize"] == 10
    assert "MaximumBatchingWindowInSeconds" not in mapping
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_orders_table_has_pitr_on_demand_and_encryption(pipeline):
    stack, template = pipeline
    table = props(template, stack, "Orders")
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [{"AttributeName": "orderId", "KeyType": "HASH"}]
    (replica,) = table["Replicas"]
    assert replica["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["SSESpecification"]["SSEEnabled"] is True


def test_consumer_writes_orders_with_put_and_update_only(pipeline):
    stack, template = pipeline
    policy = props(template, stack, "OrderEvents/Role/DefaultPolicy")
    dynamo = sorted(
        action
        for statement in policy["PolicyDocument"]["Statement"]
        for action in (
            [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        )
        if action.startswith("dynamodb:")
    )
    assert dynamo == ["dynamodb:PutItem", "dynamodb:UpdateItem"]


def test_consumer_is_told_its_table_and_dlq(pipeline):
    stack, template = pipeline
    variables = props(template, stack, "OrderEvents/Function")["Environment"]["Variables"]
    assert variables["ORDERS_TABLE"] == {"Ref": logical_id(stack, "Orders")}
    assert variables["DEAD_LETTER_QUEUE_URL"] == {
        "Ref": logical_id(stack, "OrderEvents/DeadLetterQueue")
    }


def test_api_is_watched_by_the_monitoring(pipeline):
    _, template = pipeline
    alarms = [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
    ]
    metrics = {
        m["MetricStat"]["Metric"]["MetricName"]
        for a in alarms
        for m in a.get("Metrics", [])
        if "MetricStat" in m
    }
    assert "5XXError" in metrics
    assert "Latency" in metrics
