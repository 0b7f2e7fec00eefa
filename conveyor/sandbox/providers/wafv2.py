"""AWS WAF (every ``AWS::WAFv2::`` type): skipped with the API it protects; web ACLs get a
synthetic id and ARN."""

from __future__ import annotations

from conveyor.sandbox.intrinsics import PARTITION
from conveyor.sandbox.model import ACCOUNT_ID, REGION
from conveyor.sandbox.providers.apigateway import REASON
from conveyor.sandbox.providers.base import ResourceProvider, Skipped
from conveyor.sandbox.providers.values import stable_uuid


def _web_acl(skipped: Skipped) -> tuple[str, dict[str, str]]:
    web_acl_id = stable_uuid(skipped.stack, skipped.logical_id)
    arn = f"arn:{PARTITION}:wafv2:{REGION}:{ACCOUNT_ID}:regional/webacl/{skipped.name}/{web_acl_id}"
    return f"{skipped.name}|{web_acl_id}|REGIONAL", {"Arn": arn, "Id": web_acl_id}


PROVIDERS = (
    ResourceProvider("AWS::WAFv2::", skip_reason=REASON),
    ResourceProvider("AWS::WAFv2::WebACL", name_property="Name", attributes=_web_acl),
)
