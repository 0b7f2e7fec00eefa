"""Amazon Data Firehose: a delivery stream reading a Kinesis stream into S3 becomes a
``Route(kind="firehose")`` delivered by ``sources/firehose.py`` (moto's Firehose writes one
object per Put call, without buffering, compression or reading a source stream)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conveyor.sandbox.intrinsics import PARTITION
from conveyor.sandbox.model import ACCOUNT_ID, REGION, DeployedResource, Route
from conveyor.sandbox.providers.base import ProviderContext, ResourceProvider
from conveyor.sandbox.providers.values import flag, text, words


def _delivery_stream(ctx: ProviderContext, props: dict[str, Any]) -> DeployedResource:
    name = ctx.name(props.get("DeliveryStreamName"))
    arn = f"arn:{PARTITION}:firehose:{REGION}:{ACCOUNT_ID}:deliverystream/{name}"
    destination = props["ExtendedS3DestinationConfiguration"]
    source = props["KinesisStreamSourceConfiguration"]
    hints = destination.get("BufferingHints") or {}
    key = ((destination.get("EncryptionConfiguration") or {}).get("KMSEncryptionConfig") or {}).get(
        "AWSKMSKeyARN"
    )
    ctx.stack.routes.append(
        Route(
            kind="firehose",
            source=ctx.logical_id,
            queue_url=f"firehose:{name}",
            queue_arn=text(source["KinesisStreamARN"]),
            function_logical_id="",
            options={
                "name": name,
                "bucket": text(destination["BucketARN"]).rsplit(":", 1)[-1],
                "prefix": text(destination.get("Prefix", "")),
                "error_prefix": text(destination.get("ErrorOutputPrefix", "")),
                "compression": text(destination.get("CompressionFormat", "UNCOMPRESSED")),
                "size_mib": int(hints.get("SizeInMBs", 5)),
                "interval_s": int(hints.get("IntervalInSeconds", 300)),
                "kms_key": text(key) if key else None,
            },
        )
    )
    return ctx.resource(name, props, Arn=arn)


def _validate(ctx: ProviderContext, props: Mapping[str, Any]) -> None:
    if props.get("DeliveryStreamType") != "KinesisStreamAsSource":
        raise ctx.unsupported(
            "DeliveryStreamType", "only KinesisStreamAsSource delivery streams run in the sandbox"
        )
    destination = props.get("ExtendedS3DestinationConfiguration")
    if not isinstance(destination, dict):
        raise ctx.unsupported(None, "only ExtendedS3DestinationConfiguration destinations run")
    processing = destination.get("ProcessingConfiguration") or {}
    if isinstance(processing, dict) and flag(processing.get("Enabled", False)):
        raise ctx.unsupported(
            "ExtendedS3DestinationConfiguration.ProcessingConfiguration",
            "transformation Lambdas do not run in the sandbox",
        )
    for unsupported in ("DynamicPartitioningConfiguration", "DataFormatConversionConfiguration"):
        if destination.get(unsupported):
            raise ctx.unsupported(f"ExtendedS3DestinationConfiguration.{unsupported}")


PROVIDERS = (
    ResourceProvider(
        "AWS::KinesisFirehose::DeliveryStream",
        _delivery_stream,
        frozenset(
            words(
                "DeliveryStreamName DeliveryStreamType ExtendedS3DestinationConfiguration "
                "KinesisStreamSourceConfiguration DeliveryStreamEncryptionConfigurationInput Tags"
            )
        ),
        _validate,
        name_limit=64,
        name_property="DeliveryStreamName",
    ),
)
