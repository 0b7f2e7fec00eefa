"""Template conditions: ``Fn::If`` and the condition functions (``Fn::Equals``, ``Fn::And``,
``Fn::Or``, ``Fn::Not``, ``Condition``), evaluated for
:meth:`~conveyor.sandbox.intrinsics.resolver.Resolver.condition`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conveyor.sandbox.intrinsics.values import IntrinsicError, comparable, join_path

if TYPE_CHECKING:
    from conveyor.sandbox.intrinsics.resolver import Resolver


def fn_if(resolver: Resolver, argument: Any, logical_id: str, path: str) -> Any:
    if not isinstance(argument, list) or len(argument) != 3 or not isinstance(argument[0], str):
        raise IntrinsicError(
            f"Fn::If takes [condition, value if true, value if false], got {argument!r}",
            logical_id=logical_id,
            path=path,
        )
    chosen = 1 if resolver.condition(argument[0], logical_id=logical_id, path=path) else 2
    return resolver.resolve(argument[chosen], logical_id=logical_id, path=f"{path}[{chosen}]")


def _condition(resolver: Resolver, argument: Any, logical_id: str, here: str) -> bool:
    if not isinstance(argument, str):
        raise IntrinsicError(
            f"Condition takes a name, got {argument!r}", logical_id=logical_id, path=here
        )
    return resolver.condition(argument, logical_id=logical_id, path=here)


def _equals(resolver: Resolver, argument: Any, logical_id: str, here: str) -> bool:
    if not isinstance(argument, list) or len(argument) != 2:
        raise IntrinsicError(
            f"Fn::Equals takes two values, got {argument!r}", logical_id=logical_id, path=here
        )
    left, right = (
        resolver.resolve(item, logical_id=logical_id, path=f"{here}[{i}]")
        for i, item in enumerate(argument)
    )
    return bool(comparable(left) == comparable(right))


def _and_or(resolver: Resolver, name: str, argument: Any, logical_id: str, here: str) -> bool:
    if not isinstance(argument, list) or not 2 <= len(argument) <= 10:
        raise IntrinsicError(
            f"{name} takes 2 to 10 conditions, got {argument!r}", logical_id=logical_id, path=here
        )
    values = (
        evaluate_condition(resolver, item, logical_id, f"{here}[{i}]")
        for i, item in enumerate(argument)
    )
    return all(values) if name == "Fn::And" else any(values)


def _not(resolver: Resolver, argument: Any, logical_id: str, here: str) -> bool:
    if not isinstance(argument, list) or len(argument) != 1:
        raise IntrinsicError(
            f"Fn::Not takes one condition, got {argument!r}", logical_id=logical_id, path=here
        )
    return not evaluate_condition(resolver, argument[0], logical_id, f"{here}[0]")


def _function(
    resolver: Resolver, name: str, argument: Any, logical_id: str, here: str
) -> bool | None:
    """A condition function's value; None when ``name`` is not one."""
    if name == "Condition":
        return _condition(resolver, argument, logical_id, here)
    if name == "Fn::Equals":
        return _equals(resolver, argument, logical_id, here)
    if name in ("Fn::And", "Fn::Or"):
        return _and_or(resolver, name, argument, logical_id, here)
    if name == "Fn::Not":
        return _not(resolver, argument, logical_id, here)
    if name == "Fn::If":
        resolved = fn_if(resolver, argument, logical_id, here)
        return evaluate_condition(resolver, resolved, logical_id, here)
    return None


def evaluate_condition(resolver: Resolver, value: Any, logical_id: str, path: str) -> bool:
    """The boolean a condition expression (or a literal) stands for."""
    if isinstance(value, dict) and len(value) == 1:
        (name, argument), *_ = value.items()
        result = _function(resolver, name, argument, logical_id, join_path(path, name))
        if result is not None:
            return result
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise IntrinsicError(
        f"unsupported condition {value!r} (the sandbox evaluates Fn::Equals, Fn::And, "
        "Fn::Or, Fn::Not, Fn::If and Condition)",
        logical_id=logical_id,
        path=path,
    )
