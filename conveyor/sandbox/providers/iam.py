"""AWS IAM: skipped (moto does not enforce IAM), with synthetic ARNs and ids."""

from __future__ import annotations

from conveyor.sandbox.intrinsics import PARTITION
from conveyor.sandbox.model import ACCOUNT_ID
from conveyor.sandbox.providers.base import ResourceProvider, Skipped
from conveyor.sandbox.providers.common import IAM_REASON


def _role(skipped: Skipped) -> tuple[str, dict[str, str]]:
    return skipped.name, {
        "Arn": f"arn:{PARTITION}:iam::{ACCOUNT_ID}:role/{skipped.name}",
        "RoleId": "AROA" + skipped.short.upper(),
    }


def _managed_policy(skipped: Skipped) -> tuple[str, dict[str, str]]:
    physical = f"arn:{PARTITION}:iam::{ACCOUNT_ID}:policy/{skipped.name}"
    return physical, {"PolicyArn": physical, "PolicyId": "ANPA" + skipped.short.upper()}


PROVIDERS = (
    ResourceProvider(
        "AWS::IAM::Role",
        skip_reason=IAM_REASON,
        name_limit=64,
        name_property="RoleName",
        attributes=_role,
    ),
    ResourceProvider(
        "AWS::IAM::Policy", skip_reason=IAM_REASON, name_limit=128, name_property="PolicyName"
    ),
    ResourceProvider(
        "AWS::IAM::ManagedPolicy",
        skip_reason=IAM_REASON,
        name_limit=128,
        name_property="ManagedPolicyName",
        attributes=_managed_policy,
    ),
    ResourceProvider("AWS::IAM::InstanceProfile", skip_reason=IAM_REASON),
)
