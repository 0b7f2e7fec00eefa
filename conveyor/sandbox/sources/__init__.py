"""Event sources: how the events of each kind of :class:`~conveyor.sandbox.model.Route` reach
their function. One module per source, each a class implementing
:class:`~conveyor.sandbox.sources.base.EventSource` (its contract is documented there),
registered once in :data:`EVENT_SOURCES`.

A Kinesis, DynamoDB Streams, Amazon MQ, Kafka or Step Functions source is one new module
here (a class with ``kind``, ``pump`` and ``settle``), one line below, and the provider that
creates its ``Route`` (``conveyor/sandbox/providers/``).
"""

from __future__ import annotations

from conveyor.sandbox.sources.base import Delivery, EventSource, EventSourceFactory
from conveyor.sandbox.sources.dynamodb_streams import DynamoDBStreamPoller
from conveyor.sandbox.sources.eventbridge import EventBridgeTargetSource
from conveyor.sandbox.sources.firehose import FirehoseDelivery
from conveyor.sandbox.sources.kafka import KafkaPartitionPoller
from conveyor.sandbox.sources.kinesis import KinesisShardPoller
from conveyor.sandbox.sources.rabbitmq import RabbitMqPoller
from conveyor.sandbox.sources.sns import SnsSubscriptionSource
from conveyor.sandbox.sources.sqs import SqsPoller
from conveyor.sandbox.sources.stepfunctions import StepFunctionsTargetSource

__all__ = ["EVENT_SOURCES", "Delivery", "EventSource", "EventSourceFactory"]

# Route.kind -> the source that delivers it; each is built once per runtime.
EVENT_SOURCES: tuple[EventSourceFactory, ...] = (
    SqsPoller,
    SnsSubscriptionSource,
    EventBridgeTargetSource,
    KinesisShardPoller,
    FirehoseDelivery,
    StepFunctionsTargetSource,
    DynamoDBStreamPoller,
    RabbitMqPoller,
    KafkaPartitionPoller,
)
