"""EventRouter: bus, validated patterns, targets with retry policy and DLQ, options."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk.assertions import Annotations, Match, Template

from conveyor.constructs.event_router import EventRouter, Target
from tests.template_helpers import logical_id

CODE = lambda_.Code.from_inline("def handler(event, context):\n    return {}\n")
HIGH_VALUE = {
    "source": ["app.paiement"],
    "detail-type": ["facture"],
    "detail": {"montant": [{"numeric": [">", 5000]}]},
}


@pytest.fixture(scope="module")
def stack(make_app) -> Stack:
    stack = Stack(make_app(), "RouterTest")
    router = EventRouter(
        stack,
        "Payments",
        archive_retention=Duration.days(30),
        archive_pattern={"source": ["app.paiement"], "detail-type": ["facture"]},
        schema_discovery=True,
        allowed_accounts=["111111111111", "222222222222"],
    )
    function = lambda_.Function(
        stack, "Review", code=CODE, handler="index.handler", runtime=lambda_.Runtime.PYTHON_3_14
    )
    router.add_rule(
        "HighValue",
        pattern=HIGH_VALUE,
        targets=[
            Target.function(function),
            Target.queue(sqs.Queue(stack, "Ordered", fifo=True), message_group_id="invoices"),
            Target.topic(sns.Topic(stack, "Alerts")),
            Target.bus(events.EventBus(stack, "Central")),
            Target.api_destination(
                endpoint="https://hooks.example.com/invoices",
                secret=secretsmanager.Secret(stack, "WebhookKey"),
                input=events.RuleTargetInput.from_object(
                    {"id": events.EventField.from_path("$.detail.factureId")}
                ),
            ),
        ],
    )
    router.add_rule(
        "Quick",
        pattern={"source": [{"prefix": "app."}]},
        targets=[Target.queue(sqs.Queue(stack, "Audit"))],
        max_event_age=Duration.minutes(5),
        retry_attempts=3,
    )
    EventRouter(stack, "Plain")
    return stack


@pytest.fixture(scope="module")
def template(stack: Stack) -> Template:
    return Template.from_stack(stack)


def rule(template: Template, stack: Stack, path: str) -> dict[str, Any]:
    props: dict[str, Any] = template.to_json()["Resources"][logical_id(stack, path)]["Properties"]
    return props


def test_rule_on_the_custom_bus_has_exactly_the_validated_pattern(template, stack):
    props = rule(template, stack, "Payments/HighValue")
    assert props["EventBusName"] == {"Ref": logical_id(stack, "Payments/Bus")}
    assert props["EventPattern"] == HIGH_VALUE


def test_every_target_has_the_default_retry_policy_and_the_router_dlq(template, stack):
    dlq_arn = {"Fn::GetAtt": [logical_id(stack, "Payments/DeadLetterQueue"), "Arn"]}
    targets = rule(template, stack, "Payments/HighValue")["Targets"]
    assert len(targets) == 5
    assert all(t["DeadLetterConfig"] == {"Arn": dlq_arn} for t in targets)
    with_retry = [t for t in targets if "RetryPolicy" in t]
    # The bus target has no retry policy in CDK: EventBridge's default (24 h, 185) applies.
    assert len(with_retry) == 4
    assert all(
        t["RetryPolicy"] == {"MaximumEventAgeInSeconds": 86400, "MaximumRetryAttempts": 185}
        for t in with_retry
    )


def test_per_rule_retry_overrides(template, stack):
    (target,) = rule(template, stack, "Payments/Quick")["Targets"]
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 300, "MaximumRetryAttempts": 3}


def test_fifo_queue_target_carries_the_message_group(template, stack):
    targets = rule(template, stack, "Payments/HighValue")["Targets"]
    fifo = next(t for t in targets if "SqsParameters" in t)
    assert fifo["SqsParameters"] == {"MessageGroupId": "invoices"}


def test_api_destination_reads_its_key_from_secrets_manager_not_the_template(template, stack):
    (connection,) = template.find_resources("AWS::Events::Connection").values()
    api_key = connection["Properties"]["AuthParameters"]["ApiKeyAuthParameters"]
    assert api_key["ApiKeyName"] == "x-api-key"
    rendered = str(api_key["ApiKeyValue"])
    assert "{{resolve:secretsmanager:" in rendered
    template.has_resource_properties(
        "AWS::Events::ApiDestination",
        {"InvocationEndpoint": "https://hooks.example.com/invoices", "HttpMethod": "POST"},
    )
    targets = rule(template, stack, "Payments/HighValue")["Targets"]
    transformed = next(t for t in targets if "InputTransformer" in t)
    assert transformed["InputTransformer"]["InputPathsMap"] == {
        "detail-factureId": "$.detail.factureId"
    }


def test_dlq_key_lets_eventbridge_encrypt_for_this_bus_rules_only(template, stack):
    key = template.to_json()["Resources"][logical_id(stack, "Payments/Key")]
    statement = next(
        s
        for s in key["Properties"]["KeyPolicy"]["Statement"]
        if s.get("Sid") == "AllowEventBridgeRulesToEncryptDeadLetters"
    )
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert ":rule/" in str(statement["Condition"]["ArnLike"]["aws:SourceArn"])


def test_archive_keeps_the_pattern_for_the_retention(template, stack):
    (archive,) = template.find_resources("AWS::Events::Archive").values()
    assert archive["Properties"]["RetentionDays"] == 30
    assert archive["Properties"]["EventPattern"] == {
        "source": ["app.paiement"],
        "detail-type": ["facture"],
    }


def test_schema_discovery_on_the_bus(template, stack):
    template.has_resource_properties(
        "AWS::EventSchemas::Discoverer",
        {"SourceArn": {"Fn::GetAtt": [logical_id(stack, "Payments/Bus"), "Arn"]}},
    )


def test_bus_policy_names_each_allowed_account_and_never_everyone(template):
    policies = template.find_resources("AWS::Events::EventBusPolicy")
    statements = [p["Properties"]["Statement"] for p in policies.values()]
    principals = sorted(str(s["Principal"]) for s in statements)
    assert len(statements) == 2
    assert all("111111111111" in p or "222222222222" in p for p in principals)
    assert all(s["Action"] == "events:PutEvents" for s in statements)
    assert "'*'" not in str(principals)


def test_plain_router_has_no_archive_discoverer_or_bus_policy(stack):
    plain = stack.node.find_child("Plain")
    assert isinstance(plain, EventRouter)
    assert plain.archive is None
    assert plain.discoverer is None
    assert plain.rules == {}


@pytest.fixture
def router(make_app):
    stack = Stack(make_app(), "Invalid")
    return stack, EventRouter(stack, "Router")


def targets_for(stack: Stack) -> list[Target]:
    return [Target.queue(sqs.Queue(stack, f"Q{len(stack.node.children)}"))]


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ({"detail": {"montant": [{"numric": [">", 5000]}]}}, "unknown operator 'numric'"),
        ({"source": "app.paiement"}, "array"),
        ({"detail": {"montant": [{"numeric": [">", "5000"]}]}}, "numeric"),
        ({}, "must not be an empty object"),
    ],
)
def test_invalid_patterns_are_rejected_at_synth(router, pattern, message):
    stack, events_router = router
    with pytest.raises(ValueError, match=message):
        events_router.add_rule("R", pattern=pattern, targets=targets_for(stack))


def test_a_top_level_field_outside_the_envelope_is_a_synth_warning(router):
    stack, events_router = router
    rule = events_router.add_rule(
        "Files", pattern={"FileName": [{"suffix": ".png"}]}, targets=targets_for(stack)
    )
    warnings = Annotations.from_stack(stack).find_warning(
        f"/{rule.node.path}", Match.string_like_regexp("'FileName' is outside the event envelope")
    )
    assert len(warnings) == 1
    assert "may never match a custom event" in warnings[0].entry.data
    template = Template.from_stack(stack)
    template.has_resource_properties(
        "AWS::Events::Rule", {"EventPattern": {"FileName": [{"suffix": ".png"}]}}
    )


def test_a_misspelt_envelope_field_is_a_warning_with_the_suggestion(router):
    stack, events_router = router
    rule = events_router.add_rule(
        "Typo", pattern={"detail_type": ["x"]}, targets=targets_for(stack)
    )
    warnings = Annotations.from_stack(stack).find_warning(
        f"/{rule.node.path}", Match.string_like_regexp("did you mean 'detail-type'")
    )
    assert len(warnings) == 1


def test_more_than_five_targets_or_none_are_rejected(router):
    stack, events_router = router
    queues = [Target.queue(sqs.Queue(stack, f"Q{i}")) for i in range(6)]
    with pytest.raises(ValueError, match="1 to 5 targets"):
        events_router.add_rule("Six", pattern=HIGH_VALUE, targets=queues)
    with pytest.raises(ValueError, match="1 to 5 targets"):
        events_router.add_rule("None", pattern=HIGH_VALUE, targets=[])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_event_age": Duration.seconds(59)}, "between 60 seconds and 24 hours"),
        ({"max_event_age": Duration.hours(25)}, "between 60 seconds and 24 hours"),
        ({"retry_attempts": 186}, "between 0 and 185"),
    ],
)
def test_retry_policy_outside_the_service_limits_is_rejected(router, options, message):
    stack, events_router = router
    with pytest.raises(ValueError, match=message):
        events_router.add_rule("R", pattern=HIGH_VALUE, targets=targets_for(stack), **options)


def test_fifo_target_without_group_and_group_on_standard_are_rejected(router):
    stack, events_router = router
    with pytest.raises(ValueError, match="needs message_group_id"):
        events_router.add_rule(
            "F", pattern=HIGH_VALUE, targets=[Target.queue(sqs.Queue(stack, "F", fifo=True))]
        )
    with pytest.raises(ValueError, match="FIFO queues only"):
        events_router.add_rule(
            "S",
            pattern=HIGH_VALUE,
            targets=[Target.queue(sqs.Queue(stack, "S"), message_group_id="g")],
        )


def test_http_api_destination_is_rejected(router):
    stack, events_router = router
    secret = secretsmanager.Secret(stack, "Key")
    with pytest.raises(ValueError, match="https://"):
        events_router.add_rule(
            "A",
            pattern=HIGH_VALUE,
            targets=[Target.api_destination(endpoint="http://example.com", secret=secret)],
        )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"allowed_accounts": ["*"]}, "12-digit account id"),
        ({"allowed_accounts": ["12345"]}, "12-digit account id"),
        ({"archive_pattern": {"source": ["x"]}}, "archive_pattern needs archive_retention"),
        ({"archive_retention": Duration.hours(1)}, "at least one day"),
        ({"retry_attempts": -1}, "between 0 and 185"),
    ],
)
def test_invalid_router_options_are_rejected(make_app, options, message):
    with pytest.raises(ValueError, match=message):
        EventRouter(Stack(make_app(), "Bad"), "Router", **options)
