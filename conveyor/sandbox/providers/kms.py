"""AWS KMS: keys (rotation, disabled keys) and aliases."""

from __future__ import annotations

from typing import Any

from conveyor.sandbox.model import DeployedResource
from conveyor.sandbox.providers.base import ProviderContext, ResourceProvider
from conveyor.sandbox.providers.values import add_tag_list, copy_present, flag, text, words


def _kms_key(ctx: ProviderContext, props: dict[str, Any]) -> DeployedResource:
    request: dict[str, Any] = {}
    copy_present(request, props, ("Description", "KeyUsage", "KeySpec", "Origin"))
    if "KeyPolicy" in props:
        request["Policy"] = text(props["KeyPolicy"])
    for key in ("MultiRegion", "BypassPolicyLockoutSafetyCheck"):
        if key in props:
            request[key] = flag(props[key])
    add_tag_list(request, props.get("Tags"), names=("TagKey", "TagValue"))
    kms = ctx.client("kms")
    metadata = kms.create_key(**request)["KeyMetadata"]
    key_id = str(metadata["KeyId"])
    if flag(props.get("EnableKeyRotation", False)):
        rotation: dict[str, Any] = {"KeyId": key_id}
        if props.get("RotationPeriodInDays"):
            rotation["RotationPeriodInDays"] = int(props["RotationPeriodInDays"])
        kms.enable_key_rotation(**rotation)
    if "Enabled" in props and not flag(props["Enabled"]):
        kms.disable_key(KeyId=key_id)
    return ctx.resource(key_id, props, Arn=metadata["Arn"], KeyId=key_id)


def _kms_alias(ctx: ProviderContext, props: dict[str, Any]) -> DeployedResource:
    name = str(props["AliasName"])
    ctx.client("kms").create_alias(AliasName=name, TargetKeyId=props["TargetKeyId"])
    return ctx.resource(name, props)


_KEY_PROPERTIES = frozenset(
    words(
        "Description EnableKeyRotation KeyPolicy Tags KeySpec KeyUsage Enabled MultiRegion "
        "PendingWindowInDays RotationPeriodInDays Origin BypassPolicyLockoutSafetyCheck"
    )
)

PROVIDERS = (
    ResourceProvider("AWS::KMS::Key", _kms_key, _KEY_PROPERTIES),
    ResourceProvider(
        "AWS::KMS::Alias", _kms_alias, frozenset({"AliasName", "TargetKeyId"}), name_limit=256
    ),
)
