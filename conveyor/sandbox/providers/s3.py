"""Amazon S3: buckets (with inline notifications) and CDK's ``Custom::S3BucketNotifications``,
applied with ``put_bucket_notification_configuration`` so that moto itself sends the S3 events
(CDK's handler never runs); bucket policies and auto-delete are skipped."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conveyor.sandbox.intrinsics import PARTITION, URL_SUFFIX
from conveyor.sandbox.model import REGION, DeployedResource
from conveyor.sandbox.providers.base import ProviderContext, ResourceProvider
from conveyor.sandbox.providers.common import POLICY_REASON
from conveyor.sandbox.providers.values import flag, tags, words

_DOCKER = "moto would invoke the function through Docker"
_INLINE_KEYS = ("QueueConfigurations", "TopicConfigurations", "EventBridgeConfiguration")
_CUSTOM_KEYS = words(
    "QueueConfigurations TopicConfigurations LambdaFunctionConfigurations EventBridgeConfiguration"
)


def _encryption_rules(encryption: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    rules = []
    for rule in encryption:
        entry: dict[str, Any] = {}
        if "ServerSideEncryptionByDefault" in rule:
            entry["ApplyServerSideEncryptionByDefault"] = rule["ServerSideEncryptionByDefault"]
        if "BucketKeyEnabled" in rule:
            entry["BucketKeyEnabled"] = flag(rule["BucketKeyEnabled"])
        rules.append(entry)
    return rules


def _configure_bucket(ctx: ProviderContext, name: str, props: Mapping[str, Any]) -> None:
    s3 = ctx.client("s3")
    if "VersioningConfiguration" in props:
        s3.put_bucket_versioning(
            Bucket=name,
            VersioningConfiguration={"Status": props["VersioningConfiguration"]["Status"]},
        )
    if "PublicAccessBlockConfiguration" in props:
        s3.put_public_access_block(
            Bucket=name,
            PublicAccessBlockConfiguration={
                key: flag(value) for key, value in props["PublicAccessBlockConfiguration"].items()
            },
        )
    encryption = props.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration")
    if encryption:
        s3.put_bucket_encryption(
            Bucket=name,
            ServerSideEncryptionConfiguration={"Rules": _encryption_rules(encryption)},
        )
    bucket_tags = tags(props.get("Tags"))
    if bucket_tags:
        s3.put_bucket_tagging(
            Bucket=name,
            Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in bucket_tags.items()]},
        )
    if "NotificationConfiguration" in props:
        s3.put_bucket_notification_configuration(
            Bucket=name,
            NotificationConfiguration=_inline_notifications(props["NotificationConfiguration"]),
        )


def _s3_bucket(ctx: ProviderContext, props: dict[str, Any]) -> DeployedResource:
    name = ctx.name(props.get("BucketName"), lowercase=True)
    ctx.client("s3").create_bucket(Bucket=name)
    _configure_bucket(ctx, name, props)
    return ctx.resource(
        name,
        props,
        Arn=f"arn:{PARTITION}:s3:::{name}",
        DomainName=f"{name}.s3.{URL_SUFFIX}",
        RegionalDomainName=f"{name}.s3.{REGION}.{URL_SUFFIX}",
        DualStackDomainName=f"{name}.s3.dualstack.{REGION}.{URL_SUFFIX}",
        WebsiteURL=f"http://{name}.s3-website-{REGION}.{URL_SUFFIX}",
    )


def _inline_notifications(config: Mapping[str, Any]) -> dict[str, Any]:
    """``AWS::S3::Bucket.NotificationConfiguration`` in the API's shape."""
    result: dict[str, Any] = {}
    for key, target_key, api_key in (
        ("QueueConfigurations", "Queue", "QueueArn"),
        ("TopicConfigurations", "Topic", "TopicArn"),
    ):
        items = []
        for item in config.get(key, []):
            entry: dict[str, Any] = {api_key: item[target_key], "Events": [item["Event"]]}
            rules = item.get("Filter", {}).get("S3Key", {}).get("Rules")
            if rules:
                entry["Filter"] = {"Key": {"FilterRules": rules}}
            items.append(entry)
        if items:
            result[key] = items
    if "EventBridgeConfiguration" in config:
        result["EventBridgeConfiguration"] = {}
    return result


def _validate_inline_notifications(ctx: ProviderContext, props: Mapping[str, Any]) -> None:
    config = props.get("NotificationConfiguration")
    if isinstance(config, dict):
        for key in config:
            if key not in _INLINE_KEYS:
                raise ctx.unsupported(
                    f"NotificationConfiguration.{key}",
                    _DOCKER if key == "LambdaConfigurations" else None,
                )


def _bucket_notifications(ctx: ProviderContext, props: dict[str, Any]) -> DeployedResource:
    bucket = str(props["BucketName"])
    config = {
        key: value
        for key, value in dict(props.get("NotificationConfiguration") or {}).items()
        if value
    }
    s3 = ctx.client("s3")
    if not flag(props.get("Managed", True)):
        existing = s3.get_bucket_notification_configuration(Bucket=bucket)
        for key in ("QueueConfigurations", "TopicConfigurations", "LambdaFunctionConfigurations"):
            if existing.get(key):
                config[key] = list(existing[key]) + list(config.get(key, []))
        if "EventBridgeConfiguration" in existing and "EventBridgeConfiguration" not in config:
            config["EventBridgeConfiguration"] = existing["EventBridgeConfiguration"]
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration=config,
        SkipDestinationValidation=flag(props.get("SkipDestinationValidation", False)),
    )
    return ctx.resource(ctx.logical_id, props)


def _validate_bucket_notifications(ctx: ProviderContext, props: Mapping[str, Any]) -> None:
    config = props.get("NotificationConfiguration")
    if not isinstance(config, dict):
        return
    for key, value in config.items():
        if key == "LambdaFunctionConfigurations" and value:
            raise ctx.unsupported("NotificationConfiguration.LambdaFunctionConfigurations", _DOCKER)
        if key not in _CUSTOM_KEYS:
            raise ctx.unsupported(f"NotificationConfiguration.{key}")


_BUCKET_PROPERTIES = frozenset(
    words(
        "BucketName BucketEncryption LifecycleConfiguration LoggingConfiguration "
        "OwnershipControls PublicAccessBlockConfiguration Tags VersioningConfiguration "
        "NotificationConfiguration CorsConfiguration IntelligentTieringConfigurations "
        "MetricsConfigurations"
    )
)

_S3_BUCKET_NOTIFICATIONS_PROPERTIES = frozenset(
    {
        "ServiceToken",
        "BucketName",
        "NotificationConfiguration",
        "Managed",
        "SkipDestinationValidation",
    }
)

PROVIDERS = (
    ResourceProvider(
        "AWS::S3::Bucket",
        _s3_bucket,
        _BUCKET_PROPERTIES,
        _validate_inline_notifications,
        name_limit=63,
    ),
    ResourceProvider(
        "Custom::S3BucketNotifications",
        _bucket_notifications,
        _S3_BUCKET_NOTIFICATIONS_PROPERTIES,
        _validate_bucket_notifications,
        provider_note="; the deployer applies the bucket notifications itself",
    ),
    ResourceProvider("AWS::S3::BucketPolicy", skip_reason=POLICY_REASON),
    ResourceProvider(
        "Custom::S3AutoDeleteObjects",
        skip_reason="emptying buckets on stack deletion: the sandbox is thrown away with moto",
    ),
)
