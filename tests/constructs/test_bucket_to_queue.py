"""BucketToQueue and the secure bucket defaults (one synth per module)."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from aws_cdk.assertions import Match, Template

from conveyor.constructs.bucket_to_queue import BucketToQueue
from conveyor.constructs.buckets import secure_bucket
from tests.template_helpers import deny_insecure_transport, logical_id


@pytest.fixture(scope="module")
def stack(make_app) -> Stack:
    stack = Stack(make_app(), "BucketToQueueTest")
    key = kms.Key(stack, "QueueKey")
    queue = sqs.Queue(stack, "Queue", encryption=sqs.QueueEncryption.KMS, encryption_master_key=key)
    BucketToQueue(stack, "Images", queue=queue, prefix="incoming/", suffixes=[".jpg", ".png"])
    plain = sqs.Queue(stack, "PlainQueue", encryption=sqs.QueueEncryption.SQS_MANAGED)
    BucketToQueue(
        stack,
        "Sandbox",
        queue=plain,
        removal_policy=RemovalPolicy.DESTROY,
        auto_delete_objects=True,
    )
    return stack


@pytest.fixture(scope="module")
def template(stack: Stack) -> Template:
    return Template.from_stack(stack)


def lid(stack: Stack, *path: str) -> str:
    return logical_id(stack, "/".join(path))


def bucket_props(template: Template, logical_id: str) -> dict[str, Any]:
    return template.to_json()["Resources"][logical_id]["Properties"]


def test_bucket_blocks_public_access_encrypts_and_disables_acls(template, stack):
    props = bucket_props(template, lid(stack, "Images", "Bucket"))
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"] == [
        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
    ]
    assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]


def test_bucket_policy_denies_non_tls_requests(template, stack):
    template.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "Bucket": {"Ref": lid(stack, "Images", "Bucket")},
            "PolicyDocument": deny_insecure_transport("s3:*"),
        },
    )


def test_bucket_logs_to_its_own_logging_bucket_by_default(template, stack):
    props = bucket_props(template, lid(stack, "Images", "Bucket"))
    logs_id = lid(stack, "Images", "AccessLogs")
    assert props["LoggingConfiguration"] == {
        "DestinationBucketName": {"Ref": logs_id},
        "LogFilePrefix": "Images/",
    }
    log_rules = bucket_props(template, logs_id)["LifecycleConfiguration"]["Rules"]
    assert {"ExpirationInDays": 90, "Status": "Enabled"} in log_rules


def test_incomplete_multipart_uploads_are_aborted(template, stack):
    rules = bucket_props(template, lid(stack, "Images", "Bucket"))["LifecycleConfiguration"]
    assert {"AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}, "Status": "Enabled"} in (
        rules["Rules"]
    )


def test_one_notification_per_suffix_with_the_prefix(template, stack):
    queue_arn = {"Fn::GetAtt": [lid(stack, "Queue"), "Arn"]}
    template.has_resource_properties(
        "Custom::S3BucketNotifications",
        {
            "BucketName": {"Ref": lid(stack, "Images", "Bucket")},
            "NotificationConfiguration": {
                "QueueConfigurations": [
                    {
                        "Events": ["s3:ObjectCreated:*"],
                        "QueueArn": queue_arn,
                        "Filter": {
                            "Key": {
                                "FilterRules": [
                                    {"Name": "suffix", "Value": suffix},
                                    {"Name": "prefix", "Value": "incoming/"},
                                ]
                            }
                        },
                    }
                    for suffix in (".jpg", ".png")
                ]
            },
        },
    )


def test_queue_policy_lets_only_this_bucket_send(template, stack):
    template.has_resource_properties(
        "AWS::SQS::QueuePolicy",
        {
            "Queues": [{"Ref": lid(stack, "Queue")}],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Allow",
                                "Principal": {"Service": "s3.amazonaws.com"},
                                "Action": Match.array_with(["sqs:SendMessage"]),
                                "Condition": {
                                    "ArnLike": {
                                        "aws:SourceArn": {
                                            "Fn::GetAtt": [lid(stack, "Images", "Bucket"), "Arn"]
                                        }
                                    }
                                },
                            }
                        )
                    ]
                )
            },
        },
    )


def test_customer_managed_key_lets_s3_encrypt_messages(template, stack):
    template.has_resource_properties(
        "AWS::KMS::Key",
        {
            "KeyPolicy": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Allow",
                                "Principal": {"Service": "s3.amazonaws.com"},
                                "Action": Match.array_with(["kms:GenerateDataKey*"]),
                            }
                        )
                    ]
                )
            }
        },
    )


def test_no_filter_means_every_key(template, stack):
    template.has_resource_properties(
        "Custom::S3BucketNotifications",
        {
            "BucketName": {"Ref": lid(stack, "Sandbox", "Bucket")},
            "NotificationConfiguration": {
                "QueueConfigurations": [
                    {
                        "Events": ["s3:ObjectCreated:*"],
                        "QueueArn": {"Fn::GetAtt": [lid(stack, "PlainQueue"), "Arn"]},
                    }
                ]
            },
        },
    )


def test_buckets_are_retained_by_default_and_destroyed_with_auto_delete_on_request(template, stack):
    resources = template.to_json()["Resources"]
    assert resources[lid(stack, "Images", "Bucket")]["DeletionPolicy"] == "Retain"
    assert resources[lid(stack, "Sandbox", "Bucket")]["DeletionPolicy"] == "Delete"
    auto_delete = template.find_resources("Custom::S3AutoDeleteObjects")
    targets = {r["Properties"]["BucketName"]["Ref"] for r in auto_delete.values()}
    assert lid(stack, "Sandbox", "Bucket") in targets
    assert lid(stack, "Images", "Bucket") not in targets


def test_attributes_expose_bucket_and_queue(stack):
    construct = stack.node.find_child("Images")
    assert isinstance(construct, BucketToQueue)
    assert construct.bucket.node.path.endswith("Images/Bucket")
    assert construct.queue is stack.node.find_child("Queue")


def new_stack(make_app) -> Stack:
    return Stack(make_app(), "Invalid")


def test_fifo_queue_is_rejected(make_app):
    stack = new_stack(make_app)
    queue = sqs.Queue(stack, "Q", fifo=True)
    with pytest.raises(ValueError, match="S3 cannot send notifications to a FIFO queue"):
        BucketToQueue(stack, "B", queue=queue)


def test_aws_managed_queue_key_is_rejected(make_app):
    stack = new_stack(make_app)
    queue = sqs.Queue(stack, "Q", encryption=sqs.QueueEncryption.KMS_MANAGED)
    with pytest.raises(ValueError, match="AWS-managed alias/aws/sqs key"):
        BucketToQueue(stack, "B", queue=queue)


def test_auto_delete_without_destroy_is_rejected(make_app):
    stack = new_stack(make_app)
    with pytest.raises(ValueError, match="auto_delete_objects needs removal_policy"):
        BucketToQueue(stack, "B", queue=sqs.Queue(stack, "Q"), auto_delete_objects=True)


def test_empty_events_and_duplicate_suffixes_are_rejected(make_app):
    stack = new_stack(make_app)
    queue = sqs.Queue(stack, "Q")
    with pytest.raises(ValueError, match="at least one S3 event type"):
        BucketToQueue(stack, "B1", queue=queue, events=[])
    with pytest.raises(ValueError, match="duplicate suffixes"):
        BucketToQueue(stack, "B2", queue=queue, suffixes=[".jpg", ".jpg"])


def test_aws_managed_bucket_key_is_rejected(make_app):
    stack = new_stack(make_app)
    with pytest.raises(ValueError, match="KMS_MANAGED"):
        secure_bucket(
            stack,
            "B",
            server_access_logs_bucket=None,
            encryption=s3.BucketEncryption.KMS_MANAGED,
        )
