"""Small value helpers of the providers: template values as the AWS APIs take them, ARNs,
deterministic ids."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import Any


def short_id(*parts: str, length: int = 10) -> str:
    digest = hashlib.sha256("/".join(parts).encode()).hexdigest()
    return digest[:length]


def stable_uuid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "conveyor-sandbox:" + "/".join(parts)))


def tags(value: Any) -> dict[str, str]:
    """CloudFormation tags (a ``[{Key, Value}]`` list or a map) as a map."""
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(value, list):
        return {str(tag["Key"]): str(tag["Value"]) for tag in value if "Key" in tag}
    return {}


def add_tag_list(
    request: dict[str, Any],
    value: Any,
    *,
    key: str = "Tags",
    names: tuple[str, str] = ("Key", "Value"),
) -> None:
    """Put ``value``'s tags into ``request[key]`` as an API tag list, when there are any."""
    found = tags(value)
    if found:
        request[key] = [{names[0]: k, names[1]: v} for k, v in found.items()]


def copy_present(request: dict[str, Any], props: Mapping[str, Any], keys: tuple[str, ...]) -> None:
    """Copy the ``keys`` that have a truthy value in ``props`` into ``request``."""
    for key in keys:
        if props.get(key):
            request[key] = props[key]


def flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def text(value: Any) -> str:
    """An attribute value as the AWS APIs take it: booleans lowercase, objects as JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def pattern_text(pattern: Any) -> str:
    """An event pattern as the API takes it (a JSON string)."""
    return pattern if isinstance(pattern, str) else json.dumps(pattern)


def arn_service(arn: str) -> str:
    parts = arn.split(":", 5)
    return parts[2] if len(parts) > 2 and parts[0] == "arn" else ""


def arn_resource(arn: str) -> str:
    parts = arn.split(":", 5)
    return parts[5] if len(parts) > 5 else ""


def words(text: str) -> tuple[str, ...]:
    """``"A B C"`` -> ``("A", "B", "C")``: property and attribute names, written compactly."""
    return tuple(text.split())
