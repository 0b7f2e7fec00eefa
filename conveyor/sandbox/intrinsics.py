"""CloudFormation intrinsic functions, resolved against what the sandbox has deployed.

:class:`Resolver` replaces ``Ref``, ``Fn::GetAtt``, ``Fn::Sub`` (both forms), ``Fn::Join``,
``Fn::Select``, ``Fn::Split``, ``Fn::If`` (with the template's ``Conditions``:
``Fn::Equals``, ``Fn::And``, ``Fn::Or``, ``Fn::Not``, ``Condition``), ``Fn::GetAZs``,
``Fn::FindInMap``, ``Fn::Base64`` and the pseudo parameters by values. ``AWS::NoValue``
removes the key (or list item) that holds it. ``Fn::ImportValue`` and any other intrinsic
raise :class:`IntrinsicError` naming the logical id and the path of the value.

:func:`references` lists the logical ids a value refers to (for ordering).
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Callable, Collection, Mapping
from typing import Any, Final

from conveyor.sandbox.model import ACCOUNT_ID, REGION, DeployedResource

PARTITION = "aws"
URL_SUFFIX = "amazonaws.com"
AVAILABILITY_ZONE_LETTERS = "abcdef"

_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


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


def availability_zones(region: str) -> list[str]:
    return [f"{region}{letter}" for letter in AVAILABILITY_ZONE_LETTERS]


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
        self._mappings: Mapping[str, Any] = template.get("Mappings") or {}
        self._condition_values: dict[str, bool] = {}
        self._evaluating: list[str] = []
        self._functions: dict[str, Callable[[Any, str, str], Any]] = {
            "Fn::GetAtt": self._get_att,
            "Fn::Sub": self._sub,
            "Fn::Join": self._join,
            "Fn::Select": self._select,
            "Fn::Split": self._split,
            "Fn::If": self._if,
            "Fn::GetAZs": self._get_azs,
            "Fn::FindInMap": self._find_in_map,
            "Fn::Base64": self._base64,
            "Fn::ImportValue": self._import_value,
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
                result = self.resolve(item, logical_id=logical_id, path=_join_path(path, key))
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
            value = self._evaluate_condition(
                self._conditions[name], logical_id, f"Conditions.{name}"
            )
        finally:
            self._evaluating.pop()
        self._condition_values[name] = value
        return value

    # -- dispatch ---------------------------------------------------------------------------

    def _call(self, name: str, argument: Any, logical_id: str, path: str) -> Any:
        here = _join_path(path, name)
        if name == "Ref":
            return self._ref(argument, logical_id, here)
        function = self._functions.get(name)
        if function is None:
            raise IntrinsicError(
                f"intrinsic function {name} is not supported by the sandbox",
                logical_id=logical_id,
                path=here,
            )
        return function(argument, logical_id, here)

    def _scalar(self, value: Any, logical_id: str, path: str, what: str) -> str:
        """Resolve ``value`` and require a string (numbers and booleans are stringified)."""
        resolved = self.resolve(value, logical_id=logical_id, path=path)
        if isinstance(resolved, bool):
            return "true" if resolved else "false"
        if isinstance(resolved, int | float | str):
            return str(resolved)
        raise IntrinsicError(
            f"{what} must resolve to a string, got {resolved!r}", logical_id=logical_id, path=path
        )

    def _list(self, value: Any, logical_id: str, path: str, what: str) -> list[Any]:
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
            attribute = self._scalar(argument[1], logical_id, f"{path}[1]", "the attribute name")
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

    # -- strings and lists ------------------------------------------------------------------

    def _sub(self, argument: Any, logical_id: str, path: str) -> str:
        variables: dict[str, Any] = {}
        if isinstance(argument, str):
            text = argument
        elif (
            isinstance(argument, list)
            and len(argument) == 2
            and isinstance(argument[0], str)
            and isinstance(argument[1], dict)
        ):
            text = argument[0]
            for name, value in argument[1].items():
                variables[name] = self._scalar(value, logical_id, f"{path}[1].{name}", name)
        else:
            raise IntrinsicError(
                f"Fn::Sub takes a string or [string, {{variables}}], got {argument!r}",
                logical_id=logical_id,
                path=path,
            )

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            name = name.strip()
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                target, _, attribute = name.partition(".")
                value = self.attribute(target, attribute, logical_id=logical_id, path=path)
            else:
                value = self.lookup(name, logical_id=logical_id, path=path)
            if value is NO_VALUE or isinstance(value, list | dict):
                raise IntrinsicError(
                    f"${{{name}}} does not resolve to a string", logical_id=logical_id, path=path
                )
            return _stringify(value)

        return _SUB_VARIABLE.sub(replace, text)

    def _join(self, argument: Any, logical_id: str, path: str) -> str:
        if not isinstance(argument, list) or len(argument) != 2:
            raise IntrinsicError(
                f"Fn::Join takes [delimiter, [values]], got {argument!r}",
                logical_id=logical_id,
                path=path,
            )
        delimiter = self._scalar(argument[0], logical_id, f"{path}[0]", "the delimiter")
        items = self._list(argument[1], logical_id, f"{path}[1]", "the values")
        parts = []
        for index, item in enumerate(items):
            if isinstance(item, list | dict):
                raise IntrinsicError(
                    f"value {index} of Fn::Join is not a string: {item!r}",
                    logical_id=logical_id,
                    path=f"{path}[1][{index}]",
                )
            parts.append(_stringify(item))
        return delimiter.join(parts)

    def _select(self, argument: Any, logical_id: str, path: str) -> Any:
        if not isinstance(argument, list) or len(argument) != 2:
            raise IntrinsicError(
                f"Fn::Select takes [index, [values]], got {argument!r}",
                logical_id=logical_id,
                path=path,
            )
        raw_index = self._scalar(argument[0], logical_id, f"{path}[0]", "the index")
        try:
            index = int(raw_index)
        except ValueError:
            raise IntrinsicError(
                f"Fn::Select index {raw_index!r} is not a number",
                logical_id=logical_id,
                path=path,
            ) from None
        items = self._list(argument[1], logical_id, f"{path}[1]", "the values")
        if not 0 <= index < len(items):
            raise IntrinsicError(
                f"Fn::Select index {index} is out of range for {len(items)} values",
                logical_id=logical_id,
                path=path,
            )
        return items[index]

    def _split(self, argument: Any, logical_id: str, path: str) -> list[str]:
        if not isinstance(argument, list) or len(argument) != 2:
            raise IntrinsicError(
                f"Fn::Split takes [delimiter, string], got {argument!r}",
                logical_id=logical_id,
                path=path,
            )
        delimiter = self._scalar(argument[0], logical_id, f"{path}[0]", "the delimiter")
        source = self._scalar(argument[1], logical_id, f"{path}[1]", "the source string")
        if not delimiter:
            raise IntrinsicError(
                "Fn::Split needs a non-empty delimiter", logical_id=logical_id, path=path
            )
        return source.split(delimiter)

    def _get_azs(self, argument: Any, logical_id: str, path: str) -> list[str]:
        region = self._scalar(argument, logical_id, path, "the region") if argument else ""
        return availability_zones(region or self.region)

    def _find_in_map(self, argument: Any, logical_id: str, path: str) -> Any:
        if not isinstance(argument, list) or len(argument) not in (3, 4):
            raise IntrinsicError(
                f"Fn::FindInMap takes [map, key, key], got {argument!r}",
                logical_id=logical_id,
                path=path,
            )
        names = [
            self._scalar(argument[i], logical_id, f"{path}[{i}]", "a map key") for i in range(3)
        ]
        mapping: Any = self._mappings
        for name in names:
            if not isinstance(mapping, dict) or name not in mapping:
                if (
                    len(argument) == 4
                    and isinstance(argument[3], dict)
                    and "DefaultValue" in argument[3]
                ):
                    return self.resolve(
                        argument[3]["DefaultValue"], logical_id=logical_id, path=path
                    )
                raise IntrinsicError(
                    f"Fn::FindInMap: no {'/'.join(names)} in Mappings",
                    logical_id=logical_id,
                    path=path,
                )
            mapping = mapping[name]
        return mapping

    def _base64(self, argument: Any, logical_id: str, path: str) -> str:
        text = self._scalar(argument, logical_id, path, "Fn::Base64's value")
        return base64.b64encode(text.encode("utf-8")).decode("ascii")

    def _import_value(self, argument: Any, logical_id: str, path: str) -> Any:
        raise IntrinsicError(
            f"Fn::ImportValue ({argument!r}): cross-stack exports are not supported by the sandbox",
            logical_id=logical_id,
            path=path,
        )

    # -- conditions -------------------------------------------------------------------------

    def _if(self, argument: Any, logical_id: str, path: str) -> Any:
        if not isinstance(argument, list) or len(argument) != 3 or not isinstance(argument[0], str):
            raise IntrinsicError(
                f"Fn::If takes [condition, value if true, value if false], got {argument!r}",
                logical_id=logical_id,
                path=path,
            )
        chosen = 1 if self.condition(argument[0], logical_id=logical_id, path=path) else 2
        return self.resolve(argument[chosen], logical_id=logical_id, path=f"{path}[{chosen}]")

    def _evaluate_condition(self, value: Any, logical_id: str, path: str) -> bool:
        if isinstance(value, dict) and len(value) == 1:
            (name, argument), *_ = value.items()
            here = _join_path(path, name)
            if name == "Condition":
                if not isinstance(argument, str):
                    raise IntrinsicError(
                        f"Condition takes a name, got {argument!r}",
                        logical_id=logical_id,
                        path=here,
                    )
                return self.condition(argument, logical_id=logical_id, path=here)
            if name == "Fn::Equals":
                if not isinstance(argument, list) or len(argument) != 2:
                    raise IntrinsicError(
                        f"Fn::Equals takes two values, got {argument!r}",
                        logical_id=logical_id,
                        path=here,
                    )
                left, right = (
                    self.resolve(item, logical_id=logical_id, path=f"{here}[{i}]")
                    for i, item in enumerate(argument)
                )
                return bool(_comparable(left) == _comparable(right))
            if name in ("Fn::And", "Fn::Or"):
                if not isinstance(argument, list) or not 2 <= len(argument) <= 10:
                    raise IntrinsicError(
                        f"{name} takes 2 to 10 conditions, got {argument!r}",
                        logical_id=logical_id,
                        path=here,
                    )
                values = (
                    self._evaluate_condition(item, logical_id, f"{here}[{i}]")
                    for i, item in enumerate(argument)
                )
                return all(values) if name == "Fn::And" else any(values)
            if name == "Fn::Not":
                if not isinstance(argument, list) or len(argument) != 1:
                    raise IntrinsicError(
                        f"Fn::Not takes one condition, got {argument!r}",
                        logical_id=logical_id,
                        path=here,
                    )
                return not self._evaluate_condition(argument[0], logical_id, f"{here}[0]")
            if name == "Fn::If":
                resolved = self._if(argument, logical_id, here)
                return self._evaluate_condition(resolved, logical_id, here)
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
                for match in _SUB_VARIABLE.finditer(text or ""):
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


def _stringify(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _comparable(value: Any) -> Any:
    if isinstance(value, bool | int | float):
        return _stringify(value)
    return value


def _join_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
