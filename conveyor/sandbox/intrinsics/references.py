"""Which logical ids a template value refers to (for the deployer's resource order)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from conveyor.sandbox.intrinsics.values import SUB_VARIABLE, is_intrinsic


def references(value: Any) -> set[str]:
    """Names ``value`` refers to through ``Ref``, ``Fn::GetAtt`` and ``Fn::Sub`` (pseudo
    parameters excluded; parameters included: callers keep the resource ids)."""
    found: set[str] = set()
    _collect(value, found)
    return found


def _collect(value: Any, found: set[str]) -> None:
    if isinstance(value, dict):
        if is_intrinsic(value):
            (name, argument), *_ = value.items()
            if name == "Ref" and isinstance(argument, str):
                if not argument.startswith("AWS::"):
                    found.add(argument)
                return
            if name == "Fn::GetAtt":
                if isinstance(argument, str):
                    found.add(argument.partition(".")[0])
                    return
                if isinstance(argument, list) and argument and isinstance(argument[0], str):
                    found.add(argument[0])
                    _collect(argument[1:], found)
                    return
            if name == "Fn::Sub":
                text = argument if isinstance(argument, str) else None
                variables: Collection[str] = ()
                if isinstance(argument, list) and argument and isinstance(argument[0], str):
                    text = argument[0]
                    if len(argument) > 1 and isinstance(argument[1], dict):
                        variables = argument[1].keys()
                        _collect(argument[1], found)
                for match in SUB_VARIABLE.finditer(text or ""):
                    name = match.group(1).strip()
                    if name.startswith("!") or name in variables or name.startswith("AWS::"):
                        continue
                    found.add(name.partition(".")[0])
                return
        for item in value.values():
            _collect(item, found)
    elif isinstance(value, list):
        for item in value:
            _collect(item, found)
