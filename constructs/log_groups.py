"""CloudWatch Logs groups encrypted with a customer-managed key (checkov CKV_AWS_158).

CloudWatch Logs encrypts a group with a KMS key only if the key's policy lets the regional
Logs service principal use it, for log groups of this account and region (the encryption
context condition AWS documents). :func:`encrypted_log_group` creates the group and adds that
statement to the key once.
"""

from __future__ import annotations

from typing import cast

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs

from constructs import Construct

# A child construct of the key records that its policy has the statement (no template output).
_MARKER_ID = "LogsCanUseThisKey"


def allow_logs_to_use(key: kms.IKey) -> None:
    """Let CloudWatch Logs encrypt and decrypt this account's log groups with ``key``.

    Added once per key; a key imported from elsewhere (not a ``kms.Key``) keeps its policy,
    which must then allow it already."""
    if key.node.try_find_child(_MARKER_ID) is not None:
        return
    stack = Stack.of(key)
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="AllowCloudWatchLogsOfThisAccount",
            principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
            actions=[
                "kms:Encrypt*",
                "kms:Decrypt*",
                "kms:ReEncrypt*",
                "kms:GenerateDataKey*",
                "kms:Describe*",
            ],
            resources=["*"],
            conditions={
                "ArnLike": {
                    "kms:EncryptionContext:aws:logs:arn": (
                        f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:log-group:*"
                    )
                }
            },
        )
    )
    Construct(cast(Construct, key), _MARKER_ID)


def encrypted_log_group(
    scope: Construct,
    construct_id: str,
    *,
    key: kms.IKey,
    retention: logs.RetentionDays,
    removal_policy: RemovalPolicy,
    log_group_name: str | None = None,
) -> logs.LogGroup:
    """A log group with a retention, encrypted with ``key`` (whose policy this extends)."""
    allow_logs_to_use(key)
    return logs.LogGroup(
        scope,
        construct_id,
        log_group_name=log_group_name,
        retention=retention,
        removal_policy=removal_policy,
        encryption_key=key,
    )
