"""QueueConsumer: defaults, options and every synth-time error path (one synth per module)."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Match, Template

from conveyor.constructs.queue_consumer import QueueConsumer
from tests.template_helpers import deny_insecure_transport, logical_id

CODE = lambda_.Code.from_inline("def handler(event, context):\n    return {}\n")


def consumer_props(**overrides: Any) -> dict[str, Any]:
    return {"code": CODE, "handler": "index.handler", **overrides}


@pytest.fixture(scope="module")
def stack(make_app) -> Stack:
    stack = Stack(make_app(), "QueueConsumerTest")
    topic = sns.Topic(stack, "Alarms")
    QueueConsumer(stack, "Default", **consumer_props())
    QueueConsumer(stack, "Fifo", **consumer_props(fifo=True, queue_name="orders"))
    QueueConsumer(
        stack,
        "Tuned",
        **consumer_props(
            function_timeout=Duration.seconds(20),
            batch_size=100,
            max_batching_window=Duration.seconds(5),
            max_concurrency=5,
            max_receive_count=7,
            allow_direct_dead_lettering=True,
            alarm_actions=[cw_actions.SnsAction(topic)],
            removal_policy=RemovalPolicy.DESTROY,
        ),
    )
    existing = lambda_.Function(
        stack,
        "Existing",
        code=CODE,
        handler="index.handler",
        runtime=lambda_.Runtime.PYTHON_3_14,
        timeout=Duration.seconds(10),
    )
    QueueConsumer(stack, "Reuse", function=existing)
    return stack


@pytest.fixture(scope="module")
def template(stack: Stack) -> Template:
    return Template.from_stack(stack)


def resource(template: Template, stack: Stack, path: str) -> dict[str, Any]:
    resources = template.to_json()["Resources"]
    return resources[logical_id(stack, path)]


def test_default_queue_derives_visibility_from_six_times_the_timeout(template, stack):
    props = resource(template, stack, "Default/Queue")["Properties"]
    assert props["VisibilityTimeout"] == 180  # 6 x 30 s default timeout
    assert props["MessageRetentionPeriod"] == 4 * 24 * 3600


def test_default_dead_letter_queue_after_five_receives_keeps_messages_longer(template, stack):
    queue = resource(template, stack, "Default/Queue")["Properties"]
    dlq_id = logical_id(stack, "Default/DeadLetterQueue")
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]},
        "maxReceiveCount": 5,
    }
    dlq = resource(template, stack, "Default/DeadLetterQueue")["Properties"]
    assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600 > queue["MessageRetentionPeriod"]


def test_both_queues_use_the_constructs_customer_managed_key(template, stack):
    key_id = logical_id(stack, "Default/Key")
    for path in ("Default/Queue", "Default/DeadLetterQueue"):
        props = resource(template, stack, path)["Properties"]
        assert props["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert resource(template, stack, "Default/Key")["Properties"]["EnableKeyRotation"] is True


def test_queue_policies_deny_non_tls_access(template, stack):
    for path in ("Default/Queue", "Default/DeadLetterQueue"):
        queue_id = logical_id(stack, path)
        template.has_resource_properties(
            "AWS::SQS::QueuePolicy",
            {
                "Queues": [{"Ref": queue_id}],
                "PolicyDocument": deny_insecure_transport("sqs:*"),
            },
        )


def test_mapping_reports_batch_item_failures_with_default_batch(template, stack):
    function_id = logical_id(stack, "Default/Function")
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "FunctionName": {"Ref": function_id},
            "BatchSize": 10,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "MaximumBatchingWindowInSeconds": Match.absent(),
            "ScalingConfig": Match.absent(),
        },
    )


def test_default_function_is_python_arm64_with_own_log_group_and_no_managed_policy(template, stack):
    function = resource(template, stack, "Default/Function")["Properties"]
    assert function["Runtime"] == lambda_.Runtime.PYTHON_3_14.name
    assert function["Architectures"] == ["arm64"]
    assert function["Timeout"] == 30
    assert function["LoggingConfig"]["LogGroup"] == {"Ref": logical_id(stack, "Default/LogGroup")}
    log_group = resource(template, stack, "Default/LogGroup")["Properties"]
    assert log_group["RetentionInDays"] == 30
    role = resource(template, stack, "Default/Role")["Properties"]
    assert "ManagedPolicyArns" not in role
    assert "DEAD_LETTER_QUEUE_URL" not in function.get("Environment", {}).get("Variables", {})


def test_default_stateful_resources_are_retained(template, stack):
    for path in ("Default/Queue", "Default/DeadLetterQueue", "Default/Key", "Default/LogGroup"):
        assert resource(template, stack, path)["DeletionPolicy"] == "Retain"


def test_dead_letter_alarm_fires_on_any_message_and_ignores_missing_data(template, stack):
    dlq_id = logical_id(stack, "Default/DeadLetterQueue")
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "MetricName": "ApproximateNumberOfMessagesVisible",
            "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq_id, "QueueName"]}}],
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": 0,
            "TreatMissingData": "notBreaching",
        },
    )


def test_fifo_consumer_has_fifo_queue_and_fifo_dead_letter_queue(template, stack):
    queue = resource(template, stack, "Fifo/Queue")["Properties"]
    dlq = resource(template, stack, "Fifo/DeadLetterQueue")["Properties"]
    assert queue["FifoQueue"] is True
    assert queue["QueueName"] == "orders.fifo"
    assert dlq["FifoQueue"] is True
    assert dlq["QueueName"] == "orders-dlq.fifo"


def test_tuned_options_reach_the_mapping_and_visibility_includes_the_window(template, stack):
    function_id = logical_id(stack, "Tuned/Function")
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "FunctionName": {"Ref": function_id},
            "BatchSize": 100,
            "MaximumBatchingWindowInSeconds": 5,
            "ScalingConfig": {"MaximumConcurrency": 5},
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
        },
    )
    queue = resource(template, stack, "Tuned/Queue")["Properties"]
    assert queue["VisibilityTimeout"] == 6 * 20 + 5
    assert queue["RedrivePolicy"]["maxReceiveCount"] == 7
    assert resource(template, stack, "Tuned/Queue")["DeletionPolicy"] == "Delete"


def test_direct_dead_lettering_gives_the_url_and_send_permission_only(template, stack):
    function = resource(template, stack, "Tuned/Function")["Properties"]
    dlq_id = logical_id(stack, "Tuned/DeadLetterQueue")
    assert function["Environment"]["Variables"]["DEAD_LETTER_QUEUE_URL"] == {"Ref": dlq_id}
    policy_id = logical_id(stack, "Tuned/Role/DefaultPolicy")
    statements = template.to_json()["Resources"][policy_id]["Properties"]["PolicyDocument"][
        "Statement"
    ]
    on_dlq = [s for s in statements if s["Resource"] == {"Fn::GetAtt": [dlq_id, "Arn"]}]
    assert len(on_dlq) == 1
    assert "sqs:SendMessage" in on_dlq[0]["Action"]
    assert "sqs:ReceiveMessage" not in on_dlq[0]["Action"]


def test_alarm_actions_are_attached(template, stack):
    topic_id = logical_id(stack, "Alarms")
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "MetricName": "ApproximateNumberOfMessagesVisible",
            "AlarmActions": [{"Ref": topic_id}],
        },
    )


def test_existing_function_is_used_and_its_timeout_drives_visibility(template, stack):
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {"FunctionName": {"Ref": logical_id(stack, "Existing")}},
    )
    assert resource(template, stack, "Reuse/Queue")["Properties"]["VisibilityTimeout"] == 60
    assert stack.node.find_child("Reuse").node.try_find_child("Function") is None


def test_attributes_expose_the_created_resources(stack):
    consumer = stack.node.find_child("Default")
    assert isinstance(consumer, QueueConsumer)
    assert consumer.queue.node.path.endswith("Default/Queue")
    assert consumer.dead_letter_queue.node.path.endswith("Default/DeadLetterQueue")
    assert consumer.function.node.path.endswith("Default/Function")
    assert consumer.log_group is not None
    assert consumer.dead_letter_alarm is not None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"code": None, "handler": None}, "a consumer is required"),
        ({"handler": None}, "a consumer is required"),
        ({"max_receive_count": 3}, "max_receive_count must be between 5 and 1000"),
        ({"max_receive_count": 1001}, "max_receive_count must be between 5 and 1000"),
        ({"batch_size": 11, "fifo": True}, "batch_size must be between 1 and 10 on a FIFO"),
        ({"batch_size": 0}, "batch_size must be between 1 and 10000"),
        ({"batch_size": 50}, "above 10 needs max_batching_window of at least 1 second"),
        (
            {"batch_size": 50, "max_batching_window": Duration.millis(500)},
            "above 10 needs max_batching_window",
        ),
        (
            {"fifo": True, "max_batching_window": Duration.seconds(1)},
            "not supported on FIFO",
        ),
        ({"max_batching_window": Duration.seconds(301)}, "between 0 and 300 seconds"),
        ({"max_batching_window": Duration.millis(1500)}, "whole seconds"),
        ({"max_concurrency": 1}, "max_concurrency must be between 2 and 1000"),
        (
            {"visibility_timeout": Duration.seconds(179)},
            r"visibility_timeout \(179 s\) must be at least .* \(180 s\)",
        ),
        (
            {"function_timeout": Duration.minutes(15), "max_batching_window": Duration.minutes(5)},
            None,
        ),
        (
            {"dead_letter_retention_period": Duration.days(4)},
            "must be longer than retention_period",
        ),
        (
            {"fifo": True, "dead_letter_retention_period": Duration.days(3)},
            "must be at least retention_period",
        ),
        ({"retention_period": Duration.days(15)}, "between 60 seconds and 14 days"),
        ({"content_based_deduplication": True}, "FIFO queues only"),
    ],
)
def test_invalid_settings_are_rejected_at_synth(make_app, overrides, message):
    stack = Stack(make_app(), "Invalid")
    props = consumer_props(**overrides)
    if message is None:  # the one valid extreme: 6 x 15 min + 5 min = 95 min <= 12 h
        QueueConsumer(stack, "Consumer", **props)
        return
    with pytest.raises(ValueError, match=message):
        QueueConsumer(stack, "Consumer", **props)


def test_fifo_with_equal_dead_letter_retention_is_allowed(make_app):
    stack = Stack(make_app(), "FifoEqual")
    QueueConsumer(
        stack,
        "Consumer",
        **consumer_props(fifo=True, dead_letter_retention_period=Duration.days(4)),
    )


def test_function_and_code_together_are_rejected(make_app):
    stack = Stack(make_app(), "Both")
    existing = lambda_.Function(
        stack, "Fn", code=CODE, handler="index.handler", runtime=lambda_.Runtime.PYTHON_3_14
    )
    with pytest.raises(ValueError, match="either an existing function or code"):
        QueueConsumer(stack, "Consumer", function=existing, code=CODE, handler="index.handler")


def test_imported_function_needs_an_explicit_timeout(make_app):
    stack = Stack(make_app(), "Imported")
    imported = lambda_.Function.from_function_arn(
        stack, "Fn", "arn:aws:lambda:us-east-1:111111111111:function:elsewhere"
    )
    with pytest.raises(ValueError, match="timeout is unknown"):
        QueueConsumer(stack, "Consumer", function=imported)
    consumer = QueueConsumer(
        stack, "WithTimeout", function=imported, function_timeout=Duration.seconds(40)
    )
    assert consumer.log_group is None
