"""The string and list intrinsics: ``Fn::Sub``, ``Fn::Join``, ``Fn::Select``, ``Fn::Split``,
``Fn::GetAZs``, ``Fn::FindInMap``, ``Fn::Base64`` (and ``Fn::ImportValue``, refused).

Each is a function ``(resolver, argument, logical_id, path) -> value`` registered in
:data:`FUNCTIONS` under its name; :class:`~conveyor.sandbox.intrinsics.resolver.Resolver`
dispatches to it (``Ref``, ``Fn::GetAtt`` and ``Fn::If`` live with the resolver and the
conditions).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from conveyor.sandbox.intrinsics.values import (
    AVAILABILITY_ZONE_LETTERS,
    NO_VALUE,
    SUB_VARIABLE,
    IntrinsicError,
    stringify,
    two_arguments,
)

if TYPE_CHECKING:
    from conveyor.sandbox.intrinsics.resolver import Resolver

Function = Callable[["Resolver", Any, str, str], Any]


def availability_zones(region: str) -> list[str]:
    return [f"{region}{letter}" for letter in AVAILABILITY_ZONE_LETTERS]


def _sub_arguments(
    resolver: Resolver, argument: Any, logical_id: str, path: str
) -> tuple[str, dict[str, Any]]:
    """The text and the variables of ``Fn::Sub`` (both forms)."""
    if isinstance(argument, str):
        return argument, {}
    if (
        isinstance(argument, list)
        and len(argument) == 2
        and isinstance(argument[0], str)
        and isinstance(argument[1], dict)
    ):
        variables = {
            name: resolver.scalar(value, logical_id, f"{path}[1].{name}", name)
            for name, value in argument[1].items()
        }
        return argument[0], variables
    raise IntrinsicError(
        f"Fn::Sub takes a string or [string, {{variables}}], got {argument!r}",
        logical_id=logical_id,
        path=path,
    )


def fn_sub(resolver: Resolver, argument: Any, logical_id: str, path: str) -> str:
    text, variables = _sub_arguments(resolver, argument, logical_id, path)

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("!"):
            return "${" + name[1:] + "}"
        name = name.strip()
        if name in variables:
            return str(variables[name])
        if "." in name and not name.startswith("AWS::"):
            target, _, attribute = name.partition(".")
            value = resolver.attribute(target, attribute, logical_id=logical_id, path=path)
        else:
            value = resolver.lookup(name, logical_id=logical_id, path=path)
        if value is NO_VALUE or isinstance(value, list | dict):
            raise IntrinsicError(
                f"${{{name}}} does not resolve to a string", logical_id=logical_id, path=path
            )
        return stringify(value)

    return SUB_VARIABLE.sub(replace, text)


def fn_join(resolver: Resolver, argument: Any, logical_id: str, path: str) -> str:
    delimiter_value, values = two_arguments(
        argument, "Fn::Join takes [delimiter, [values]]", logical_id=logical_id, path=path
    )
    delimiter = resolver.scalar(delimiter_value, logical_id, f"{path}[0]", "the delimiter")
    items = resolver.resolve_list(values, logical_id, f"{path}[1]", "the values")
    parts = []
    for index, item in enumerate(items):
        if isinstance(item, list | dict):
            raise IntrinsicError(
                f"value {index} of Fn::Join is not a string: {item!r}",
                logical_id=logical_id,
                path=f"{path}[1][{index}]",
            )
        parts.append(stringify(item))
    return delimiter.join(parts)


def fn_select(resolver: Resolver, argument: Any, logical_id: str, path: str) -> Any:
    index_value, values = two_arguments(
        argument, "Fn::Select takes [index, [values]]", logical_id=logical_id, path=path
    )
    raw_index = resolver.scalar(index_value, logical_id, f"{path}[0]", "the index")
    try:
        index = int(raw_index)
    except ValueError:
        raise IntrinsicError(
            f"Fn::Select index {raw_index!r} is not a number",
            logical_id=logical_id,
            path=path,
        ) from None
    items = resolver.resolve_list(values, logical_id, f"{path}[1]", "the values")
    if not 0 <= index < len(items):
        raise IntrinsicError(
            f"Fn::Select index {index} is out of range for {len(items)} values",
            logical_id=logical_id,
            path=path,
        )
    return items[index]


def fn_split(resolver: Resolver, argument: Any, logical_id: str, path: str) -> list[str]:
    delimiter_value, source_value = two_arguments(
        argument, "Fn::Split takes [delimiter, string]", logical_id=logical_id, path=path
    )
    delimiter = resolver.scalar(delimiter_value, logical_id, f"{path}[0]", "the delimiter")
    source = resolver.scalar(source_value, logical_id, f"{path}[1]", "the source string")
    if not delimiter:
        raise IntrinsicError(
            "Fn::Split needs a non-empty delimiter", logical_id=logical_id, path=path
        )
    return source.split(delimiter)


def fn_get_azs(resolver: Resolver, argument: Any, logical_id: str, path: str) -> list[str]:
    region = resolver.scalar(argument, logical_id, path, "the region") if argument else ""
    return availability_zones(region or resolver.region)


def fn_find_in_map(resolver: Resolver, argument: Any, logical_id: str, path: str) -> Any:
    if not isinstance(argument, list) or len(argument) not in (3, 4):
        raise IntrinsicError(
            f"Fn::FindInMap takes [map, key, key], got {argument!r}",
            logical_id=logical_id,
            path=path,
        )
    names = [
        resolver.scalar(argument[i], logical_id, f"{path}[{i}]", "a map key") for i in range(3)
    ]
    mapping: Any = resolver.mappings
    for name in names:
        if not isinstance(mapping, dict) or name not in mapping:
            default = argument[3] if len(argument) == 4 else None
            if isinstance(default, dict) and "DefaultValue" in default:
                return resolver.resolve(default["DefaultValue"], logical_id=logical_id, path=path)
            raise IntrinsicError(
                f"Fn::FindInMap: no {'/'.join(names)} in Mappings",
                logical_id=logical_id,
                path=path,
            )
        mapping = mapping[name]
    return mapping


def fn_base64(resolver: Resolver, argument: Any, logical_id: str, path: str) -> str:
    text = resolver.scalar(argument, logical_id, path, "Fn::Base64's value")
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def fn_import_value(resolver: Resolver, argument: Any, logical_id: str, path: str) -> Any:
    raise IntrinsicError(
        f"Fn::ImportValue ({argument!r}): cross-stack exports are not supported by the sandbox",
        logical_id=logical_id,
        path=path,
    )


FUNCTIONS: dict[str, Function] = {
    "Fn::Sub": fn_sub,
    "Fn::Join": fn_join,
    "Fn::Select": fn_select,
    "Fn::Split": fn_split,
    "Fn::GetAZs": fn_get_azs,
    "Fn::FindInMap": fn_find_in_map,
    "Fn::Base64": fn_base64,
    "Fn::ImportValue": fn_import_value,
}
