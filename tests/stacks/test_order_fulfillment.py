"""The order-fulfilment stack's state machine in the template: each outcome event is published
after a conditional claim on the order's item, so that one OrderPlaced delivered twice (two
executions) yields one outcome event. Behaviour: tests/sandbox/test_order_fulfillment.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from aws_cdk.assertions import Template

from tests.template_helpers import logical_id

# Which claim guards which publish, and where the execution that loses it ends.
OUTCOMES = {
    "Fulfilled": "OrderFulfilled",
    "Failed": "OrderFailed",
    "Declined": "OrderFailed",
}


@pytest.fixture(scope="module")
def fulfillment(synthesized):
    stack = synthesized["stacks"]["Conveyor-test-OrderFulfillment"]
    return stack, Template.from_stack(stack)


def _definition(template: Template) -> dict[str, Any]:
    (machine,) = template.find_resources("AWS::StepFunctions::StateMachine").values()
    definition = machine["Properties"]["DefinitionString"]
    if isinstance(definition, str):
        return dict(json.loads(definition))
    parts = definition["Fn::Join"][1]
    text = "".join(p if isinstance(p, str) else json.dumps(p).replace('"', "'") for p in parts)
    return dict(json.loads(text))


def _states(definition: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in definition["States"].items():
        yield name, state
        for branch in state.get("Branches", []):
            yield from _states(branch)
        for key in ("Iterator", "ItemProcessor"):
            if key in state:
                yield from _states(state[key])


def test_every_outcome_publish_follows_a_conditional_claim_on_the_order(fulfillment):
    stack, template = fulfillment
    states = dict(_states(_definition(template)))
    orders = logical_id(stack, "Orders")
    for name, detail_type in OUTCOMES.items():
        claim = states[f"Claim{name}Outcome"]
        assert claim["Resource"].endswith(":states:::dynamodb:updateItem"), name
        assert claim["Next"] == f"Publish{name}"
        parameters = claim["Parameters"]
        assert orders in parameters["TableName"], name
        assert parameters["Key"] == {"orderId": {"S.$": "$.order.orderId"}}
        assert parameters["ConditionExpression"] == "attribute_not_exists(#published)"
        assert parameters["ExpressionAttributeNames"]["#published"] == "outcomePublished"
        assert parameters["ExpressionAttributeValues"][":outcome"] == {"S": detail_type}
        (catch,) = claim["Catch"]
        assert catch["ErrorEquals"] == ["DynamoDB.ConditionalCheckFailedException"]
        assert states[catch["Next"]]["Type"] == "Succeed"
        retried = {e for r in claim["Retry"] for e in r["ErrorEquals"]}
        assert "DynamoDB.ConditionalCheckFailedException" not in retried  # a lost claim is final
        publish = states[f"Publish{name}"]
        assert publish["Resource"].endswith(":states:::events:putEvents"), name
        assert publish["Parameters"]["Entries"][0]["DetailType"] == detail_type
    publishes = [n for n, s in states.items() if str(s.get("Resource", "")).endswith("putEvents")]
    assert sorted(publishes) == sorted(f"Publish{name}" for name in OUTCOMES)


def test_the_state_machine_may_update_the_orders_table(fulfillment):
    """The claim is the state machine's own call (the steps' roles grant GetItem too)."""
    stack, template = fulfillment
    orders = logical_id(stack, "Orders")
    statements = [
        s
        for policy in template.find_resources("AWS::IAM::Policy").values()
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s.get("Action") == "dynamodb:UpdateItem" and orders in json.dumps(s.get("Resource"))
    ]
    assert statements
