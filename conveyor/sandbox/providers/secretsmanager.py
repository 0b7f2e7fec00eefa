"""AWS Secrets Manager: secrets (a given string, or one generated as CloudFormation does)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from conveyor.sandbox.model import DeployedResource
from conveyor.sandbox.providers.base import ProviderContext, ResourceProvider
from conveyor.sandbox.providers.values import add_tag_list, copy_present, flag, text, words

_GENERATE_FLAGS = words(
    "ExcludeCharacters ExcludeLowercase ExcludeNumbers ExcludePunctuation ExcludeUppercase "
    "IncludeSpace RequireEachIncludedType"
)


def _secret(ctx: ProviderContext, props: dict[str, Any]) -> DeployedResource:
    name = ctx.name(props.get("Name"))
    secrets = ctx.client("secretsmanager")
    request: dict[str, Any] = {"Name": name}
    copy_present(request, props, ("Description", "KmsKeyId"))
    if "SecretString" in props:
        request["SecretString"] = text(props["SecretString"])
    elif "GenerateSecretString" in props:
        request["SecretString"] = _generate_secret(secrets, props["GenerateSecretString"])
    add_tag_list(request, props.get("Tags"))
    arn = str(secrets.create_secret(**request)["ARN"])
    return ctx.resource(arn, props, Id=arn)


def _generate_secret(secrets: Any, spec: Mapping[str, Any]) -> str:
    request: dict[str, Any] = {}
    for key in _GENERATE_FLAGS:
        if key in spec:
            request[key] = flag(spec[key]) if key != "ExcludeCharacters" else str(spec[key])
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


PROVIDERS = (
    ResourceProvider(
        "AWS::SecretsManager::Secret",
        _secret,
        frozenset(
            {"Name", "Description", "SecretString", "GenerateSecretString", "KmsKeyId", "Tags"}
        ),
        name_limit=512,
    ),
)
