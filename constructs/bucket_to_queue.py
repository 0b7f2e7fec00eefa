"""BucketToQueue: an S3 bucket whose object events, filtered by prefix/suffix, go to an SQS queue.

The bucket is secure by default (see :mod:`conveyor.constructs.buckets`). S3 delivers
notifications at least once, unordered, with URL-encoded keys, and sends an ``s3:TestEvent``
when the configuration is written: consumers must expect all four.

When the queue is encrypted with a customer-managed KMS key (``QueueConsumer`` does that),
CDK adds the key-policy statement that lets ``s3.amazonaws.com`` use it, and the queue policy
that lets this bucket — and only this bucket — send. SSE-SQS-encrypted queues also work; a
queue encrypted with the AWS-managed ``alias/aws/sqs`` key cannot receive S3 events (its
policy cannot be changed) and is rejected, as is a FIFO queue (S3 cannot notify one).
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sqs as sqs

from constructs import Construct
from conveyor.constructs.buckets import secure_bucket
from conveyor.constructs.rules import acknowledge, require

AWS_MANAGED_SQS_KEY = "alias/aws/sqs"


class BucketToQueue(Construct):
    """An S3 bucket that notifies ``queue`` of object events.

    Attributes: ``bucket``, ``queue``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        queue: sqs.IQueue,
        events: Sequence[s3.EventType] = (s3.EventType.OBJECT_CREATED,),
        prefix: str | None = None,
        suffixes: Sequence[str] = (),
        server_access_logs_bucket: s3.IBucket | None = None,
        encryption: s3.BucketEncryption = s3.BucketEncryption.S3_MANAGED,
        versioned: bool = True,
        expire_objects_after: Duration | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        auto_delete_objects: bool = False,
    ) -> None:
        """Create the bucket and its notifications.

        :param queue: the destination queue (standard SQS). Required.
        :param events: S3 event types to send. Default: every object-created event.
        :param prefix: only keys starting with this prefix. Default: every key.
        :param suffixes: only keys ending with one of these (one notification per suffix,
            e.g. ``[".jpg", ".png"]``); suffix matching is case-sensitive in S3.
            Default: every key.
        :param server_access_logs_bucket: where the bucket's access logs go. Default: a
            logging bucket created here (pass a shared one when a stack has several buckets).
        :param encryption: Default: SSE-S3.
        :param versioned: keep replaced and deleted uploads as noncurrent versions for 30
            days. Default: on (uploads are originals, not derived data).
        :param expire_objects_after: delete objects after this long. Default: keep them.
        :param removal_policy: Default: RETAIN.
        :param auto_delete_objects: empty the bucket on stack deletion; needs DESTROY.
            Default: off.
        """
        super().__init__(scope, construct_id)
        path = self.node.path
        require(len(events) > 0, path, "events must name at least one S3 event type")
        require(
            not queue.fifo,
            path,
            "S3 cannot send notifications to a FIFO queue: use a standard queue",
        )
        require(
            _queue_key_id(queue) != AWS_MANAGED_SQS_KEY,
            path,
            "the queue uses the AWS-managed alias/aws/sqs key, whose policy cannot let S3 "
            "encrypt messages: use a customer-managed key (QueueConsumer's default) or SSE-SQS",
        )
        duplicates = {s for s in suffixes if list(suffixes).count(s) > 1}
        require(not duplicates, path, f"duplicate suffixes: {sorted(duplicates)}")

        if server_access_logs_bucket is None:
            server_access_logs_bucket = secure_bucket(
                self,
                "AccessLogs",
                server_access_logs_bucket=None,
                expire_objects_after=Duration.days(90),
                removal_policy=removal_policy,
                auto_delete_objects=auto_delete_objects,
            )
        self.queue = queue
        self.bucket = secure_bucket(
            self,
            "Bucket",
            server_access_logs_bucket=server_access_logs_bucket,
            server_access_logs_prefix=f"{construct_id}/",
            encryption=encryption,
            versioned=versioned,
            expire_objects_after=expire_objects_after,
            removal_policy=removal_policy,
            auto_delete_objects=auto_delete_objects,
        )
        destination = s3n.SqsDestination(queue)
        filters = [s3.NotificationKeyFilter(prefix=prefix, suffix=s) for s in suffixes] or [
            s3.NotificationKeyFilter(prefix=prefix)
        ]
        for event in events:
            for key_filter in filters:
                if key_filter.prefix is None and key_filter.suffix is None:
                    self.bucket.add_event_notification(event, destination)
                else:
                    self.bucket.add_event_notification(event, destination, key_filter)
        _acknowledge_notifications_handler(self)


def _queue_key_id(queue: sqs.IQueue) -> str | None:
    """The KMS key id of a queue defined in this app (None when imported or not KMS)."""
    cfn = queue.node.default_child
    if isinstance(cfn, sqs.CfnQueue) and isinstance(cfn.kms_master_key_id, str):
        return cfn.kms_master_key_id
    return None


def _acknowledge_notifications_handler(scope: Construct) -> None:
    """Acknowledge the findings on CDK's singleton bucket-notifications handler.

    CDK writes S3 notification configurations through a custom resource whose Lambda
    (``BucketNotificationsHandler…``) it defines once per stack, with the AWS-managed basic
    execution policy; its role is not configurable from outside. (Its
    ``s3:PutBucketNotification`` grant is already scoped to this bucket.)
    """
    stack = Stack.of(scope)
    for child in stack.node.children:
        if child.node.id.startswith("BucketNotificationsHandler"):
            role = child.node.try_find_child("Role")
            if role is None:  # pragma: no cover - CDK internals changed
                continue
            acknowledge(
                role,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AWSLambdaBasicExecutionRole]",
                "CDK's bucket-notifications custom resource role; it only writes its own logs "
                "and cannot be given a custom policy.",
            )
