"""Amazon SQS: queues (and the internal queues that carry SNS and EventBridge deliveries to
the runtime); queue policies are skipped."""

from __future__ import annotations

from typing import Any

from conveyor.sandbox.model import DeployedResource, FunctionSpec, Route
from conveyor.sandbox.providers.base import ProviderContext, ResourceProvider, physical_name
from conveyor.sandbox.providers.common import POLICY_REASON
from conveyor.sandbox.providers.values import tags, words

INTERNAL_QUEUE_PREFIX = "sbx-"
QUEUE_NAME_LIMIT = 80

QUEUE_ATTRIBUTES = words(
    "ContentBasedDeduplication DeduplicationScope DelaySeconds FifoQueue FifoThroughputLimit "
    "KmsDataKeyReusePeriodSeconds KmsMasterKeyId MaximumMessageSize MessageRetentionPeriod "
    "ReceiveMessageWaitTimeSeconds RedriveAllowPolicy RedrivePolicy SqsManagedSseEnabled "
    "VisibilityTimeout"
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


def route_through_internal_queue(
    ctx: ProviderContext, kind: str, function: FunctionSpec, *parts: str, fifo: bool = False
) -> tuple[str, str]:
    """An internal queue ``sbx-<stack>-<parts>`` in place of ``function`` as the target of
    the resource being deployed, and a ``Route(kind)`` from it to the function (one event
    per invocation, as SNS and EventBridge invoke); returns the queue's (url, arn)."""
    name = internal_queue_name(ctx.stack_name, *parts, fifo=fifo)
    url, arn = create_internal_queue(ctx, name, fifo=fifo)
    ctx.stack.routes.append(
        Route(
            kind=kind,
            source=ctx.logical_id,
            queue_url=url,
            queue_arn=arn,
            function_logical_id=function.logical_id,
            batch_size=1,
            fifo=fifo,
        )
    )
    return url, arn


def _sqs_queue(ctx: ProviderContext, props: dict[str, Any]) -> DeployedResource:
    fifo, name, attributes = ctx.fifo_name_and_attributes(
        props, name_key="QueueName", fifo_key="FifoQueue", keys=QUEUE_ATTRIBUTES
    )
    url, arn = _create_queue(ctx, name, attributes, fifo=fifo, tags=tags(props.get("Tags")))
    return ctx.resource(url, props, Arn=arn, QueueName=name, QueueUrl=url)


_QUEUE_PROPERTIES = frozenset({"QueueName", "Tags", *QUEUE_ATTRIBUTES})

PROVIDERS = (
    ResourceProvider("AWS::SQS::Queue", _sqs_queue, _QUEUE_PROPERTIES, name_limit=QUEUE_NAME_LIMIT),
    ResourceProvider("AWS::SQS::QueuePolicy", skip_reason=POLICY_REASON),
)
