"""Amazon API Gateway (every ``AWS::ApiGateway::`` type): not created in moto, whose
integrations do not execute; the sandbox serves the REST APIs itself
(:mod:`conveyor.sandbox.apis`) from these resources' resolved properties. REST APIs,
deployments, resources and keys get synthetic ids."""

from __future__ import annotations

from conveyor.sandbox.providers.base import ResourceProvider, Skipped, Synthetic
from conveyor.sandbox.providers.values import short_id

REASON = (
    "not created in moto (its integrations do not execute): the sandbox serves the REST APIs "
    "itself at /restapis/<id>/<stage>/_user_request_/<path>"
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
    ResourceProvider("AWS::ApiGateway::RestApi", attributes=_rest_api, keep_properties=True),
    ResourceProvider(
        "AWS::ApiGateway::Deployment",
        attributes=_short_attribute("DeploymentId", 6),
        keep_properties=True,
    ),
    ResourceProvider(
        "AWS::ApiGateway::Resource",
        attributes=_short_attribute("ResourceId", 6),
        keep_properties=True,
    ),
    ResourceProvider(
        "AWS::ApiGateway::ApiKey", attributes=_short_attribute("APIKeyId", 10), keep_properties=True
    ),
    ResourceProvider("AWS::ApiGateway::Stage", name_property="StageName", keep_properties=True),
    ResourceProvider("AWS::ApiGateway::Model", name_property="Name", keep_properties=True),
    *(
        ResourceProvider(f"AWS::ApiGateway::{kind}", keep_properties=True)  # sandbox.apis
        for kind in ("Method", "RequestValidator", "GatewayResponse", "UsagePlan", "UsagePlanKey")
    ),
)
