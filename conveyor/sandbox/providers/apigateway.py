"""Amazon API Gateway (every ``AWS::ApiGateway::`` type): skipped, since its integrations do
not execute in moto; the sandbox renders the ingest API's request mapping instead
(:mod:`conveyor.sandbox.vtl`). REST APIs, deployments, resources and keys get synthetic ids."""

from __future__ import annotations

from conveyor.sandbox.providers.base import ResourceProvider, Skipped, Synthetic
from conveyor.sandbox.providers.values import short_id

REASON = (
    "API Gateway integrations do not execute in moto; the sandbox renders the ingest API's "
    "request mapping instead"
)


def _rest_api(skipped: Skipped) -> tuple[str, dict[str, str]]:
    root = short_id(skipped.stack, skipped.logical_id, "root")
    return skipped.short, {"RestApiId": skipped.short, "RootResourceId": root}


def _short_attribute(attribute: str, length: int) -> Synthetic:
    """The physical id is (a prefix of) the short id, and so is ``attribute``."""

    def synthetic(skipped: Skipped) -> tuple[str, dict[str, str]]:
        physical = skipped.short[:length]
        return physical, {attribute: physical}

    return synthetic


PROVIDERS = (
    ResourceProvider("AWS::ApiGateway::", skip_reason=REASON),
    ResourceProvider("AWS::ApiGateway::RestApi", attributes=_rest_api),
    ResourceProvider("AWS::ApiGateway::Deployment", attributes=_short_attribute("DeploymentId", 6)),
    ResourceProvider("AWS::ApiGateway::Resource", attributes=_short_attribute("ResourceId", 6)),
    ResourceProvider("AWS::ApiGateway::ApiKey", attributes=_short_attribute("APIKeyId", 10)),
    ResourceProvider("AWS::ApiGateway::Stage", name_property="StageName"),
    ResourceProvider("AWS::ApiGateway::Model", name_property="Name"),
)
