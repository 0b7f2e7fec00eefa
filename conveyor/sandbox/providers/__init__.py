"""Resource providers: one module per AWS service, each exporting ``PROVIDERS`` (a tuple of
:class:`~conveyor.sandbox.providers.base.ResourceProvider`), registered once in
:data:`REGISTRY` below. See ``conveyor/sandbox/README.md``, "How to add a resource type"."""

from __future__ import annotations

from collections.abc import Iterable

from conveyor.sandbox.providers import (
    amazonmq,
    apigateway,
    awslambda,
    cdk,
    cloudwatch,
    dynamodb,
    ec2,
    events,
    firehose,
    iam,
    kinesis,
    kms,
    logs,
    msk,
    s3,
    secretsmanager,
    sns,
    sqs,
    ssm,
    stepfunctions,
    wafv2,
)
from conveyor.sandbox.providers.base import DEFAULT_NAME_LIMIT, ResourceProvider, Skipped

__all__ = ["REGISTRY", "ProviderRegistry", "ResourceProvider"]


class ProviderRegistry:
    """Every registered resource type; a ``type`` ending in ``::`` covers a whole service."""

    def __init__(self, providers: Iterable[ResourceProvider]) -> None:
        self._exact: dict[str, ResourceProvider] = {}
        self._prefixes: dict[str, ResourceProvider] = {}
        for provider in providers:
            table = self._prefixes if provider.is_prefix else self._exact
            if provider.type in table:
                raise ValueError(f"resource type {provider.type} registered twice")
            table[provider.type] = provider

    def get(self, resource_type: str) -> ResourceProvider | None:
        """The provider registered for exactly ``resource_type``."""
        return self._exact.get(resource_type)

    def creator(self, resource_type: str) -> ResourceProvider | None:
        """The provider that creates ``resource_type``, or None."""
        provider = self._exact.get(resource_type)
        return provider if provider is not None and provider.create is not None else None

    def skip_reason(self, resource_type: str) -> str | None:
        """Why a resource type is deliberately not created, or None."""
        provider = self._exact.get(resource_type)
        if provider is not None and provider.skip_reason is not None:
            return provider.skip_reason
        for prefix, provider in self._prefixes.items():
            if resource_type.startswith(prefix):
                return provider.skip_reason
        return None

    def skip_reasons(self) -> dict[str, str]:
        """Resource type -> skip reason, for the types registered one by one."""
        return {t: p.skip_reason for t, p in self._exact.items() if p.skip_reason is not None}

    def name_limit(self, resource_type: str) -> int:
        provider = self._exact.get(resource_type)
        return provider.name_limit if provider is not None else DEFAULT_NAME_LIMIT

    def synthetic(self, skipped: Skipped) -> tuple[str, dict[str, str]]:
        """Physical id and attributes of a skipped resource (deterministic, never real)."""
        provider = self._exact.get(skipped.type) or ResourceProvider(skipped.type)
        return provider.synthetic(skipped)

    def provider_note(self, resource_type: str) -> str:
        provider = self._exact.get(resource_type)
        return provider.provider_note if provider is not None else ""

    def created_types(self) -> list[str]:
        """The resource types a provider creates, in registration order."""
        return [t for t, p in self._exact.items() if p.create is not None]


REGISTRY = ProviderRegistry(
    [
        *sqs.PROVIDERS,
        *sns.PROVIDERS,
        *s3.PROVIDERS,
        *awslambda.PROVIDERS,
        *dynamodb.PROVIDERS,
        *events.PROVIDERS,
        *ssm.PROVIDERS,
        *kms.PROVIDERS,
        *logs.PROVIDERS,
        *secretsmanager.PROVIDERS,
        *iam.PROVIDERS,
        *cloudwatch.PROVIDERS,
        *apigateway.PROVIDERS,
        *wafv2.PROVIDERS,
        *cdk.PROVIDERS,
        *kinesis.PROVIDERS,
        *firehose.PROVIDERS,
        *stepfunctions.PROVIDERS,
        *amazonmq.PROVIDERS,
        *msk.PROVIDERS,
        *ec2.PROVIDERS,
    ]
)
