"""Order events fan-out (course: pub/sub, SNS filters, the "order.placed" choreography).

The order service publishes ``OrderPlaced`` to one topic; payment, inventory, shipping and
notification each consume it from their own queue. The course's routing example rides on the
same topic: ``eventType = "invoice"`` → invoice Lambda, ``eventType = "user"`` → user Lambda;
and one subscriber filters on the payload: only orders whose body ``order.total`` ≥ 100.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from aws_cdk import aws_lambda as lambda_

from constructs import Construct
from conveyor.constructs.assets import LAMBDAS_DIR, handler_code
from conveyor.constructs.fan_out_topic import FanOutTopic
from conveyor.constructs.functions import AsyncFunction
from conveyor.constructs.idempotency_table import IdempotencyTable
from conveyor.constructs.queue_consumer import QueueConsumer
from conveyor.constructs.queues import new_key, queue_with_dead_letter
from conveyor.lambdas.handler_kit.handler_kit import contract as kit
from conveyor.lambdas.order_events.order_events import contract
from conveyor.stacks._common import dependencies_layer, operate

ASSET = LAMBDAS_DIR / "order_events"
CONSUMERS = contract.CONSUMER_NAMES
ORDER_PLACED = {"eventType": ["OrderPlaced"]}
# Payload-based filtering: the message body, not its attributes.
LARGE_ORDERS = {"eventType": ["OrderPlaced"], "order": {"total": [{"numeric": [">=", 100]}]}}


class OrderEventsStack(Stack):
    """Attributes: ``topic`` (FanOutTopic), ``consumers`` (name → QueueConsumer),
    ``large_orders_queue``, ``invoice``/``user`` (AsyncFunction), ``idempotency``,
    ``operations`` (alarms, monitoring, remediation)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        notification_email: str | None = None,
        alarm_emails: Sequence[str] = (),
        alarm_sms: Sequence[str] = (),
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        layer_cache_dir: Path | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.idempotency = IdempotencyTable(self, "Idempotency", removal_policy=removal_policy)
        layer = dependencies_layer(
            self, ASSET, "Powertools for the order event handlers", layer_cache_dir
        )
        code = handler_code(ASSET)
        common_env = {
            **self.idempotency.environment,
            kit.POWERTOOLS_METRICS_NAMESPACE: "Conveyor/OrderEvents",
        }

        self.topic = FanOutTopic(self, "OrderEvents", removal_policy=removal_policy)
        # One key for the on-failure queues of the asynchronously invoked functions.
        self._failure_key = new_key(
            self,
            "FailureKey",
            description="Encrypts the on-failure queues of the routed functions",
            removal_policy=removal_policy,
        )

        self.consumers: dict[str, QueueConsumer] = {}
        for name in CONSUMERS:
            consumer = self.topic.add_queue_consumer(
                name.capitalize(),
                filter_policy=ORDER_PLACED,
                # Shipping reads the raw message (attributes as SQS attributes): both
                # deliveries are exercised by the same handler.
                raw_message_delivery=name == "shipping",
                code=code,
                handler=contract.CONSUMER_HANDLER,
                layers=[layer],
                environment={
                    **common_env,
                    contract.CONSUMER_NAME: name,
                    kit.POWERTOOLS_SERVICE_NAME: f"order-{name}",
                },
                allow_direct_dead_lettering=True,
            )
            self.idempotency.grant(consumer.function)
            self.consumers[name] = consumer

        if notification_email:
            self.topic.add_email(
                "NotificationEmail", address=notification_email, filter_policy=ORDER_PLACED
            )

        # Payload-filtered subscriber: a queue for large orders (manual review, analytics).
        self.large_orders_queue, _ = queue_with_dead_letter(
            self, "LargeOrders", removal_policy=removal_policy, key=self.topic.subscriber_key
        )
        self.topic.add_queue(
            "LargeOrders",
            queue=self.large_orders_queue,
            filter_policy=LARGE_ORDERS,
            filter_policy_scope="MessageBody",
        )

        # The course's attribute routing: invoice → Lambda A, user → Lambda B.
        self.invoice = self._routed_function(
            "Invoice",
            contract.INVOICE_HANDLER,
            "invoice",
            code,
            layer,
            common_env,
            removal_policy,
        )
        self.user = self._routed_function(
            "User",
            contract.USER_HANDLER,
            "user",
            code,
            layer,
            common_env,
            removal_policy,
        )

        CfnOutput(self, "TopicArn", value=self.topic.topic.topic_arn)
        CfnOutput(self, "LargeOrdersQueueUrl", value=self.large_orders_queue.queue_url)
        for name, consumer in self.consumers.items():
            CfnOutput(self, f"{name.capitalize()}QueueUrl", value=consumer.queue.queue_url)
        self.operations = operate(
            self,
            alarm_emails=alarm_emails,
            alarm_sms=alarm_sms,
            removal_policy=removal_policy,
            layer_cache_dir=layer_cache_dir,
        )

    def _routed_function(
        self,
        construct_id: str,
        handler: str,
        event_type: str,
        code: lambda_.Code,
        layer: lambda_.ILayerVersion,
        common_env: dict[str, str],
        removal_policy: RemovalPolicy,
    ) -> AsyncFunction:
        function = AsyncFunction(
            self,
            construct_id,
            code=code,
            handler=handler,
            layers=[layer],
            environment={**common_env, kit.POWERTOOLS_SERVICE_NAME: f"{event_type}-events"},
            encryption_key=self._failure_key,
            removal_policy=removal_policy,
        )
        self.idempotency.grant(function.function)
        self.topic.add_function(
            construct_id, function=function.function, filter_policy={"eventType": [event_type]}
        )
        return function
