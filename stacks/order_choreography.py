"""Order choreography (course: "Event-Driven Choreography"): no orchestrator, one bus.

Service Commande publishes CommandeCréée; Service Stock reserves and publishes StockMisAJour
(or StockIndisponible); Service Facturation reacts to CommandeCréée and publishes
FactureCréée; Service Notification reacts to FactureCréée or StockMisAJour and notifies the
customer. StockIndisponible → Commande cancels the order (CommandeAnnulée) → Facturation voids
the invoice, Notification tells the customer. Each service has its own function, its own
rule per event it reacts to, its own table, and its own idempotency records (keyed by event
id and service); every event carries the order's correlation id.

Compare with the OrderFulfillment stack (a Step Functions saga, orchestration): there one
state machine knows the whole flow and runs the compensations; here no component does.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb

from constructs import Construct
from conveyor.constructs.assets import LAMBDAS_DIR, handler_code
from conveyor.constructs.event_router import EventRouter, Target
from conveyor.constructs.functions import AsyncFunction
from conveyor.constructs.idempotency_table import IdempotencyTable
from conveyor.lambdas.choreography.choreography import contract
from conveyor.lambdas.handler_kit.handler_kit import contract as kit
from conveyor.stacks._common import dependencies_layer, operate

ASSET = LAMBDAS_DIR / "choreography"
# Construct ids of the services (also in the rule ids and outputs).
SERVICE_IDS = {
    contract.ORDERS: "Commande",
    contract.STOCK: "Stock",
    contract.BILLING: "Facturation",
    contract.NOTIFICATION: "Notification",
}
HANDLER_OF = {
    contract.ORDERS: contract.ORDERS_HANDLER,
    contract.STOCK: contract.STOCK_HANDLER,
    contract.BILLING: contract.BILLING_HANDLER,
    contract.NOTIFICATION: contract.NOTIFICATION_HANDLER,
}
# ASCII rule ids for the course's event names.
RULE_NAMES = {
    contract.ORDER_CREATED: "CommandeCreee",
    contract.ORDER_CANCELLED: "CommandeAnnulee",
    contract.STOCK_UPDATED: "StockMisAJour",
    contract.STOCK_UNAVAILABLE: "StockIndisponible",
    contract.INVOICE_CREATED: "FactureCreee",
}


class OrderChoreographyStack(Stack):
    """Attributes: ``router`` (the one bus), ``services`` (service → AsyncFunction),
    ``tables`` (name → table), ``idempotency``, ``operations``."""

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
            self, ASSET, "Powertools for the choreography services", layer_cache_dir
        )
        self.router = EventRouter(
            self,
            "OrderBus",
            archive_retention=Duration.days(7),
            removal_policy=removal_policy,
        )
        self.idempotency = IdempotencyTable(self, "Idempotency", removal_policy=removal_policy)
        self.tables = {
            "Orders": _table(self, "Orders", contract.ORDER_ID, removal_policy),
            "Inventory": _table(self, "Inventory", contract.SKU, removal_policy),
            "Reservations": _table(self, "Reservations", contract.ORDER_ID, removal_policy),
            "Invoices": _table(self, "Invoices", contract.ORDER_ID, removal_policy),
            "Notifications": _table(
                self, "Notifications", contract.NOTIFICATION_ID, removal_policy
            ),
        }
        own_tables = {
            contract.ORDERS: {contract.ORDERS_TABLE: "Orders"},
            contract.STOCK: {
                contract.INVENTORY_TABLE: "Inventory",
                contract.RESERVATIONS_TABLE: "Reservations",
            },
            contract.BILLING: {contract.INVOICES_TABLE: "Invoices"},
            contract.NOTIFICATION: {contract.NOTIFICATIONS_TABLE: "Notifications"},
        }
        self.services: dict[str, AsyncFunction] = {}
        for service, construct in SERVICE_IDS.items():
            tables = own_tables[service]
            function = AsyncFunction(
                self,
                construct,
                code=code,
                handler=HANDLER_OF[service],
                environment={
                    contract.EVENT_BUS_NAME: self.router.bus.event_bus_name,
                    **{variable: self.tables[name].table_name for variable, name in tables.items()},
                    **self.idempotency.environment,
                    kit.POWERTOOLS_SERVICE_NAME: service,
                    kit.POWERTOOLS_METRICS_NAMESPACE: "Conveyor/OrderChoreography",
                },
                layers=[layer],
                removal_policy=removal_policy,
            )
            self.router.bus.grant_put_events_to(function.function)
            self.idempotency.grant(function.function)
            for name in tables.values():
                self.tables[name].grant(
                    function.function,
                    "dynamodb:GetItem",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:ConditionCheckItem",
                )
            self.services[service] = function
            for publisher, event_type in contract.REACTS_TO[service]:
                self.router.add_rule(
                    f"{construct}On{RULE_NAMES[event_type]}",
                    pattern={
                        "source": [contract.SOURCES[publisher]],
                        "detail-type": [event_type],
                    },
                    description=f"Service {construct} reacts to {event_type}",
                    targets=[Target.function(function.function)],
                    max_event_age=Duration.hours(1),
                )

        CfnOutput(self, "EventBusName", value=self.router.bus.event_bus_name)
        CfnOutput(self, "DeadLetterQueueUrl", value=self.router.dead_letter_queue.queue_url)
        for service, construct in SERVICE_IDS.items():
            CfnOutput(
                self,
                f"{construct}FunctionName",
                value=self.services[service].function.function_name,
            )
            CfnOutput(
                self,
                f"{construct}FailureQueueUrl",
                value=self.services[service].failure_queue.queue_url,
            )
        for name, table in self.tables.items():
            CfnOutput(self, f"{name}TableName", value=table.table_name)
        self.operations = operate(
            self,
            alarm_emails=alarm_emails,
            alarm_sms=alarm_sms,
            removal_policy=removal_policy,
            layer_cache_dir=layer_cache_dir,
        )


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
