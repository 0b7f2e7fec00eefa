"""Builds every Conveyor topology into an app, and attaches the review plugins.

``app.py`` calls these with settings parsed from cdk context; tests call them with explicit
settings, so what is tested is what ``make synth`` builds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import jsii
from aws_cdk import App, Aspects, Environment, IAspect, Stack, Tags, Validations
from cdk_nag import AwsSolutionsChecks

from constructs import IConstruct
from conveyor.review import REVIEW_METADATA_KEY, REVIEW_PACKS
from conveyor.settings import Settings
from conveyor.stacks.image_pipeline import ImagePipelineStack
from conveyor.stacks.order_events import OrderEventsStack
from conveyor.stacks.order_fulfillment import OrderFulfillmentStack
from conveyor.stacks.order_pipeline import OrderPipelineStack
from conveyor.stacks.payments_routing import PaymentsRoutingStack
from conveyor.stacks.telemetry import TelemetryStack
from conveyor.stacks.tours_kafka import ToursKafkaStack
from conveyor.stacks.tours_rabbitmq import ToursRabbitMqStack


def stack_name(settings: Settings, topology: str) -> str:
    return f"Conveyor-{settings.environment}-{topology}"


def build(app: App, settings: Settings, *, layer_cache_dir: Path | None = None) -> list[Stack]:
    """Add one stack per topology to ``app``."""
    env = (
        Environment(account=settings.account, region=settings.region)
        if settings.account or settings.region
        else None
    )
    # What every topology stack takes from the settings.
    common: dict[str, Any] = {
        "env": env,
        "alarm_emails": settings.alarm_emails,
        "alarm_sms": settings.alarm_sms,
        "removal_policy": settings.removal_policy,
        "layer_cache_dir": layer_cache_dir,
    }
    stacks: list[Stack] = [
        ImagePipelineStack(
            app,
            stack_name(settings, "ImagePipeline"),
            description="Conveyor image pipeline: S3 upload -> SQS -> Lambda resize -> S3",
            thumbnail_sizes=settings.thumbnail_sizes,
            **common,
        ),
        OrderEventsStack(
            app,
            stack_name(settings, "OrderEvents"),
            description="Conveyor order events: SNS fan-out with attribute and payload filters",
            notification_email=settings.notification_email,
            **common,
        ),
        PaymentsRoutingStack(
            app,
            stack_name(settings, "PaymentsRouting"),
            description="Conveyor payments routing: EventBridge bus, content filters, archive",
            producer_accounts=settings.producer_accounts,
            **common,
        ),
        OrderPipelineStack(
            app,
            stack_name(settings, "OrderPipeline"),
            description="Conveyor FIFO order pipeline: API Gateway -> SQS FIFO -> Lambda -> DDB",
            api_authorization=settings.api_authorization,
            api_waf=settings.api_waf,
            **common,
        ),
        OrderFulfillmentStack(
            app,
            stack_name(settings, "OrderFulfillment"),
            description="Conveyor order fulfilment saga: EventBridge -> Step Functions -> Lambda",
            **common,
        ),
        TelemetryStack(
            app,
            stack_name(settings, "Telemetry"),
            description="Conveyor telemetry: devices -> Kinesis -> Lambda aggregates -> DynamoDB",
            **common,
        ),
        ToursRabbitMqStack(
            app,
            stack_name(settings, "ToursRabbitMQ"),
            description="Conveyor tours on RabbitMQ: API -> Lambda -> Amazon MQ -> Lambda -> DDB",
            **common,
        ),
        ToursKafkaStack(
            app,
            stack_name(settings, "ToursKafka"),
            description="Conveyor tours on Kafka: API -> Lambda -> MSK Serverless -> Lambda -> DDB",
            **common,
        ),
    ]
    for stack in stacks:
        Tags.of(stack).add("project", "conveyor")
        Tags.of(stack).add("environment", settings.environment)
    return stacks


@jsii.implements(IAspect)
class _MarkReviewed:
    """Records in each stack's template metadata which cdk-nag packs validated it."""

    def visit(self, node: IConstruct) -> None:
        if Stack.is_stack(node):
            stack = cast(Stack, node)
            metadata = dict(stack.template_options.metadata or {})
            metadata[REVIEW_METADATA_KEY] = {"cdk-nag": list(REVIEW_PACKS)}
            stack.template_options.metadata = metadata


def attach_review_plugins(app: App) -> None:
    """cdk-nag AwsSolutions: synth fails on any finding that is not acknowledged with a reason.

    Acknowledgements are also written into each resource's ``Metadata.cdk_nag`` so template
    reviewers see them next to the resource, and each stack's template records in
    ``Metadata["conveyor:review"]`` that cdk-nag checked it (the review fails a stack without it).
    """
    Validations.of(app).add_plugins(
        AwsSolutionsChecks(app, write_suppressions_to_cloud_formation=True)
    )
    Aspects.of(app).add(_MarkReviewed())
