"""Amazon SNS: topics and subscriptions. A function's subscription becomes an internal queue
subscribed with the same filter policy, ``Route(kind="sns")``; e-mail, SMS, HTTP(S), push and
Firehose subscriptions are recorded as skipped; topic policies are skipped."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from conveyor.constructs.filters import FilterError, compile_sns_filter_policy
from conveyor.sandbox.model import REGION, DeployedResource
from conveyor.sandbox.providers.base import ProviderContext, ResourceProvider
from conveyor.sandbox.providers.common import POLICY_REASON
from conveyor.sandbox.providers.sqs import route_through_internal_queue
from conveyor.sandbox.providers.values import flag, stable_uuid, tags, text, words

TOPIC_ATTRIBUTES = words(
    "ContentBasedDeduplication DisplayName FifoTopic KmsMasterKeyId SignatureVersion "
    "TracingConfig ArchivePolicy FifoThroughputScope"
)

_SKIPPED_PROTOCOLS = {
    "email": "e-mail subscriptions are not delivered by the sandbox",
    "email-json": "e-mail subscriptions are not delivered by the sandbox",
    "sms": "SMS subscriptions are not delivered by the sandbox",
    "http": "HTTP(S) endpoints are not called by the sandbox",
    "https": "HTTP(S) endpoints are not called by the sandbox",
    "application": "mobile push endpoints are not delivered by the sandbox",
    "firehose": "Firehose is not part of the sandbox",
}


def _sns_topic(ctx: ProviderContext, props: dict[str, Any]) -> DeployedResource:
    _, name, attributes = ctx.fifo_name_and_attributes(
        props, name_key="TopicName", fifo_key="FifoTopic", keys=TOPIC_ATTRIBUTES
    )
    tag_list = [{"Key": k, "Value": v} for k, v in tags(props.get("Tags")).items()]
    response = ctx.client("sns").create_topic(Name=name, Attributes=attributes, Tags=tag_list)
    arn = str(response["TopicArn"])
    return ctx.resource(arn, props, TopicArn=arn, TopicName=name)


def _subscription_attributes(props: Mapping[str, Any], *, raw: bool) -> dict[str, str]:
    attributes: dict[str, str] = {"RawMessageDelivery": text(raw)}
    if "FilterPolicy" in props:
        attributes["FilterPolicy"] = text(props["FilterPolicy"])
        if "FilterPolicyScope" in props:
            attributes["FilterPolicyScope"] = str(props["FilterPolicyScope"])
    if "RedrivePolicy" in props:
        attributes["RedrivePolicy"] = text(props["RedrivePolicy"])
    return attributes


def _check_filter_policy(ctx: ProviderContext, props: Mapping[str, Any]) -> None:
    """A filter policy SNS would reject fails the deployment, naming the resource (moto's own
    check rejects valid ``cidr`` policies and misses others)."""
    if "FilterPolicy" not in props:
        return
    scope = str(props.get("FilterPolicyScope", "MessageAttributes"))
    try:
        policy = props["FilterPolicy"]
        compile_sns_filter_policy(
            json.loads(policy) if isinstance(policy, str) else policy, scope=scope
        )
    except (ValueError, FilterError) as error:
        raise ctx.unsupported(
            "FilterPolicy", f"SNS would reject this filter policy: {error}"
        ) from None


def _subscribe(ctx: ProviderContext, props: Mapping[str, Any], endpoint: str, *, raw: bool) -> str:
    _check_filter_policy(ctx, props)
    response = ctx.client("sns").subscribe(
        TopicArn=str(props.get("TopicArn", "")),
        Protocol="sqs",
        Endpoint=endpoint,
        Attributes=_subscription_attributes(props, raw=raw),
        ReturnSubscriptionArn=True,
    )
    return str(response["SubscriptionArn"])


def _dead_letter_arn(props: Mapping[str, Any]) -> str | None:
    """``RedrivePolicy.deadLetterTargetArn`` (a JSON string or an object), or None."""
    policy = props.get("RedrivePolicy")
    if isinstance(policy, str):
        try:
            policy = json.loads(policy)
        except ValueError:
            return None
    arn = policy.get("deadLetterTargetArn") if isinstance(policy, dict) else None
    return str(arn) if arn else None


def _function_subscription(ctx: ProviderContext, props: dict[str, Any]) -> DeployedResource:
    """A function's subscription: an internal queue subscribed in its place, and a route."""
    function = ctx.function_for(str(props.get("Endpoint", "")), "Endpoint")
    fifo = str(props.get("TopicArn", "")).endswith(".fifo")
    url, queue_arn = route_through_internal_queue(ctx, "sns", function, ctx.logical_id, fifo=fifo)
    route = ctx.stack.routes[-1]
    arn = _subscribe(ctx, props, queue_arn, raw=False)
    # What SNS does when its Invoke of the function fails: the subscription's DLQ.
    route.options.update(target_arn=function.arn, dead_letter_arn=_dead_letter_arn(props))
    return ctx.resource(arn, props, Arn=arn, InternalQueueUrl=url)


def _sns_subscription(ctx: ProviderContext, props: dict[str, Any]) -> DeployedResource:
    protocol = str(props.get("Protocol", "")).lower()
    region = props.get("Region")
    if region and region != REGION:
        raise ctx.unsupported("Region", f"the sandbox has one region, {REGION}")
    if protocol in _SKIPPED_PROTOCOLS:
        ctx.stack.skipped[ctx.logical_id] = f"protocol {protocol}: {_SKIPPED_PROTOCOLS[protocol]}"
        arn = f"{props.get('TopicArn', '')}:{stable_uuid(ctx.stack_name, ctx.logical_id)}"
        return ctx.resource(arn, props, Arn=arn)
    if protocol == "sqs":
        raw = flag(props.get("RawMessageDelivery", False))
        arn = _subscribe(ctx, props, str(props.get("Endpoint", "")), raw=raw)
        return ctx.resource(arn, props, Arn=arn)
    if protocol == "lambda":
        return _function_subscription(ctx, props)
    raise ctx.unsupported("Protocol", f"protocol {protocol!r} is not supported by the sandbox")


_TOPIC_PROPERTIES = frozenset({"TopicName", "Tags", *TOPIC_ATTRIBUTES})

_SUBSCRIPTION_PROPERTIES = frozenset(
    words(
        "Protocol Endpoint TopicArn FilterPolicy FilterPolicyScope RawMessageDelivery "
        "RedrivePolicy Region DeliveryPolicy"
    )
)

PROVIDERS = (
    ResourceProvider("AWS::SNS::Topic", _sns_topic, _TOPIC_PROPERTIES, name_limit=256),
    ResourceProvider("AWS::SNS::Subscription", _sns_subscription, _SUBSCRIPTION_PROPERTIES),
    ResourceProvider("AWS::SNS::TopicPolicy", skip_reason=POLICY_REASON),
)
