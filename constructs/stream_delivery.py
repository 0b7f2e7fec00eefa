"""StreamDelivery: Amazon Data Firehose from a Kinesis stream (or direct PUT) to S3.

Defaults (README, "Stream delivery"): GZIP objects under date-partitioned prefixes
(``<prefix>!{timestamp:yyyy/MM/dd/HH}/``), failed records under an error prefix naming the
error type, buffering 5 MiB or 300 s (whichever comes first), objects encrypted with a
customer-managed KMS key, a secure bucket (TLS-only, no public access, access logs), an
optional transformation Lambda, and alarms on delivery freshness and failed deliveries.
Firehose itself is unencrypted by default in CDK: a direct-PUT delivery stream is encrypted
with the same key; one reading from a stream relies on the stream's own encryption.
"""

from __future__ import annotations

from typing import cast

from aws_cdk import CfnElement, Duration, RemovalPolicy, Size, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3

from constructs import Construct
from conveyor.constructs.buckets import access_logs_bucket, secure_bucket
from conveyor.constructs.defaults import LOG_RETENTION
from conveyor.constructs.log_groups import encrypted_log_group
from conveyor.constructs.queues import new_key
from conveyor.constructs.rules import acknowledge, require, seconds

DEFAULT_BUFFER_INTERVAL = Duration.seconds(300)
DEFAULT_BUFFER_SIZE_MIB = 5
DATE_PARTITION = "!{timestamp:yyyy/MM/dd/HH}/"


class StreamDelivery(Construct):
    """Firehose → S3. Attributes: ``delivery_stream``, ``bucket``, ``encryption_key``,
    ``freshness_alarm``, ``failures_alarm``, ``alarms``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stream: kinesis.IStream | None = None,
        bucket: s3.IBucket | None = None,
        encryption_key: kms.IKey | None = None,
        prefix: str = "data/",
        error_prefix: str = "errors/",
        buffering_interval: Duration | None = None,
        buffering_size_mib: int = DEFAULT_BUFFER_SIZE_MIB,
        compression: firehose.Compression | None = None,
        transformation: lambda_.IFunction | None = None,
        freshness_threshold: Duration | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        """
        :param stream: read from this Kinesis stream. Default: none — a direct-PUT stream.
        :param bucket: the destination. Default: a new secure bucket (with access logs).
        :param encryption_key: encrypts the objects (and a direct-PUT stream). Default: a
            new customer-managed key with rotation.
        :param prefix: object key prefix, followed by ``yyyy/MM/dd/HH/``. Default: ``data/``.
        :param error_prefix: prefix of records that failed (transformation, format), followed
            by the error type and the date. Default: ``errors/``.
        :param buffering_interval: 0–900 s. Default: 300 s.
        :param buffering_size_mib: 1–128 MiB (≥ 64 with dynamic partitioning). Default: 5.
        :param compression: Default: GZIP.
        :param transformation: a Lambda that transforms each buffered batch. Default: none.
        :param freshness_threshold: freshness alarm threshold. Default: 2 × the buffering
            interval + 5 minutes.
        :param removal_policy: bucket and key. Default: RETAIN.
        """
        super().__init__(scope, construct_id)
        path = self.node.path
        interval = buffering_interval or DEFAULT_BUFFER_INTERVAL
        interval_s = seconds(interval)
        if interval_s is not None:
            require(
                0 <= interval_s <= 900,
                path,
                f"buffering_interval must be between 0 and 900 seconds (got {interval_s:g})",
            )
        require(
            1 <= buffering_size_mib <= 128,
            path,
            f"buffering_size_mib must be between 1 and 128 (got {buffering_size_mib})",
        )
        for label, value in (("prefix", prefix), ("error_prefix", error_prefix)):
            require(
                value.endswith("/") and not value.startswith("/"),
                path,
                f"{label} must end with '/' and not start with one (got {value!r})",
            )
        require(prefix != error_prefix, path, "prefix and error_prefix must differ")
        self.encryption_key: kms.IKey = encryption_key or new_key(
            self,
            "Key",
            description=f"Encrypts the objects of {path}",
            removal_policy=removal_policy,
        )
        if bucket is None:
            auto_delete = removal_policy == RemovalPolicy.DESTROY
            logs_bucket = access_logs_bucket(
                self, "AccessLogs", removal_policy=removal_policy, auto_delete_objects=auto_delete
            )
            bucket = secure_bucket(
                self,
                "Bucket",
                server_access_logs_bucket=logs_bucket,
                server_access_logs_prefix="archive/",
                removal_policy=removal_policy,
                auto_delete_objects=auto_delete,
            )
        self.bucket: s3.IBucket = bucket
        processors = [firehose.LambdaFunctionProcessor(transformation)] if transformation else []
        destination = firehose.S3Bucket(
            bucket,
            buffering_interval=interval,
            buffering_size=Size.mebibytes(buffering_size_mib),
            compression=compression or firehose.Compression.GZIP,
            data_output_prefix=f"{prefix}{DATE_PARTITION}",
            error_output_prefix=f"{error_prefix}!{{firehose:error-output-type}}/{DATE_PARTITION}",
            encryption_key=self.encryption_key,
            processors=processors,
            # Firehose's own log group would be unencrypted (checkov CKV_AWS_158).
            logging_config=firehose.EnableLogging(
                encrypted_log_group(
                    self,
                    "Logs",
                    key=self.encryption_key,
                    retention=LOG_RETENTION,
                    removal_policy=removal_policy,
                )
            ),
        )
        self.delivery_stream = firehose.DeliveryStream(
            self,
            "DeliveryStream",
            destination=destination,
            source=firehose.KinesisStreamSource(stream) if stream is not None else None,
            encryption=(
                None
                if stream is not None
                else firehose.StreamEncryption.customer_managed_key(self.encryption_key)
            ),
        )
        if stream is not None:
            acknowledge(
                cast(CfnElement, self.delivery_stream.node.default_child),
                "AwsSolutions-KDF1",
                "A delivery stream reading from a Kinesis stream cannot have its own SSE: the "
                "source stream is KMS-encrypted and the objects are written with a CMK.",
            )
        role = self.delivery_stream.node.try_find_child("S3 Destination Role")
        policy = role.node.try_find_child("DefaultPolicy") if role is not None else None
        if policy is not None:
            for action in (
                "s3:Abort*",
                "s3:DeleteObject*",
                "s3:GetBucket*",
                "s3:GetObject*",
                "s3:List*",
                "kms:GenerateDataKey*",
                "kms:ReEncrypt*",
            ):
                acknowledge(
                    policy,
                    f"AwsSolutions-IAM5[Action::{action}]",
                    "CDK's Firehose S3 destination grant (read/write of the archive bucket and "
                    "its key, for multipart uploads and retries): limited to that bucket and key.",
                )
            if isinstance(bucket, s3.Bucket):
                bucket_id = Stack.of(bucket).get_logical_id(
                    cast(CfnElement, bucket.node.default_child)
                )
                acknowledge(
                    policy,
                    f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/*]",
                    "Firehose writes objects under keys it generates (prefix/date/...): "
                    "limited to the archive bucket.",
                )
        # The Firehose L2 always adds a region -> CIDR mapping (for HTTP and Redshift
        # destinations); nothing references it with an S3 destination (cfn-lint W7001).
        Stack.of(self).node.try_remove_child("@aws-cdk--aws-kinesisfirehose.CidrBlocks")
        threshold = seconds(freshness_threshold) or 2 * (interval_s or 300) + 300
        self.freshness_alarm = cloudwatch.Alarm(
            self,
            "FreshnessAlarm",
            metric=self.delivery_stream.metric(
                "DeliveryToS3.DataFreshness", statistic="Maximum", period=Duration.minutes(5)
            ),
            threshold=threshold,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=(
                f"{path}: the oldest record not yet in S3 is older than {threshold:g} s: "
                "delivery is failing or falling behind (see the error prefix and the logs)."
            ),
        )
        self.failures_alarm = cloudwatch.Alarm(
            self,
            "DeliveryFailuresAlarm",
            metric=self.delivery_stream.metric(
                "DeliveryToS3.Success", statistic="Minimum", period=Duration.minutes(5)
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=f"{path}: some deliveries to S3 failed (Firehose retries them).",
        )
        self.alarms = [self.freshness_alarm, self.failures_alarm]
