"""Secure-by-default S3 buckets shared by the constructs and stacks.

Every bucket: public access blocked, TLS-only policy, encryption at rest, bucket-owner-enforced
object ownership (no ACLs), server access logs to a logging bucket, versioning (an overwritten
or deleted object stays recoverable for 30 days), and ``auto_delete_objects`` only together
with ``RemovalPolicy.DESTROY`` (a sandbox that is torn down with its data). A log bucket is
neither logged nor versioned, and says so to cdk-nag and checkov.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Annotations, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3

from constructs import Construct
from conveyor.constructs.checkov import checkov_skip
from conveyor.constructs.rules import acknowledge, require


def secure_bucket(
    scope: Construct,
    construct_id: str,
    *,
    server_access_logs_bucket: s3.IBucket | None,
    server_access_logs_prefix: str | None = None,
    encryption: s3.BucketEncryption = s3.BucketEncryption.S3_MANAGED,
    versioned: bool = True,
    noncurrent_version_retention: Duration | None = None,
    expire_objects_after: Duration | None = None,
    removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    auto_delete_objects: bool = False,
    lifecycle_rules: Sequence[s3.LifecycleRule] = (),
) -> s3.Bucket:
    """An S3 bucket with the secure defaults above.

    :param server_access_logs_bucket: where access logs go; ``None`` only for a bucket that
        is itself a log destination (see :func:`access_logs_bucket`).
    :param encryption: Default: SSE-S3. ``KMS_MANAGED`` is rejected: the AWS-managed key's
        policy cannot be extended, so other services could not read the objects.
    :param versioned: keep overwritten and deleted objects as noncurrent versions. Default:
        on, except for a log bucket (no ``server_access_logs_bucket``). A caller that turns it
        off says why to checkov: ``checkov_skip(bucket, "CKV_AWS_21", reason)``.
    :param noncurrent_version_retention: how long a noncurrent version is kept. Default: 30 days.
    :param expire_objects_after: delete objects after this long. Default: keep them.
    :param auto_delete_objects: empty the bucket on stack deletion (needs DESTROY).
    """
    path = f"{scope.node.path}/{construct_id}"
    require(
        not auto_delete_objects or removal_policy == RemovalPolicy.DESTROY,
        path,
        "auto_delete_objects needs removal_policy=RemovalPolicy.DESTROY",
    )
    require(
        encryption != s3.BucketEncryption.KMS_MANAGED,
        path,
        "KMS_MANAGED (aws/s3) cannot be shared with other services: use S3_MANAGED or KMS",
    )
    target: s3.IBucket | None = server_access_logs_bucket
    if isinstance(server_access_logs_bucket, s3.Bucket):
        # Log delivery is granted by a bucket policy here, whatever the app's feature flags:
        # without @aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy CDK would grant it with the
        # LogDeliveryWrite ACL, which a bucket-owner-enforced logging bucket refuses.
        target = s3.Bucket.from_bucket_attributes(
            scope,
            f"{construct_id}AccessLogsTarget",
            bucket_arn=server_access_logs_bucket.bucket_arn,
            bucket_name=server_access_logs_bucket.bucket_name,
        )
    log_bucket = server_access_logs_bucket is None
    versioned = versioned and not log_bucket
    rules = list(lifecycle_rules)
    rules.append(s3.LifecycleRule(abort_incomplete_multipart_upload_after=Duration.days(1)))
    if versioned:
        rules.append(
            s3.LifecycleRule(
                noncurrent_version_expiration=noncurrent_version_retention or Duration.days(30)
            )
        )
    if expire_objects_after is not None:
        rules.append(s3.LifecycleRule(expiration=expire_objects_after))
    bucket = s3.Bucket(
        scope,
        construct_id,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        enforce_ssl=True,
        encryption=encryption,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        versioned=versioned,
        server_access_logs_bucket=target,
        server_access_logs_prefix=server_access_logs_prefix,
        lifecycle_rules=rules,
        removal_policy=removal_policy,
        auto_delete_objects=auto_delete_objects,
    )
    if isinstance(server_access_logs_bucket, s3.Bucket):
        _allow_log_delivery(server_access_logs_bucket, bucket, server_access_logs_prefix)
        Annotations.of(bucket).acknowledge_warning(
            "@aws-cdk/aws-s3:accessLogsPolicyNotAdded",
            "the logging bucket's policy statement is added by secure_bucket itself",
        )
    if server_access_logs_bucket is None:
        acknowledge(
            bucket,
            "AwsSolutions-S1",
            "This bucket receives the server access logs of the other buckets; logging it "
            "into itself would loop.",
        )
        checkov_skip(
            bucket,
            "CKV_AWS_18",
            "This bucket receives the server access logs of the other buckets; logging it "
            "into itself would loop.",
        )
        checkov_skip(
            bucket,
            "CKV_AWS_21",
            "Server access logs are written once by the S3 logging service under unique keys "
            "and expire by lifecycle; nothing overwrites them, so versions would only add cost.",
        )
    return bucket


def _allow_log_delivery(target: s3.Bucket, source: s3.Bucket, prefix: str | None) -> None:
    """The statement CDK writes with serverAccessLogsUseBucketPolicy: the S3 logging service
    may put objects under ``prefix``, for ``source`` of this account only."""
    target.add_to_resource_policy(
        iam.PolicyStatement(
            principals=[iam.ServicePrincipal("logging.s3.amazonaws.com")],
            actions=["s3:PutObject"],
            resources=[target.arn_for_objects(f"{prefix or ''}*")],
            conditions={
                "ArnLike": {"aws:SourceArn": source.bucket_arn},
                "StringEquals": {"aws:SourceAccount": Stack.of(source).account},
            },
        )
    )


def access_logs_bucket(
    scope: Construct,
    construct_id: str,
    *,
    retention: Duration | None = None,
    removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    auto_delete_objects: bool = False,
) -> s3.Bucket:
    """A bucket for S3 server access logs: SSE-S3 (log delivery cannot use KMS), expiring
    logs after ``retention`` (default 90 days)."""
    return secure_bucket(
        scope,
        construct_id,
        server_access_logs_bucket=None,
        expire_objects_after=retention or Duration.days(90),
        removal_policy=removal_policy,
        auto_delete_objects=auto_delete_objects,
    )
