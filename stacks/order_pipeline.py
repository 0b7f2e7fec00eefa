"""The FIFO order pipeline (course: "API Gateway → SQS FIFO → ECS Tasks → DynamoDB").

Consumers are Lambda functions here. ``POST /orders`` puts each order event (created, paid,
shipped) on a FIFO queue grouped by customer; the ordered consumer applies it to the orders
table with conditional writes (idempotent, never regressing); ``GET /orders/{id}`` reads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_dynamodb as dynamodb

from constructs import Construct
from conveyor.constructs.assets import LAMBDAS_DIR, handler_code
from conveyor.constructs.fifo_ingest_api import FifoIngestApi
from conveyor.constructs.queue_consumer import QueueConsumer
from conveyor.lambdas.handler_kit.handler_kit import contract as kit
from conveyor.lambdas.order_pipeline.order_pipeline import contract
from conveyor.stacks._common import dependencies_layer, operate

ASSET = LAMBDAS_DIR / "order_pipeline"
EVENTS = list(contract.EVENTS)
_ID = "^[A-Za-z0-9_-]{1,64}$"
T = apigateway.JsonSchemaType

ORDER_EVENT_SCHEMA = apigateway.JsonSchema(
    schema=apigateway.JsonSchemaVersion.DRAFT4,
    title="OrderEvent",
    type=T.OBJECT,
    required=["orderId", "customerId", "event"],
    properties={
        "orderId": apigateway.JsonSchema(type=T.STRING, pattern=_ID),
        "customerId": apigateway.JsonSchema(type=T.STRING, pattern=_ID),
        "event": apigateway.JsonSchema(type=T.STRING, enum=EVENTS),
        "items": apigateway.JsonSchema(
            type=T.ARRAY,
            min_items=1,
            max_items=100,
            items=apigateway.JsonSchema(
                type=T.OBJECT,
                required=["sku", "quantity", "unitPrice"],
                properties={
                    "sku": apigateway.JsonSchema(type=T.STRING, min_length=1, max_length=64),
                    "quantity": apigateway.JsonSchema(type=T.INTEGER, minimum=1),
                    "unitPrice": apigateway.JsonSchema(type=T.NUMBER, minimum=0),
                },
            ),
        ),
        "total": apigateway.JsonSchema(type=T.NUMBER, minimum=0),
        "currency": apigateway.JsonSchema(type=T.STRING, pattern="^[A-Z]{3}$"),
        "amount": apigateway.JsonSchema(type=T.NUMBER, minimum=0),
        "carrier": apigateway.JsonSchema(type=T.STRING, min_length=1, max_length=64),
        "trackingNumber": apigateway.JsonSchema(type=T.STRING, min_length=1, max_length=64),
    },
)
# What GET /orders/{id} returns (attribute → DynamoDB type).
ORDER_FIELDS = {
    "orderId": "S",
    "customerId": "S",
    "status": "S",
    "total": "N",
    "currency": "S",
    "amount": "N",
    "carrier": "S",
    "trackingNumber": "S",
    "version": "N",
    "updatedAt": "S",
}


class OrderPipelineStack(Stack):
    """Attributes: ``table``, ``consumer`` (FIFO QueueConsumer), ``api`` (FifoIngestApi),
    ``operations``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        api_authorization: str = "iam",
        api_waf: bool = False,
        alarm_emails: Sequence[str] = (),
        alarm_sms: Sequence[str] = (),
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        layer_cache_dir: Path | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.table = dynamodb.TableV2(
            self,
            "Orders",
            partition_key=dynamodb.Attribute(name="orderId", type=dynamodb.AttributeType.STRING),
            billing=dynamodb.Billing.on_demand(),
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryptionV2.aws_managed_key(),
            removal_policy=removal_policy,
        )
        layer = dependencies_layer(
            self, ASSET, "Powertools for the order pipeline consumer", layer_cache_dir
        )
        self.consumer = QueueConsumer(
            self,
            "OrderEvents",
            fifo=True,
            code=handler_code(ASSET),
            handler=contract.HANDLER,
            layers=[layer],
            batch_size=10,
            environment={
                contract.ORDERS_TABLE: self.table.table_name,
                kit.POWERTOOLS_SERVICE_NAME: "order-pipeline",
                kit.POWERTOOLS_METRICS_NAMESPACE: "Conveyor/OrderPipeline",
            },
            allow_direct_dead_lettering=True,
            removal_policy=removal_policy,
        )
        self.table.grant(self.consumer.function, "dynamodb:PutItem", "dynamodb:UpdateItem")
        self.api = FifoIngestApi(
            self,
            "Ingest",
            queue=self.consumer.queue,
            request_schema=ORDER_EVENT_SCHEMA,
            resource_name="orders",
            group_id_field="customerId",
            deduplication_fields=("orderId", "event"),
            authorization=api_authorization,
            waf=api_waf,
            removal_policy=removal_policy,
        )
        self.api.add_lookup(table=self.table, key_name="orderId", fields=ORDER_FIELDS)

        CfnOutput(self, "ApiUrl", value=self.api.api.url_for_path("/orders"))
        CfnOutput(self, "QueueUrl", value=self.consumer.queue.queue_url)
        CfnOutput(self, "OrdersTableName", value=self.table.table_name)
        if self.api.api_key is not None:
            CfnOutput(self, "ApiKeyId", value=self.api.api_key.key_id)
        self.operations = operate(
            self,
            alarm_emails=alarm_emails,
            alarm_sms=alarm_sms,
            removal_policy=removal_policy,
            layer_cache_dir=layer_cache_dir,
        )
