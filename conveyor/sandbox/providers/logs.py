"""Amazon CloudWatch Logs: log groups (retention, class, key) and log streams."""

from __future__ import annotations

from typing import Any

from conveyor.sandbox.intrinsics import PARTITION
from conveyor.sandbox.model import ACCOUNT_ID, REGION, DeployedResource
from conveyor.sandbox.providers.base import ProviderContext, ResourceProvider
from conveyor.sandbox.providers.values import tags


def _log_group(ctx: ProviderContext, props: dict[str, Any]) -> DeployedResource:
    name = ctx.name(props.get("LogGroupName"))
    request: dict[str, Any] = {"logGroupName": name}
    if props.get("KmsKeyId"):
        request["kmsKeyId"] = props["KmsKeyId"]
    if props.get("LogGroupClass"):
        request["logGroupClass"] = props["LogGroupClass"]
    group_tags = tags(props.get("Tags"))
    if group_tags:
        request["tags"] = group_tags
    logs = ctx.client("logs")
    logs.create_log_group(**request)
    if "RetentionInDays" in props:
        logs.put_retention_policy(logGroupName=name, retentionInDays=int(props["RetentionInDays"]))
    arn = f"arn:{PARTITION}:logs:{REGION}:{ACCOUNT_ID}:log-group:{name}:*"
    return ctx.resource(name, props, Arn=arn)


def _log_stream(ctx: ProviderContext, props: dict[str, Any]) -> DeployedResource:
    name = ctx.name(props.get("LogStreamName"))
    ctx.client("logs").create_log_stream(
        logGroupName=str(props["LogGroupName"]), logStreamName=name
    )
    return ctx.resource(name, props)


_PROPERTIES = frozenset({"LogGroupName", "RetentionInDays", "Tags", "KmsKeyId", "LogGroupClass"})

PROVIDERS = (
    ResourceProvider("AWS::Logs::LogGroup", _log_group, _PROPERTIES, name_limit=512),
    ResourceProvider(
        "AWS::Logs::LogStream",
        _log_stream,
        frozenset({"LogGroupName", "LogStreamName"}),
        name_limit=512,
        name_property="LogStreamName",
    ),
)
