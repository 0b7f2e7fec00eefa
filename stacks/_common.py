"""Pieces every topology stack shares."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions

from constructs import Construct
from conveyor.constructs._queues import allow_service_to_encrypt, new_key


def alarm_topic(scope: Construct, email: str | None, removal_policy: RemovalPolicy) -> sns.Topic:
    """A KMS-encrypted, TLS-only topic that CloudWatch alarms can publish to."""
    key = new_key(
        scope,
        "AlarmKey",
        description="Encrypts the alarm topic; CloudWatch may use it to publish",
        removal_policy=removal_policy,
    )
    allow_service_to_encrypt(key, "cloudwatch.amazonaws.com", sid="AllowCloudWatchAlarmsToPublish")
    topic = sns.Topic(scope, "AlarmTopic", master_key=key, enforce_ssl=True)
    if email:
        topic.add_subscription(subscriptions.EmailSubscription(email))
    return topic
