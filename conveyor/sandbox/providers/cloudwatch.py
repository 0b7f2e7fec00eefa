"""Amazon CloudWatch: alarms and dashboards are skipped (moto's alarms never fire)."""

from __future__ import annotations

from conveyor.sandbox.intrinsics import PARTITION
from conveyor.sandbox.model import ACCOUNT_ID, REGION
from conveyor.sandbox.providers.base import ResourceProvider, Skipped

_REASON = "moto's alarms never fire; dashboards are visual"


def _alarm(skipped: Skipped) -> tuple[str, dict[str, str]]:
    arn = f"arn:{PARTITION}:cloudwatch:{REGION}:{ACCOUNT_ID}:alarm:{skipped.name}"
    return skipped.name, {"Arn": arn}


PROVIDERS = (
    ResourceProvider(
        "AWS::CloudWatch::Alarm",
        skip_reason=_REASON,
        name_limit=255,
        name_property="AlarmName",
        attributes=_alarm,
    ),
    ResourceProvider(
        "AWS::CloudWatch::CompositeAlarm",
        skip_reason=_REASON,
        name_property="AlarmName",
        attributes=_alarm,
    ),
    ResourceProvider(
        "AWS::CloudWatch::Dashboard",
        skip_reason=_REASON,
        name_limit=255,
        name_property="DashboardName",
    ),
)
