"""Payments routing on a custom EventBridge bus (course: content filtering with EventBridge).

``{"source": ["app.paiement"], "detail-type": ["facture"],
"detail": {"montant": [{"numeric": [">", 5000]}]}}`` goes to a high-value review Lambda; every
invoice is archived (replayable); an audit queue receives every event from the source.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack

from constructs import Construct
from conveyor.constructs.assets import LAMBDAS_DIR, handler_code
from conveyor.constructs.event_router import EventRouter, Target
from conveyor.constructs.functions import AsyncFunction
from conveyor.constructs.idempotency_table import IdempotencyTable
from conveyor.constructs.queues import queue_with_dead_letter
from conveyor.lambdas.handler_kit.handler_kit import contract as kit
from conveyor.lambdas.payments.payments import contract
from conveyor.stacks._common import dependencies_layer, operate

ASSET = LAMBDAS_DIR / "payments"
SOURCE = contract.SOURCE
REVIEW_THRESHOLD = 5000
HIGH_VALUE_INVOICES = {
    "source": [SOURCE],
    "detail-type": [contract.DETAIL_TYPE],
    "detail": {"montant": [{"numeric": [">", REVIEW_THRESHOLD]}]},
}
ALL_INVOICES = {"source": [SOURCE], "detail-type": [contract.DETAIL_TYPE]}
ALL_PAYMENT_EVENTS = {"source": [SOURCE]}


class PaymentsRoutingStack(Stack):
    """Attributes: ``router`` (EventRouter), ``review`` (AsyncFunction), ``audit_queue``,
    ``idempotency``, ``operations`` (alarms, monitoring, remediation)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        archive_retention_days: int = 30,
        producer_accounts: Sequence[str] = (),
        alarm_emails: Sequence[str] = (),
        alarm_sms: Sequence[str] = (),
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        layer_cache_dir: Path | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.idempotency = IdempotencyTable(self, "Idempotency", removal_policy=removal_policy)
        layer = dependencies_layer(
            self, ASSET, "Powertools for the payments handlers", layer_cache_dir
        )
        self.router = EventRouter(
            self,
            "Payments",
            archive_retention=Duration.days(archive_retention_days),
            archive_pattern=ALL_INVOICES,
            allowed_accounts=producer_accounts,
            removal_policy=removal_policy,
        )
        self.review = AsyncFunction(
            self,
            "HighValueReview",
            code=handler_code(ASSET),
            handler=contract.REVIEW_HANDLER,
            layers=[layer],
            environment={
                **self.idempotency.environment,
                contract.REVIEW_THRESHOLD: str(REVIEW_THRESHOLD),
                kit.POWERTOOLS_SERVICE_NAME: "payments-review",
                kit.POWERTOOLS_METRICS_NAMESPACE: "Conveyor/Payments",
            },
            encryption_key=self.router.encryption_key,
            removal_policy=removal_policy,
        )
        self.idempotency.grant(self.review.function)
        self.audit_queue, _ = queue_with_dead_letter(
            self, "Audit", removal_policy=removal_policy, key=self.router.encryption_key
        )

        self.router.add_rule(
            "HighValueInvoices",
            pattern=HIGH_VALUE_INVOICES,
            description="Invoices above 5000 go to review",
            targets=[Target.function(self.review.function)],
        )
        self.router.add_rule(
            "AuditAllPaymentEvents",
            pattern=ALL_PAYMENT_EVENTS,
            description="Every event of app.paiement is kept for audit",
            targets=[Target.queue(self.audit_queue)],
        )

        CfnOutput(self, "EventBusName", value=self.router.bus.event_bus_name)
        CfnOutput(self, "AuditQueueUrl", value=self.audit_queue.queue_url)
        CfnOutput(self, "DeadLetterQueueUrl", value=self.router.dead_letter_queue.queue_url)
        if self.router.archive is not None:
            CfnOutput(self, "ArchiveName", value=self.router.archive.archive_name)
            # StartReplay takes the archive's ARN as its event source (the bus is the target).
            CfnOutput(self, "ArchiveArn", value=self.router.archive.archive_arn)
            CfnOutput(self, "EventBusArn", value=self.router.bus.event_bus_arn)
        self.operations = operate(
            self,
            alarm_emails=alarm_emails,
            alarm_sms=alarm_sms,
            removal_policy=removal_policy,
            layer_cache_dir=layer_cache_dir,
        )
