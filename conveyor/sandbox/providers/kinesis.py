"""Amazon Kinesis Data Streams: streams (moto keeps shards, sequence numbers and iterators)
and enhanced fan-out consumers. Lambda mappings on a stream are in ``awslambda.py``; the
shard poller that delivers them is ``sources/kinesis.py``."""

from __future__ import annotations

from typing import Any

from conveyor.sandbox.intrinsics import PARTITION
from conveyor.sandbox.model import ACCOUNT_ID, REGION, DeployedResource
from conveyor.sandbox.providers.base import ProviderContext, ResourceProvider
from conveyor.sandbox.providers.values import text, words

# moto's on-demand stream starts with 4 shards, as AWS does.
_ON_DEMAND = "ON_DEMAND"


def _stream(ctx: ProviderContext, props: dict[str, Any]) -> DeployedResource:
    name = ctx.name(props.get("Name"))
    mode = str((props.get("StreamModeDetails") or {}).get("StreamMode", "PROVISIONED"))
    client = ctx.client("kinesis")
    request: dict[str, Any] = {"StreamName": name, "StreamModeDetails": {"StreamMode": mode}}
    if mode != _ON_DEMAND:
        request["ShardCount"] = int(props.get("ShardCount", 1))
    client.create_stream(**request)
    hours = int(props.get("RetentionPeriodHours", 24))
    if hours != 24:
        client.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=hours)
    encryption = props.get("StreamEncryption") or {}
    if encryption.get("EncryptionType") == "KMS":
        client.start_stream_encryption(
            StreamName=name, EncryptionType="KMS", KeyId=text(encryption["KeyId"])
        )
    arn = f"arn:{PARTITION}:kinesis:{REGION}:{ACCOUNT_ID}:stream/{name}"
    return ctx.resource(name, props, Arn=arn)


def _stream_consumer(ctx: ProviderContext, props: dict[str, Any]) -> DeployedResource:
    response = ctx.client("kinesis").register_stream_consumer(
        StreamARN=text(props["StreamARN"]), ConsumerName=text(props["ConsumerName"])
    )
    consumer = response["Consumer"]
    arn = str(consumer["ConsumerARN"])
    return ctx.resource(
        arn,
        props,
        ConsumerARN=arn,
        ConsumerName=str(consumer["ConsumerName"]),
        ConsumerStatus="ACTIVE",
        StreamARN=text(props["StreamARN"]),
    )


PROVIDERS = (
    ResourceProvider(
        "AWS::Kinesis::Stream",
        _stream,
        frozenset(
            words("Name ShardCount RetentionPeriodHours StreamEncryption StreamModeDetails Tags")
        ),
        name_limit=128,
        name_property="Name",
    ),
    ResourceProvider(
        "AWS::Kinesis::StreamConsumer",
        _stream_consumer,
        frozenset(words("StreamARN ConsumerName Tags")),
    ),
)
