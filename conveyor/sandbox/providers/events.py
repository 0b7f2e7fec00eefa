"""Amazon EventBridge: buses, rules and archives. A rule target that is a function becomes an
internal queue added as a target of the rule, ``Route(kind="events")``, and so does a state
machine (``Route(kind="stepfunctions")``); SNS and API destination
targets are recorded as skipped; connections, API destinations, bus policies and schema
discoverers are skipped."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from conveyor.constructs.filters import FilterError, compile_event_pattern
from conveyor.sandbox.intrinsics import PARTITION
from conveyor.sandbox.model import ACCOUNT_ID, REGION, DeployedResource, Route
from conveyor.sandbox.providers.base import ProviderContext, ResourceProvider, Skipped
from conveyor.sandbox.providers.common import POLICY_REASON
from conveyor.sandbox.providers.sqs import (
    create_internal_queue,
    internal_queue_name,
    route_through_internal_queue,
)
from conveyor.sandbox.providers.values import (
    add_tag_list,
    arn_resource,
    arn_service,
    copy_present,
    pattern_text,
    stable_uuid,
    words,
)

_EVENTS_ARN = f"arn:{PARTITION}:events:{REGION}:{ACCOUNT_ID}"
_NO_HTTP = "API destinations (HTTP calls to third parties) are not made"
_TARGET_KEYS = frozenset(
    words(
        "Id Arn RoleArn DeadLetterConfig RetryPolicy SqsParameters Input InputPath "
        "InputTransformer HttpParameters"
    )
)


def _event_bus(ctx: ProviderContext, props: dict[str, Any]) -> DeployedResource:
    name = str(props["Name"])
    events = ctx.client("events")
    if name == "default":
        arn = str(events.describe_event_bus(Name="default")["Arn"])
    else:
        request: dict[str, Any] = {"Name": name}
        copy_present(request, props, ("Description", "KmsKeyIdentifier", "EventSourceName"))
        add_tag_list(request, props.get("Tags"))
        arn = str(events.create_event_bus(**request)["EventBusArn"])
    return ctx.resource(name, props, Arn=arn, Name=name)


def _validate_rule(ctx: ProviderContext, props: Mapping[str, Any]) -> None:
    targets = props.get("Targets")
    if isinstance(targets, list):
        for index, target in enumerate(targets):
            if isinstance(target, dict):
                for key in target:
                    if key not in _TARGET_KEYS:
                        raise ctx.unsupported(f"Targets[{index}].{key}")


def _checked_pattern(ctx: ProviderContext, pattern: Any) -> str:
    """The pattern as the API takes it, validated as EventBridge validates it (moto accepts
    almost any pattern): an invalid one fails the deployment, naming the resource."""
    text = pattern_text(pattern)
    try:
        compile_event_pattern(json.loads(text), max_size=1_000_000)
    except (ValueError, FilterError) as error:
        raise ctx.unsupported(
            "EventPattern", f"EventBridge would reject this event pattern: {error}"
        ) from None
    return text


def _event_rule(ctx: ProviderContext, props: dict[str, Any]) -> DeployedResource:
    name = ctx.name(props.get("Name"))
    bus = str(props.get("EventBusName", "default"))
    if bus.startswith("arn:"):
        bus = arn_resource(bus).split("/", 1)[-1]
    request: dict[str, Any] = {"Name": name, "EventBusName": bus}
    if "EventPattern" in props:
        request["EventPattern"] = _checked_pattern(ctx, props["EventPattern"])
    copy_present(request, props, ("ScheduleExpression", "State", "Description", "RoleArn"))
    add_tag_list(request, props.get("Tags"))
    events = ctx.client("events")
    rule_arn = str(events.put_rule(**request)["RuleArn"])
    targets = []
    for target in props.get("Targets") or []:
        kept = _rule_target(ctx, dict(target), rule_arn)
        if kept is not None:
            targets.append(kept)
    if targets:
        response = events.put_targets(Rule=name, EventBusName=bus, Targets=targets)
        if response.get("FailedEntryCount"):
            raise ctx.unsupported("Targets", f"put_targets failed: {response['FailedEntries']}")
    physical_id = name if bus == "default" else f"{bus}|{name}"
    return ctx.resource(physical_id, props, Arn=rule_arn)


def _function_target(
    ctx: ProviderContext, target: dict[str, Any], arn: str, rule_arn: str
) -> dict[str, Any]:
    """An internal queue in place of the function, and a route from it; the route keeps what
    EventBridge does when its ``Invoke`` fails: the target's ``RetryPolicy`` and
    ``DeadLetterConfig`` (:func:`delivery_options`)."""
    target_id = str(target.get("Id", ""))
    function = ctx.function_for(arn, f"Targets[{target_id}].Arn")
    _, queue_arn = route_through_internal_queue(ctx, "events", function, ctx.logical_id, target_id)
    ctx.stack.routes[-1].options.update(delivery_options(target, arn, rule_arn))
    target = {k: v for k, v in target.items() if k not in ("RoleArn",)}
    target["Arn"] = queue_arn
    return target


# EventBridge's RetryPolicy defaults (AWS::Events::Rule RetryPolicy; EventBridge user guide,
# "Event retry policy and using dead-letter queues"): 185 retries, 24 hours.
DEFAULT_MAXIMUM_RETRY_ATTEMPTS = 185
DEFAULT_MAXIMUM_EVENT_AGE_S = 86_400


def delivery_options(target: Mapping[str, Any], arn: str, rule_arn: str) -> dict[str, Any]:
    """The route options of a rule target's delivery: ``rule_arn``, ``target_arn``,
    ``max_retry_attempts``, ``max_event_age_s`` and ``dead_letter_arn`` (None: no DLQ)."""
    policy = target.get("RetryPolicy") or {}
    dead_letter = (target.get("DeadLetterConfig") or {}).get("Arn")
    return {
        "rule_arn": rule_arn,
        "target_arn": arn,
        "max_retry_attempts": int(
            policy.get("MaximumRetryAttempts", DEFAULT_MAXIMUM_RETRY_ATTEMPTS)
        ),
        "max_event_age_s": int(policy.get("MaximumEventAgeInSeconds", DEFAULT_MAXIMUM_EVENT_AGE_S)),
        "dead_letter_arn": str(dead_letter) if dead_letter else None,
    }


def _state_machine_target(ctx: ProviderContext, target: dict[str, Any], arn: str) -> dict[str, Any]:
    """An internal queue in place of the state machine; the runtime starts the executions
    (moto's EventBridge does not start them)."""
    target_id = str(target.get("Id", ""))
    name = internal_queue_name(ctx.stack_name, ctx.logical_id, target_id)
    url, queue_arn = create_internal_queue(ctx, name, fifo=False)
    ctx.stack.routes.append(
        Route(
            kind="stepfunctions",
            source=ctx.logical_id,
            queue_url=url,
            queue_arn=queue_arn,
            function_logical_id="",
            batch_size=1,
            state_machine_arn=arn,
        )
    )
    target = {k: v for k, v in target.items() if k not in ("RoleArn",)}
    target["Arn"] = queue_arn
    return target


def _rule_target(
    ctx: ProviderContext, target: dict[str, Any], rule_arn: str
) -> dict[str, Any] | None:
    """The target to put on the rule (possibly an internal queue), or None when skipped."""
    arn = str(target.get("Arn", ""))
    target_id = str(target.get("Id", ""))
    service = arn_service(arn)
    resource = arn_resource(arn)
    key = f"{ctx.logical_id}/{target_id}"
    if service == "events" and resource.startswith("api-destination/"):
        ctx.stack.skipped[key] = (
            "API destination target: the sandbox makes no HTTP calls to third parties"
        )
        return None
    if service == "sns":
        ctx.stack.skipped[key] = (
            "SNS target: moto's EventBridge cannot deliver to SNS (it raises "
            "NotImplementedError on put_events)"
        )
        return None
    if service == "lambda":
        return _function_target(ctx, target, arn, rule_arn)
    if service == "states" and resource.startswith("stateMachine:"):
        return _state_machine_target(ctx, target, arn)
    if service == "sqs" or (service == "events" and resource.startswith("event-bus/")):
        return target
    if service == "logs" and resource.startswith("log-group:"):
        return target
    raise ctx.unsupported(
        f"Targets[{target_id}].Arn", f"targets of service {service or arn!r} are not supported"
    )


def _event_archive(ctx: ProviderContext, props: dict[str, Any]) -> DeployedResource:
    name = ctx.name(props.get("ArchiveName"))
    request: dict[str, Any] = {"ArchiveName": name, "EventSourceArn": props["SourceArn"]}
    if "EventPattern" in props:
        request["EventPattern"] = _checked_pattern(ctx, props["EventPattern"])
    copy_present(request, props, ("Description",))
    if "RetentionDays" in props:
        request["RetentionDays"] = int(props["RetentionDays"])
    copy_present(request, props, ("KmsKeyIdentifier",))
    arn = str(ctx.client("events").create_archive(**request)["ArchiveArn"])
    return ctx.resource(name, props, Arn=arn, ArchiveName=name)


def _skipped_connection(skipped: Skipped) -> tuple[str, dict[str, str]]:
    name = skipped.name
    return name, {
        "Arn": f"{_EVENTS_ARN}:connection/{name}/{stable_uuid(skipped.stack, skipped.logical_id)}",
        "SecretArn": f"arn:{PARTITION}:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:"
        f"events!connection/{name}-{skipped.short[:6]}",
    }


def _skipped_api_destination(skipped: Skipped) -> tuple[str, dict[str, str]]:
    suffix = stable_uuid(skipped.stack, skipped.logical_id)
    return skipped.name, {"Arn": f"{_EVENTS_ARN}:api-destination/{skipped.name}/{suffix}"}


def _skipped_discoverer(skipped: Skipped) -> tuple[str, dict[str, str]]:
    physical = f"arn:{PARTITION}:schemas:{REGION}:{ACCOUNT_ID}:discoverer/{skipped.short}"
    return physical, {"DiscovererArn": physical, "DiscovererId": skipped.short}


_BUS_PROPERTIES = frozenset({"Name", "Tags", "Description", "KmsKeyIdentifier", "EventSourceName"})

_RULE_PROPERTIES = frozenset(
    words(
        "Name Description EventBusName EventPattern ScheduleExpression State Tags Targets RoleArn"
    )
)

_ARCHIVE_PROPERTIES = frozenset(
    words("ArchiveName Description EventPattern KmsKeyIdentifier RetentionDays SourceArn")
)

PROVIDERS = (
    ResourceProvider("AWS::Events::EventBus", _event_bus, _BUS_PROPERTIES, name_limit=256),
    ResourceProvider(
        "AWS::Events::Rule",
        _event_rule,
        _RULE_PROPERTIES,
        _validate_rule,
        name_limit=64,
    ),
    ResourceProvider(
        "AWS::Events::Archive",
        _event_archive,
        _ARCHIVE_PROPERTIES,
        name_limit=48,
    ),
    ResourceProvider("AWS::Events::EventBusPolicy", skip_reason=POLICY_REASON),
    ResourceProvider(
        "AWS::Events::Connection",
        skip_reason=_NO_HTTP,
        name_limit=64,
        name_property="Name",
        attributes=_skipped_connection,
    ),
    ResourceProvider(
        "AWS::Events::ApiDestination",
        skip_reason=_NO_HTTP,
        name_limit=64,
        name_property="Name",
        attributes=_skipped_api_destination,
    ),
    ResourceProvider(
        "AWS::EventSchemas::Discoverer",
        skip_reason="schema discovery has no effect on delivery",
        attributes=_skipped_discoverer,
    ),
)
