"""The image pipeline stack: wiring, configuration and least privilege."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk import RemovalPolicy
from aws_cdk.assertions import Match, Template

from conveyor.settings import Settings
from conveyor.stacks.image_pipeline import IMAGE_SUFFIXES, ImagePipelineStack
from conveyor.topologies import build


@pytest.fixture(scope="module")
def stack(synthesized) -> ImagePipelineStack:
    stack = synthesized["stacks"]["Conveyor-test-ImagePipeline"]
    assert isinstance(stack, ImagePipelineStack)
    return stack


@pytest.fixture(scope="module")
def template(stack) -> Template:
    return Template.from_stack(stack)


def lid(stack, construct) -> str:
    return stack.get_logical_id(construct.node.default_child)


def statements(template: Template, stack: ImagePipelineStack) -> list[dict[str, Any]]:
    role = stack.consumer.function.role
    policy = role.node.find_child("DefaultPolicy")
    props = template.to_json()["Resources"][lid(stack, policy)]["Properties"]
    return props["PolicyDocument"]["Statement"]


def test_uploads_of_each_image_suffix_notify_the_resize_queue(template, stack):
    queue_arn = {"Fn::GetAtt": [lid(stack, stack.consumer.queue), "Arn"]}
    config = template.find_resources("Custom::S3BucketNotifications")
    (notifications,) = config.values()
    queue_configs = notifications["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    suffixes = [c["Filter"]["Key"]["FilterRules"][0]["Value"] for c in queue_configs]
    assert sorted(suffixes) == sorted(IMAGE_SUFFIXES)
    assert all(c["QueueArn"] == queue_arn for c in queue_configs)
    assert all(c["Events"] == ["s3:ObjectCreated:*"] for c in queue_configs)


def test_resize_function_gets_its_configuration_from_the_settings(template, stack):
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": "image_resize.handler.handler",
            "Timeout": 60,
            "MemorySize": 1024,
            "Layers": [Match.any_value()],
            "Environment": {
                "Variables": {
                    "DESTINATION_BUCKET": {"Ref": lid(stack, stack.processed_bucket)},
                    "THUMBNAIL_SIZES": "64,256",
                    "OUTPUT_PREFIX": "thumbnails/",
                    "DEAD_LETTER_QUEUE_URL": {"Ref": lid(stack, stack.consumer.dead_letter_queue)},
                    "POWERTOOLS_SERVICE_NAME": "image-resize",
                    "POWERTOOLS_METRICS_NAMESPACE": "Conveyor/ImagePipeline",
                }
            },
        },
    )


def test_resize_function_records_its_dead_letter_copies_in_a_ledger_table(template, stack):
    """One DLQ copy per malformed message (issue 17): the function gets a table with the
    Powertools idempotency layout, its name as IDEMPOTENCY_TABLE, and may read and write it."""
    table = lid(stack, stack.dead_letter_ledger.table)
    template.has_resource_properties(
        "AWS::DynamoDB::GlobalTable",
        {
            "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
            "TimeToLiveSpecification": {"AttributeName": "expiration", "Enabled": True},
        },
    )
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": "image_resize.handler.handler",
            "Environment": {"Variables": {"IDEMPOTENCY_TABLE": {"Ref": table}}},
        },
    )
    actions = {
        action
        for statement in statements(template, stack)
        if any(table in str(resource) for resource in _as_list(statement["Resource"]))
        for action in _as_list(statement["Action"])
    }
    assert {"dynamodb:GetItem", "dynamodb:PutItem"} <= actions


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_queue_visibility_is_six_times_the_resize_timeout(template, stack):
    queue = template.to_json()["Resources"][lid(stack, stack.consumer.queue)]
    assert queue["Properties"]["VisibilityTimeout"] == 360


def test_function_reads_uploads_and_writes_only_under_thumbnails(template, stack):
    uploads_arn = {"Fn::GetAtt": [lid(stack, stack.uploads.bucket), "Arn"]}
    processed_arn = {"Fn::GetAtt": [lid(stack, stack.processed_bucket), "Arn"]}
    s3_statements = [s for s in statements(template, stack) if str(s["Action"]).startswith("s3:")]
    assert sorted(s3_statements, key=lambda s: s["Action"]) == [
        {
            "Action": "s3:GetObject",
            "Effect": "Allow",
            "Resource": {"Fn::Join": ["", [uploads_arn, "/*"]]},
        },
        {"Action": "s3:ListBucket", "Effect": "Allow", "Resource": uploads_arn},
        {
            "Action": "s3:PutObject",
            "Effect": "Allow",
            "Resource": {"Fn::Join": ["", [processed_arn, "/thumbnails/*"]]},
        },
    ]


def test_dead_letter_alarm_notifies_the_alarm_topic_and_email(template, stack):
    topic_ref = {"Ref": lid(stack, stack.operations.alarms.topic)}
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "MetricName": "ApproximateNumberOfMessagesVisible",
            "AlarmActions": [topic_ref],
            "OKActions": [topic_ref],
            "TreatMissingData": "notBreaching",
        },
    )
    template.has_resource_properties(
        "AWS::SNS::Subscription",
        {"Protocol": "email", "Endpoint": "ops@example.com", "TopicArn": topic_ref},
    )


def test_alarm_topic_is_encrypted_with_a_key_cloudwatch_may_use(template, stack):
    topic = template.to_json()["Resources"][lid(stack, stack.operations.alarms.topic)]["Properties"]
    key_id = topic["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key_policy = template.to_json()["Resources"][key_id]["Properties"]["KeyPolicy"]
    cloudwatch = [
        s
        for s in key_policy["Statement"]
        if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert len(cloudwatch) == 1
    assert set(cloudwatch[0]["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}


def test_sandbox_buckets_are_emptied_and_deleted_with_the_stack(template, stack):
    resources = template.to_json()["Resources"]
    for bucket in (stack.uploads.bucket, stack.processed_bucket):
        assert resources[lid(stack, bucket)]["DeletionPolicy"] == "Delete"
    assert len(template.find_resources("Custom::S3AutoDeleteObjects")) == 3


def test_outputs_name_what_a_user_needs_to_try_the_pipeline(template):
    outputs = template.to_json()["Outputs"]
    for name in ("UploadBucketName", "ProcessedBucketName", "QueueUrl", "DeadLetterQueueUrl"):
        assert name in outputs


def test_retained_environment_keeps_data_and_subscribes_no_email(make_app):
    app = make_app()
    stacks = build(app, Settings(environment="prod", removal_policy=RemovalPolicy.RETAIN))
    stack = next(s for s in stacks if isinstance(s, ImagePipelineStack))
    template = Template.from_stack(stack)
    buckets = template.find_resources("AWS::S3::Bucket")
    assert {b["DeletionPolicy"] for b in buckets.values()} == {"Retain"}
    assert template.find_resources("Custom::S3AutoDeleteObjects") == {}
    protocols = [
        r["Properties"]["Protocol"]
        for r in template.find_resources("AWS::SNS::Subscription").values()
    ]
    assert protocols == ["lambda"]  # only the remediation function: no e-mail, no SMS
    assert stack.stack_name == "Conveyor-prod-ImagePipeline"
