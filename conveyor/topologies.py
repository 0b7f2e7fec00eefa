"""Builds every Conveyor topology into an app, and attaches the review plugins.

``app.py`` calls these with settings parsed from cdk context; tests call them with explicit
settings, so what is tested is what ``make synth`` builds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import App, Environment, RemovalPolicy, Stack, Tags

from conveyor.review import attach_review
from conveyor.settings import Settings
from conveyor.stacks.accounts import AccountsStack
from conveyor.stacks.image_pipeline import ImagePipelineStack
from conveyor.stacks.order_choreography import OrderChoreographyStack
from conveyor.stacks.order_events import OrderEventsStack
from conveyor.stacks.order_fulfillment import OrderFulfillmentStack
from conveyor.stacks.order_pipeline import OrderPipelineStack
from conveyor.stacks.payments_routing import PaymentsRoutingStack
from conveyor.stacks.telemetry import TelemetryStack
from conveyor.stacks.tours_kafka import ToursKafkaStack
from conveyor.stacks.tours_rabbitmq import ToursRabbitMqStack

TOPOLOGY_METADATA_KEY = "conveyor:topology"  # read by conveyor.sandbox.scenarios.topology_of


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
        AccountsStack(
            app,
            stack_name(settings, "Accounts"),
            description="Conveyor accounts: event store (DynamoDB) -> streams -> read model, bus",
            # The store is the only copy of the state: protected wherever resources are kept.
            deletion_protection=settings.removal_policy == RemovalPolicy.RETAIN,
            **common,
        ),
        OrderChoreographyStack(
            app,
            stack_name(settings, "OrderChoreography"),
            description="Conveyor order choreography: order, stock, billing, notification",
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
        # The sandbox runs a topology's demo on the project's own stacks only (not by name).
        stack.add_metadata(TOPOLOGY_METADATA_KEY, stack.node.id.rsplit("-", 1)[-1])
    return stacks


def attach_review_plugins(app: App) -> None:
    """cdk-nag AwsSolutions on every stack: :func:`conveyor.review.attach_review` (the public
    review API, usable on any app)."""
    attach_review(app)
