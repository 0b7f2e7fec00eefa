"""What every resource provider shares: :class:`ResourceProvider` (the registration of one
resource type), the :class:`ProviderContext` a ``create``/``validate`` function receives, the
deployment state, physical names, and small value helpers.

A provider's ``create(ctx, props)`` gets the resolved properties (intrinsics replaced) and
returns the :class:`DeployedResource` (its ``Ref`` value and ``Fn::GetAtt`` attributes); it may
add :class:`FunctionSpec` s and :class:`Route` s to ``ctx.stack`` for the runtime. ``validate``
runs on the raw template before anything of the deployment is created.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.config import Config

from conveyor.sandbox.assembly import StackArtifact
from conveyor.sandbox.brokers import LocalBrokers
from conveyor.sandbox.intrinsics import Resolver
from conveyor.sandbox.model import REGION, DeployedResource, DeployedStack, FunctionSpec
from conveyor.sandbox.providers.values import flag, text

DEFAULT_NAME_LIMIT = 255


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


# -- names -------------------------------------------------------------------------------


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


# -- deployment state ----------------------------------------------------------------------


class Clients:
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
class DeployState:
    """What every stack of the deployment shares."""

    clients: Clients
    queue_urls: dict[str, str] = field(default_factory=dict)  # queue ARN -> URL
    fifo_queues: set[str] = field(default_factory=set)  # ARNs
    # function ARN and name -> (stack name, logical id)
    functions: dict[str, tuple[str, str]] = field(default_factory=dict)
    # The local brokers (RabbitMQ, Kafka) Amazon MQ and MSK resources stand for.
    brokers: LocalBrokers | None = None
    kafka_clusters: dict[str, str] = field(default_factory=dict)  # MSK ARN -> bootstrap

    def queue_url(self, arn: str) -> str:
        url = self.queue_urls.get(arn)
        if url is None:
            name = arn.rsplit(":", 1)[-1]
            url = str(self.clients("sqs").get_queue_url(QueueName=name)["QueueUrl"])
            self.queue_urls[arn] = url
        return url


@dataclass
class ProviderContext:
    """One resource being deployed (or validated)."""

    state: DeployState
    artifact: StackArtifact
    stack: DeployedStack
    resolver: Resolver
    logical_id: str
    type: str
    name_limit: int = DEFAULT_NAME_LIMIT

    @property
    def stack_name(self) -> str:
        return self.stack.name

    def client(self, service: str) -> Any:
        return self.state.clients(service)

    def name(self, explicit: Any, *, lowercase: bool = False, suffix: str = "") -> str:
        if explicit:
            return str(explicit)
        return physical_name(
            self.stack_name,
            self.logical_id,
            limit=self.name_limit,
            lowercase=lowercase,
            suffix=suffix,
        )

    def unsupported(self, prop: str | None, reason: str | None = None) -> UnsupportedResource:
        return UnsupportedResource(self.stack_name, self.logical_id, self.type, prop, reason)

    def resource(self, physical_id: str, props: dict[str, Any], **attrs: Any) -> DeployedResource:
        """The created resource: ``physical_id`` and the attributes that are not None."""
        return DeployedResource(
            logical_id=self.logical_id,
            type=self.type,
            physical_id=physical_id,
            attributes={k: str(v) for k, v in attrs.items() if v is not None},
            properties=props,
        )

    def fifo_name_and_attributes(
        self, props: Mapping[str, Any], *, name_key: str, fifo_key: str, keys: tuple[str, ...]
    ) -> tuple[bool, str, dict[str, str]]:
        """A queue's or topic's FIFO flag, name (``.fifo`` when FIFO) and API attributes (the
        ``keys`` present in ``props``; the FIFO flag only when true)."""
        fifo = flag(props.get(fifo_key, False))
        name = self.name(props.get(name_key), suffix=".fifo" if fifo else "")
        attributes = {key: text(props[key]) for key in keys if key in props}
        if not fifo:
            attributes.pop(fifo_key, None)
        return fifo, name, attributes

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


# -- registration --------------------------------------------------------------------------


@dataclass(frozen=True)
class Skipped:
    """A resource the sandbox does not create: what its synthetic id is made of."""

    stack: str
    logical_id: str
    type: str
    name: str  # the name property's value, or a generated physical name
    short: str  # 10 hex digits, deterministic


Create = Callable[[ProviderContext, dict[str, Any]], DeployedResource]
Validate = Callable[[ProviderContext, Mapping[str, Any]], None]
Synthetic = Callable[[Skipped], tuple[str, dict[str, str]]]


@dataclass(frozen=True)
class ResourceProvider:
    """How the sandbox deploys one resource type (or, ``type`` ending in ``::``, a whole
    service's types).

    :param create: makes the resource through the AWS API; None: the type is never created
        (``skip_reason`` says why, or a prefix provider of the service does).
    :param properties: every property ``create`` understands; any other one is refused.
    :param validate: nested property checks on the raw template, before anything is created.
    :param skip_reason: why the type is deliberately not created.
    :param name_limit: the service's limit for generated physical names.
    :param name_property: the property holding a skipped resource's name.
    :param attributes: a skipped resource's physical id and ``GetAtt`` attributes; default:
        its name (``name_property``) or ``<name>-<hash>``.
    :param provider_note: appended to the skip reason of a custom resource provider function
        serving this (custom) type.
    :param keep_properties: a skipped type whose resolved properties the run side reads
        (``DeployedResource.properties``; e.g. API Gateway, served by ``sandbox.apis``).
    """

    type: str
    create: Create | None = None
    properties: frozenset[str] = frozenset()
    validate: Validate | None = None
    skip_reason: str | None = None
    name_limit: int = DEFAULT_NAME_LIMIT
    name_property: str | None = None
    attributes: Synthetic | None = None
    provider_note: str = ""
    keep_properties: bool = False

    @property
    def is_prefix(self) -> bool:
        return self.type.endswith("::")

    def synthetic(self, skipped: Skipped) -> tuple[str, dict[str, str]]:
        """Physical id and attributes of a skipped resource of this type."""
        if self.attributes is not None:
            return self.attributes(skipped)
        return default_synthetic(skipped, named=self.name_property is not None)


def default_synthetic(skipped: Skipped, *, named: bool = False) -> tuple[str, dict[str, str]]:
    """A named type: its name; another ``AWS::`` type: ``<name>-<12 hex digits>``."""
    if named or not skipped.type.startswith("AWS::"):
        return skipped.name, {}
    return f"{skipped.name}-{skipped.short[:12]}", {}
