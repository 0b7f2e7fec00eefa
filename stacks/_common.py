"""Pieces every topology stack shares: operations (alarms, dashboard, remediation) and the
dependencies layer of a handler asset. Handler code comes from ``conveyor.constructs.assets``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from aws_cdk import aws_lambda as lambda_

from constructs import Construct
from conveyor.constructs.defaults import ARCHITECTURE, RUNTIME
from conveyor.constructs.monitoring import AlarmTopic, Monitoring, Remediation
from conveyor.constructs.python_layer import PythonDependenciesLayer

__all__ = ["Operations", "dependencies_layer", "operate"]


@dataclass(frozen=True)
class Operations:
    """What :func:`operate` adds to a stack."""

    alarms: AlarmTopic
    monitoring: Monitoring
    remediation: Remediation | None  # None: nothing in the stack to remediate


def operate(
    stack: Stack,
    *,
    alarm_emails: Sequence[str],
    alarm_sms: Sequence[str],
    removal_policy: RemovalPolicy,
    layer_cache_dir: Path | None,
) -> Operations:
    """Alarms with actions on every resource of ``stack``, its dashboard, and remediation.

    Call it last in the stack's constructor: it watches what the stack holds by then.
    """
    alarms = AlarmTopic(
        stack, "Alarms", emails=alarm_emails, sms_numbers=alarm_sms, removal_policy=removal_policy
    )
    monitoring = Monitoring(
        stack, "Monitoring", alarm_topic=alarms.topic, dashboard_name=stack.stack_name
    )
    monitoring.watch_scope(stack)
    if not monitoring.remediation_rules:
        # No queue to record incidents for or redrive (e.g. a stream topology): a remediation
        # function without rules would reject every alarm notification.
        CfnOutput(stack, "AlarmTopicArn", value=alarms.topic.topic_arn)
        if monitoring.dashboard is not None:
            CfnOutput(stack, "DashboardName", value=monitoring.dashboard.dashboard_name)
        return Operations(alarms, monitoring, None)
    remediation = Remediation(
        stack,
        "Remediation",
        alarm_topic=alarms.topic,
        rules=monitoring.remediation_rules,
        layer_cache_dir=layer_cache_dir,
        removal_policy=removal_policy,
    )
    monitoring.watch_async_function(remediation.function, name="Remediation")
    monitoring.watch_dead_letter_queue(
        remediation.subscription_dead_letter_queue, name="Remediation-subscription-dlq"
    )
    CfnOutput(stack, "AlarmTopicArn", value=alarms.topic.topic_arn)
    if monitoring.dashboard is not None:
        CfnOutput(stack, "DashboardName", value=monitoring.dashboard.dashboard_name)
    return Operations(alarms, monitoring, remediation)


def dependencies_layer(
    scope: Construct, asset: Path, description: str, cache_dir: Path | None
) -> lambda_.ILayerVersion:
    """The layer of ``<asset>/requirements.txt`` for Conveyor's default runtime (ARM64)."""
    return PythonDependenciesLayer(
        scope,
        "Dependencies",
        requirements_file=asset / "requirements.txt",
        runtime=RUNTIME,
        architecture=ARCHITECTURE,
        description=description,
        cache_dir=cache_dir,
    ).layer
