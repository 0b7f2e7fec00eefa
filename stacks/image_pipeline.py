"""The course's asynchronous image pipeline: Upload S3 → SQS → Lambda (resize) → S3 (processed).

Composition only: the patterns live in ``conveyor.constructs``; the resize logic in the
``lambdas/image_resize`` asset.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from aws_cdk import CfnElement, CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3

from constructs import Construct
from conveyor.constructs.assets import LAMBDAS_DIR, handler_code
from conveyor.constructs.bucket_to_queue import BucketToQueue
from conveyor.constructs.buckets import access_logs_bucket, secure_bucket
from conveyor.constructs.checkov import checkov_skip
from conveyor.constructs.idempotency_table import IdempotencyTable
from conveyor.constructs.queue_consumer import QueueConsumer
from conveyor.constructs.rules import acknowledge
from conveyor.lambdas.handler_kit.handler_kit import contract as kit
from conveyor.lambdas.image_resize.image_resize import contract
from conveyor.stacks._common import dependencies_layer, operate

# stacks/ and lambdas/ are siblings both in the repo and in the installed conveyor package.
ASSET = LAMBDAS_DIR / "image_resize"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".JPG", ".JPEG", ".PNG", ".WEBP")
OUTPUT_PREFIX = "thumbnails/"
FUNCTION_TIMEOUT = Duration.seconds(60)


class ImagePipelineStack(Stack):
    """Uploads bucket → queue → resize Lambda → processed bucket, with a DLQ and its alarm.

    Attributes: ``uploads`` (BucketToQueue), ``processed_bucket``, ``consumer``
    (QueueConsumer), ``dead_letter_ledger`` (IdempotencyTable: the function's dead-letter
    ledger), ``operations`` (alarms, monitoring, remediation).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        thumbnail_sizes: Sequence[int],
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        alarm_emails: Sequence[str] = (),
        alarm_sms: Sequence[str] = (),
        layer_cache_dir: Path | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        destroy = removal_policy == RemovalPolicy.DESTROY

        logs_bucket = access_logs_bucket(
            self, "AccessLogs", removal_policy=removal_policy, auto_delete_objects=destroy
        )

        layer = dependencies_layer(
            self, ASSET, "Pillow and Powertools for the image resize function", layer_cache_dir
        )
        self.processed_bucket = secure_bucket(
            self,
            "Processed",
            server_access_logs_bucket=logs_bucket,
            server_access_logs_prefix="Processed/",
            removal_policy=removal_policy,
            auto_delete_objects=destroy,
            versioned=False,
        )
        checkov_skip(
            self.processed_bucket,
            "CKV_AWS_21",
            "Thumbnails are derived data: each is regenerated from its upload, which the "
            "versioned uploads bucket keeps; versions here would only add storage cost.",
        )
        # The dead-letter ledger: one DLQ copy per malformed message, even when its delete is
        # lost (handler_kit.dead_letter.DeadLetterLedger; Powertools' idempotency layout).
        self.dead_letter_ledger = IdempotencyTable(
            self, "DeadLetterLedger", removal_policy=removal_policy
        )
        self.consumer = QueueConsumer(
            self,
            "Resize",
            code=handler_code(ASSET),
            handler=contract.HANDLER,
            layers=[layer],
            function_timeout=FUNCTION_TIMEOUT,
            memory_size=1024,
            environment={
                contract.DESTINATION_BUCKET: self.processed_bucket.bucket_name,
                contract.THUMBNAIL_SIZES: ",".join(str(size) for size in thumbnail_sizes),
                contract.OUTPUT_PREFIX: OUTPUT_PREFIX,
                kit.POWERTOOLS_SERVICE_NAME: "image-resize",
                kit.POWERTOOLS_METRICS_NAMESPACE: "Conveyor/ImagePipeline",
                **self.dead_letter_ledger.environment,
            },
            allow_direct_dead_lettering=True,
            removal_policy=removal_policy,
        )
        self.uploads = BucketToQueue(
            self,
            "Uploads",
            queue=self.consumer.queue,
            suffixes=IMAGE_SUFFIXES,
            server_access_logs_bucket=logs_bucket,
            removal_policy=removal_policy,
            auto_delete_objects=destroy,
        )
        _grant_least_privilege(self.consumer.function, self.uploads.bucket, self.processed_bucket)
        self.dead_letter_ledger.grant(self.consumer.function)
        _acknowledge_bucket_grants(self, self)
        if destroy:
            _acknowledge_auto_delete_provider(self)

        CfnOutput(self, "UploadBucketName", value=self.uploads.bucket.bucket_name)
        CfnOutput(self, "ProcessedBucketName", value=self.processed_bucket.bucket_name)
        CfnOutput(self, "QueueUrl", value=self.consumer.queue.queue_url)
        CfnOutput(self, "DeadLetterQueueUrl", value=self.consumer.dead_letter_queue.queue_url)
        # What the pipeline promises to write for every image (the demo scenario checks it).
        CfnOutput(
            self,
            "ThumbnailSizes",
            value=",".join(str(size) for size in thumbnail_sizes),
            description="Longest side, in pixels, of each thumbnail written for an upload",
        )
        self.operations = operate(
            self,
            alarm_emails=alarm_emails,
            alarm_sms=alarm_sms,
            removal_policy=removal_policy,
            layer_cache_dir=layer_cache_dir,
        )


def _grant_least_privilege(
    function: lambda_.IFunction, uploads: s3.IBucket, processed: s3.IBucket
) -> None:
    """Exactly what the handler calls — narrower than CDK's ``grant_read``/``grant_put``.

    ``s3:ListBucket`` is what makes S3 answer 404 NoSuchKey (a deleted upload, dropped)
    instead of 403 AccessDenied (retried, then dead-lettered) for a missing key.
    """
    function.add_to_role_policy(
        iam.PolicyStatement(actions=["s3:GetObject"], resources=[uploads.arn_for_objects("*")])
    )
    function.add_to_role_policy(
        iam.PolicyStatement(actions=["s3:ListBucket"], resources=[uploads.bucket_arn])
    )
    function.add_to_role_policy(
        iam.PolicyStatement(
            actions=["s3:PutObject"], resources=[processed.arn_for_objects(f"{OUTPUT_PREFIX}*")]
        )
    )


def _acknowledge_bucket_grants(stack: Stack, pipeline: ImagePipelineStack) -> None:
    """The resize function reads any uploaded key and writes under ``thumbnails/``: object-level
    wildcards are the point of these grants, each limited to one bucket."""
    role = pipeline.consumer.function.role
    policy = role.node.try_find_child("DefaultPolicy") if role else None
    if policy is None:  # pragma: no cover - the grants always create it
        return
    uploads = stack.get_logical_id(cast(CfnElement, pipeline.uploads.bucket.node.default_child))
    processed = stack.get_logical_id(cast(CfnElement, pipeline.processed_bucket.node.default_child))
    acknowledge(
        policy,
        f"AwsSolutions-IAM5[Resource::<{uploads}.Arn>/*]",
        "Reads uploaded objects of the uploads bucket only: every key is a potential image.",
    )
    acknowledge(
        policy,
        f"AwsSolutions-IAM5[Resource::<{processed}.Arn>/{OUTPUT_PREFIX}*]",
        "Writes thumbnails under thumbnails/ of the processed bucket only, with generated keys.",
    )


def _acknowledge_auto_delete_provider(stack: Stack) -> None:
    """CDK's auto-delete-objects provider (sandbox teardown) is not configurable."""
    provider = stack.node.try_find_child("Custom::S3AutoDeleteObjectsCustomResourceProvider")
    if provider is None:  # pragma: no cover
        return
    handler = provider.node.try_find_child("Handler")
    if handler is not None:
        acknowledge(
            handler,
            "AwsSolutions-L1",
            "CDK's auto-delete-objects provider picks its own Node.js runtime.",
        )
