"""The order events and payments routing stacks: the course wiring in the template.

Which events reach which subscriber is proven in tests/routing; here, the configuration."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from conveyor.stacks.order_events import CONSUMERS
from conveyor.stacks.payments_routing import HIGH_VALUE_INVOICES
from tests.template_helpers import logical_id


@pytest.fixture(scope="module")
def orders(synthesized):
    stack = synthesized["stacks"]["Conveyor-test-OrderEvents"]
    return stack, Template.from_stack(stack)


@pytest.fixture(scope="module")
def payments(synthesized):
    stack = synthesized["stacks"]["Conveyor-test-PaymentsRouting"]
    return stack, Template.from_stack(stack)


def env_of(template: Template, stack, path: str) -> dict[str, Any]:
    function = template.to_json()["Resources"][logical_id(stack, path)]
    variables: dict[str, Any] = function["Properties"]["Environment"]["Variables"]
    return variables


def test_each_service_consumer_is_told_its_name_table_and_dead_letter_queue(orders):
    stack, template = orders
    table = {"Ref": logical_id(stack, "Idempotency/Table")}
    for name in CONSUMERS:
        variables = env_of(template, stack, f"OrderEvents/{name.capitalize()}/Function")
        assert variables["CONSUMER_NAME"] == name
        assert variables["IDEMPOTENCY_TABLE"] == table
        assert "DEAD_LETTER_QUEUE_URL" in variables


def test_notification_email_from_context_is_subscribed_to_order_placed(orders):
    _, template = orders
    template.has_resource_properties(
        "AWS::SNS::Subscription",
        {
            "Protocol": "email",
            "Endpoint": "orders@example.com",
            "FilterPolicy": {"eventType": ["OrderPlaced"]},
        },
    )


def test_routed_functions_retry_twice_then_keep_failures_in_their_queue(orders):
    stack, template = orders
    for name in ("Invoice", "User"):
        function_id = logical_id(stack, f"{name}/Function")
        failure_arn = {"Fn::GetAtt": [logical_id(stack, f"{name}/FailureQueue"), "Arn"]}
        template.has_resource_properties(
            "AWS::Lambda::EventInvokeConfig",
            {
                "FunctionName": {"Ref": function_id},
                "MaximumRetryAttempts": 2,
                "MaximumEventAgeInSeconds": 6 * 3600,
                "DestinationConfig": {"OnFailure": {"Destination": failure_arn}},
            },
        )


def test_idempotency_table_matches_powertools_with_pitr_and_ttl(orders):
    _, template = orders
    template.has_resource_properties(
        "AWS::DynamoDB::GlobalTable",
        {
            "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
            "BillingMode": "PAY_PER_REQUEST",
            "TimeToLiveSpecification": {"AttributeName": "expiration", "Enabled": True},
            "Replicas": [
                Match.object_like(
                    {"PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True}}
                )
            ],
        },
    )


def test_consumers_may_use_only_the_four_item_actions_on_the_table(orders):
    stack, template = orders
    policy = template.to_json()["Resources"][
        logical_id(stack, "OrderEvents/Payment/Role/DefaultPolicy")
    ]
    table_statements = [
        s
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if any("dynamodb:" in a for a in s["Action"])
    ]
    assert len(table_statements) == 1
    assert sorted(table_statements[0]["Action"]) == [
        "dynamodb:DeleteItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
    ]


def test_high_value_rule_is_the_course_pattern_and_targets_review(payments):
    stack, template = payments
    rule = template.to_json()["Resources"][logical_id(stack, "Payments/HighValueInvoices")]
    assert rule["Properties"]["EventPattern"] == HIGH_VALUE_INVOICES
    (target,) = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [logical_id(stack, "HighValueReview/Function"), "Arn"]}


def test_review_threshold_matches_the_rule(payments):
    stack, template = payments
    variables = env_of(template, stack, "HighValueReview/Function")
    bound = HIGH_VALUE_INVOICES["detail"]["montant"][0]["numeric"][1]  # type: ignore[index]
    assert variables["REVIEW_THRESHOLD"] == str(bound)


def test_audit_rule_sends_every_app_paiement_event_to_the_audit_queue(payments):
    stack, template = payments
    rule = template.to_json()["Resources"][logical_id(stack, "Payments/AuditAllPaymentEvents")]
    assert rule["Properties"]["EventPattern"] == {"source": ["app.paiement"]}
    (target,) = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [logical_id(stack, "Audit"), "Arn"]}
