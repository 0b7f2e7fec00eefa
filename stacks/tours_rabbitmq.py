"""Tours on RabbitMQ (course 5.2 §5-9): Booking service -> Amazon MQ for RabbitMQ ->
Notification service.

``POST /bookings`` (IAM-signed) -> the producer Lambda (in the VPC) publishes persistent
messages with publisher confirms on the durable topic exchange ``tour_events`` (routing key
``tour.booked``, ``tour.booked.premium``/``standard``, ``tour.cancelled``). The durable quorum
queue ``notification_queue`` is bound with ``tour.booked`` and ``tour.booked.*``; the
consumer Lambda reads it through the Amazon MQ event source mapping and notifies once per
booking (idempotency in DynamoDB, 24 h). A message that keeps failing is dead-lettered by the
broker (``x-delivery-limit`` 3) to ``tour_events.dlx`` -> ``notification_queue.dlq``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch_actions as cw_actions

from constructs import Construct
from conveyor.constructs.assets import handler_code
from conveyor.constructs.broker_network import BrokerNetwork
from conveyor.constructs.checkov import LAMBDA_BEHIND_API, checkov_skip_all
from conveyor.constructs.defaults import FUNCTION_TIMEOUT
from conveyor.constructs.function_api import FunctionApi
from conveyor.constructs.functions import python_function
from conveyor.constructs.idempotency_table import IdempotencyTable
from conveyor.constructs.queues import new_key
from conveyor.constructs.rabbitmq_broker import RabbitMqBroker, RabbitMqQueueConsumer
from conveyor.lambdas.handler_kit.handler_kit import contract as kit
from conveyor.lambdas.tours.tours import contract
from conveyor.stacks._common import dependencies_layer, operate
from conveyor.stacks._tours import ASSET, BOOKING_SCHEMA, notifications_table


class ToursRabbitMqStack(Stack):
    """Attributes: ``network``, ``broker``, ``producer``, ``api``, ``consumer``,
    ``notifications``, ``idempotency``, ``operations``, ``encryption_key`` (the flow
    logs', the API's access logs', the producer's and the broker's)."""

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
        code = handler_code(ASSET)
        layer = dependencies_layer(
            self,
            ASSET,
            "Powertools, pika and confluent-kafka for the tour handlers",
            layer_cache_dir,
        )
        # One customer-managed key: the stack's logs, the producer's environment, the broker's
        # secret (checkov CKV_AWS_158, CKV_AWS_173, CKV_AWS_149).
        self.encryption_key = new_key(
            self,
            "Key",
            description="Tour bookings: flow and access logs, producer environment, broker secret",
            removal_policy=removal_policy,
        )
        self.network = BrokerNetwork(
            self, "Network", encryption_key=self.encryption_key, removal_policy=removal_policy
        )
        self.broker = RabbitMqBroker(
            self,
            "Broker",
            vpc=self.network.vpc,
            vpc_subnets=self.network.subnets,
            definitions=contract.rabbitmq_definitions(),
            definitions_code=code,
            definitions_handler=contract.DEFINITIONS,
            definitions_layers=[layer],
            encryption_key=self.encryption_key,
            removal_policy=removal_policy,
        )
        self.producer, _ = python_function(
            Construct(self, "Producer"),
            code=code,
            handler=contract.RABBIT_PRODUCER,
            timeout=FUNCTION_TIMEOUT,
            environment={
                contract.BROKER_ENDPOINT: self.broker.amqp_endpoint,
                contract.BROKER_SECRET_ARN: self.broker.secret.secret_arn,
                kit.POWERTOOLS_SERVICE_NAME: "booking-service",
                kit.POWERTOOLS_METRICS_NAMESPACE: "Conveyor/Tours",
            },
            layers=[layer],
            removal_policy=removal_policy,
            description="Booking service: publishes tour events to RabbitMQ",
            encryption_key=self.encryption_key,
            vpc=self.network.vpc,
            vpc_subnets=self.network.subnets,
            security_groups=[self.broker.security_group],
        )
        self.broker.secret.grant_read(self.producer)
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
        self.consumer = RabbitMqQueueConsumer(
            self,
            "Consumer",
            broker=self.broker,
            queue=contract.NOTIFICATION_QUEUE,
            dead_letter_queue=contract.DEAD_LETTER_QUEUE,
            code=code,
            handler=contract.RABBIT_CONSUMER,
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
        CfnOutput(self, "BrokerArn", value=self.broker.broker.attr_arn)
        CfnOutput(self, "BrokerEndpoint", value=self.broker.amqp_endpoint)
        CfnOutput(self, "BrokerSecretArn", value=self.broker.secret.secret_arn)
        CfnOutput(self, "ProducerFunctionName", value=self.producer.function_name)
        CfnOutput(self, "NotificationsTableName", value=self.notifications.table_name)
        CfnOutput(self, "Exchange", value=contract.EXCHANGE)
        CfnOutput(self, "NotificationQueue", value=contract.NOTIFICATION_QUEUE)
        CfnOutput(self, "DeadLetterQueue", value=contract.DEAD_LETTER_QUEUE)
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
