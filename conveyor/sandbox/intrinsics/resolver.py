"""The :class:`Resolver`: ``Ref``, ``Fn::GetAtt``, pseudo parameters, parameters, and the
dispatch to the other intrinsics (:mod:`.functions`, :mod:`.conditions`)."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from typing import Any

from conveyor.sandbox.intrinsics.conditions import evaluate_condition, fn_if
from conveyor.sandbox.intrinsics.functions import FUNCTIONS, Function
from conveyor.sandbox.intrinsics.values import (
    NO_VALUE,
    PARTITION,
    URL_SUFFIX,
    IntrinsicError,
    is_intrinsic,
    join_path,
)
from conveyor.sandbox.model import ACCOUNT_ID, REGION, DeployedResource


def pseudo_parameters(
    stack_name: str, *, account_id: str = ACCOUNT_ID, region: str = REGION
) -> dict[str, Any]:
    """``AWS::…`` pseudo parameters (``AWS::NoValue`` is handled by the resolver)."""
    return {
        "AWS::AccountId": account_id,
        "AWS::Region": region,
        "AWS::Partition": PARTITION,
        "AWS::URLSuffix": URL_SUFFIX,
        "AWS::StackName": stack_name,
        "AWS::StackId": stack_id(stack_name, account_id=account_id, region=region),
        "AWS::NotificationARNs": [],
    }


def stack_id(stack_name: str, *, account_id: str = ACCOUNT_ID, region: str = REGION) -> str:
    """A deterministic stack ARN (CloudFormation's has a random UUID)."""
    suffix = uuid.uuid5(uuid.NAMESPACE_URL, f"conveyor-sandbox:{region}:{stack_name}")
    return f"arn:{PARTITION}:cloudformation:{region}:{account_id}:stack/{stack_name}/{suffix}"


class Resolver:
    """Resolves the intrinsics of one stack's template.

    :param resources: logical id -> deployed resource (created or skipped with a synthetic
        physical id), filled in as the deployer goes; ``Ref`` returns ``physical_id`` and
        ``Fn::GetAtt`` an entry of ``attributes``.
    :param declared: every logical id of the template, to tell a resource not deployed *yet*
        (an ordering bug) from one that does not exist.
    :param parameters: values of the template's parameters (defaults are taken from the
        template's ``Parameters``).
    """

    def __init__(
        self,
        *,
        stack_name: str,
        resources: Mapping[str, DeployedResource],
        template: Mapping[str, Any] | None = None,
        parameters: Mapping[str, Any] | None = None,
        declared: Collection[str] | None = None,
        account_id: str = ACCOUNT_ID,
        region: str = REGION,
    ) -> None:
        template = template or {}
        self.stack_name = stack_name
        self.account_id = account_id
        self.region = region
        self.resources = resources
        self.declared: Collection[str] = (
            declared if declared is not None else set(template.get("Resources") or {})
        )
        self.pseudo = pseudo_parameters(stack_name, account_id=account_id, region=region)
        self._parameter_specs: Mapping[str, Any] = template.get("Parameters") or {}
        self._parameters = dict(parameters or {})
        self._conditions: Mapping[str, Any] = template.get("Conditions") or {}
        self.mappings: Mapping[str, Any] = template.get("Mappings") or {}
        self._condition_values: dict[str, bool] = {}
        self._evaluating: list[str] = []
        self._functions: dict[str, Function] = {
            "Fn::GetAtt": Resolver._get_att,
            "Fn::If": fn_if,
            **FUNCTIONS,
        }

    # -- public -----------------------------------------------------------------------------

    def resolve(self, value: Any, *, logical_id: str, path: str = "") -> Any:
        """``value`` with every intrinsic replaced; may return :data:`NO_VALUE`."""
        if isinstance(value, dict):
            if is_intrinsic(value):
                (name, argument), *_ = value.items()
                return self._call(name, argument, logical_id, path)
            resolved: dict[str, Any] = {}
            for key, item in value.items():
                result = self.resolve(item, logical_id=logical_id, path=join_path(path, key))
                if result is not NO_VALUE:
                    resolved[key] = result
            return resolved
        if isinstance(value, list):
            items = []
            for index, item in enumerate(value):
                result = self.resolve(item, logical_id=logical_id, path=f"{path}[{index}]")
                if result is not NO_VALUE:
                    items.append(result)
            return items
        return value

    def condition(self, name: str, *, logical_id: str, path: str = "Condition") -> bool:
        """The value of the template condition ``name``."""
        if name in self._condition_values:
            return self._condition_values[name]
        if name not in self._conditions:
            raise IntrinsicError(
                f"condition {name!r} is not declared in the template's Conditions",
                logical_id=logical_id,
                path=path,
            )
        if name in self._evaluating:
            chain = " -> ".join((*self._evaluating, name))
            raise IntrinsicError(f"condition cycle: {chain}", logical_id=logical_id, path=path)
        self._evaluating.append(name)
        try:
            value = evaluate_condition(
                self, self._conditions[name], logical_id, f"Conditions.{name}"
            )
        finally:
            self._evaluating.pop()
        self._condition_values[name] = value
        return value

    # -- dispatch ---------------------------------------------------------------------------

    def _call(self, name: str, argument: Any, logical_id: str, path: str) -> Any:
        here = join_path(path, name)
        if name == "Ref":
            return self._ref(argument, logical_id, here)
        function = self._functions.get(name)
        if function is None:
            raise IntrinsicError(
                f"intrinsic function {name} is not supported by the sandbox",
                logical_id=logical_id,
                path=here,
            )
        return function(self, argument, logical_id, here)

    def scalar(self, value: Any, logical_id: str, path: str, what: str) -> str:
        """Resolve ``value`` and require a string (numbers and booleans are stringified)."""
        resolved = self.resolve(value, logical_id=logical_id, path=path)
        if isinstance(resolved, bool):
            return "true" if resolved else "false"
        if isinstance(resolved, int | float | str):
            return str(resolved)
        raise IntrinsicError(
            f"{what} must resolve to a string, got {resolved!r}", logical_id=logical_id, path=path
        )

    def resolve_list(self, value: Any, logical_id: str, path: str, what: str) -> list[Any]:
        resolved = self.resolve(value, logical_id=logical_id, path=path)
        if not isinstance(resolved, list):
            raise IntrinsicError(
                f"{what} must resolve to a list, got {resolved!r}", logical_id=logical_id, path=path
            )
        return resolved

    # -- Ref / GetAtt -----------------------------------------------------------------------

    def _ref(self, argument: Any, logical_id: str, path: str) -> Any:
        if not isinstance(argument, str):
            raise IntrinsicError(
                f"Ref takes a name, got {argument!r}", logical_id=logical_id, path=path
            )
        return self.lookup(argument, logical_id=logical_id, path=path)

    def lookup(self, name: str, *, logical_id: str, path: str) -> Any:
        """What ``Ref: name`` returns: a pseudo parameter, a parameter or a resource."""
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name.startswith("AWS::"):
            raise IntrinsicError(
                f"unknown pseudo parameter {name}", logical_id=logical_id, path=path
            )
        if name in self._parameters or name in self._parameter_specs:
            return self._parameter(name, logical_id, path)
        return self._resource(name, logical_id, path).physical_id

    def _parameter(self, name: str, logical_id: str, path: str) -> Any:
        spec = self._parameter_specs.get(name) or {}
        kind = str(spec.get("Type", "String"))
        if name in self._parameters:
            value = self._parameters[name]
        elif "Default" in spec:
            if kind.startswith("AWS::SSM::Parameter::Value"):
                raise IntrinsicError(
                    f"parameter {name} is an SSM parameter reference ({kind}): the sandbox "
                    "does not resolve it; pass its value explicitly",
                    logical_id=logical_id,
                    path=path,
                )
            value = spec["Default"]
        else:
            raise IntrinsicError(
                f"parameter {name} has no value and no Default", logical_id=logical_id, path=path
            )
        if (kind.startswith("List<") or kind == "CommaDelimitedList") and isinstance(value, str):
            return [item.strip() for item in value.split(",")]
        return value

    def _resource(self, name: str, logical_id: str, path: str) -> DeployedResource:
        resource = self.resources.get(name)
        if resource is not None:
            return resource
        if name in self.declared:
            raise IntrinsicError(
                f"refers to {name}, which is not deployed yet (dependency order)",
                logical_id=logical_id,
                path=path,
            )
        raise IntrinsicError(
            f"refers to {name}, which is neither a resource, a parameter nor a pseudo "
            "parameter of the template",
            logical_id=logical_id,
            path=path,
        )

    def _get_att(self, argument: Any, logical_id: str, path: str) -> Any:
        if isinstance(argument, str):
            target, _, attribute = argument.partition(".")
        elif isinstance(argument, list) and len(argument) == 2 and isinstance(argument[0], str):
            target = argument[0]
            attribute = self.scalar(argument[1], logical_id, f"{path}[1]", "the attribute name")
        else:
            raise IntrinsicError(
                f"Fn::GetAtt takes [logicalId, attribute], got {argument!r}",
                logical_id=logical_id,
                path=path,
            )
        if not attribute:
            raise IntrinsicError(
                f"Fn::GetAtt {argument!r} names no attribute", logical_id=logical_id, path=path
            )
        return self.attribute(target, attribute, logical_id=logical_id, path=path)

    def attribute(self, target: str, attribute: str, *, logical_id: str, path: str) -> Any:
        """What ``Fn::GetAtt: [target, attribute]`` returns."""
        resource = self._resource(target, logical_id, path)
        if attribute not in resource.attributes:
            known = ", ".join(sorted(resource.attributes)) or "none"
            raise IntrinsicError(
                f"{target} ({resource.type}) has no attribute {attribute!r} in the sandbox "
                f"(known: {known})",
                logical_id=logical_id,
                path=path,
            )
        return resource.attributes[attribute]
