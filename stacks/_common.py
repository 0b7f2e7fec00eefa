"""Pieces every topology stack shares."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import RemovalPolicy
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions

from constructs import Construct
from conveyor.constructs._queues import allow_service_to_encrypt, new_key
from conveyor.constructs.functions import DEFAULT_RUNTIME
from conveyor.constructs.python_layer import PythonDependenciesLayer


def alarm_topic(scope: Construct, email: str | None, removal_policy: RemovalPolicy) -> sns.Topic:
    """A KMS-encrypted, TLS-only topic that CloudWatch alarms can publish to."""
    key = new_key(
        scope,
        "AlarmKey",
        description="Encrypts the alarm topic; CloudWatch may use it to publish",
        removal_policy=removal_policy,
    )
    allow_service_to_encrypt(key, "cloudwatch.amazonaws.com", sid="AllowCloudWatchAlarmsToPublish")
    topic = sns.Topic(scope, "AlarmTopic", master_key=key, enforce_ssl=True)
    if email:
        topic.add_subscription(subscriptions.EmailSubscription(email))
    return topic


# What a handler asset folder holds that must not be deployed: dependencies go to the layer,
# caches would make the asset hash depend on whoever ran the tests or the type checker last.
ASSET_EXCLUDES = (
    "requirements.txt",
    "**/__pycache__",
    "*.pyc",
    "**/.mypy_cache",
    "**/.pytest_cache",
    "**/.ruff_cache",
)


def dependencies_layer(
    scope: Construct, asset: Path, description: str, cache_dir: Path | None
) -> lambda_.ILayerVersion:
    """The layer of ``<asset>/requirements.txt`` for Conveyor's default runtime (ARM64)."""
    return PythonDependenciesLayer(
        scope,
        "Dependencies",
        requirements_file=asset / "requirements.txt",
        runtime=DEFAULT_RUNTIME,
        architecture=lambda_.Architecture.ARM_64,
        description=description,
        cache_dir=cache_dir,
    ).layer


def handler_code(asset: Path) -> lambda_.Code:
    """The code of a handler asset folder (``lambdas/<name>``), without caches."""
    return lambda_.Code.from_asset(str(asset), exclude=list(ASSET_EXCLUDES))
