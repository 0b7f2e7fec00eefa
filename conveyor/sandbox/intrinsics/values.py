"""What every part of the intrinsic resolver shares: ``AWS::NoValue``, the error, small helpers."""

from __future__ import annotations

import re
from typing import Any, Final

PARTITION = "aws"
URL_SUFFIX = "amazonaws.com"
AVAILABILITY_ZONE_LETTERS = "abcdef"

SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class _NoValue:
    """``AWS::NoValue``: the key (or list item) holding it is removed."""

    _instance: _NoValue | None = None

    def __new__(cls) -> _NoValue:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "AWS::NoValue"

    def __bool__(self) -> bool:
        return False


NO_VALUE: Final = _NoValue()


class IntrinsicError(Exception):
    """An intrinsic could not be resolved; names the logical id and the path of the value."""

    def __init__(self, message: str, *, logical_id: str, path: str) -> None:
        where = f"{logical_id}.{path}" if path else logical_id
        super().__init__(f"{where}: {message}")
        self.logical_id = logical_id
        self.path = path
        self.reason = message


def is_intrinsic(value: Any) -> bool:
    """A one-key object whose key is ``Ref`` or ``Fn::…``."""
    if not isinstance(value, dict) or len(value) != 1:
        return False
    key = next(iter(value))
    return isinstance(key, str) and (key == "Ref" or key.startswith("Fn::"))


def stringify(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def comparable(value: Any) -> Any:
    if isinstance(value, bool | int | float):
        return stringify(value)
    return value


def join_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def two_arguments(argument: Any, usage: str, *, logical_id: str, path: str) -> list[Any]:
    """``argument`` when it is a list of two items; else the error ``"<usage>, got …"``."""
    if not isinstance(argument, list) or len(argument) != 2:
        raise IntrinsicError(f"{usage}, got {argument!r}", logical_id=logical_id, path=path)
    return argument
