"""Match events against EventBridge event patterns and SNS filter policies, as AWS does.

The patterns are validated and compiled by :mod:`conveyor.constructs.filters` (the same code
that checks them at synth), then evaluated here. The sandbox uses this matcher for every
EventBridge delivery, ``TestEventPattern`` and every SNS filter-policy decision; your tests
can use it directly::

    from conveyor.patterns import matches, sns_matches, assert_matches

    assert matches({"source": ["shop"], "detail": {"total": [{"numeric": [">", 100]}]}},
                   eventbridge_event(source="shop", detail={"total": 120}))
    assert sns_matches({"kind": ["order"]}, attributes={"kind": "order"})
    assert_matches(pattern, event)  # fails with a readable message when it does not

Semantics (the EventBridge user guide, the SNS developer guide and the aws/event-ruler engine):

- every field of a pattern must match; a field matches when any of its values does; each
  ``$or`` group needs one branch that matches the same object;
- only leaf values (strings, numbers, booleans, null) match; an array in the event matches
  when any of its elements does, at any depth; objects inside arrays are matched element by
  element: the fields of one pattern object must all be found in the *same* array element
  (array-consistent matching);
- numbers compare as numbers (``300`` matches ``3.0e2``), never as strings;
- ``exists: true``: the field has a leaf value (``[]`` and objects have none);
  ``exists: false``: it has none, in the object being matched (inside an array of objects,
  the element: one element without the field is enough, as the rule engine's
  array-consistent matching does);
- ``anything-but``: a present value that none of the excluded values/prefixes/suffixes/
  ignore-case values/wildcards accepts; a missing field does not match;
- EventBridge matches the whole event, envelope included: ``time`` is the ISO-8601 string the
  target receives (``2026-12-02T06:00:00Z``), never an epoch number;
- SNS ``MessageAttributes`` scope: ``String`` attributes are strings, ``Number`` attributes
  numbers, ``String.Array`` attributes their JSON array; ``Binary`` attributes are not matched;
  ``MessageBody`` scope: the message must be a JSON object.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from conveyor.constructs.filters import (
    CompiledPattern,
    Exists,
    Leaf,
    Pattern,
    Scalar,
    compile_event_pattern,
    compile_sns_filter_policy,
)

__all__ = [
    "assert_matches",
    "assert_sns_matches",
    "compile_event_pattern",
    "compile_sns_filter_policy",
    "eventbridge_event",
    "matches",
    "matches_compiled",
    "sns_attribute_values",
    "sns_matches",
]

_MISSING: Final = object()
_EMPTY: Final[Mapping[str, Any]] = {}


def _get(obj: Mapping[str, Any], name: str) -> Any:
    """``obj[name]``, where names join with dots as the rule engine flattens them: the
    pattern field ``a.b`` finds ``{"a": {"b": ...}}``, the pattern ``{"a": {"b": ...}}`` finds
    the event key ``a.b``."""
    value = obj.get(name, _MISSING)
    if value is not _MISSING:
        return value
    dot = name.find(".")
    if dot == -1 and not any("." in key for key in obj):
        return _MISSING
    while dot != -1:
        head = obj.get(name[:dot], _MISSING)
        if isinstance(head, Mapping):
            found = _get(head, name[dot + 1 :])
            if found is not _MISSING:
                return found
        dot = name.find(".", dot + 1)
    prefix = name + "."
    nested = {
        key[len(prefix) :]: child
        for key, child in obj.items()
        if "." in key and key.startswith(prefix)
    }
    return nested or _MISSING


def _leaf_values(value: Any) -> Iterator[Scalar]:
    """The leaf values of an event field: itself, or the elements of (nested) arrays."""
    if value is _MISSING or isinstance(value, Mapping):
        return
    if isinstance(value, list | tuple):
        for item in value:
            yield from _leaf_values(item)
        return
    yield value


def _objects(value: Any) -> Iterator[Mapping[str, Any]]:
    """The objects a nested pattern object is matched against: the value, or array elements."""
    if isinstance(value, Mapping):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _objects(item)


def _leaf_matches(leaf: Leaf, value: Any) -> bool:
    values = list(_leaf_values(value))
    for matcher in leaf.matchers:
        if isinstance(matcher, Exists):
            if matcher.present == bool(values):
                return True
        elif any(matcher.accepts(item) for item in values):
            return True
    return False


def _pattern_matches(pattern: Pattern, obj: Mapping[str, Any]) -> bool:
    for name, child in pattern.fields:
        value = _get(obj, name)
        if isinstance(child, Leaf):
            if not _leaf_matches(child, value):
                return False
            continue
        candidates = list(_objects(value)) or [_EMPTY]
        if not any(_pattern_matches(child, candidate) for candidate in candidates):
            return False
    for group in pattern.alternatives:
        if not any(_pattern_matches(branch, obj) for branch in group):
            return False
    return True


def matches_compiled(compiled: CompiledPattern | Pattern, document: Any) -> bool:
    """Whether an already compiled pattern matches ``document`` (an event, a message body, or
    the values of SNS message attributes, see :func:`sns_attribute_values`)."""
    root = compiled.root if isinstance(compiled, CompiledPattern) else compiled
    if not isinstance(document, Mapping):
        return False
    return _pattern_matches(root, document)


def _load(document: Mapping[str, Any] | str) -> Any:
    return json.loads(document) if isinstance(document, str) else document


def matches(pattern: Mapping[str, Any] | str, event: Mapping[str, Any] | str) -> bool:
    """Whether the EventBridge ``pattern`` matches ``event`` (a whole event, envelope
    included, as a dict or JSON text; see :func:`eventbridge_event` to build one).

    :raises conveyor.constructs.filters.FilterError: the pattern is not valid (EventBridge
        would reject the rule with ``InvalidEventPatternException``).
    """
    return matches_compiled(compile_event_pattern(_load(pattern)), _normalise_event(_load(event)))


def _normalise_event(event: Any) -> Any:
    """An event as EventBridge matches it: ``time`` as its ISO-8601 string."""
    if isinstance(event, Mapping):
        moment = event.get("time")
        if isinstance(moment, datetime) or (
            isinstance(moment, int | float) and not isinstance(moment, bool)
        ):
            return {**event, "time": iso_time(moment)}
    return event


def iso_time(moment: datetime | float) -> str:
    """EventBridge's ``time``: UTC, to the second, ``Z`` (``2026-12-02T06:00:00Z``)."""
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(float(moment), tz=UTC)
    elif moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def eventbridge_event(
    *,
    source: str = "conveyor.test",
    detail_type: str = "Test",
    detail: Mapping[str, Any] | None = None,
    resources: Sequence[str] = (),
    time: datetime | float | str | None = None,
    account: str = "123456789012",
    region: str = "us-east-1",
    event_id: str = "00000000-0000-0000-0000-000000000000",
) -> dict[str, Any]:
    """An event as a target receives it after ``PutEvents`` (the envelope and ``detail``)."""
    moment = time if isinstance(time, str) else iso_time(time or datetime.now(UTC))
    return {
        "version": "0",
        "id": event_id,
        "detail-type": detail_type,
        "source": source,
        "account": account,
        "time": moment,
        "region": region,
        "resources": list(resources),
        "detail": dict(detail or {}),
    }


def sns_attribute_values(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """The values an SNS attribute policy matches, from message attributes.

    Accepts the ``Publish`` API shape (``{"DataType": "Number", "StringValue": "5"}``), moto's
    and the SNS notification's (``{"Type": "Number", "Value": "5"}``), or plain values
    (``{"kind": "order", "price": 5, "tags": ["a", "b"]}``). ``Number`` becomes a number,
    ``String.Array`` its JSON array, ``Binary`` is left out (SNS does not match it).
    """
    values: dict[str, Any] = {}
    for name, attribute in attributes.items():
        if not isinstance(attribute, Mapping):
            values[name] = attribute
            continue
        data_type = str(attribute.get("DataType", attribute.get("Type", "String")))
        raw = attribute.get("StringValue", attribute.get("Value"))
        if data_type.startswith("Binary") or raw is None:
            continue
        if data_type.startswith("Number"):
            number = float(raw)
            values[name] = int(number) if number.is_integer() and "." not in str(raw) else number
        elif data_type.startswith("String.Array"):
            try:
                values[name] = json.loads(str(raw))
            except ValueError:
                values[name] = str(raw)
        else:
            values[name] = str(raw)
    return values


def sns_matches(
    policy: Mapping[str, Any] | str,
    *,
    attributes: Mapping[str, Any] | None = None,
    message: Any = None,
    scope: str = "MessageAttributes",
) -> bool:
    """Whether the SNS filter ``policy`` lets a message through to the subscription.

    ``scope`` ``MessageAttributes`` (the default) matches ``attributes`` (see
    :func:`sns_attribute_values` for the accepted shapes); ``MessageBody`` matches
    ``message`` (a dict or JSON text; text that is not a JSON object never matches).

    :raises conveyor.constructs.filters.FilterError: the policy is not valid.
    """
    compiled = compile_sns_filter_policy(_load(policy), scope=scope)
    return sns_matches_compiled(compiled, attributes=attributes, message=message)


def sns_matches_compiled(
    compiled: CompiledPattern, *, attributes: Mapping[str, Any] | None, message: Any
) -> bool:
    """:func:`sns_matches` for a policy already compiled (its scope is the compiled one)."""
    if compiled.scope == "MessageBody":
        body = message
        if isinstance(message, str | bytes):
            try:
                body = json.loads(message)
            except ValueError:
                return False
        return matches_compiled(compiled, body)
    return matches_compiled(compiled, sns_attribute_values(attributes or {}))


def _explain(kind: str, pattern: Any, document: Any, expected: bool) -> str:
    verdict = "match" if expected else "not match"
    return (
        f"expected the {kind} to {verdict}:\n  pattern: {json.dumps(_load(pattern), default=str)}"
        f"\n  against: {json.dumps(_load(document), default=str)}"
    )


def assert_matches(
    pattern: Mapping[str, Any] | str, event: Mapping[str, Any] | str, *, expected: bool = True
) -> None:
    """Assert (pytest-style) that ``pattern`` matches ``event`` (or, ``expected=False``, not)."""
    if matches(pattern, event) is not expected:
        raise AssertionError(_explain("event pattern", pattern, event, expected))


def assert_sns_matches(
    policy: Mapping[str, Any] | str,
    *,
    attributes: Mapping[str, Any] | None = None,
    message: Any = None,
    scope: str = "MessageAttributes",
    expected: bool = True,
) -> None:
    """Assert that the SNS filter ``policy`` lets the message through (or, ``expected=False``,
    filters it out)."""
    if sns_matches(policy, attributes=attributes, message=message, scope=scope) is not expected:
        document = message if scope == "MessageBody" else (attributes or {})
        raise AssertionError(_explain("filter policy", policy, document, expected))
