"""Telemetry (course: "IoT Devices → Kinesis → Lambda → …", "Event Streaming").

Devices put readings on an on-demand Kinesis stream, keyed by device id (per-device order).
The real-time consumer aggregates each device's readings into DynamoDB, idempotent by
sequence number (a retried batch or a replay from a timestamp counts nothing twice). A bad
record is retried a bounded number of times (bisected out of its batch), then written with
its batch to the S3 on-failure bucket: the shard moves on.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb

from constructs import Construct
from conveyor.constructs.assets import LAMBDAS_DIR, handler_code
from conveyor.constructs.stream_consumer import StreamConsumer
from conveyor.constructs.stream_delivery import StreamDelivery
from conveyor.lambdas.handler_kit.handler_kit import contract as kit
from conveyor.lambdas.telemetry.telemetry import contract
from conveyor.stacks._common import dependencies_layer, operate

ASSET = LAMBDAS_DIR / "telemetry"


class TelemetryStack(Stack):
    """Attributes: ``table``, ``readings`` (StreamConsumer), ``archive`` (StreamDelivery),
    ``operations``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        alarm_emails: Sequence[str] = (),
        alarm_sms: Sequence[str] = (),
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        layer_cache_dir: Path | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.table = dynamodb.TableV2(
            self,
            "DeviceAggregates",
            partition_key=dynamodb.Attribute(
                name=contract.TABLE_KEY, type=dynamodb.AttributeType.STRING
            ),
            billing=dynamodb.Billing.on_demand(),
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryptionV2.aws_managed_key(),
            removal_policy=removal_policy,
        )
        layer = dependencies_layer(
            self, ASSET, "Powertools for the telemetry consumer", layer_cache_dir
        )
        self.readings = StreamConsumer(
            self,
            "Readings",
            code=handler_code(ASSET),
            handler=contract.HANDLER,
            layers=[layer],
            batch_size=100,
            environment={
                contract.AGGREGATES_TABLE: self.table.table_name,
                kit.POWERTOOLS_SERVICE_NAME: "telemetry",
                kit.POWERTOOLS_METRICS_NAMESPACE: "Conveyor/Telemetry",
            },
            removal_policy=removal_policy,
        )
        self.table.grant(self.readings.function, "dynamodb:UpdateItem")
        self.archive = StreamDelivery(
            self,
            "Archive",
            stream=self.readings.stream,
            prefix="readings/",
            buffering_interval=Duration.seconds(60),
            removal_policy=removal_policy,
        )

        CfnOutput(self, "StreamName", value=self.readings.stream.stream_name)
        CfnOutput(self, "StreamArn", value=self.readings.stream.stream_arn)
        CfnOutput(self, "AggregatesTableName", value=self.table.table_name)
        assert self.readings.failure_bucket is not None
        CfnOutput(self, "FailureBucketName", value=self.readings.failure_bucket.bucket_name)
        CfnOutput(self, "ArchiveBucketName", value=self.archive.bucket.bucket_name)
        self.operations = operate(
            self,
            alarm_emails=alarm_emails,
            alarm_sms=alarm_sms,
            removal_policy=removal_policy,
            layer_cache_dir=layer_cache_dir,
        )
        action = cw_actions.SnsAction(self.operations.alarms.topic)
        for alarm in [*self.readings.alarms, *self.archive.alarms]:
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)
