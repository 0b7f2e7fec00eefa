"""Encrypted SQS queues, customer-managed keys that AWS services may write with, and the
dead-letter-queue alarm.

Public building blocks shared by the constructs and usable in your own: every queue Conveyor
creates is KMS-encrypted with a customer-managed key (rotation on) and denies non-TLS access;
a dead-letter queue is acknowledged for cdk-nag SQS3 (it has no DLQ of its own, by design)
and watched by :func:`dead_letter_alarm`.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs

from constructs import Construct
from conveyor.constructs.defaults import (
    DEAD_LETTER_ALARM_PERIOD,
    DEAD_LETTER_RETENTION,
    MAX_RECEIVE_COUNT,
    SOURCE_RETENTION,
)
from conveyor.constructs.rules import acknowledge


def new_key(
    scope: Construct, construct_id: str, *, description: str, removal_policy: RemovalPolicy
) -> kms.Key:
    """A customer-managed key with rotation: unlike AWS-managed keys, its policy can let
    S3, SNS, EventBridge or CloudWatch use it."""
    return kms.Key(
        scope,
        construct_id,
        description=description,
        enable_key_rotation=True,
        removal_policy=removal_policy,
    )


def allow_service_to_encrypt(
    key: kms.IKey, service: str, *, source_arn: str | None = None, sid: str | None = None
) -> None:
    """Let ``service`` (e.g. ``sns.amazonaws.com``) encrypt with ``key`` for this account,
    and only for ``source_arn`` (may end in ``*``) when given — the confused-deputy guard."""
    conditions: dict[str, dict[str, str]] = {
        "StringEquals": {"aws:SourceAccount": Stack.of(key).account}
    }
    if source_arn is not None:
        conditions["ArnLike"] = {"aws:SourceArn": source_arn}
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid=sid,
            principals=[iam.ServicePrincipal(service)],
            actions=["kms:Decrypt", "kms:GenerateDataKey*"],
            resources=["*"],
            conditions=conditions,
        )
    )


def encrypted_queue(
    scope: Construct,
    construct_id: str,
    *,
    key: kms.IKey,
    removal_policy: RemovalPolicy,
    retention_period: Duration,
    fifo: bool = False,
    queue_name: str | None = None,
    content_based_deduplication: bool = False,
    visibility_timeout: Duration | None = None,
    dead_letter_queue: sqs.DeadLetterQueue | None = None,
) -> sqs.Queue:
    """A KMS-encrypted, TLS-only queue (FIFO names get ``.fifo``)."""
    return sqs.Queue(
        scope,
        construct_id,
        queue_name=fifo_name(queue_name, fifo),
        fifo=fifo or None,
        content_based_deduplication=content_based_deduplication or None,
        retention_period=retention_period,
        visibility_timeout=visibility_timeout,
        encryption=sqs.QueueEncryption.KMS,
        encryption_master_key=key,
        enforce_ssl=True,
        dead_letter_queue=dead_letter_queue,
        removal_policy=removal_policy,
    )


def dead_letter_queue(
    scope: Construct,
    construct_id: str,
    *,
    key: kms.IKey,
    removal_policy: RemovalPolicy,
    fifo: bool = False,
    queue_name: str | None = None,
    retention_period: Duration = DEAD_LETTER_RETENTION,
) -> sqs.Queue:
    """An encrypted queue that holds failed messages (14 days by default)."""
    queue = encrypted_queue(
        scope,
        construct_id,
        key=key,
        removal_policy=removal_policy,
        retention_period=retention_period,
        fifo=fifo,
        queue_name=queue_name,
    )
    acknowledge(
        queue,
        "AwsSolutions-SQS3",
        "This queue is a dead-letter queue: a DLQ of a DLQ would only hide failures.",
    )
    return queue


def fifo_name(name: str | None, fifo: bool) -> str | None:
    """FIFO queue and topic names must end in ``.fifo``."""
    if name is None or not fifo or name.endswith(".fifo"):
        return name
    return f"{name}.fifo"


def queue_with_dead_letter(
    scope: Construct,
    construct_id: str,
    *,
    removal_policy: RemovalPolicy,
    key: kms.IKey | None = None,
    retention_period: Duration = SOURCE_RETENTION,
    max_receive_count: int = MAX_RECEIVE_COUNT,
) -> tuple[sqs.Queue, sqs.Queue]:
    """A standalone encrypted queue (for a consumer outside this app) and a DLQ after
    ``max_receive_count`` receives: ``(queue, dead_letter_queue)``. Default key: a new one."""
    key = key or new_key(
        scope,
        f"{construct_id}Key",
        description=f"Encrypts {scope.node.path}/{construct_id} and its DLQ",
        removal_policy=removal_policy,
    )
    dlq = dead_letter_queue(
        scope, f"{construct_id}DeadLetterQueue", key=key, removal_policy=removal_policy
    )
    queue = encrypted_queue(
        scope,
        construct_id,
        key=key,
        removal_policy=removal_policy,
        retention_period=retention_period,
        dead_letter_queue=sqs.DeadLetterQueue(queue=dlq, max_receive_count=max_receive_count),
    )
    return queue, dlq


def dead_letter_alarm(
    scope: Construct, construct_id: str, *, queue: sqs.IQueue, description: str
) -> cloudwatch.Alarm:
    """An alarm on the first message waiting in ``queue`` (a dead-letter queue): the maximum
    visible depth each minute above 0. Missing data is not breaching (SQS stops emitting
    metrics for an idle queue). ``description`` says whose DLQ it is and what to do."""
    return cloudwatch.Alarm(
        scope,
        construct_id,
        alarm_description=description,
        metric=queue.metric_approximate_number_of_messages_visible(
            period=DEAD_LETTER_ALARM_PERIOD, statistic="Maximum"
        ),
        threshold=0,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluation_periods=1,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )
