"""Amazon DynamoDB: tables and global tables (the replica in the sandbox's region)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conveyor.sandbox.model import REGION, DeployedResource
from conveyor.sandbox.providers.base import ProviderContext, ResourceProvider
from conveyor.sandbox.providers.values import add_tag_list, flag, words

_DEFAULT_THROUGHPUT = {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
_INDEX_KEYS = ("IndexName", "KeySchema", "Projection")


def _throughput(source: Mapping[str, Any]) -> dict[str, int]:
    if "ProvisionedThroughput" in source:
        value = source["ProvisionedThroughput"]
        return {
            "ReadCapacityUnits": int(value["ReadCapacityUnits"]),
            "WriteCapacityUnits": int(value["WriteCapacityUnits"]),
        }
    return _DEFAULT_THROUGHPUT


def _replica(ctx: ProviderContext, props: Mapping[str, Any]) -> dict[str, Any]:
    """A global table's replica in the sandbox's region; {} for a table."""
    if ctx.type != "AWS::DynamoDB::GlobalTable":
        return {}
    replicas = props.get("Replicas") or []
    regions = [r.get("Region") for r in replicas]
    if REGION not in regions:
        raise ctx.unsupported("Replicas", f"no replica in the sandbox's region {REGION}")
    return dict(next(r for r in replicas if r.get("Region") == REGION))


def _add_indexes(request: dict[str, Any], props: Mapping[str, Any], provisioned: bool) -> None:
    def index(source: Mapping[str, Any]) -> dict[str, Any]:
        entry = {k: source[k] for k in _INDEX_KEYS if k in source}
        if provisioned:
            entry["ProvisionedThroughput"] = _throughput(source)
        return entry

    if props.get("GlobalSecondaryIndexes"):
        request["GlobalSecondaryIndexes"] = [index(i) for i in props["GlobalSecondaryIndexes"]]
    if props.get("LocalSecondaryIndexes"):
        request["LocalSecondaryIndexes"] = [
            {k: i[k] for k in _INDEX_KEYS} for i in props["LocalSecondaryIndexes"]
        ]


def _sse(props: Mapping[str, Any], replica: Mapping[str, Any]) -> dict[str, Any] | None:
    sse = props.get("SSESpecification")
    if not sse or not flag(sse.get("SSEEnabled", False)):
        return None
    spec: dict[str, Any] = {"Enabled": True}
    if sse.get("SSEType"):
        spec["SSEType"] = sse["SSEType"]
    key = sse.get("KMSMasterKeyId") or (replica.get("SSESpecification") or {}).get("KMSMasterKeyId")
    if key:
        spec["KMSMasterKeyId"] = key
    return spec


def _create_table_request(
    ctx: ProviderContext, name: str, props: Mapping[str, Any]
) -> dict[str, Any]:
    replica = _replica(ctx, props)
    billing = str(props.get("BillingMode", "PROVISIONED"))
    provisioned = billing == "PROVISIONED"
    request: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": billing,
    }
    if provisioned:
        request["ProvisionedThroughput"] = _throughput(props)
    _add_indexes(request, props, provisioned)
    stream = props.get("StreamSpecification")
    if stream and stream.get("StreamViewType"):
        request["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": stream["StreamViewType"],
        }
    sse = _sse(props, replica)
    if sse is not None:
        request["SSESpecification"] = sse
    global_table = ctx.type == "AWS::DynamoDB::GlobalTable"
    add_tag_list(request, replica.get("Tags") if global_table else props.get("Tags"))
    return request


def _dynamodb_table(ctx: ProviderContext, props: dict[str, Any]) -> DeployedResource:
    name = ctx.name(props.get("TableName"))
    dynamodb = ctx.client("dynamodb")
    table = dynamodb.create_table(**_create_table_request(ctx, name, props))["TableDescription"]
    ttl = props.get("TimeToLiveSpecification")
    if ttl and flag(ttl.get("Enabled", False)):
        dynamodb.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
        )
    return ctx.resource(
        name,
        props,
        Arn=table["TableArn"],
        StreamArn=table.get("LatestStreamArn"),
        TableId=table.get("TableId"),
    )


_COMMON = frozenset(
    words(
        "TableName AttributeDefinitions KeySchema BillingMode SSESpecification "
        "TimeToLiveSpecification GlobalSecondaryIndexes LocalSecondaryIndexes StreamSpecification"
    )
)

PROVIDERS = (
    ResourceProvider(
        "AWS::DynamoDB::GlobalTable",
        _dynamodb_table,
        _COMMON
        | {"Replicas", "WriteProvisionedThroughputSettings", "WriteOnDemandThroughputSettings"},
    ),
    ResourceProvider(
        "AWS::DynamoDB::Table",
        _dynamodb_table,
        _COMMON
        | {
            "ProvisionedThroughput",
            "PointInTimeRecoverySpecification",
            "DeletionProtectionEnabled",
            "TableClass",
            "Tags",
        },
    ),
)
