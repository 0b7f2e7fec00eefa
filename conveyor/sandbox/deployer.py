"""Deploy a synthesized cloud assembly into moto, resource by resource, through the AWS APIs.

moto's CloudFormation drops or mis-creates several of the resources Conveyor relies on (SNS
subscriptions, S3 notifications through CDK's custom resource…), so the deployer reads the
templates itself: it orders each stack's resources by their references, resolves the
intrinsics (:mod:`conveyor.sandbox.intrinsics`) and creates every resource with the API call
CloudFormation would make — against moto in-process (``moto.mock_aws()`` active,
``endpoint_url=None``) or a moto server (``endpoint_url="http://localhost:4566"``).

What cannot run in moto is turned into something the sandbox runtime runs:

- ``AWS::Lambda::Function`` → a :class:`FunctionSpec` (moto's Lambda needs Docker);
- an SQS event source mapping → ``Route(kind="sqs")`` on the real queue;
- an SNS subscription of a function → an internal queue ``sbx-<stack>-<subscription>``
  subscribed to the topic with the same filter policy, ``Route(kind="sns")``: each message
  body is the SNS envelope (raw delivery off);
- an EventBridge rule target that is a function → an internal queue
  ``sbx-<stack>-<rule>-<target id>`` added as a target of the rule, ``Route(kind="events")``:
  each message body is the event;
- ``Custom::S3BucketNotifications`` → ``put_bucket_notification_configuration``, so that
  moto itself sends the S3 events to the queues (CDK's handler is never run).

Resource types that have no behaviour in the sandbox (IAM, alarms, resource policies, API
Gateway…) are skipped with a reason, but still get a synthetic physical id and attributes so
that references to them resolve. Any other type, or a property a handler does not know, raises
:class:`UnsupportedResource` before anything is created: never a silent partial deploy.

Each resource type is a :class:`~conveyor.sandbox.providers.base.ResourceProvider` of its
service's module in :mod:`conveyor.sandbox.providers` (``create``, ``validate``,
``skip_reason``, ``name_limit``, synthetic ``attributes``), registered once in
:data:`conveyor.sandbox.providers.REGISTRY`; this module plans (checks every resource before
anything is created), orders, deploys and reports.
"""

from __future__ import annotations

import heapq
import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from conveyor.sandbox.assembly import StackArtifact, read_assembly, select_stacks
from conveyor.sandbox.brokers import LocalBrokers
from conveyor.sandbox.intrinsics import NO_VALUE, IntrinsicError, Resolver, references
from conveyor.sandbox.model import DeployedResource, DeployedStack, Deployment
from conveyor.sandbox.moto_patches import dead_letter_missing_sqs_endpoints, use_conveyor_filters
from conveyor.sandbox.providers import REGISTRY
from conveyor.sandbox.providers.base import (
    Clients,
    DeployState,
    ProviderContext,
    Skipped,
    UnsupportedResource,
    physical_name,
)
from conveyor.sandbox.providers.sqs import INTERNAL_QUEUE_PREFIX, internal_queue_name
from conveyor.sandbox.providers.values import short_id

__all__ = [
    "INTERNAL_QUEUE_PREFIX",
    "SKIP_REASONS",
    "UnsupportedResource",
    "deploy",
    "internal_queue_name",
    "physical_name",
    "report",
    "resource_order",
    "skip_reason",
    "supported_types",
]

SKIP_REASONS: dict[str, str] = REGISTRY.skip_reasons()
_PROVIDER_REASON = "provider of {types}: the sandbox does not run CloudFormation custom resources"

# Resource-level keys that are not properties and have no effect in the sandbox.
_RESOURCE_KEYS = {
    "Type",
    "Properties",
    "DependsOn",
    "Condition",
    "Metadata",
    "DeletionPolicy",
    "UpdateReplacePolicy",
    "UpdatePolicy",
    "CreationPolicy",
}


def supported_types() -> dict[str, str]:
    """Every resource type the deployer knows: type -> ``"created"`` or the skip reason."""
    known = {kind: "created" for kind in REGISTRY.created_types()}
    known.update(SKIP_REASONS)
    return known


def skip_reason(resource_type: str) -> str | None:
    """Why a resource type is deliberately not created, or None."""
    return REGISTRY.skip_reason(resource_type)


# -- ordering ------------------------------------------------------------------------------


def _dependencies(resource: Mapping[str, Any], declared: Mapping[str, Any]) -> list[str]:
    found = references(resource.get("Properties") or {})
    depends_on = resource.get("DependsOn") or []
    if isinstance(depends_on, str):
        depends_on = [depends_on]
    found.update(str(d) for d in depends_on)
    return sorted(name for name in found if name in declared)


def resource_order(template: Mapping[str, Any]) -> list[str]:
    """Logical ids so that each comes after everything it refers to or depends on.

    Ties keep the template's order (stable), so the result is deterministic.
    """
    resources: Mapping[str, Any] = template.get("Resources") or {}
    position = {logical_id: index for index, logical_id in enumerate(resources)}
    needs = {lid: set(_dependencies(resource, resources)) for lid, resource in resources.items()}
    dependents: dict[str, list[str]] = {lid: [] for lid in resources}
    for lid, deps in needs.items():
        for dep in deps:
            dependents[dep].append(lid)
    waiting = {lid: len(deps) for lid, deps in needs.items()}
    ready = sorted((lid for lid, count in waiting.items() if count == 0), key=position.__getitem__)
    ordered: list[str] = []
    heap = [(position[lid], lid) for lid in ready]
    heapq.heapify(heap)
    while heap:
        _, lid = heapq.heappop(heap)
        ordered.append(lid)
        for dependent in dependents[lid]:
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                heapq.heappush(heap, (position[dependent], dependent))
    if len(ordered) != len(resources):
        cycle = sorted(lid for lid, count in waiting.items() if count > 0)
        raise ValueError(f"dependency cycle between {', '.join(cycle)}")
    return ordered


# -- plan ----------------------------------------------------------------------------------


@dataclass
class _Plan:
    artifact: StackArtifact
    order: list[str]
    providers: dict[str, str]  # provider function logical id -> skip reason
    wanted: dict[str, set[str]]  # logical id -> attributes referenced by GetAtt/Sub


def _context(
    state: DeployState,
    artifact: StackArtifact,
    stack: DeployedStack,
    resolver: Resolver,
    logical_id: str,
    kind: str,
) -> ProviderContext:
    return ProviderContext(
        state, artifact, stack, resolver, logical_id, kind, REGISTRY.name_limit(kind)
    )


def _provider_reasons(resources: Mapping[str, Any]) -> dict[str, str]:
    """Custom resource provider functions (logical id) -> why they are not deployed."""
    providers: dict[str, list[str]] = {}
    for resource in resources.values():
        kind = str(resource.get("Type", ""))
        if kind.startswith("Custom::") or kind == "AWS::CloudFormation::CustomResource":
            token = (resource.get("Properties") or {}).get("ServiceToken")
            if isinstance(token, dict) and "Fn::GetAtt" in token:
                target = token["Fn::GetAtt"]
                target_id = target[0] if isinstance(target, list) else str(target).split(".")[0]
                providers.setdefault(str(target_id), []).append(kind)
    reasons = {}
    for lid, kinds in providers.items():
        unique = sorted(set(kinds))
        reason = _PROVIDER_REASON.format(types=", ".join(unique))
        reasons[lid] = reason + "".join(REGISTRY.provider_note(kind) for kind in unique)
    return reasons


def _check(ctx: ProviderContext, resource: Mapping[str, Any], skipped: bool) -> None:
    """Refuse what the sandbox cannot deploy: unknown keys, types and properties."""
    for key in resource:
        if key not in _RESOURCE_KEYS:
            raise ctx.unsupported(None, f"unknown resource attribute {key!r}")
    if skipped or skip_reason(ctx.type) is not None:
        return
    provider = REGISTRY.creator(ctx.type)
    if provider is None:
        raise ctx.unsupported(None)
    props = resource.get("Properties") or {}
    if not isinstance(props, dict):
        raise ctx.unsupported("Properties", "Properties must be an object")
    for name in props:
        if name not in provider.properties:
            raise ctx.unsupported(name)
    if provider.validate is not None:
        provider.validate(ctx, props)


def _plan(artifact: StackArtifact) -> _Plan:
    """Check every resource of a stack before anything is created."""
    template = artifact.template
    resources: Mapping[str, Any] = template.get("Resources") or {}
    try:
        order = resource_order(template)
    except ValueError as error:
        raise UnsupportedResource(
            artifact.name, "Resources", "template", None, str(error)
        ) from None
    provider_reasons = _provider_reasons(resources)
    wanted: dict[str, set[str]] = {}
    _collect_attributes(resources, wanted)
    _collect_attributes(template.get("Outputs") or {}, wanted)
    state = DeployState(clients=Clients(None, None))
    stack = DeployedStack(name=artifact.name, template=template)
    for lid in order:
        resource = resources[lid]
        kind = str(resource.get("Type", ""))
        ctx = _context(state, artifact, stack, _NULL_RESOLVER, lid, kind)
        _check(ctx, resource, lid in provider_reasons)
    return _Plan(artifact, order, provider_reasons, wanted)


def _add_wanted(wanted: dict[str, set[str]], target: str, attribute: str) -> None:
    wanted.setdefault(target, set()).add(attribute)


def _collect_attributes(value: Any, wanted: dict[str, set[str]]) -> None:
    if isinstance(value, dict):
        if len(value) == 1 and "Fn::GetAtt" in value:
            argument = value["Fn::GetAtt"]
            if isinstance(argument, list) and len(argument) == 2:
                if isinstance(argument[0], str) and isinstance(argument[1], str):
                    _add_wanted(wanted, argument[0], argument[1])
            elif isinstance(argument, str) and "." in argument:
                target, _, attribute = argument.partition(".")
                _add_wanted(wanted, target, attribute)
        elif len(value) == 1 and "Fn::Sub" in value:
            argument = value["Fn::Sub"]
            text = argument if isinstance(argument, str) else None
            if isinstance(argument, list) and argument and isinstance(argument[0], str):
                text = argument[0]
            for match in re.finditer(r"\$\{([^}!][^}]*)\}", text or ""):
                name = match.group(1).strip()
                if "." in name and not name.startswith("AWS::"):
                    target, _, attribute = name.partition(".")
                    _add_wanted(wanted, target, attribute)
        for item in value.values():
            _collect_attributes(item, wanted)
    elif isinstance(value, list):
        for item in value:
            _collect_attributes(item, wanted)


_NULL_RESOLVER = Resolver(stack_name="", resources={})


# -- deploy --------------------------------------------------------------------------------


def deploy(
    assembly_dir: Path | str,
    *,
    session: boto3.session.Session | None = None,
    endpoint_url: str | None = None,
    stack_names: Sequence[str] | None = None,
    brokers: LocalBrokers | None = None,
) -> Deployment:
    """Create every resource of the cloud assembly in moto; see the module docstring.

    :param assembly_dir: the ``cdk.out`` folder (``manifest.json``, templates, assets).
    :param session: a ``boto3.session.Session``; a new default one when None.
    :param endpoint_url: a moto server (``http://localhost:4566``); None for ``mock_aws()``.
    :param stack_names: stack names (or artifact ids) to deploy; every stack when None.
    :param brokers: the local RabbitMQ / Kafka brokers that Amazon MQ and MSK resources
        stand for (:mod:`conveyor.sandbox.brokers`); a stack with such a resource needs them.
    :raises UnsupportedResource: a resource type or property the sandbox cannot deploy
        (raised before any resource of the selected stacks is created).
    :raises IntrinsicError: an intrinsic that cannot be resolved.
    """
    use_conveyor_filters()  # rules and subscriptions filter as AWS does (process-wide, kept)
    dead_letter_missing_sqs_endpoints()  # a missing SQS endpoint: DLQ or drop (process-wide)
    assembly = read_assembly(assembly_dir)
    artifacts = select_stacks(assembly, stack_names)
    plans = [_plan(artifact) for artifact in artifacts]
    state = DeployState(
        clients=Clients(session or boto3.session.Session(), endpoint_url), brokers=brokers
    )
    deployment = Deployment()
    for plan in plans:
        deployment.stacks[plan.artifact.name] = _deploy_stack(plan, state)
    return deployment


def _skipped_resource(
    plan: _Plan, resolver: Resolver, lid: str, kind: str, raw: Mapping[str, Any]
) -> DeployedResource:
    """A resource the sandbox does not create, with its synthetic physical id and attributes."""
    stack = plan.artifact.name
    provider = REGISTRY.get(kind)
    name_property = provider.name_property if provider is not None else None
    name_value: Any = None
    if name_property and name_property in raw:
        try:
            name_value = resolver.resolve(
                raw[name_property], logical_id=lid, path=f"Properties.{name_property}"
            )
        except IntrinsicError:
            name_value = None
    name = str(name_value) if isinstance(name_value, str | int) and name_value != "" else None
    name = name or physical_name(stack, lid, limit=REGISTRY.name_limit(kind))
    physical, attributes = REGISTRY.synthetic(Skipped(stack, lid, kind, name, short_id(stack, lid)))
    for attribute in plan.wanted.get(lid, ()):
        attributes.setdefault(attribute, f"sandbox-skipped:{stack}:{lid}:{attribute}")
    properties: Any = {}
    if provider is not None and provider.keep_properties:
        try:
            properties = resolver.resolve(raw, logical_id=lid, path="Properties")
        except IntrinsicError:
            properties = {}
    return DeployedResource(
        logical_id=lid,
        type=kind,
        physical_id=physical,
        attributes=attributes,
        properties=properties if isinstance(properties, dict) else {},
    )


def _deploy_stack(plan: _Plan, state: DeployState) -> DeployedStack:
    artifact = plan.artifact
    template = artifact.template
    resources: Mapping[str, Any] = template.get("Resources") or {}
    stack = DeployedStack(name=artifact.name, template=template)
    resolver = Resolver(stack_name=artifact.name, resources=stack.resources, template=template)
    for lid in plan.order:
        resource = resources[lid]
        kind = str(resource.get("Type", ""))
        condition = resource.get("Condition")
        if condition is not None and not resolver.condition(str(condition), logical_id=lid):
            stack.skipped[lid] = f"condition {condition} is false"
            continue
        raw = resource.get("Properties") or {}
        reason = plan.providers.get(lid) or skip_reason(kind)
        if reason is not None:
            stack.resources[lid] = _skipped_resource(plan, resolver, lid, kind, raw)
            stack.skipped[lid] = reason
            continue
        props = resolver.resolve(raw, logical_id=lid, path="Properties")
        if props is NO_VALUE:  # pragma: no cover - Properties is an object
            props = {}
        provider = REGISTRY.creator(kind)
        assert provider is not None  # checked by _plan
        assert provider.create is not None
        ctx = _context(state, artifact, stack, resolver, lid, kind)
        stack.resources[lid] = provider.create(ctx, props)
    _resolve_outputs(stack, resolver)
    return stack


def _resolve_outputs(stack: DeployedStack, resolver: Resolver) -> None:
    for name, output in (stack.template.get("Outputs") or {}).items():
        condition = output.get("Condition")
        if condition is not None and not resolver.condition(
            str(condition), logical_id=f"Outputs.{name}"
        ):
            continue
        value = resolver.resolve(output.get("Value"), logical_id=f"Outputs.{name}", path="Value")
        if value is not NO_VALUE:
            stack.outputs[name] = value if isinstance(value, str) else json.dumps(value)


# -- report --------------------------------------------------------------------------------


def report(deployment: Deployment) -> str:
    """What was created per type, what was skipped and why, per stack."""
    lines: list[str] = []
    for stack in deployment.stacks.values():
        created = Counter(
            resource.type for lid, resource in stack.resources.items() if lid not in stack.skipped
        )
        lines.append(f"{stack.name}: {sum(created.values())} created, {len(stack.skipped)} skipped")
        for kind, count in sorted(created.items()):
            lines.append(f"  created  {count:>3} × {kind}")
        by_reason: Counter[tuple[str, str]] = Counter()
        types = {lid: r.type for lid, r in stack.resources.items()}
        resources = stack.template.get("Resources") or {}
        for lid, reason in stack.skipped.items():
            if lid in types:
                kind = types[lid]
            elif lid in resources:
                kind = str(resources[lid].get("Type"))
            else:
                kind = "rule target" if "/" in lid else "?"
            by_reason[(kind, reason)] += 1
        for (kind, reason), count in sorted(by_reason.items()):
            lines.append(f"  skipped  {count:>3} × {kind}: {reason}")
        if stack.functions:
            names = ", ".join(sorted(stack.functions))
            lines.append(f"  functions {len(stack.functions)}: {names}")
        for route in stack.routes:
            queue = route.queue_url.rsplit("/", 1)[-1]
            lines.append(
                f"  route    {route.kind:<6} {route.source} -> {route.function_logical_id} "
                f"(queue {queue}, batch {route.batch_size}"
                f"{', fifo' if route.fifo else ''}"
                f"{', partial failures' if route.report_batch_item_failures else ''})"
            )
    return "\n".join(lines)
