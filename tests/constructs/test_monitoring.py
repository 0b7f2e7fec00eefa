"""Monitoring, AlarmTopic and Remediation: alarms with actions, thresholds, discovery, rules."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk.assertions import Template

from conveyor.constructs.event_router import EventRouter, Target
from conveyor.constructs.fan_out_topic import FanOutTopic
from conveyor.constructs.functions import AsyncFunction
from conveyor.constructs.idempotency_table import IdempotencyTable
from conveyor.constructs.monitoring import AlarmThresholds, AlarmTopic, Monitoring, Remediation
from conveyor.constructs.queue_consumer import QueueConsumer
from tests.template_helpers import logical_id

CODE = lambda_.Code.from_inline("def handler(event, context):\n    return {}\n")
FN = {"code": CODE, "handler": "index.handler"}


@pytest.fixture(scope="module")
def stack(make_app) -> Stack:
    stack = Stack(make_app(), "MonitoringTest")
    consumer = QueueConsumer(stack, "Orders", function_timeout=Duration.seconds(20), **FN)
    topic = FanOutTopic(stack, "Events")
    topic.add_queue("Audit", queue=sqs.Queue(stack, "AuditQueue"))
    router = EventRouter(stack, "Router")
    router.add_rule(
        "All", pattern={"source": ["app"]}, targets=[Target.queue(sqs.Queue(stack, "Sink"))]
    )
    IdempotencyTable(stack, "Idempotency")
    AsyncFunction(stack, "Notifier", **FN)
    lambda_.Function(stack, "Plain", runtime=lambda_.Runtime.PYTHON_3_14, **FN)
    api = apigateway.RestApi(stack, "Api", deploy=True)
    api.root.add_method("GET", apigateway.MockIntegration())
    sfn.StateMachine(
        stack, "Flow", definition_body=sfn.DefinitionBody.from_chainable(sfn.Pass(stack, "Go"))
    )
    alarms = AlarmTopic(stack, "Alarms", emails=["ops@example.com"], sms_numbers=["+33612345678"])
    monitoring = Monitoring(
        stack,
        "Monitoring",
        alarm_topic=alarms.topic,
        dashboard_name="MonitoringTest",
        thresholds=AlarmThresholds(queue_max_messages=50),
    )
    monitoring.watch_scope(stack)
    monitoring.watch_queue_consumer(consumer)  # a second call changes nothing
    Remediation(stack, "Remediation", alarm_topic=alarms.topic, rules=monitoring.remediation_rules)
    return stack


@pytest.fixture(scope="module")
def template(stack: Stack) -> Template:
    return Template.from_stack(stack)


@pytest.fixture(scope="module")
def alarms(template: Template) -> list[dict[str, Any]]:
    return [a["Properties"] for a in template.find_resources("AWS::CloudWatch::Alarm").values()]


def metric_names(alarm: dict[str, Any]) -> set[str]:
    if "MetricName" in alarm:
        return {alarm["MetricName"]}
    return {
        m["MetricStat"]["Metric"]["MetricName"]
        for m in alarm.get("Metrics", [])
        if "MetricStat" in m
    }


def alarms_on(alarms: list[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    return [a for a in alarms if metric in metric_names(a)]


def test_every_alarm_notifies_the_topic_on_alarm_and_on_ok(alarms, stack):
    topic = {"Ref": logical_id(stack, "Alarms/Topic")}
    assert len(alarms) > 20
    for alarm in alarms:
        assert alarm["AlarmActions"] == [topic], alarm
        assert alarm["OKActions"] == [topic], alarm


def test_idle_resources_do_not_alarm(alarms):
    assert {a["TreatMissingData"] for a in alarms} == {"notBreaching"}


def test_queue_age_and_backlog_with_overridden_threshold(alarms):
    age = alarms_on(alarms, "ApproximateAgeOfOldestMessage")
    size = alarms_on(alarms, "ApproximateNumberOfMessagesVisible")
    assert any(a["Threshold"] == 900 for a in age)
    assert any(a["Threshold"] == 50 for a in size)  # AlarmThresholds(queue_max_messages=50)


def test_dead_letter_queues_alarm_on_any_message(alarms):
    dlq_alarms = [a for a in alarms if a.get("MetricName") == "ApproximateNumberOfMessagesVisible"]
    # Orders (adopted from QueueConsumer), the subscription DLQ, the router DLQ, the
    # Notifier's and the Remediation function's on-failure queues are not all watched: the
    # scope was watched before Remediation existed, so four here.
    assert len(dlq_alarms) == 4
    assert all(a["Threshold"] == 0 for a in dlq_alarms)
    assert all(a["ComparisonOperator"] == "GreaterThanThreshold" for a in dlq_alarms)


def test_functions_alarm_on_errors_throttles_and_duration_near_timeout(alarms):
    assert alarms_on(alarms, "Errors")
    assert alarms_on(alarms, "Throttles")
    durations = alarms_on(alarms, "Duration")
    assert any(a["Threshold"] == 0.9 * 20_000 for a in durations)  # 90 % of Orders' 20 s


def test_routing_topic_table_api_and_state_machine_alarms(alarms):
    assert alarms_on(alarms, "NumberOfNotificationsFailed")
    assert len(alarms_on(alarms, "FailedInvocations")) == 1
    assert len(alarms_on(alarms, "InvocationsSentToDlq")) == 1
    assert alarms_on(alarms, "ReadThrottleEvents") or alarms_on(alarms, "ThrottledRequests")
    assert alarms_on(alarms, "5XXError")
    assert alarms_on(alarms, "ExecutionsFailed")


def test_cdk_internal_functions_are_not_watched(stack, alarms):
    names = json.dumps(alarms)
    assert "BucketNotificationsHandler" not in names


def test_one_dashboard(template):
    assert len(template.find_resources("AWS::CloudWatch::Dashboard")) == 1


def test_alarm_topic_is_encrypted_tls_only_with_email_and_sms(template, stack):
    key = template.to_json()["Resources"][logical_id(stack, "Alarms/Key")]
    principals = [s.get("Principal") for s in key["Properties"]["KeyPolicy"]["Statement"]]
    assert {"Service": "cloudwatch.amazonaws.com"} in principals
    protocols = sorted(
        s["Properties"]["Protocol"]
        for s in template.find_resources("AWS::SNS::Subscription").values()
        if s["Properties"]["TopicArn"] == {"Ref": logical_id(stack, "Alarms/Topic")}
    )
    assert protocols == ["email", "lambda", "sms"]


def remediation_env(template: Template, stack: Stack) -> dict[str, Any]:
    function = template.to_json()["Resources"][logical_id(stack, "Remediation/Function/Function")]
    variables: dict[str, Any] = function["Properties"]["Environment"]["Variables"]
    return variables


def test_remediation_rules_pair_dlq_alarms_with_incidents_and_errors_with_redrive(template, stack):
    env = remediation_env(template, stack)
    parameter_id = logical_id(stack, "Remediation/Rules")
    assert env["REMEDIATION_RULES_PARAMETER"] == {"Ref": parameter_id}
    parameter = template.to_json()["Resources"][parameter_id]["Properties"]
    assert parameter["Tier"] == "Intelligent-Tiering"
    rules = json.dumps(parameter["Value"])
    assert rules.count('\\"action\\":\\"record_incident\\"') == 4
    assert rules.count('\\"action\\":\\"redrive\\"') == 1
    assert logical_id(stack, "Orders/DeadLetterAlarm") in rules
    assert logical_id(stack, "Orders/Queue") in rules


def test_remediation_may_move_messages_from_the_dlq_to_the_source_queue_only(template, stack):
    policy = template.to_json()["Resources"][
        logical_id(stack, "Remediation/Function/Role/DefaultPolicy")
    ]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    dlq = {"Fn::GetAtt": [logical_id(stack, "Orders/DeadLetterQueue"), "Arn"]}
    source = {"Fn::GetAtt": [logical_id(stack, "Orders/Queue"), "Arn"]}
    on_dlq = {a for s in statements if dlq in _resources(s) for a in _actions(s)}
    on_source = {a for s in statements if source in _resources(s) for a in _actions(s)}
    assert {"sqs:StartMessageMoveTask", "sqs:ListMessageMoveTasks", "sqs:ReceiveMessage"} <= on_dlq
    assert "sqs:SendMessage" in on_source
    assert "sqs:ReceiveMessage" not in on_source


def _resources(statement: dict[str, Any]) -> list[Any]:
    resource = statement["Resource"]
    return resource if isinstance(resource, list) else [resource]


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


def test_remediation_defaults_cap_redrives(template, stack):
    env = remediation_env(template, stack)
    assert env["REDRIVE_MAX_PER_DAY"] == "3"
    assert env["REDRIVE_MAX_MESSAGES_PER_SECOND"] == "10"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"redrive_max_per_day": 0}, "redrive_max_per_day"),
        ({"redrive_messages_per_second": 501}, "redrive_messages_per_second"),
        ({"audit_retention_days": 0}, "audit_retention_days"),
    ],
)
def test_invalid_remediation_options_are_rejected(make_app, options, message):
    stack = Stack(make_app(), "Bad")
    topic = AlarmTopic(stack, "Alarms")
    with pytest.raises(ValueError, match=message):
        Remediation(stack, "Remediation", alarm_topic=topic.topic, rules=[], **options)


def test_invalid_sms_number_is_rejected(make_app):
    with pytest.raises(ValueError, match=r"E\.164"):
        AlarmTopic(Stack(make_app(), "Bad"), "Alarms", sms_numbers=["0612345678"])


def test_remediation_subscription_has_an_encrypted_dead_letter_queue_sns_may_write(make_app):
    stack = Stack(make_app(), "RemediationDlq")
    consumer = QueueConsumer(stack, "Orders", **FN)
    alarms = AlarmTopic(stack, "Alarms", emails=["ops@example.com"])
    monitoring = Monitoring(
        stack, "Monitoring", alarm_topic=alarms.topic, dashboard_name=stack.node.id
    )
    monitoring.watch_queue_consumer(consumer)
    remediation = Remediation(
        stack, "Remediation", alarm_topic=alarms.topic, rules=monitoring.remediation_rules
    )
    template = Template.from_stack(stack)
    dlq_id = stack.get_logical_id(remediation.subscription_dead_letter_queue.node.default_child)
    template.has_resource_properties(
        "AWS::SNS::Subscription",
        {
            "Protocol": "lambda",
            "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]}},
        },
    )
    dlq = template.find_resources("AWS::SQS::Queue")[dlq_id]["Properties"]
    assert "KmsMasterKeyId" in dlq
    # SNS (for this alarm topic only) may encrypt the dead letters with the queue's key.
    keys = template.find_resources("AWS::KMS::Key")
    statements = [s for k in keys.values() for s in k["Properties"]["KeyPolicy"]["Statement"]]
    assert any(s.get("Sid") == "AllowTheAlarmTopicToEncryptDeadLetters" for s in statements)


def test_dead_letter_queue_of_a_queue_without_a_consumer_alarms(make_app):
    """A queue read outside the app (no consumer construct) still gets its DLQ alarm."""
    from conveyor.constructs.queues import queue_with_dead_letter

    stack = Stack(make_app(), "NoConsumer")
    _, dlq = queue_with_dead_letter(stack, "Audit", removal_policy=RemovalPolicy.DESTROY)
    alarms = AlarmTopic(stack, "Alarms", emails=["ops@example.com"])
    monitoring = Monitoring(
        stack, "Monitoring", alarm_topic=alarms.topic, dashboard_name=stack.node.id
    )
    monitoring.watch_scope(stack)
    template = Template.from_stack(stack)
    dlq_id = stack.get_logical_id(dlq.node.default_child)
    depth = [
        a["Properties"]
        for a in template.find_resources("AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"
    ]
    assert len(depth) == 1
    assert depth[0]["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq_id, "QueueName"]}}
    ]
    assert depth[0]["Threshold"] == 0
    assert [r.dead_letter_queue for r in monitoring.remediation_rules] == [dlq]


def test_every_stack_alarms_on_the_dlqs_of_its_consumerless_queues(synthesized):
    """OrderEvents' large-orders queue, PaymentsRouting's audit queue, the saga's outcomes
    queue: every DLQ in every stack has a depth alarm."""
    for stack in synthesized["stacks"].values():
        template = json.loads(
            (synthesized["outdir"] / f"{stack.artifact_id}.template.json").read_text()
        )
        resources = template["Resources"]
        dlqs = {
            r["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
            for r in resources.values()
            if r["Type"] == "AWS::SQS::Queue" and "RedrivePolicy" in r.get("Properties", {})
        }
        alarmed = {
            d["Value"]["Fn::GetAtt"][0]
            for r in resources.values()
            if r["Type"] == "AWS::CloudWatch::Alarm"
            for d in r["Properties"].get("Dimensions", [])
            if d["Name"] == "QueueName"
            and isinstance(d["Value"], dict)
            and "Fn::GetAtt" in d["Value"]
        }
        assert dlqs <= alarmed, (stack.stack_name, sorted(dlqs - alarmed))
