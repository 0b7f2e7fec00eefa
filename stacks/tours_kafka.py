"""Tours on Kafka (course 5.2 §10-13): Booking service -> MSK Serverless -> Notification
service.

``POST /bookings`` (IAM-signed) -> the producer Lambda (in the VPC, SASL/IAM) produces to
topic ``tour_events`` (3 partitions, created before the mapping) with the idempotent producer
(acks=all), key = bookingId, headers ``eventType`` and ``correlationId``. The consumer Lambda
reads it in group ``notification_service_group`` through the MSK mapping (Powertools' Kafka
consumer; partial batch failures, bisect, 3 retries, 1 h record age, SQS on-failure queue)
and notifies once per booking (idempotency in DynamoDB, 24 h).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch_actions as cw_actions

from constructs import Construct
from conveyor.constructs.assets import handler_code
from conveyor.constructs.broker_network import DEFAULT_INTERFACE_ENDPOINTS, BrokerNetwork
from conveyor.constructs.checkov import LAMBDA_BEHIND_API, checkov_skip_all
from conveyor.constructs.defaults import FUNCTION_TIMEOUT
from conveyor.constructs.function_api import FunctionApi
from conveyor.constructs.functions import python_function
from conveyor.constructs.idempotency_table import IdempotencyTable
from conveyor.constructs.msk_cluster import MskCluster, MskTopicConsumer
from conveyor.constructs.queues import new_key
from conveyor.lambdas.handler_kit.handler_kit import contract as kit
from conveyor.lambdas.tours.tours import contract
from conveyor.stacks._common import dependencies_layer, operate
from conveyor.stacks._tours import ASSET, BOOKING_SCHEMA, notifications_table


class ToursKafkaStack(Stack):
    """Attributes: ``network``, ``cluster``, ``producer``, ``api``, ``consumer``,
    ``notifications``, ``idempotency``, ``operations``, ``encryption_key`` (the flow
    logs', the API's access logs', the producer's)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        provisioned: bool = False,
        alarm_emails: Sequence[str] = (),
        alarm_sms: Sequence[str] = (),
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        layer_cache_dir: Path | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        code = handler_code(ASSET)
        layer = dependencies_layer(
            self,
            ASSET,
            "Powertools, pika and confluent-kafka for the tour handlers",
            layer_cache_dir,
        )
        # One customer-managed key: the stack's logs and the producer's environment (checkov
        # CKV_AWS_158, CKV_AWS_173).
        self.encryption_key = new_key(
            self,
            "Key",
            description="Tour bookings: flow and access logs, producer environment",
            removal_policy=removal_policy,
        )
        # The producer reads the bootstrap brokers through the MSK API (kafka endpoint).
        self.network = BrokerNetwork(
            self,
            "Network",
            interface_endpoints=(*DEFAULT_INTERFACE_ENDPOINTS, "kafka"),
            encryption_key=self.encryption_key,
            removal_policy=removal_policy,
        )
        self.cluster = MskCluster(
            self,
            "Cluster",
            vpc=self.network.vpc,
            vpc_subnets=self.network.subnets,
            topics={contract.TOPIC: contract.PARTITIONS},
            provisioned=provisioned,
            removal_policy=removal_policy,
        )
        self.producer, _ = python_function(
            Construct(self, "Producer"),
            code=code,
            handler=contract.KAFKA_PRODUCER,
            timeout=FUNCTION_TIMEOUT,
            environment={
                contract.CLUSTER_ARN: self.cluster.cluster_arn,
                kit.POWERTOOLS_SERVICE_NAME: "booking-service",
                kit.POWERTOOLS_METRICS_NAMESPACE: "Conveyor/Tours",
            },
            layers=[layer],
            removal_policy=removal_policy,
            description="Booking service: produces tour events to Kafka",
            encryption_key=self.encryption_key,
            vpc=self.network.vpc,
            vpc_subnets=self.network.subnets,
            security_groups=[self.cluster.security_group],
        )
        self.cluster.grant_produce(self.producer, contract.TOPIC)
        self.api = FunctionApi(
            self,
            "Api",
            function=self.producer,
            resource_name="bookings",
            request_schema=BOOKING_SCHEMA,
            log_encryption_key=self.encryption_key,
            removal_policy=removal_policy,
        )
        checkov_skip_all(self.producer, (LAMBDA_BEHIND_API,))
        self.notifications = notifications_table(self, removal_policy)
        self.idempotency = IdempotencyTable(self, "Idempotency", removal_policy=removal_policy)
        self.consumer = MskTopicConsumer(
            self,
            "Consumer",
            cluster=self.cluster,
            topic=contract.TOPIC,
            consumer_group=contract.CONSUMER_GROUP,
            code=code,
            handler=contract.KAFKA_CONSUMER,
            layers=[layer],
            environment={
                contract.NOTIFICATIONS_TABLE: self.notifications.table_name,
                **self.idempotency.environment,
                kit.POWERTOOLS_SERVICE_NAME: "notification-service",
                kit.POWERTOOLS_METRICS_NAMESPACE: "Conveyor/Tours",
            },
            removal_policy=removal_policy,
        )
        self.notifications.grant(self.consumer.function, "dynamodb:UpdateItem")
        self.idempotency.grant(self.consumer.function)

        CfnOutput(self, "BookingsUrl", value=self.api.api.url_for_path("/bookings"))
        CfnOutput(self, "ClusterArn", value=self.cluster.cluster_arn)
        CfnOutput(self, "ProducerFunctionName", value=self.producer.function_name)
        CfnOutput(self, "NotificationsTableName", value=self.notifications.table_name)
        CfnOutput(self, "FailureQueueUrl", value=self.consumer.failure_queue.queue_url)
        CfnOutput(self, "Topic", value=contract.TOPIC)
        CfnOutput(self, "ConsumerGroup", value=contract.CONSUMER_GROUP)
        self.operations = operate(
            self,
            alarm_emails=alarm_emails,
            alarm_sms=alarm_sms,
            removal_policy=removal_policy,
            layer_cache_dir=layer_cache_dir,
        )
        action = cw_actions.SnsAction(self.operations.alarms.topic)
        for alarm in self.consumer.alarms:
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)
