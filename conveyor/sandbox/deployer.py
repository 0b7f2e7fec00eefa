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
"""

from __future__ import annotations

import hashlib
import heapq
import json
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from conveyor.sandbox.assembly import StackArtifact, read_assembly, select_stacks
from conveyor.sandbox.intrinsics import (
    NO_VALUE,
    PARTITION,
    URL_SUFFIX,
    IntrinsicError,
    Resolver,
    references,
)
from conveyor.sandbox.model import (
    ACCOUNT_ID,
    REGION,
    DeployedResource,
    DeployedStack,
    Deployment,
    FunctionSpec,
    Route,
)

__all__ = [
    "INTERNAL_QUEUE_PREFIX",
    "SKIP_REASONS",
    "UnsupportedResource",
    "deploy",
    "internal_queue_name",
    "physical_name",
    "report",
]

INTERNAL_QUEUE_PREFIX = "sbx-"

# Service limits of the generated physical names.
NAME_LIMITS = {
    "AWS::SQS::Queue": 80,
    "AWS::SNS::Topic": 256,
    "AWS::S3::Bucket": 63,
    "AWS::Lambda::Function": 64,
    "AWS::DynamoDB::Table": 255,
    "AWS::DynamoDB::GlobalTable": 255,
    "AWS::Events::EventBus": 256,
    "AWS::Events::Rule": 64,
    "AWS::Events::Archive": 48,
    "AWS::SSM::Parameter": 1011,
    "AWS::Logs::LogGroup": 512,
    "AWS::SecretsManager::Secret": 512,
    "AWS::KMS::Alias": 256,
    "AWS::IAM::Role": 64,
    "AWS::IAM::ManagedPolicy": 128,
    "AWS::IAM::Policy": 128,
    "AWS::CloudWatch::Alarm": 255,
    "AWS::CloudWatch::Dashboard": 255,
    "AWS::Lambda::LayerVersion": 140,
    "AWS::Events::Connection": 64,
    "AWS::Events::ApiDestination": 64,
}
DEFAULT_NAME_LIMIT = 255

_IAM = "IAM is not enforced by moto"
_POLICY = "resource policies are not enforced"
_API = (
    "API Gateway integrations do not execute in moto; the sandbox renders the ingest API's "
    "request mapping instead"
)
_ALARM = "moto's alarms never fire; dashboards are visual"

SKIP_REASONS: dict[str, str] = {
    "AWS::IAM::Role": _IAM,
    "AWS::IAM::Policy": _IAM,
    "AWS::IAM::ManagedPolicy": _IAM,
    "AWS::IAM::InstanceProfile": _IAM,
    "AWS::CloudWatch::Alarm": _ALARM,
    "AWS::CloudWatch::CompositeAlarm": _ALARM,
    "AWS::CloudWatch::Dashboard": _ALARM,
    "AWS::Lambda::LayerVersion": (
        "the sandbox runs handlers with the sandbox's own Python packages: the layer holds "
        "ARM64 wheels for Python 3.14"
    ),
    "AWS::Lambda::Permission": _POLICY,
    "AWS::SQS::QueuePolicy": _POLICY,
    "AWS::SNS::TopicPolicy": _POLICY,
    "AWS::S3::BucketPolicy": _POLICY,
    "AWS::Events::EventBusPolicy": _POLICY,
    "Custom::S3AutoDeleteObjects": (
        "emptying buckets on stack deletion: the sandbox is thrown away with moto"
    ),
    "AWS::CDK::Metadata": "CDK's usage metadata, not a resource",
    "AWS::EventSchemas::Discoverer": "schema discovery has no effect on delivery",
    "AWS::Events::Connection": "API destinations (HTTP calls to third parties) are not made",
    "AWS::Events::ApiDestination": "API destinations (HTTP calls to third parties) are not made",
}
SKIP_PREFIXES: dict[str, str] = {
    "AWS::ApiGateway::": _API,
    "AWS::WAFv2::": _API,
}
_PROVIDER_REASON = "provider of {types}: the sandbox does not run CloudFormation custom resources"
_NOTIFICATIONS_PROVIDER = "; the deployer applies the bucket notifications itself"

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


class UnsupportedResource(Exception):
    """A resource type, or a property of one, that the sandbox cannot deploy faithfully."""

    def __init__(
        self,
        stack: str,
        logical_id: str,
        resource_type: str,
        prop: str | None = None,
        reason: str | None = None,
    ) -> None:
        what = f"property {prop} of " if prop else ""
        detail = reason or (
            "this property is not supported by the sandbox deployer"
            if prop
            else "this resource type is not supported by the sandbox deployer"
        )
        super().__init__(f"{stack}/{logical_id}: {what}{resource_type}: {detail}")
        self.stack = stack
        self.logical_id = logical_id
        self.resource_type = resource_type
        self.property = prop
        self.reason = detail


# -- names ---------------------------------------------------------------------------------


def physical_name(
    stack: str, logical_id: str, *, limit: int, lowercase: bool = False, suffix: str = ""
) -> str:
    """Deterministic ``<stack>-<logicalId>[suffix]``, within ``limit`` characters.

    Too long a name keeps its beginning and ends with 8 hex digits of a hash of the whole
    name (still deterministic and unique); ``suffix`` (``.fifo``) is always kept.
    """
    base = f"{stack}-{logical_id}"
    if lowercase:
        base = base.lower()
    if len(base) + len(suffix) <= limit:
        return base + suffix
    digest = hashlib.sha256(f"{stack}/{logical_id}".encode()).hexdigest()[:8]
    keep = max(limit - len(suffix) - len(digest) - 1, 1)
    return f"{base[:keep].rstrip('-.')}-{digest}{suffix}"


def internal_queue_name(stack: str, *parts: str, fifo: bool = False) -> str:
    """``sbx-<stack>-<part>-<part>…`` (80 characters at most, ``.fifo`` kept)."""
    return physical_name(
        INTERNAL_QUEUE_PREFIX + stack,
        "-".join(parts),
        limit=NAME_LIMITS["AWS::SQS::Queue"],
        suffix=".fifo" if fifo else "",
    )


def _short_id(*parts: str, length: int = 10) -> str:
    digest = hashlib.sha256("/".join(parts).encode()).hexdigest()
    return digest[:length]


def _uuid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "conveyor-sandbox:" + "/".join(parts)))


def _tags(value: Any) -> dict[str, str]:
    """CloudFormation tags (a ``[{Key, Value}]`` list or a map) as a map."""
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(value, list):
        return {str(tag["Key"]): str(tag["Value"]) for tag in value if "Key" in tag}
    return {}


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def _text(value: Any) -> str:
    """An attribute value as the AWS APIs take it: booleans lowercase, objects as JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _arn_service(arn: str) -> str:
    parts = arn.split(":", 5)
    return parts[2] if len(parts) > 2 and parts[0] == "arn" else ""


def _arn_resource(arn: str) -> str:
    parts = arn.split(":", 5)
    return parts[5] if len(parts) > 5 else ""


# -- deployment state ----------------------------------------------------------------------


class _Clients:
    """One boto3 client per service, built once per deployment."""

    def __init__(self, session: Any, endpoint_url: str | None) -> None:
        self.session = session
        self.endpoint_url = endpoint_url
        self._clients: dict[str, Any] = {}

    def __call__(self, service: str) -> Any:
        client = self._clients.get(service)
        if client is None:
            config = (
                Config(s3={"addressing_style": "path"})
                if service == "s3" and self.endpoint_url
                else None
            )
            client = self.session.client(
                service, region_name=REGION, endpoint_url=self.endpoint_url, config=config
            )
            self._clients[service] = client
        return client


@dataclass
class _State:
    """What every stack of the deployment shares."""

    clients: _Clients
    queue_urls: dict[str, str] = field(default_factory=dict)  # queue ARN -> URL
    fifo_queues: set[str] = field(default_factory=set)  # ARNs
    # function ARN and name -> (stack name, logical id)
    functions: dict[str, tuple[str, str]] = field(default_factory=dict)

    def queue_url(self, arn: str) -> str:
        url = self.queue_urls.get(arn)
        if url is None:
            name = arn.rsplit(":", 1)[-1]
            url = str(self.clients("sqs").get_queue_url(QueueName=name)["QueueUrl"])
            self.queue_urls[arn] = url
        return url


@dataclass
class _Context:
    """One resource being deployed."""

    state: _State
    artifact: StackArtifact
    stack: DeployedStack
    resolver: Resolver
    logical_id: str
    type: str

    @property
    def stack_name(self) -> str:
        return self.stack.name

    def client(self, service: str) -> Any:
        return self.state.clients(service)

    def name(self, explicit: Any, *, lowercase: bool = False, suffix: str = "") -> str:
        if explicit:
            return str(explicit)
        limit = NAME_LIMITS.get(self.type, DEFAULT_NAME_LIMIT)
        return physical_name(
            self.stack_name, self.logical_id, limit=limit, lowercase=lowercase, suffix=suffix
        )

    def unsupported(self, prop: str | None, reason: str | None = None) -> UnsupportedResource:
        return UnsupportedResource(self.stack_name, self.logical_id, self.type, prop, reason)

    def function_for(self, reference: str, prop: str) -> FunctionSpec:
        """The function a ``FunctionName``/``Endpoint``/target ``Arn`` names (name, ARN,
        partial ARN, with or without qualifier)."""
        candidates = [reference]
        if reference.startswith("arn:"):
            parts = reference.split(":")
            if len(parts) >= 7:
                candidates.append(parts[6])
        else:
            candidates.append(reference.split(":")[-1])
            candidates.append(reference.split(":")[0])
        for candidate in candidates:
            owner = self.state.functions.get(candidate)
            if owner is not None:
                stack_name, logical_id = owner
                if stack_name != self.stack_name:
                    raise self.unsupported(
                        prop, f"function {reference} belongs to another stack ({stack_name})"
                    )
                return self.stack.functions[logical_id]
        raise self.unsupported(prop, f"{reference} is not a function deployed by the sandbox")

    def create_internal_queue(self, name: str, *, fifo: bool) -> tuple[str, str]:
        attributes = {"FifoQueue": "true", "ContentBasedDeduplication": "true"} if fifo else {}
        sqs = self.client("sqs")
        url = str(sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])
        arn = str(
            sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
        )
        self.state.queue_urls[arn] = url
        if fifo:
            self.state.fifo_queues.add(arn)
        return url, arn


# -- handlers ------------------------------------------------------------------------------

_Handler = Callable[[_Context, dict[str, Any]], DeployedResource]


@dataclass(frozen=True)
class _Kind:
    handler: _Handler
    properties: frozenset[str]
    # Nested property checks run on the raw template (before anything is created).
    validate: Callable[[_Context, Mapping[str, Any]], None] | None = None


def _resource(
    ctx: _Context, physical_id: str, props: dict[str, Any], **attrs: Any
) -> DeployedResource:
    return DeployedResource(
        logical_id=ctx.logical_id,
        type=ctx.type,
        physical_id=physical_id,
        attributes={k: str(v) for k, v in attrs.items() if v is not None},
        properties=props,
    )


_QUEUE_ATTRIBUTES = (
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "DelaySeconds",
    "FifoQueue",
    "FifoThroughputLimit",
    "KmsDataKeyReusePeriodSeconds",
    "KmsMasterKeyId",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "RedriveAllowPolicy",
    "RedrivePolicy",
    "SqsManagedSseEnabled",
    "VisibilityTimeout",
)


def _sqs_queue(ctx: _Context, props: dict[str, Any]) -> DeployedResource:
    fifo = _flag(props.get("FifoQueue", False))
    name = ctx.name(props.get("QueueName"), suffix=".fifo" if fifo else "")
    attributes = {key: _text(props[key]) for key in _QUEUE_ATTRIBUTES if key in props}
    if not fifo:
        attributes.pop("FifoQueue", None)
    sqs = ctx.client("sqs")
    url = str(
        sqs.create_queue(QueueName=name, Attributes=attributes, tags=_tags(props.get("Tags")))[
            "QueueUrl"
        ]
    )
    arn = str(
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
    )
    ctx.state.queue_urls[arn] = url
    if fifo:
        ctx.state.fifo_queues.add(arn)
    return _resource(ctx, url, props, Arn=arn, QueueName=name, QueueUrl=url)


_TOPIC_ATTRIBUTES = (
    "ContentBasedDeduplication",
    "DisplayName",
    "FifoTopic",
    "KmsMasterKeyId",
    "SignatureVersion",
    "TracingConfig",
    "ArchivePolicy",
    "FifoThroughputScope",
)


def _sns_topic(ctx: _Context, props: dict[str, Any]) -> DeployedResource:
    fifo = _flag(props.get("FifoTopic", False))
    name = ctx.name(props.get("TopicName"), suffix=".fifo" if fifo else "")
    attributes = {key: _text(props[key]) for key in _TOPIC_ATTRIBUTES if key in props}
    if not fifo:
        attributes.pop("FifoTopic", None)
    tags = [{"Key": k, "Value": v} for k, v in _tags(props.get("Tags")).items()]
    response = ctx.client("sns").create_topic(Name=name, Attributes=attributes, Tags=tags)
    arn = str(response["TopicArn"])
    return _resource(ctx, arn, props, TopicArn=arn, TopicName=name)


_SKIPPED_PROTOCOLS = {
    "email": "e-mail subscriptions are not delivered by the sandbox",
    "email-json": "e-mail subscriptions are not delivered by the sandbox",
    "sms": "SMS subscriptions are not delivered by the sandbox",
    "http": "HTTP(S) endpoints are not called by the sandbox",
    "https": "HTTP(S) endpoints are not called by the sandbox",
    "application": "mobile push endpoints are not delivered by the sandbox",
    "firehose": "Firehose is not part of the sandbox",
}


def _subscription_attributes(props: Mapping[str, Any], *, raw: bool) -> dict[str, str]:
    attributes: dict[str, str] = {"RawMessageDelivery": _text(raw)}
    if "FilterPolicy" in props:
        attributes["FilterPolicy"] = _text(props["FilterPolicy"])
        if "FilterPolicyScope" in props:
            attributes["FilterPolicyScope"] = str(props["FilterPolicyScope"])
    if "RedrivePolicy" in props:
        attributes["RedrivePolicy"] = _text(props["RedrivePolicy"])
    return attributes


def _sns_subscription(ctx: _Context, props: dict[str, Any]) -> DeployedResource:
    protocol = str(props.get("Protocol", "")).lower()
    topic_arn = str(props.get("TopicArn", ""))
    endpoint = str(props.get("Endpoint", ""))
    region = props.get("Region")
    if region and region != REGION:
        raise ctx.unsupported("Region", f"the sandbox has one region, {REGION}")
    if protocol in _SKIPPED_PROTOCOLS:
        ctx.stack.skipped[ctx.logical_id] = f"protocol {protocol}: {_SKIPPED_PROTOCOLS[protocol]}"
        arn = f"{topic_arn}:{_uuid(ctx.stack_name, ctx.logical_id)}"
        return _resource(ctx, arn, props, Arn=arn)
    sns = ctx.client("sns")
    if protocol == "sqs":
        response = sns.subscribe(
            TopicArn=topic_arn,
            Protocol="sqs",
            Endpoint=endpoint,
            Attributes=_subscription_attributes(
                props, raw=_flag(props.get("RawMessageDelivery", False))
            ),
            ReturnSubscriptionArn=True,
        )
        arn = str(response["SubscriptionArn"])
        return _resource(ctx, arn, props, Arn=arn)
    if protocol == "lambda":
        function = ctx.function_for(endpoint, "Endpoint")
        fifo = topic_arn.endswith(".fifo")
        url, queue_arn = ctx.create_internal_queue(
            internal_queue_name(ctx.stack_name, ctx.logical_id, fifo=fifo), fifo=fifo
        )
        response = sns.subscribe(
            TopicArn=topic_arn,
            Protocol="sqs",
            Endpoint=queue_arn,
            Attributes=_subscription_attributes(props, raw=False),
            ReturnSubscriptionArn=True,
        )
        arn = str(response["SubscriptionArn"])
        ctx.stack.routes.append(
            Route(
                kind="sns",
                source=ctx.logical_id,
                queue_url=url,
                queue_arn=queue_arn,
                function_logical_id=function.logical_id,
                batch_size=1,  # SNS invokes a function with one record
                fifo=fifo,
            )
        )
        return _resource(ctx, arn, props, Arn=arn, InternalQueueUrl=url)
    raise ctx.unsupported("Protocol", f"protocol {protocol!r} is not supported by the sandbox")


def _s3_bucket(ctx: _Context, props: dict[str, Any]) -> DeployedResource:
    name = ctx.name(props.get("BucketName"), lowercase=True)
    s3 = ctx.client("s3")
    s3.create_bucket(Bucket=name)
    if "VersioningConfiguration" in props:
        s3.put_bucket_versioning(
            Bucket=name,
            VersioningConfiguration={"Status": props["VersioningConfiguration"]["Status"]},
        )
    if "PublicAccessBlockConfiguration" in props:
        s3.put_public_access_block(
            Bucket=name,
            PublicAccessBlockConfiguration={
                key: _flag(value) for key, value in props["PublicAccessBlockConfiguration"].items()
            },
        )
    encryption = props.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration")
    if encryption:
        rules = []
        for rule in encryption:
            entry: dict[str, Any] = {}
            if "ServerSideEncryptionByDefault" in rule:
                entry["ApplyServerSideEncryptionByDefault"] = rule["ServerSideEncryptionByDefault"]
            if "BucketKeyEnabled" in rule:
                entry["BucketKeyEnabled"] = _flag(rule["BucketKeyEnabled"])
            rules.append(entry)
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
    tags = _tags(props.get("Tags"))
    if tags:
        s3.put_bucket_tagging(
            Bucket=name, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]}
        )
    if "NotificationConfiguration" in props:
        s3.put_bucket_notification_configuration(
            Bucket=name,
            NotificationConfiguration=_inline_notifications(
                ctx, props["NotificationConfiguration"]
            ),
        )
    return _resource(
        ctx,
        name,
        props,
        Arn=f"arn:{PARTITION}:s3:::{name}",
        DomainName=f"{name}.s3.{URL_SUFFIX}",
        RegionalDomainName=f"{name}.s3.{REGION}.{URL_SUFFIX}",
        DualStackDomainName=f"{name}.s3.dualstack.{REGION}.{URL_SUFFIX}",
        WebsiteURL=f"http://{name}.s3-website-{REGION}.{URL_SUFFIX}",
    )


def _inline_notifications(ctx: _Context, config: Mapping[str, Any]) -> dict[str, Any]:
    """``AWS::S3::Bucket.NotificationConfiguration`` in the API's shape."""
    result: dict[str, Any] = {}
    for key, target_key, api_key in (
        ("QueueConfigurations", "Queue", "QueueArn"),
        ("TopicConfigurations", "Topic", "TopicArn"),
    ):
        items = []
        for item in config.get(key, []):
            entry: dict[str, Any] = {api_key: item[target_key], "Events": [item["Event"]]}
            rules = item.get("Filter", {}).get("S3Key", {}).get("Rules")
            if rules:
                entry["Filter"] = {"Key": {"FilterRules": rules}}
            items.append(entry)
        if items:
            result[key] = items
    if "EventBridgeConfiguration" in config:
        result["EventBridgeConfiguration"] = {}
    return result


def _validate_inline_notifications(ctx: _Context, props: Mapping[str, Any]) -> None:
    config = props.get("NotificationConfiguration")
    if isinstance(config, dict):
        for key in config:
            if key not in (
                "QueueConfigurations",
                "TopicConfigurations",
                "EventBridgeConfiguration",
            ):
                raise ctx.unsupported(
                    f"NotificationConfiguration.{key}",
                    "moto would invoke the function through Docker"
                    if key == "LambdaConfigurations"
                    else None,
                )


def _bucket_notifications(ctx: _Context, props: dict[str, Any]) -> DeployedResource:
    bucket = str(props["BucketName"])
    config = {
        key: value
        for key, value in dict(props.get("NotificationConfiguration") or {}).items()
        if value
    }
    s3 = ctx.client("s3")
    if not _flag(props.get("Managed", True)):
        existing = s3.get_bucket_notification_configuration(Bucket=bucket)
        for key in ("QueueConfigurations", "TopicConfigurations", "LambdaFunctionConfigurations"):
            if existing.get(key):
                config[key] = list(existing[key]) + list(config.get(key, []))
        if "EventBridgeConfiguration" in existing and "EventBridgeConfiguration" not in config:
            config["EventBridgeConfiguration"] = existing["EventBridgeConfiguration"]
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration=config,
        SkipDestinationValidation=_flag(props.get("SkipDestinationValidation", False)),
    )
    return _resource(ctx, ctx.logical_id, props)


def _validate_bucket_notifications(ctx: _Context, props: Mapping[str, Any]) -> None:
    config = props.get("NotificationConfiguration")
    if not isinstance(config, dict):
        return
    for key, value in config.items():
        if key == "LambdaFunctionConfigurations" and value:
            raise ctx.unsupported(
                "NotificationConfiguration.LambdaFunctionConfigurations",
                "moto would invoke the function through Docker",
            )
        if key not in (
            "QueueConfigurations",
            "TopicConfigurations",
            "LambdaFunctionConfigurations",
            "EventBridgeConfiguration",
        ):
            raise ctx.unsupported(f"NotificationConfiguration.{key}")


def _lambda_function(ctx: _Context, props: dict[str, Any]) -> DeployedResource:
    name = ctx.name(props.get("FunctionName"))
    arn = f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT_ID}:function:{name}"
    code = props.get("Code") or {}
    key = code.get("S3Key")
    if not key:
        raise ctx.unsupported(
            "Code", "only file assets (Code.S3Key of the cloud assembly) can run in the sandbox"
        )
    asset = ctx.artifact.asset_for_key(str(key))
    if asset is None:
        raise ctx.unsupported("Code.S3Key", f"{key} is not an asset of the cloud assembly")
    if not asset.path.is_dir():
        raise ctx.unsupported(
            "Code.S3Key", f"asset {asset.hash} is not a staged folder ({asset.path})"
        )
    variables = (props.get("Environment") or {}).get("Variables") or {}
    handler = props.get("Handler")
    runtime = props.get("Runtime")
    if not handler or not runtime:
        raise ctx.unsupported("Handler" if not handler else "Runtime", "required for a zip asset")
    spec = FunctionSpec(
        logical_id=ctx.logical_id,
        name=name,
        arn=arn,
        handler=str(handler),
        code_dir=asset.path,
        environment={str(k): _text(v) for k, v in variables.items()},
        timeout_s=int(props.get("Timeout", 3)),
        runtime=str(runtime),
    )
    ctx.stack.functions[ctx.logical_id] = spec
    ctx.state.functions[arn] = (ctx.stack_name, ctx.logical_id)
    ctx.state.functions[name] = (ctx.stack_name, ctx.logical_id)
    return _resource(ctx, name, props, Arn=arn)


def _validate_function(ctx: _Context, props: Mapping[str, Any]) -> None:
    code = props.get("Code")
    if isinstance(code, dict):
        for key in code:
            if key not in ("S3Bucket", "S3Key", "S3ObjectVersion"):
                raise ctx.unsupported(
                    f"Code.{key}", "only file assets of the cloud assembly run in the sandbox"
                )


def _event_source_mapping(ctx: _Context, props: dict[str, Any]) -> DeployedResource:
    source = str(props.get("EventSourceArn", ""))
    if _arn_service(source) != "sqs":
        raise ctx.unsupported("EventSourceArn", f"only SQS event sources run ({source})")
    function = ctx.function_for(str(props.get("FunctionName", "")), "FunctionName")
    mapping_id = _uuid(ctx.stack_name, ctx.logical_id)
    arn = f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT_ID}:event-source-mapping:{mapping_id}"
    if not _flag(props.get("Enabled", True)):
        ctx.stack.skipped[ctx.logical_id] = "the event source mapping is disabled (Enabled: false)"
        return _resource(ctx, mapping_id, props, Id=mapping_id, EventSourceMappingArn=arn)
    ctx.stack.routes.append(
        Route(
            kind="sqs",
            source=ctx.logical_id,
            queue_url=ctx.state.queue_url(source),
            queue_arn=source,
            function_logical_id=function.logical_id,
            batch_size=int(props.get("BatchSize", 10)),
            batching_window_s=int(props.get("MaximumBatchingWindowInSeconds", 0)),
            report_batch_item_failures="ReportBatchItemFailures"
            in (props.get("FunctionResponseTypes") or []),
            fifo=source in ctx.state.fifo_queues or source.endswith(".fifo"),
        )
    )
    return _resource(ctx, mapping_id, props, Id=mapping_id, EventSourceMappingArn=arn)


def _event_invoke_config(ctx: _Context, props: dict[str, Any]) -> DeployedResource:
    qualifier = str(props.get("Qualifier", "$LATEST"))
    if qualifier != "$LATEST":
        raise ctx.unsupported("Qualifier", "the sandbox runs $LATEST only")
    function = ctx.function_for(str(props.get("FunctionName", "")), "FunctionName")
    if "MaximumRetryAttempts" in props:
        function.max_retry_attempts = int(props["MaximumRetryAttempts"])
    destinations = props.get("DestinationConfig") or {}
    if destinations.get("OnSuccess"):
        raise ctx.unsupported("DestinationConfig.OnSuccess", "on-success destinations")
    failure = (destinations.get("OnFailure") or {}).get("Destination")
    if failure:
        if _arn_service(str(failure)) != "sqs":
            raise ctx.unsupported(
                "DestinationConfig.OnFailure.Destination",
                f"only SQS on-failure destinations are supported ({failure})",
            )
        function.on_failure_queue_url = ctx.state.queue_url(str(failure))
    config_id = _uuid(ctx.stack_name, ctx.logical_id)
    return _resource(ctx, config_id, props)


def _validate_destinations(ctx: _Context, props: Mapping[str, Any]) -> None:
    config = props.get("DestinationConfig")
    if isinstance(config, dict):
        for key in config:
            if key not in ("OnFailure", "OnSuccess"):
                raise ctx.unsupported(f"DestinationConfig.{key}")
        if config.get("OnSuccess"):
            raise ctx.unsupported("DestinationConfig.OnSuccess", "on-success destinations")


def _dynamodb_table(ctx: _Context, props: dict[str, Any]) -> DeployedResource:
    name = ctx.name(props.get("TableName"))
    global_table = ctx.type == "AWS::DynamoDB::GlobalTable"
    billing = str(props.get("BillingMode", "PROVISIONED"))
    provisioned = billing == "PROVISIONED"
    default_throughput = {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
    replica: dict[str, Any] = {}
    if global_table:
        replicas = props.get("Replicas") or []
        regions = [r.get("Region") for r in replicas]
        if REGION not in regions:
            raise ctx.unsupported("Replicas", f"no replica in the sandbox's region {REGION}")
        replica = next(r for r in replicas if r.get("Region") == REGION)

    def throughput(source: Mapping[str, Any]) -> dict[str, int]:
        if "ProvisionedThroughput" in source:
            value = source["ProvisionedThroughput"]
            return {
                "ReadCapacityUnits": int(value["ReadCapacityUnits"]),
                "WriteCapacityUnits": int(value["WriteCapacityUnits"]),
            }
        return default_throughput

    def index(source: Mapping[str, Any]) -> dict[str, Any]:
        entry = {k: source[k] for k in ("IndexName", "KeySchema", "Projection") if k in source}
        if provisioned:
            entry["ProvisionedThroughput"] = throughput(source)
        return entry

    request: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": billing,
    }
    if provisioned:
        request["ProvisionedThroughput"] = throughput(props)
    if props.get("GlobalSecondaryIndexes"):
        request["GlobalSecondaryIndexes"] = [index(i) for i in props["GlobalSecondaryIndexes"]]
    if props.get("LocalSecondaryIndexes"):
        request["LocalSecondaryIndexes"] = [
            {k: i[k] for k in ("IndexName", "KeySchema", "Projection")}
            for i in props["LocalSecondaryIndexes"]
        ]
    stream = props.get("StreamSpecification")
    if stream and stream.get("StreamViewType"):
        request["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": stream["StreamViewType"],
        }
    sse = props.get("SSESpecification")
    if sse and _flag(sse.get("SSEEnabled", False)):
        spec: dict[str, Any] = {"Enabled": True}
        if sse.get("SSEType"):
            spec["SSEType"] = sse["SSEType"]
        key = sse.get("KMSMasterKeyId") or (replica.get("SSESpecification") or {}).get(
            "KMSMasterKeyId"
        )
        if key:
            spec["KMSMasterKeyId"] = key
        request["SSESpecification"] = spec
    tags = _tags(replica.get("Tags") if global_table else props.get("Tags"))
    if tags:
        request["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
    dynamodb = ctx.client("dynamodb")
    table = dynamodb.create_table(**request)["TableDescription"]
    ttl = props.get("TimeToLiveSpecification")
    if ttl and _flag(ttl.get("Enabled", False)):
        dynamodb.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
        )
    return _resource(
        ctx,
        name,
        props,
        Arn=table["TableArn"],
        StreamArn=table.get("LatestStreamArn"),
        TableId=table.get("TableId"),
    )


def _event_bus(ctx: _Context, props: dict[str, Any]) -> DeployedResource:
    name = str(props["Name"])
    events = ctx.client("events")
    if name == "default":
        arn = str(events.describe_event_bus(Name="default")["Arn"])
    else:
        request: dict[str, Any] = {"Name": name}
        for key in ("Description", "KmsKeyIdentifier", "EventSourceName"):
            if props.get(key):
                request[key] = props[key]
        tags = _tags(props.get("Tags"))
        if tags:
            request["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
        arn = str(events.create_event_bus(**request)["EventBusArn"])
    return _resource(ctx, name, props, Arn=arn, Name=name)


_TARGET_KEYS = frozenset(
    {
        "Id",
        "Arn",
        "RoleArn",
        "DeadLetterConfig",
        "RetryPolicy",
        "SqsParameters",
        "Input",
        "InputPath",
        "InputTransformer",
        "HttpParameters",
    }
)


def _validate_rule(ctx: _Context, props: Mapping[str, Any]) -> None:
    targets = props.get("Targets")
    if isinstance(targets, list):
        for index, target in enumerate(targets):
            if isinstance(target, dict):
                for key in target:
                    if key not in _TARGET_KEYS:
                        raise ctx.unsupported(f"Targets[{index}].{key}")


def _event_rule(ctx: _Context, props: dict[str, Any]) -> DeployedResource:
    name = ctx.name(props.get("Name"))
    bus = str(props.get("EventBusName", "default"))
    if bus.startswith("arn:"):
        bus = _arn_resource(bus).split("/", 1)[-1]
    request: dict[str, Any] = {"Name": name, "EventBusName": bus}
    if "EventPattern" in props:
        pattern = props["EventPattern"]
        request["EventPattern"] = pattern if isinstance(pattern, str) else json.dumps(pattern)
    for key in ("ScheduleExpression", "State", "Description", "RoleArn"):
        if props.get(key):
            request[key] = props[key]
    tags = _tags(props.get("Tags"))
    if tags:
        request["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
    events = ctx.client("events")
    rule_arn = str(events.put_rule(**request)["RuleArn"])
    targets = []
    for target in props.get("Targets") or []:
        kept = _rule_target(ctx, dict(target))
        if kept is not None:
            targets.append(kept)
    if targets:
        response = events.put_targets(Rule=name, EventBusName=bus, Targets=targets)
        if response.get("FailedEntryCount"):
            raise ctx.unsupported("Targets", f"put_targets failed: {response['FailedEntries']}")
    physical_id = name if bus == "default" else f"{bus}|{name}"
    return _resource(ctx, physical_id, props, Arn=rule_arn)


def _rule_target(ctx: _Context, target: dict[str, Any]) -> dict[str, Any] | None:
    """The target to put on the rule (possibly an internal queue), or None when skipped."""
    arn = str(target.get("Arn", ""))
    target_id = str(target.get("Id", ""))
    service = _arn_service(arn)
    resource = _arn_resource(arn)
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
        function = ctx.function_for(arn, f"Targets[{target_id}].Arn")
        url, queue_arn = ctx.create_internal_queue(
            internal_queue_name(ctx.stack_name, ctx.logical_id, target_id), fifo=False
        )
        ctx.stack.routes.append(
            Route(
                kind="events",
                source=ctx.logical_id,
                queue_url=url,
                queue_arn=queue_arn,
                function_logical_id=function.logical_id,
                batch_size=1,  # EventBridge invokes a function with one event
            )
        )
        target = {k: v for k, v in target.items() if k not in ("RoleArn",)}
        target["Arn"] = queue_arn
        return target
    if service == "sqs" or (service == "events" and resource.startswith("event-bus/")):
        return target
    if service == "logs" and resource.startswith("log-group:"):
        return target
    raise ctx.unsupported(
        f"Targets[{target_id}].Arn", f"targets of service {service or arn!r} are not supported"
    )


def _event_archive(ctx: _Context, props: dict[str, Any]) -> DeployedResource:
    name = ctx.name(props.get("ArchiveName"))
    request: dict[str, Any] = {"ArchiveName": name, "EventSourceArn": props["SourceArn"]}
    if "EventPattern" in props:
        pattern = props["EventPattern"]
        request["EventPattern"] = pattern if isinstance(pattern, str) else json.dumps(pattern)
    if props.get("Description"):
        request["Description"] = props["Description"]
    if "RetentionDays" in props:
        request["RetentionDays"] = int(props["RetentionDays"])
    if props.get("KmsKeyIdentifier"):
        request["KmsKeyIdentifier"] = props["KmsKeyIdentifier"]
    arn = str(ctx.client("events").create_archive(**request)["ArchiveArn"])
    return _resource(ctx, name, props, Arn=arn, ArchiveName=name)


def _ssm_parameter(ctx: _Context, props: dict[str, Any]) -> DeployedResource:
    name = ctx.name(props.get("Name"))
    request: dict[str, Any] = {
        "Name": name,
        "Value": _text(props["Value"]),
        "Type": props.get("Type", "String"),
    }
    for key in ("Description", "Tier", "AllowedPattern", "DataType", "Policies"):
        if props.get(key):
            request[key] = props[key]
    tags = _tags(props.get("Tags"))
    if tags:
        request["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
    ctx.client("ssm").put_parameter(**request)
    return _resource(ctx, name, props, Type=request["Type"], Value=request["Value"])


def _kms_key(ctx: _Context, props: dict[str, Any]) -> DeployedResource:
    request: dict[str, Any] = {}
    for key in ("Description", "KeyUsage", "KeySpec", "Origin"):
        if props.get(key):
            request[key] = props[key]
    if "KeyPolicy" in props:
        request["Policy"] = _text(props["KeyPolicy"])
    if "MultiRegion" in props:
        request["MultiRegion"] = _flag(props["MultiRegion"])
    if "BypassPolicyLockoutSafetyCheck" in props:
        request["BypassPolicyLockoutSafetyCheck"] = _flag(props["BypassPolicyLockoutSafetyCheck"])
    tags = _tags(props.get("Tags"))
    if tags:
        request["Tags"] = [{"TagKey": k, "TagValue": v} for k, v in tags.items()]
    kms = ctx.client("kms")
    metadata = kms.create_key(**request)["KeyMetadata"]
    key_id = str(metadata["KeyId"])
    if _flag(props.get("EnableKeyRotation", False)):
        rotation: dict[str, Any] = {"KeyId": key_id}
        if props.get("RotationPeriodInDays"):
            rotation["RotationPeriodInDays"] = int(props["RotationPeriodInDays"])
        kms.enable_key_rotation(**rotation)
    if "Enabled" in props and not _flag(props["Enabled"]):
        kms.disable_key(KeyId=key_id)
    return _resource(ctx, key_id, props, Arn=metadata["Arn"], KeyId=key_id)


def _kms_alias(ctx: _Context, props: dict[str, Any]) -> DeployedResource:
    name = str(props["AliasName"])
    ctx.client("kms").create_alias(AliasName=name, TargetKeyId=props["TargetKeyId"])
    return _resource(ctx, name, props)


def _log_group(ctx: _Context, props: dict[str, Any]) -> DeployedResource:
    name = ctx.name(props.get("LogGroupName"))
    request: dict[str, Any] = {"logGroupName": name}
    if props.get("KmsKeyId"):
        request["kmsKeyId"] = props["KmsKeyId"]
    if props.get("LogGroupClass"):
        request["logGroupClass"] = props["LogGroupClass"]
    tags = _tags(props.get("Tags"))
    if tags:
        request["tags"] = tags
    logs = ctx.client("logs")
    logs.create_log_group(**request)
    if "RetentionInDays" in props:
        logs.put_retention_policy(logGroupName=name, retentionInDays=int(props["RetentionInDays"]))
    arn = f"arn:{PARTITION}:logs:{REGION}:{ACCOUNT_ID}:log-group:{name}:*"
    return _resource(ctx, name, props, Arn=arn)


def _secret(ctx: _Context, props: dict[str, Any]) -> DeployedResource:
    name = ctx.name(props.get("Name"))
    secrets = ctx.client("secretsmanager")
    request: dict[str, Any] = {"Name": name}
    for key in ("Description", "KmsKeyId"):
        if props.get(key):
            request[key] = props[key]
    if "SecretString" in props:
        request["SecretString"] = _text(props["SecretString"])
    elif "GenerateSecretString" in props:
        request["SecretString"] = _generate_secret(secrets, props["GenerateSecretString"])
    tags = _tags(props.get("Tags"))
    if tags:
        request["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
    arn = str(secrets.create_secret(**request)["ARN"])
    return _resource(ctx, arn, props, Id=arn)


def _generate_secret(secrets: Any, spec: Mapping[str, Any]) -> str:
    request: dict[str, Any] = {}
    for key in (
        "ExcludeCharacters",
        "ExcludeLowercase",
        "ExcludeNumbers",
        "ExcludePunctuation",
        "ExcludeUppercase",
        "IncludeSpace",
        "RequireEachIncludedType",
    ):
        if key in spec:
            request[key] = _flag(spec[key]) if key != "ExcludeCharacters" else str(spec[key])
    if "PasswordLength" in spec:
        request["PasswordLength"] = int(spec["PasswordLength"])
    password = str(secrets.get_random_password(**request)["RandomPassword"])
    template = spec.get("SecretStringTemplate")
    string_key = spec.get("GenerateStringKey")
    if template and string_key:
        document = json.loads(template)
        document[string_key] = password
        return json.dumps(document)
    return password


_KINDS: dict[str, _Kind] = {
    "AWS::SQS::Queue": _Kind(_sqs_queue, frozenset({"QueueName", "Tags", *_QUEUE_ATTRIBUTES})),
    "AWS::SNS::Topic": _Kind(_sns_topic, frozenset({"TopicName", "Tags", *_TOPIC_ATTRIBUTES})),
    "AWS::SNS::Subscription": _Kind(
        _sns_subscription,
        frozenset(
            {
                "Protocol",
                "Endpoint",
                "TopicArn",
                "FilterPolicy",
                "FilterPolicyScope",
                "RawMessageDelivery",
                "RedrivePolicy",
                "Region",
                "DeliveryPolicy",
            }
        ),
    ),
    "AWS::S3::Bucket": _Kind(
        _s3_bucket,
        frozenset(
            {
                "BucketName",
                "BucketEncryption",
                "LifecycleConfiguration",
                "LoggingConfiguration",
                "OwnershipControls",
                "PublicAccessBlockConfiguration",
                "Tags",
                "VersioningConfiguration",
                "NotificationConfiguration",
                "CorsConfiguration",
                "IntelligentTieringConfigurations",
                "MetricsConfigurations",
            }
        ),
        _validate_inline_notifications,
    ),
    "Custom::S3BucketNotifications": _Kind(
        _bucket_notifications,
        frozenset(
            {
                "ServiceToken",
                "BucketName",
                "NotificationConfiguration",
                "Managed",
                "SkipDestinationValidation",
            }
        ),
        _validate_bucket_notifications,
    ),
    "AWS::Lambda::Function": _Kind(
        _lambda_function,
        frozenset(
            {
                "Code",
                "Handler",
                "Runtime",
                "Timeout",
                "MemorySize",
                "Role",
                "Environment",
                "Layers",
                "LoggingConfig",
                "Architectures",
                "Description",
                "Tags",
                "FunctionName",
                "TracingConfig",
                "ReservedConcurrentExecutions",
                "EphemeralStorage",
                "RuntimeManagementConfig",
            }
        ),
        _validate_function,
    ),
    "AWS::Lambda::EventSourceMapping": _Kind(
        _event_source_mapping,
        frozenset(
            {
                "EventSourceArn",
                "FunctionName",
                "BatchSize",
                "MaximumBatchingWindowInSeconds",
                "FunctionResponseTypes",
                "Enabled",
                "Tags",
                "ScalingConfig",
            }
        ),
    ),
    "AWS::Lambda::EventInvokeConfig": _Kind(
        _event_invoke_config,
        frozenset(
            {
                "FunctionName",
                "Qualifier",
                "MaximumRetryAttempts",
                "MaximumEventAgeInSeconds",
                "DestinationConfig",
            }
        ),
        _validate_destinations,
    ),
    "AWS::DynamoDB::GlobalTable": _Kind(
        _dynamodb_table,
        frozenset(
            {
                "TableName",
                "AttributeDefinitions",
                "KeySchema",
                "BillingMode",
                "Replicas",
                "SSESpecification",
                "TimeToLiveSpecification",
                "GlobalSecondaryIndexes",
                "LocalSecondaryIndexes",
                "StreamSpecification",
                "WriteProvisionedThroughputSettings",
                "WriteOnDemandThroughputSettings",
            }
        ),
    ),
    "AWS::DynamoDB::Table": _Kind(
        _dynamodb_table,
        frozenset(
            {
                "TableName",
                "AttributeDefinitions",
                "KeySchema",
                "BillingMode",
                "ProvisionedThroughput",
                "SSESpecification",
                "TimeToLiveSpecification",
                "GlobalSecondaryIndexes",
                "LocalSecondaryIndexes",
                "StreamSpecification",
                "PointInTimeRecoverySpecification",
                "DeletionProtectionEnabled",
                "TableClass",
                "Tags",
            }
        ),
    ),
    "AWS::Events::EventBus": _Kind(
        _event_bus,
        frozenset({"Name", "Tags", "Description", "KmsKeyIdentifier", "EventSourceName"}),
    ),
    "AWS::Events::Rule": _Kind(
        _event_rule,
        frozenset(
            {
                "Name",
                "Description",
                "EventBusName",
                "EventPattern",
                "ScheduleExpression",
                "State",
                "Tags",
                "Targets",
                "RoleArn",
            }
        ),
        _validate_rule,
    ),
    "AWS::Events::Archive": _Kind(
        _event_archive,
        frozenset(
            {
                "ArchiveName",
                "Description",
                "EventPattern",
                "KmsKeyIdentifier",
                "RetentionDays",
                "SourceArn",
            }
        ),
    ),
    "AWS::SSM::Parameter": _Kind(
        _ssm_parameter,
        frozenset(
            {
                "Name",
                "Type",
                "Value",
                "Description",
                "Tier",
                "Tags",
                "AllowedPattern",
                "DataType",
                "Policies",
            }
        ),
    ),
    "AWS::KMS::Key": _Kind(
        _kms_key,
        frozenset(
            {
                "Description",
                "EnableKeyRotation",
                "KeyPolicy",
                "Tags",
                "KeySpec",
                "KeyUsage",
                "Enabled",
                "MultiRegion",
                "PendingWindowInDays",
                "RotationPeriodInDays",
                "Origin",
                "BypassPolicyLockoutSafetyCheck",
            }
        ),
    ),
    "AWS::KMS::Alias": _Kind(_kms_alias, frozenset({"AliasName", "TargetKeyId"})),
    "AWS::Logs::LogGroup": _Kind(
        _log_group,
        frozenset({"LogGroupName", "RetentionInDays", "Tags", "KmsKeyId", "LogGroupClass"}),
    ),
    "AWS::SecretsManager::Secret": _Kind(
        _secret,
        frozenset(
            {
                "Name",
                "Description",
                "SecretString",
                "GenerateSecretString",
                "KmsKeyId",
                "Tags",
            }
        ),
    ),
}

# Which property names the physical name of a skipped resource.
_SKIPPED_NAME_PROPERTIES = {
    "AWS::IAM::Role": "RoleName",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
    "AWS::IAM::Policy": "PolicyName",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::CloudWatch::CompositeAlarm": "AlarmName",
    "AWS::CloudWatch::Dashboard": "DashboardName",
    "AWS::Lambda::LayerVersion": "LayerName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::ApiGateway::Stage": "StageName",
    "AWS::ApiGateway::Model": "Name",
    "AWS::Events::Connection": "Name",
    "AWS::Events::ApiDestination": "Name",
    "AWS::WAFv2::WebACL": "Name",
}


def supported_types() -> dict[str, str]:
    """Every resource type the deployer knows: type -> ``"created"`` or the skip reason."""
    known = {kind: "created" for kind in _KINDS}
    known.update(SKIP_REASONS)
    return known


def skip_reason(resource_type: str) -> str | None:
    """Why a resource type is deliberately not created, or None."""
    if resource_type in SKIP_REASONS:
        return SKIP_REASONS[resource_type]
    for prefix, reason in SKIP_PREFIXES.items():
        if resource_type.startswith(prefix):
            return reason
    return None


def _synthetic(
    stack: str, logical_id: str, resource_type: str, name_value: Any, wanted: Iterable[str]
) -> tuple[str, dict[str, str]]:
    """Physical id and attributes of a skipped resource (deterministic, never real)."""
    limit = NAME_LIMITS.get(resource_type, DEFAULT_NAME_LIMIT)
    name = str(name_value) if isinstance(name_value, str | int) and name_value != "" else None
    name = name or physical_name(stack, logical_id, limit=limit)
    short = _short_id(stack, logical_id)
    region, account = REGION, ACCOUNT_ID
    attrs: dict[str, str] = {}
    physical = name
    match resource_type:
        case "AWS::IAM::Role":
            attrs = {
                "Arn": f"arn:{PARTITION}:iam::{account}:role/{name}",
                "RoleId": "AROA" + short.upper(),
            }
        case "AWS::IAM::ManagedPolicy":
            physical = f"arn:{PARTITION}:iam::{account}:policy/{name}"
            attrs = {"PolicyArn": physical, "PolicyId": "ANPA" + short.upper()}
        case "AWS::CloudWatch::Alarm" | "AWS::CloudWatch::CompositeAlarm":
            attrs = {"Arn": f"arn:{PARTITION}:cloudwatch:{region}:{account}:alarm:{name}"}
        case "AWS::Lambda::LayerVersion":
            physical = f"arn:{PARTITION}:lambda:{region}:{account}:layer:{name}:1"
            attrs = {"LayerVersionArn": physical}
        case "AWS::Lambda::Function":
            attrs = {"Arn": f"arn:{PARTITION}:lambda:{region}:{account}:function:{name}"}
        case "AWS::ApiGateway::RestApi":
            physical = short
            attrs = {"RestApiId": short, "RootResourceId": _short_id(stack, logical_id, "root")}
        case "AWS::ApiGateway::Stage" | "AWS::ApiGateway::Model":
            pass
        case "AWS::ApiGateway::Deployment":
            physical = short[:6]
            attrs = {"DeploymentId": physical}
        case "AWS::ApiGateway::Resource":
            physical = short[:6]
            attrs = {"ResourceId": physical}
        case "AWS::ApiGateway::ApiKey":
            physical = short
            attrs = {"APIKeyId": short}
        case "AWS::WAFv2::WebACL":
            web_acl_id = _uuid(stack, logical_id)
            physical = f"{name}|{web_acl_id}|REGIONAL"
            attrs = {
                "Arn": f"arn:{PARTITION}:wafv2:{region}:{account}:regional/webacl/{name}/"
                f"{web_acl_id}",
                "Id": web_acl_id,
            }
        case "AWS::EventSchemas::Discoverer":
            physical = f"arn:{PARTITION}:schemas:{region}:{account}:discoverer/{short}"
            attrs = {"DiscovererArn": physical, "DiscovererId": short}
        case "AWS::Events::Connection":
            attrs = {
                "Arn": f"arn:{PARTITION}:events:{region}:{account}:connection/{name}/"
                f"{_uuid(stack, logical_id)}",
                "SecretArn": f"arn:{PARTITION}:secretsmanager:{region}:{account}:secret:"
                f"events!connection/{name}-{short[:6]}",
            }
        case "AWS::Events::ApiDestination":
            attrs = {
                "Arn": f"arn:{PARTITION}:events:{region}:{account}:api-destination/{name}/"
                f"{_uuid(stack, logical_id)}"
            }
        case _:
            if resource_type in _SKIPPED_NAME_PROPERTIES:
                pass
            else:
                physical = f"{name}-{short[:12]}" if resource_type.startswith("AWS::") else name
    for attribute in wanted:
        attrs.setdefault(attribute, f"sandbox-skipped:{stack}:{logical_id}:{attribute}")
    return physical, attrs


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


# -- deploy --------------------------------------------------------------------------------


@dataclass
class _Plan:
    artifact: StackArtifact
    order: list[str]
    providers: dict[str, str]  # provider function logical id -> skip reason
    wanted: dict[str, set[str]]  # logical id -> attributes referenced by GetAtt/Sub


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
    providers: dict[str, list[str]] = {}
    for resource in resources.values():
        kind = str(resource.get("Type", ""))
        if kind.startswith("Custom::") or kind == "AWS::CloudFormation::CustomResource":
            token = (resource.get("Properties") or {}).get("ServiceToken")
            if isinstance(token, dict) and "Fn::GetAtt" in token:
                target = token["Fn::GetAtt"]
                target_id = target[0] if isinstance(target, list) else str(target).split(".")[0]
                providers.setdefault(str(target_id), []).append(kind)
    provider_reasons = {}
    for lid, kinds in providers.items():
        unique = sorted(set(kinds))
        reason = _PROVIDER_REASON.format(types=", ".join(unique))
        if "Custom::S3BucketNotifications" in unique:
            reason += _NOTIFICATIONS_PROVIDER
        provider_reasons[lid] = reason
    wanted: dict[str, set[str]] = {}
    _collect_attributes(resources, wanted)
    _collect_attributes(template.get("Outputs") or {}, wanted)
    state = _State(clients=_Clients(None, None))
    stack = DeployedStack(name=artifact.name, template=template)
    for lid in order:
        resource = resources[lid]
        kind = str(resource.get("Type", ""))
        ctx = _Context(state, artifact, stack, _NULL_RESOLVER, lid, kind)
        for key in resource:
            if key not in _RESOURCE_KEYS:
                raise ctx.unsupported(None, f"unknown resource attribute {key!r}")
        if lid in provider_reasons or skip_reason(kind) is not None:
            continue
        spec = _KINDS.get(kind)
        if spec is None:
            raise ctx.unsupported(None)
        props = resource.get("Properties") or {}
        if not isinstance(props, dict):
            raise ctx.unsupported("Properties", "Properties must be an object")
        for name in props:
            if name not in spec.properties:
                raise ctx.unsupported(name)
        if spec.validate is not None:
            spec.validate(ctx, props)
    return _Plan(artifact, order, provider_reasons, wanted)


def _collect_attributes(value: Any, wanted: dict[str, set[str]]) -> None:
    if isinstance(value, dict):
        if len(value) == 1 and "Fn::GetAtt" in value:
            argument = value["Fn::GetAtt"]
            if isinstance(argument, list) and len(argument) == 2:
                if isinstance(argument[0], str) and isinstance(argument[1], str):
                    wanted.setdefault(argument[0], set()).add(argument[1])
            elif isinstance(argument, str) and "." in argument:
                target, _, attribute = argument.partition(".")
                wanted.setdefault(target, set()).add(attribute)
        elif len(value) == 1 and "Fn::Sub" in value:
            argument = value["Fn::Sub"]
            text = argument if isinstance(argument, str) else None
            if isinstance(argument, list) and argument and isinstance(argument[0], str):
                text = argument[0]
            for match in re.finditer(r"\$\{([^}!][^}]*)\}", text or ""):
                name = match.group(1).strip()
                if "." in name and not name.startswith("AWS::"):
                    target, _, attribute = name.partition(".")
                    wanted.setdefault(target, set()).add(attribute)
        for item in value.values():
            _collect_attributes(item, wanted)
    elif isinstance(value, list):
        for item in value:
            _collect_attributes(item, wanted)


_NULL_RESOLVER = Resolver(stack_name="", resources={})


def deploy(
    assembly_dir: Path | str,
    *,
    session: boto3.session.Session | None = None,
    endpoint_url: str | None = None,
    stack_names: Sequence[str] | None = None,
) -> Deployment:
    """Create every resource of the cloud assembly in moto; see the module docstring.

    :param assembly_dir: the ``cdk.out`` folder (``manifest.json``, templates, assets).
    :param session: a ``boto3.session.Session``; a new default one when None.
    :param endpoint_url: a moto server (``http://localhost:4566``); None for ``mock_aws()``.
    :param stack_names: stack names (or artifact ids) to deploy; every stack when None.
    :raises UnsupportedResource: a resource type or property the sandbox cannot deploy
        (raised before any resource of the selected stacks is created).
    :raises IntrinsicError: an intrinsic that cannot be resolved.
    """
    assembly = read_assembly(assembly_dir)
    artifacts = select_stacks(assembly, stack_names)
    plans = [_plan(artifact) for artifact in artifacts]
    state = _State(clients=_Clients(session or boto3.session.Session(), endpoint_url))
    deployment = Deployment()
    for plan in plans:
        deployment.stacks[plan.artifact.name] = _deploy_stack(plan, state)
    return deployment


def _deploy_stack(plan: _Plan, state: _State) -> DeployedStack:
    artifact = plan.artifact
    template = artifact.template
    resources: Mapping[str, Any] = template.get("Resources") or {}
    stack = DeployedStack(name=artifact.name, template=template)
    resolver = Resolver(stack_name=artifact.name, resources=stack.resources, template=template)
    for lid in plan.order:
        resource = resources[lid]
        kind = str(resource.get("Type", ""))
        ctx = _Context(state, artifact, stack, resolver, lid, kind)
        condition = resource.get("Condition")
        if condition is not None and not resolver.condition(str(condition), logical_id=lid):
            stack.skipped[lid] = f"condition {condition} is false"
            continue
        raw = resource.get("Properties") or {}
        reason = plan.providers.get(lid) or skip_reason(kind)
        if reason is not None:
            name_property = _SKIPPED_NAME_PROPERTIES.get(kind)
            name_value: Any = None
            if name_property and name_property in raw:
                try:
                    name_value = resolver.resolve(
                        raw[name_property], logical_id=lid, path=f"Properties.{name_property}"
                    )
                except IntrinsicError:
                    name_value = None
            physical, attributes = _synthetic(
                artifact.name, lid, kind, name_value, plan.wanted.get(lid, ())
            )
            stack.resources[lid] = DeployedResource(
                logical_id=lid, type=kind, physical_id=physical, attributes=attributes
            )
            stack.skipped[lid] = reason
            continue
        props = resolver.resolve(raw, logical_id=lid, path="Properties")
        if props is NO_VALUE:  # pragma: no cover - Properties is an object
            props = {}
        stack.resources[lid] = _KINDS[kind].handler(ctx, props)
    for name, output in (template.get("Outputs") or {}).items():
        condition = output.get("Condition")
        if condition is not None and not resolver.condition(
            str(condition), logical_id=f"Outputs.{name}"
        ):
            continue
        value = resolver.resolve(output.get("Value"), logical_id=f"Outputs.{name}", path="Value")
        if value is not NO_VALUE:
            stack.outputs[name] = value if isinstance(value, str) else json.dumps(value)
    return stack


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
