"""checkov acknowledgements written into the template, next to the resource they explain.

checkov reads a resource's ``Metadata.checkov.skip`` list (``[{"id": ..., "comment": ...}]``)
and reports those checks as SKIPPED with the comment; the review (``conveyor.review``) prints
them beside the cdk-nag acknowledgements and fails on a skip without a reason.

- :func:`checkov_skip` is the construct-level helper: a construct that knows why a check does
  not apply to what it creates says so, as :func:`conveyor.constructs.rules.acknowledge` does
  for cdk-nag. It works on any construct: an L1 resource, or an L2 whose default child is one.
- :class:`CdkFrameworkSkips` is an aspect for what no Conveyor construct creates: the
  functions of CDK's own custom-resource providers (S3 auto-delete, bucket notifications,
  ``AwsCustomResource``, log retention, the framework functions of
  ``custom_resources.Provider``…). :func:`conveyor.topologies.attach_review_plugins`
  adds it to the whole app, so it covers every stack, including ones added later.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

import jsii
from aws_cdk import CfnResource, IAspect

from constructs import IConstruct

# A reason shorter than this is not a reason (the review applies the same bound).
MIN_REASON_LENGTH: Final = 40

# Conveyor's defaults that checkov reports on every Lambda function, with why.
LAMBDA_NOT_IN_VPC: Final = (
    "CKV_AWS_117",
    "Calls only AWS service endpoints (SQS, SNS, S3, DynamoDB, EventBridge...) over TLS with "
    "IAM authorization and reaches no private network resource: a VPC would add NAT or "
    "interface endpoints and cold-start latency for no isolation gain.",
)
LAMBDA_NO_RESERVED_CONCURRENCY: Final = (
    "CKV_AWS_115",
    "No reservation by default: a new account's concurrency quota is 10 and Lambda refuses a "
    "reservation that leaves fewer than 10 unreserved, so a default would fail the deploy; "
    "throughput is bounded by the event source (batch size, FIFO groups, shards) instead.",
)
LAMBDA_BEHIND_API: Final = (
    "CKV_AWS_116",
    "Invoked synchronously by API Gateway (Lambda proxy integration): its error returns to "
    "the caller as a 5xx response, who retries; no asynchronous event exists to keep in a DLQ.",
)

# The framework functions of custom_resources.Provider (Node.js, CDK-maintained), by their ids.
_PROVIDER_FRAMEWORK_IDS: Final = (
    "framework-onEvent",
    "framework-isComplete",
    "framework-onTimeout",
)
# CDK's custom-resource provider functions, recognised by the construct id CDK gives them.
_CDK_PROVIDER_IDS: Final = (
    "Custom::",  # CustomResourceProvider singletons: Custom::S3AutoDeleteObjects..., etc.
    "BucketNotificationsHandler050a0587b7544547bf325f094a3db834",
    "AWS679f53fac002430cb0da5b7982bd2287",  # AwsCustomResource
    "LogRetentionaae0aa3c5b4d4f87b02d85b201efdd8a",
    *_PROVIDER_FRAMEWORK_IDS,
)
_CDK_PROVIDER_SKIPS: Final = (
    (
        "CKV_AWS_116",
        "CDK's own custom-resource handler: CloudFormation waits for its answer during the "
        "deploy and a failed or missing answer fails the deploy (rollback); no event is left "
        "to keep.",
    ),
    (
        "CKV_AWS_117",
        "CDK's own custom-resource handler: calls only AWS APIs (S3, Lambda, Logs) during "
        "deploys; it reaches no private network resource.",
    ),
    (
        "CKV_AWS_115",
        "CDK's own custom-resource handler: runs once per deploy; a reservation would take "
        "from the account's small default concurrency quota for nothing.",
    ),
    (
        "CKV_AWS_173",
        "CDK's own custom-resource handler: its environment holds no secret (none, or names "
        "of resources), and its code and settings are CDK's, not Conveyor's.",
    ),
)

# CloudFormation invokes a Provider's onEvent with a response URL; the framework answers it.
_PROVIDER_FRAMEWORK_DLQ: Final = (
    "CKV_AWS_116",
    "custom_resources.Provider's framework function: it reports every failure (its own or "
    "the user handler's) to CloudFormation's response URL as FAILED, which fails and rolls "
    "back the deploy; a DLQ would only keep a request CloudFormation has already failed.",
)


def _resource(scope: IConstruct) -> CfnResource:
    if CfnResource.is_cfn_resource(scope):
        return scope  # type: ignore[return-value]
    child = scope.node.default_child
    if child is None or not CfnResource.is_cfn_resource(child):
        raise ValueError(
            f"{scope.node.path}: checkov_skip needs a CloudFormation resource or a construct "
            "whose default child is one"
        )
    return child  # type: ignore[return-value]


def checkov_skips(resource: CfnResource) -> list[dict[str, str]]:
    """The skips already written on ``resource``."""
    metadata: Any = resource.get_metadata("checkov")
    skips = metadata.get("skip", []) if isinstance(metadata, dict) else []
    return [dict(skip) for skip in skips]


def checkov_skip(scope: IConstruct, check_id: str, comment: str) -> None:
    """Skip checkov's ``check_id`` on ``scope`` (a CfnResource or an L2), saying why.

    The comment goes into the template as ``Metadata.checkov.skip``; a second skip of the same
    check on the same resource replaces the first (the last, most specific reason wins).
    """
    if not check_id.startswith("CKV"):
        raise ValueError(f"{scope.node.path}: {check_id!r} is not a checkov check id")
    if len(comment.strip()) < MIN_REASON_LENGTH:
        raise ValueError(
            f"{scope.node.path}: the reason for skipping {check_id} must say why "
            f"(at least {MIN_REASON_LENGTH} characters)"
        )
    resource = _resource(scope)
    skips = [skip for skip in checkov_skips(resource) if skip.get("id") != check_id]
    skips.append({"id": check_id, "comment": comment})
    resource.add_metadata("checkov", {"skip": skips})


def checkov_skip_all(scope: IConstruct, skips: Iterable[tuple[str, str]]) -> None:
    """:func:`checkov_skip` for each ``(check_id, comment)``."""
    for check_id, comment in skips:
        checkov_skip(scope, check_id, comment)


def _is_lambda_under(node: IConstruct, markers: Iterable[str]) -> bool:
    if not CfnResource.is_cfn_resource(node):
        return False
    if node.cfn_resource_type != "AWS::Lambda::Function":  # type: ignore[attr-defined]
        return False
    parts = node.node.path.split("/")
    return any(part.startswith(marker) for part in parts for marker in markers)


def _is_cdk_provider_function(node: IConstruct) -> bool:
    return _is_lambda_under(node, _CDK_PROVIDER_IDS)


@jsii.implements(IAspect)
class CdkFrameworkSkips:
    """Writes the reasons for the checks that CDK's own provider functions fail (see above),
    in any stack of the scope it is added to. Conveyor's constructs explain their own."""

    def visit(self, node: IConstruct) -> None:
        if _is_cdk_provider_function(node):
            existing = {skip.get("id") for skip in checkov_skips(node)}  # type: ignore[arg-type]
            reasons = dict(_CDK_PROVIDER_SKIPS)
            if _is_lambda_under(node, _PROVIDER_FRAMEWORK_IDS):
                reasons.update((_PROVIDER_FRAMEWORK_DLQ,))
            # A provider given a VPC (e.g. Provider(vpc=...)) passes CKV_AWS_117 by itself.
            if getattr(node, "vpc_config", None) is not None:
                existing.add("CKV_AWS_117")
            checkov_skip_all(
                node, [(cid, why) for cid, why in reasons.items() if cid not in existing]
            )
