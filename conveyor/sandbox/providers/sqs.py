"""Amazon SQS: queues (and the internal queues that carry SNS and EventBridge deliveries to
the runtime); queue policies are skipped."""

from __future__ import annotations

from typing import Any

from conveyor.sandbox.model import DeployedResource
from conveyor.sandbox.providers.base import (
    ProviderContext,
    ResourceProvider,
    flag,
    physical_name,
    tags,
    text,
)
from conveyor.sandbox.providers.common import POLICY_REASON

INTERNAL_QUEUE_PREFIX = "sbx-"
QUEUE_NAME_LIMIT = 80

QUEUE_ATTRIBUTES = (
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "DelaySeconds",
    "FifoQueue",
    "FifoThroughputLimit",
    "KmsDataKeyReusePeriodSeconds",
    "KmsMasterKeyId",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "RedriveAllowPolicy",
    "RedrivePolicy",
    "SqsManagedSseEnabled",
    "VisibilityTimeout",
)


def internal_queue_name(stack: str, *parts: str, fifo: bool = False) -> str:
    """``sbx-<stack>-<part>-<part>…`` (80 characters at most, ``.fifo`` kept)."""
    return physical_name(
        INTERNAL_QUEUE_PREFIX + stack,
        "-".join(parts),
        limit=QUEUE_NAME_LIMIT,
        suffix=".fifo" if fifo else "",
    )


def _create_queue(
    ctx: ProviderContext, name: str, attributes: dict[str, str], *, fifo: bool, **extra: Any
) -> tuple[str, str]:
    """Create the queue, remember its URL (and FIFO-ness) by ARN; return (url, arn)."""
    sqs = ctx.client("sqs")
    url = str(sqs.create_queue(QueueName=name, Attributes=attributes, **extra)["QueueUrl"])
    arn = str(
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
    )
    ctx.state.queue_urls[arn] = url
    if fifo:
        ctx.state.fifo_queues.add(arn)
    return url, arn


def create_internal_queue(ctx: ProviderContext, name: str, *, fifo: bool) -> tuple[str, str]:
    """A queue the sandbox adds to carry a delivery to the runtime; returns (url, arn)."""
    attributes = {"FifoQueue": "true", "ContentBasedDeduplication": "true"} if fifo else {}
    return _create_queue(ctx, name, attributes, fifo=fifo)


def _sqs_queue(ctx: ProviderContext, props: dict[str, Any]) -> DeployedResource:
    fifo = flag(props.get("FifoQueue", False))
    name = ctx.name(props.get("QueueName"), suffix=".fifo" if fifo else "")
    attributes = {key: text(props[key]) for key in QUEUE_ATTRIBUTES if key in props}
    if not fifo:
        attributes.pop("FifoQueue", None)
    url, arn = _create_queue(ctx, name, attributes, fifo=fifo, tags=tags(props.get("Tags")))
    return ctx.resource(url, props, Arn=arn, QueueName=name, QueueUrl=url)


PROVIDERS = (
    ResourceProvider(
        "AWS::SQS::Queue",
        _sqs_queue,
        frozenset({"QueueName", "Tags", *QUEUE_ATTRIBUTES}),
        name_limit=QUEUE_NAME_LIMIT,
    ),
    ResourceProvider("AWS::SQS::QueuePolicy", skip_reason=POLICY_REASON),
)
