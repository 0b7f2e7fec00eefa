"""AWS Systems Manager: parameters."""

from __future__ import annotations

from typing import Any

from conveyor.sandbox.model import DeployedResource
from conveyor.sandbox.providers.base import ProviderContext, ResourceProvider
from conveyor.sandbox.providers.values import add_tag_list, copy_present, text, words


def _ssm_parameter(ctx: ProviderContext, props: dict[str, Any]) -> DeployedResource:
    name = ctx.name(props.get("Name"))
    request: dict[str, Any] = {
        "Name": name,
        "Value": text(props["Value"]),
        "Type": props.get("Type", "String"),
    }
    copy_present(request, props, ("Description", "Tier", "AllowedPattern", "DataType", "Policies"))
    add_tag_list(request, props.get("Tags"))
    ctx.client("ssm").put_parameter(**request)
    return ctx.resource(name, props, Type=request["Type"], Value=request["Value"])


_PARAMETER_PROPERTIES = frozenset(
    words("Name Type Value Description Tier Tags AllowedPattern DataType Policies")
)

PROVIDERS = (
    ResourceProvider(
        "AWS::SSM::Parameter",
        _ssm_parameter,
        _PARAMETER_PROPERTIES,
        name_limit=1011,
    ),
)
