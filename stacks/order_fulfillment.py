"""The course's order fulfilment workflow as a saga on Step Functions (orchestration).

``OrderPlaced`` on the orders bus starts an execution: ProcessPayment (declined → Choice →
notify the customer, ``OrderFailed``, end as "payment declined", no inventory touched), then
Parallel (UpdateInventory: a Map over the order lines; ReserveShipping), then ShipOrder and
``OrderFulfilled``. A failure after payment runs the compensations in reverse order (cancel
the shipping reservation, release the stock, refund the payment) and publishes ``OrderFailed``;
a compensation that keeps failing notifies the operators and fails the execution (alarm).
Each outcome event is published once per order however many executions one OrderPlaced
started (EventBridge delivers at least once): a conditional claim on the order's item comes
before each publish, and the execution that loses it ends without publishing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks

from constructs import Construct
from conveyor.constructs.assets import LAMBDAS_DIR, handler_code
from conveyor.constructs.checkov import (
    LAMBDA_NO_RESERVED_CONCURRENCY,
    LAMBDA_NOT_IN_VPC,
    checkov_skip,
    checkov_skip_all,
)
from conveyor.constructs.defaults import (
    ARCHITECTURE,
    FUNCTION_TIMEOUT,
    LOG_RETENTION,
    MEMORY_SIZE_MB,
    RUNTIME,
)
from conveyor.constructs.event_router import EventRouter, Target
from conveyor.constructs.log_groups import encrypted_log_group
from conveyor.constructs.queues import new_key, queue_with_dead_letter
from conveyor.constructs.workflow import Saga
from conveyor.lambdas.fulfillment.fulfillment import contract
from conveyor.lambdas.handler_kit.handler_kit import contract as kit
from conveyor.stacks._common import dependencies_layer, operate

ASSET = LAMBDAS_DIR / "fulfillment"
ORDER_PLACED = {"source": [contract.SOURCE], "detail-type": [contract.ORDER_PLACED]}
ORDER_OUTCOMES = {
    "source": [contract.SOURCE],
    "detail-type": [contract.ORDER_FULFILLED, contract.ORDER_FAILED],
}
# The order item's attributes that claim its outcome event (one per order, see _outcome_once).
OUTCOME_PUBLISHED = "outcomePublished"
OUTCOME_PUBLISHED_BY = "outcomePublishedBy"
CLAIM_LOST = "DynamoDB.ConditionalCheckFailedException"
# The Map's concurrency: lines are reserved a few at a time (each a conditional write).
MAP_MAX_CONCURRENCY = 5


class OrderFulfillmentStack(Stack):
    """Attributes: ``saga`` (Saga: ``state_machine``, ``operator_topic``…), ``router`` (the
    orders bus), ``orders`` and ``inventory`` (tables), ``functions`` (handler → function),
    ``customer_topic``, ``outcomes_queue``, ``operations``."""

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
        self.orders = _table(self, "Orders", "orderId", removal_policy)
        self.inventory = _table(self, "Inventory", "sku", removal_policy)
        layer = dependencies_layer(
            self, ASSET, "Powertools for the order fulfilment steps", layer_cache_dir
        )
        code = handler_code(ASSET)
        environment = {
            contract.ORDERS_TABLE: self.orders.table_name,
            contract.INVENTORY_TABLE: self.inventory.table_name,
            kit.POWERTOOLS_SERVICE_NAME: "order-fulfillment",
            kit.POWERTOOLS_METRICS_NAMESPACE: "Conveyor/OrderFulfillment",
        }
        # One key for the steps' log groups and environment variables (checkov CKV_AWS_158/173).
        functions_key = new_key(
            self,
            "FunctionsKey",
            description="Log groups and environment variables of the order fulfilment steps",
            removal_policy=removal_policy,
        )
        self.functions: dict[str, lambda_.Function] = {}
        for handler in contract.HANDLERS:
            name = "".join(part.title() for part in handler.rsplit(".", 1)[1].split("_"))
            function = _step_function(
                self, name, code, handler, environment, layer, removal_policy, functions_key
            )
            self.orders.grant(function, "dynamodb:GetItem", "dynamodb:UpdateItem")
            if handler in (contract.RESERVE_STOCK_HANDLER, contract.RELEASE_STOCK_HANDLER):
                self.inventory.grant(function, "dynamodb:GetItem", "dynamodb:UpdateItem")
            self.functions[handler] = function
        fn = self.functions

        self.router = EventRouter(self, "OrderBus", removal_policy=removal_policy)
        bus = self.router.bus
        customer_key = new_key(
            self,
            "CustomerKey",
            description="Customer notifications of the order fulfilment",
            removal_policy=removal_policy,
        )
        self.customer_topic = sns.Topic(
            self, "CustomerNotifications", master_key=customer_key, enforce_ssl=True
        )
        self.saga = saga = Saga(self, "Fulfillment", removal_policy=removal_policy)
        for email in alarm_emails:
            saga.operator_topic.add_subscription(subscriptions.EmailSubscription(email))

        read_order = sfn.Pass(
            self,
            "ReadOrder",
            comment="the OrderPlaced event's detail is the order",
            parameters={"order": sfn.JsonPath.object_at("$.detail")},
        )
        payment = saga.step(
            saga.task(
                "ProcessPayment", fn[contract.CHARGE_PAYMENT_HANDLER], result_path="$.payment"
            ),
            compensations={"RefundPayment": fn[contract.REFUND_PAYMENT_HANDLER]},
        )
        notify_declined = tasks.SnsPublish(
            self,
            "NotifyCustomerDeclined",
            topic=self.customer_topic,
            message=sfn.TaskInput.from_object(
                {
                    "orderId": sfn.JsonPath.string_at("$.order.orderId"),
                    "customerId": sfn.JsonPath.string_at("$.order.customerId"),
                    "message": "Your payment was declined",
                }
            ),
            result_path=sfn.JsonPath.DISCARD,
        )
        notify_declined.next(
            _outcome_once(
                self,
                "Declined",
                self.orders,
                bus,
                contract.ORDER_FAILED,
                "PAYMENT_DECLINED",
                end=sfn.Succeed(self, "PaymentDeclined"),
            )
        )

        reserve_line = saga.task(
            "ReserveStock",
            fn[contract.RESERVE_STOCK_HANDLER],
        )
        update_inventory = sfn.Map(
            self,
            "UpdateInventory",
            items_path="$.order.lines",
            item_selector={
                "orderId": sfn.JsonPath.string_at("$.order.orderId"),
                "line": sfn.JsonPath.object_at("$$.Map.Item.Value"),
            },
            max_concurrency=MAP_MAX_CONCURRENCY,
        )
        update_inventory.item_processor(reserve_line)
        reserve_shipping = saga.task("ReserveShipping", fn[contract.RESERVE_SHIPPING_HANDLER])
        prepare = sfn.Parallel(self, "PrepareOrder", result_path="$.prepared")
        prepare.branch(update_inventory).branch(reserve_shipping)
        # Both branches may have half-run: undo both (shipping, then stock), then the payment.
        saga.step(
            prepare,
            compensations={
                "CancelShipping": fn[contract.CANCEL_SHIPPING_HANDLER],
                "ReleaseStock": fn[contract.RELEASE_STOCK_HANDLER],
            },
        )
        ship = saga.task("ShipOrder", fn[contract.SHIP_ORDER_HANDLER], result_path="$.shipment")
        saga.step(ship)
        fulfilled = _outcome_once(
            self,
            "Fulfilled",
            self.orders,
            bus,
            contract.ORDER_FULFILLED,
            "FULFILLED",
            end=sfn.Succeed(self, "OrderFulfilledEnd"),
        )
        saga.compensated.next(
            _outcome_once(
                self,
                "Failed",
                self.orders,
                bus,
                contract.ORDER_FAILED,
                "COMPENSATED",
                end=sfn.Succeed(self, "OrderCompensated"),
            )
        )

        definition = read_order.next(payment).next(
            sfn.Choice(self, "PaymentDeclined?")
            .when(
                sfn.Condition.string_equals("$.payment.status", contract.PAYMENT_DECLINED),
                notify_declined,
            )
            .otherwise(prepare)
        )
        prepare.next(ship).next(fulfilled)
        machine = saga.build(definition)

        self.outcomes_queue, _ = queue_with_dead_letter(
            self, "Outcomes", removal_policy=removal_policy, key=self.router.encryption_key
        )
        self.router.add_rule(
            "StartFulfillment",
            pattern=ORDER_PLACED,
            description="Every OrderPlaced event starts an order fulfilment",
            targets=[Target.state_machine(machine)],
            max_event_age=Duration.hours(2),
        )
        self.router.add_rule(
            "OrderOutcomes",
            pattern=ORDER_OUTCOMES,
            description="OrderFulfilled / OrderFailed are kept for the order service",
            targets=[Target.queue(self.outcomes_queue)],
        )

        CfnOutput(self, "StateMachineArn", value=machine.state_machine_arn)
        CfnOutput(self, "EventBusName", value=bus.event_bus_name)
        CfnOutput(self, "OrdersTableName", value=self.orders.table_name)
        CfnOutput(self, "InventoryTableName", value=self.inventory.table_name)
        CfnOutput(self, "OutcomesQueueUrl", value=self.outcomes_queue.queue_url)
        CfnOutput(self, "OperatorTopicArn", value=saga.operator_topic.topic_arn)
        CfnOutput(self, "DeadLetterQueueUrl", value=self.router.dead_letter_queue.queue_url)
        self.operations = operate(
            self,
            alarm_emails=alarm_emails,
            alarm_sms=alarm_sms,
            removal_policy=removal_policy,
            layer_cache_dir=layer_cache_dir,
        )


def _step_function(
    scope: Construct,
    name: str,
    code: lambda_.Code,
    handler: str,
    environment: dict[str, str],
    layer: lambda_.ILayerVersion,
    removal_policy: RemovalPolicy,
    key: kms.IKey,
) -> lambda_.Function:
    """A step's function with Conveyor's defaults (``python_function``'s, under ids of its own
    so that each function's alarms are named after its step)."""
    log_group = encrypted_log_group(
        scope, f"{name}Logs", key=key, retention=LOG_RETENTION, removal_policy=removal_policy
    )
    role = iam.Role(
        scope,
        f"{name}Role",
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        description=f"Order fulfilment step {name}: its log group and its tables",
    )
    log_group.grant_write(role)
    key.grant_decrypt(role)
    function = lambda_.Function(
        scope,
        name,
        code=code,
        handler=handler,
        runtime=RUNTIME,
        architecture=ARCHITECTURE,
        timeout=FUNCTION_TIMEOUT,
        memory_size=MEMORY_SIZE_MB,
        environment=environment,
        layers=[layer],
        role=role,
        log_group=log_group,
        logging_format=lambda_.LoggingFormat.JSON,
        description=f"Order fulfilment step {name}",
        environment_encryption=key,
    )
    checkov_skip_all(function, (LAMBDA_NOT_IN_VPC, LAMBDA_NO_RESERVED_CONCURRENCY))
    checkov_skip(
        function,
        "CKV_AWS_116",
        "Invoked synchronously by the state machine's Lambda task: its error returns to the "
        "execution, which retries transient errors and compensates the others (Retry/Catch).",
    )
    return function


def _table(
    scope: Construct, construct_id: str, key: str, removal_policy: RemovalPolicy
) -> dynamodb.TableV2:
    return dynamodb.TableV2(
        scope,
        construct_id,
        partition_key=dynamodb.Attribute(name=key, type=dynamodb.AttributeType.STRING),
        billing=dynamodb.Billing.on_demand(),
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
        encryption=dynamodb.TableEncryptionV2.aws_managed_key(),
        removal_policy=removal_policy,
    )


def _outcome_once(
    scope: Construct,
    name: str,
    orders: dynamodb.ITableV2,
    bus: Any,
    detail_type: str,
    outcome: str,
    *,
    end: sfn.Succeed,
) -> sfn.Chain:
    """Claim{name}Outcome → Publish{name} → ``end``: the outcome event is published once per
    order, however many executions the same OrderPlaced started (EventBridge delivers at least
    once). The claim is a conditional write of ``outcomePublished`` on the order's item; the
    execution that loses it (``DynamoDB.ConditionalCheckFailedException``) ends at
    ``{name}AlreadyPublished`` (Succeed) without publishing."""
    claim = tasks.DynamoUpdateItem(
        scope,
        f"Claim{name}Outcome",
        comment="one outcome event per order: the first execution to get here publishes it",
        table=orders,
        key={
            "orderId": tasks.DynamoAttributeValue.from_string(
                sfn.JsonPath.string_at("$.order.orderId")
            )
        },
        update_expression="SET #published = :outcome, #by = :execution",
        condition_expression="attribute_not_exists(#published)",
        expression_attribute_names={
            "#published": OUTCOME_PUBLISHED,
            "#by": OUTCOME_PUBLISHED_BY,
        },
        expression_attribute_values={
            ":outcome": tasks.DynamoAttributeValue.from_string(detail_type),
            ":execution": tasks.DynamoAttributeValue.from_string(
                sfn.JsonPath.string_at("$$.Execution.Id")
            ),
        },
        result_path=sfn.JsonPath.DISCARD,
    )
    claim.add_retry(
        errors=[
            "DynamoDB.ProvisionedThroughputExceededException",
            "DynamoDB.RequestLimitExceeded",
            "DynamoDB.InternalServerErrorException",
            "DynamoDB.AmazonDynamoDBException",
        ],
        interval=Duration.seconds(1),
        max_attempts=3,
        backoff_rate=2,
    )
    claim.add_catch(
        sfn.Succeed(
            scope,
            f"{name}AlreadyPublished",
            comment="another execution of this order has published its outcome",
        ),
        errors=[CLAIM_LOST],
        result_path=sfn.JsonPath.DISCARD,
    )
    publish = _outcome(scope, f"Publish{name}", bus, detail_type, outcome)
    return claim.next(publish).next(end)


def _outcome(
    scope: Construct, construct_id: str, bus: Any, detail_type: str, outcome: str
) -> tasks.EventBridgePutEvents:
    """Publish OrderFulfilled / OrderFailed on the orders bus (the input is kept). Retried on
    EventBridge's errors: the claim before it is taken, no other execution will publish."""
    publish = tasks.EventBridgePutEvents(
        scope,
        construct_id,
        entries=[
            tasks.EventBridgePutEventsEntry(
                event_bus=bus,
                source=contract.SOURCE,
                detail_type=detail_type,
                detail=sfn.TaskInput.from_object(
                    {
                        "orderId": sfn.JsonPath.string_at("$.order.orderId"),
                        "outcome": outcome,
                        "execution": sfn.JsonPath.string_at("$$.Execution.Id"),
                    }
                ),
            )
        ],
        result_path=sfn.JsonPath.DISCARD,
    )
    publish.add_retry(
        errors=["EventBridge.FailedEntry", "States.TaskFailed"],
        interval=Duration.seconds(1),
        max_attempts=3,
        backoff_rate=2,
    )
    return publish
