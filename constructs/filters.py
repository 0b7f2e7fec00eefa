"""Synth-time validation of SNS subscription filter policies and EventBridge event patterns.

A misspelt operator (``prefx``, ``numric``, ``Numeric``), a forgotten pair of brackets or an
over-limit policy must fail ``cdk synth`` with a ``FilterError`` (a ``ValueError``) that names
the offending path, never deploy as a rule that silently matches the wrong thing or fail
halfway through a CloudFormation deployment. Inputs are the plain JSON shapes that go into
``AWS::SNS::Subscription.FilterPolicy`` and ``AWS::Events::Rule.EventPattern``.

The rules encoded here, and the AWS documentation pages they come from:

SNS (Amazon SNS Developer Guide)
    * "Filter policy constraints in Amazon SNS": at most 5 keys; total combinations <= 150;
      JSON of at most 256 KB; values are strings, numbers, ``true``/``false``/``null`` or
      operator objects; numbers range over -10^9..10^9; attribute-based filtering
      (``MessageAttributes``) accepts no nested policy; key counting -- attribute-based
      filtering counts every key, payload-based filtering (``MessageBody``) counts only the
      top-level (parent) keys, nested keys do not count.
    * "Amazon SNS subscription filter policy scope": scope is ``MessageAttributes`` (the
      default) or ``MessageBody``.
    * "Amazon SNS subscription filter policies": the supported operators -- exact, anything-but
      (values, or ``{"prefix": ...}``), numeric exact/range, equals-ignore-case, cidr (IP
      address matching), prefix, suffix, exists (key matching), AND/OR and ``$or``. SNS does
      *not* document ``wildcard`` nor ``anything-but`` with suffix/equals-ignore-case/wildcard
      (those are EventBridge operators), so they are rejected for SNS.
    * "AND/OR logic": ``$or`` needs an array of at least 2 objects whose field names are not
      reserved keywords (otherwise SNS silently treats ``$or`` as an attribute name); the
      complexity of a policy with ``$or`` is the *sum* of the combinations of each OR branch,
      and in a nested policy each array counts ``len(values) x nesting level``. Worked
      examples from that page and the constraints page: 3 x 1 x 2 = 6;
      3 x 4 x 2 x 3 = 72; (1*2) + (1*1*2) + (1*1*3) = 7; 4 x (2*2*2) = 32.
    * "Numeric value matching", "String value matching", "Key matching": operand shapes.

EventBridge (Amazon EventBridge User Guide)
    * "Amazon EventBridge events" / "Creating Amazon EventBridge event patterns": a pattern
      matches the event envelope (``version``, ``id``, ``detail-type``, ``source``,
      ``account``, ``time``, ``region``, ``resources``, ``detail``); application data lives
      under ``detail``; every matched value is a non-empty array. ``replay-name`` is also
      accepted: EventBridge adds it to replayed events and an archive's own managed rule
      matches ``{"replay-name": [{"exists": false}]}`` ("Archiving and replaying events").
    * "Comparison operators for use in event patterns in Amazon EventBridge" and "Content
      filtering in Amazon EventBridge event patterns": exact values (string, number, boolean,
      null, empty string), prefix / suffix (string or ``{"equals-ignore-case": string}``),
      anything-but (string or number, a list of only strings or only numbers, or
      ``{"prefix"|"suffix"|"equals-ignore-case"|"wildcard": ...}``), numeric, exists, cidr,
      equals-ignore-case, wildcard (no consecutive ``*``; a backslash may escape only ``*``
      and ``\\``), and ``$or``.
    * "Amazon EventBridge quotas": "Event pattern size" -- 2,048 characters by default
      (adjustable, hence ``max_size``).

Deliberately not encoded: EventBridge's wildcard/``$or`` "rule is too complex" limit and its
numeric range (no number is documented); SNS's five digits of decimal precision (a loss of
precision, not an error); per-topic/per-account filter policy quotas (not a property of one
policy); SNS double-escaping of ``"`` and ``\\`` in attribute values (matching behaviour, not
validity).
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, NoReturn

__all__ = [
    "EVENT_ENVELOPE_FIELDS",
    "EVENT_PATTERN_MAX_CHARS",
    "EVENT_PATTERN_OPERATORS",
    "SNS_FILTER_POLICY_SCOPES",
    "SNS_MAX_COMBINATIONS",
    "SNS_MAX_KEYS",
    "SNS_MAX_POLICY_BYTES",
    "SNS_OPERATORS",
    "FilterError",
    "count_filter_combinations",
    "validate_event_pattern",
    "validate_sns_filter_policy",
]

SNS_FILTER_POLICY_SCOPES: Final = ("MessageAttributes", "MessageBody")
SNS_MAX_KEYS: Final = 5
SNS_MAX_COMBINATIONS: Final = 150
SNS_MAX_POLICY_BYTES: Final = 256 * 1024
SNS_NUMBER_LIMIT: Final = 1_000_000_000
SNS_OPERATORS: Final = (
    "numeric",
    "prefix",
    "suffix",
    "anything-but",
    "equals-ignore-case",
    "exists",
    "cidr",
)

EVENT_PATTERN_MAX_CHARS: Final = 2048
EVENT_PATTERN_OPERATORS: Final = (*SNS_OPERATORS, "wildcard")
EVENT_ENVELOPE_FIELDS: Final = (
    "version",
    "id",
    "detail-type",
    "source",
    "account",
    "time",
    "region",
    "resources",
    "detail",
    "replay-name",
)

OR: Final = "$or"
COMPARISONS: Final = ("=", "<", "<=", ">", ">=")
_LOWER_BOUNDS: Final = (">", ">=")
_UPPER_BOUNDS: Final = ("<", "<=")
_ALL_OPERATORS: Final = frozenset(EVENT_PATTERN_OPERATORS)

Path = tuple[str | int, ...]
Unresolved = Callable[[object], bool]


class FilterError(ValueError):
    """A filter policy or event pattern the service would reject, or would misread.

    ``where`` is the caller's prefix (typically the construct path), ``path`` the location in
    the policy (``detail.montant[0]``) and ``reason`` what is wrong there.
    """

    def __init__(self, where: str, path: str, reason: str) -> None:
        self.where = where
        self.path = path
        self.reason = reason
        location = f"{where}: {path}" if where else path
        super().__init__(f"{location}: {reason}")


@dataclass(frozen=True)
class _Dialect:
    root: str
    service: str
    operators: tuple[str, ...]
    anything_but_operators: tuple[str, ...]
    number_limit: int | None
    nesting: bool
    envelope: bool
    ignore_case_affixes: bool
    listed_anything_but_operands: bool


_SNS_ATTRIBUTES: Final = _Dialect(
    root="filter policy",
    service="SNS",
    operators=SNS_OPERATORS,
    anything_but_operators=("prefix",),
    number_limit=SNS_NUMBER_LIMIT,
    nesting=False,
    envelope=False,
    ignore_case_affixes=False,
    listed_anything_but_operands=False,
)
_SNS_BODY: Final = replace(_SNS_ATTRIBUTES, nesting=True)
_EVENTBRIDGE: Final = _Dialect(
    root="event pattern",
    service="EventBridge",
    operators=EVENT_PATTERN_OPERATORS,
    anything_but_operators=("prefix", "suffix", "equals-ignore-case", "wildcard"),
    number_limit=None,
    nesting=True,
    envelope=True,
    ignore_case_affixes=True,
    listed_anything_but_operands=True,
)


def _format_path(path: Path, root: str) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part and not any(char in part for char in ".[]\"' "):
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(part)}]"
    return text or root


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_array(value: object) -> bool:
    return isinstance(value, list | tuple)


def _suggest(name: str, candidates: tuple[str, ...]) -> str:
    """`` (did you mean 'x'?)`` for a near-miss, including a wrong case, else ``''``."""
    lowered = {candidate.lower(): candidate for candidate in candidates}
    if name.lower() in lowered:
        return f"; did you mean {lowered[name.lower()]!r}? (names are case-sensitive)"
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return f"; did you mean {lowered[close[0]]!r}?" if close else ""


def _show(value: object) -> str:
    """``value`` as JSON when it is JSON, else its repr (for error messages)."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _compact_json(document: Mapping[str, Any]) -> str:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


class _Checker:
    def __init__(self, dialect: _Dialect, where: str, unresolved: Unresolved | None) -> None:
        self.dialect = dialect
        self.where = where
        self.unresolved = unresolved or (lambda _value: False)

    def fail(self, path: Path, reason: str) -> NoReturn:
        raise FilterError(self.where, _format_path(path, self.dialect.root), reason)

    # --- structure -----------------------------------------------------------------------

    def document(self, document: object) -> None:
        if not isinstance(document, Mapping):
            self.fail((), f"must be a JSON object, got {type(document).__name__}")
        self.fields(document, (), top_level=True)

    def fields(self, obj: Mapping[Any, Any], path: Path, *, top_level: bool) -> None:
        if not obj:
            self.fail(path, "must not be an empty object (it would constrain nothing)")
        for key, value in obj.items():
            if not isinstance(key, str):
                self.fail(path, f"field names must be strings, got {key!r}")
            here = (*path, key)
            if key == OR:
                self.or_(value, here, top_level=top_level)
                continue
            if top_level and self.dialect.envelope:
                self.envelope_field(key, value, here)
            if isinstance(value, Mapping):
                self.nested(key, value, here)
            elif _is_array(value):
                self.leaf(value, here)
            else:
                self.fail(here, f"must be an array of match values, e.g. [{_show(value)}]")

    def envelope_field(self, key: str, value: object, path: Path) -> None:
        if key not in EVENT_ENVELOPE_FIELDS:
            self.fail(
                path,
                f"unknown top-level field {key!r}: an event pattern matches the event envelope "
                f"({', '.join(EVENT_ENVELOPE_FIELDS)}); application data goes under 'detail'"
                + _suggest(key, EVENT_ENVELOPE_FIELDS),
            )
        if key == "detail" and not isinstance(value, Mapping):
            self.fail(path, "'detail' must be an object of fields to match")
        if key != "detail" and not _is_array(value):
            self.fail(path, f"{key!r} must be an array of match values")

    def nested(self, key: str, value: Mapping[Any, Any], path: Path) -> None:
        if len(value) == 1:
            (name,) = value
            if name in _ALL_OPERATORS:
                example = _show({key: [dict(value)]})
                self.fail(
                    path,
                    f"{name!r} is an operator, not a field name: operators go inside the "
                    f"array of match values, e.g. {example}",
                )
        if not self.dialect.nesting:
            self.fail(
                path,
                "nested objects are not allowed with FilterPolicyScope MessageAttributes "
                "(message attributes are flat); use scope MessageBody to filter on the payload",
            )
        self.fields(value, path, top_level=False)

    def or_(self, value: object, path: Path, *, top_level: bool) -> None:
        if not isinstance(value, list | tuple) or len(value) < 2:
            self.fail(path, "'$or' must be an array of at least 2 objects")
        for index, branch in enumerate(value):
            here = (*path, index)
            if not isinstance(branch, Mapping):
                self.fail(here, "each '$or' branch must be an object of fields")
            for name in branch:
                if name in _ALL_OPERATORS:
                    self.fail(
                        (*here, name),
                        f"{name!r} is a reserved operator keyword and cannot be a field name "
                        "inside '$or'",
                    )
            self.fields(branch, here, top_level=top_level)

    def leaf(self, values: list[Any] | tuple[Any, ...], path: Path) -> None:
        if not values:
            self.fail(path, "empty arrays are not allowed (they would never match)")
        for index, value in enumerate(values):
            self.match_value(value, (*path, index))

    def match_value(self, value: object, path: Path) -> None:
        if value is None or isinstance(value, str | bool):
            return
        if _is_number(value):
            self.number(value, path)
        elif isinstance(value, Mapping):
            self.operator(value, path)
        elif _is_array(value):
            self.fail(path, "nested arrays are not allowed in an array of match values")
        else:
            self.fail(
                path,
                "match values must be strings, numbers, true, false, null or operator objects, "
                f"got {type(value).__name__}",
            )

    # --- operators -----------------------------------------------------------------------

    def operator(self, obj: Mapping[Any, Any], path: Path) -> None:
        operators = self.dialect.operators
        if len(obj) != 1:
            found = ", ".join(repr(name) for name in obj) or "none"
            self.fail(path, f"an operator object takes exactly one operator, got {found}")
        ((name, operand),) = obj.items()
        if name not in operators:
            if name in _ALL_OPERATORS:
                self.fail(
                    path,
                    f"operator {name!r} is not supported by {self.dialect.service} "
                    f"(known: {', '.join(operators)})",
                )
            self.fail(
                path,
                f"unknown operator {name!r} (known: {', '.join(operators)})"
                + _suggest(str(name), operators),
            )
        here = (*path, name)
        if name in ("prefix", "suffix"):
            self.affix(name, operand, here)
        elif name == "equals-ignore-case":
            self.string(operand, here, name)
        elif name == "anything-but":
            self.anything_but(operand, here)
        elif name == "numeric":
            self.numeric(operand, here)
        elif name == "exists":
            if not isinstance(operand, bool):
                self.fail(here, f"exists takes true or false, got {_show(operand)}")
        elif name == "cidr":
            self.cidr(operand, here)
        else:  # wildcard
            self.wildcard(operand, here)

    def string(self, operand: object, path: Path, name: str, *, non_empty: bool = False) -> None:
        if not isinstance(operand, str):
            self.fail(path, f"{name} takes a string, got {_show(operand)}")
        if non_empty and not operand:
            self.fail(path, f"{name} must not be empty")

    def strings(self, operand: object, path: Path, name: str, *, non_empty: bool) -> list[str]:
        """A string, or (EventBridge inside anything-but) a non-empty array of strings."""
        if isinstance(operand, str) or not (
            self.dialect.listed_anything_but_operands and _is_array(operand)
        ):
            self.string(operand, path, name, non_empty=non_empty)
            return [str(operand)]
        assert isinstance(operand, list | tuple)
        if not operand:
            self.fail(path, f"{name} takes a string or a non-empty array of strings")
        for index, item in enumerate(operand):
            self.string(item, (*path, index), name, non_empty=non_empty)
        return [str(item) for item in operand]

    def affix(self, name: str, operand: object, path: Path) -> None:
        if isinstance(operand, Mapping) and self.dialect.ignore_case_affixes:
            if list(operand) != ["equals-ignore-case"]:
                self.fail(path, f'{name} takes a string or {{"equals-ignore-case": string}}')
            self.string(operand["equals-ignore-case"], (*path, "equals-ignore-case"), name)
            return
        self.string(operand, path, name)

    def anything_but(self, operand: object, path: Path) -> None:
        allowed = self.dialect.anything_but_operators
        if isinstance(operand, Mapping):
            if len(operand) != 1:
                self.fail(path, "anything-but takes exactly one nested operator")
            ((name, inner),) = operand.items()
            if name not in allowed:
                self.fail(
                    path,
                    f"anything-but does not support {name!r} in {self.dialect.service} "
                    f"(supported: values, or one of {', '.join(allowed)})"
                    + _suggest(str(name), allowed),
                )
            here = (*path, name)
            values = self.strings(inner, here, f"anything-but/{name}", non_empty=True)
            if name == "wildcard":
                for value in values:
                    self.wildcard(value, here)
            return
        if _is_array(operand):
            assert isinstance(operand, list | tuple)
            if not operand:
                self.fail(path, "anything-but takes a non-empty array")
            kinds: set[str] = set()
            for index, value in enumerate(operand):
                self.anything_but_value(value, (*path, index))
                kinds.add("string" if isinstance(value, str) else "number")
            if len(kinds) > 1:
                self.fail(path, "anything-but arrays hold only strings or only numbers, not both")
            return
        self.anything_but_value(operand, path)

    def anything_but_value(self, value: object, path: Path) -> None:
        if isinstance(value, str):
            return
        if not _is_number(value):
            self.fail(
                path,
                f"anything-but takes strings or numbers, got {_show(value)}",
            )
        self.number(value, path)

    def number(self, value: object, path: Path) -> None:
        if not _is_number(value):
            self.fail(path, f"expected a number, got {_show(value)}")
        if self.unresolved(value):
            return
        assert isinstance(value, int | float)
        if not math.isfinite(value):
            self.fail(path, f"{value} is not a JSON number")
        limit = self.dialect.number_limit
        if limit is not None and not -limit <= value <= limit:
            self.fail(path, f"{value} is outside the SNS numeric range -1e9..1e9")

    def numeric(self, operand: object, path: Path) -> None:
        if not _is_array(operand):
            self.fail(path, 'numeric takes an array such as [">", 0, "<=", 100]')
        assert isinstance(operand, list | tuple)
        if len(operand) not in (2, 4):
            self.fail(
                path,
                "numeric takes [operator, number] or a range [lower-operator, number, "
                f"upper-operator, number], got {len(operand)} elements",
            )
        for index in range(0, len(operand), 2):
            comparison = operand[index]
            if not isinstance(comparison, str) or comparison not in COMPARISONS:
                self.fail(
                    (*path, index),
                    f"unknown numeric operator {_show(comparison)} "
                    f"(known: {', '.join(COMPARISONS)})",
                )
            self.number(operand[index + 1], (*path, index + 1))
        if len(operand) == 2:
            return
        lower_op, lower, upper_op, upper = operand
        if lower_op not in _LOWER_BOUNDS:
            self.fail((*path, 0), f"a numeric range starts with '>' or '>=', got {lower_op!r}")
        if upper_op not in _UPPER_BOUNDS:
            self.fail((*path, 2), f"a numeric range ends with '<' or '<=', got {upper_op!r}")
        if not (self.unresolved(lower) or self.unresolved(upper)) and not lower < upper:
            self.fail(path, f"empty range: the lower bound {lower} must be below the upper {upper}")

    def cidr(self, operand: object, path: Path) -> None:
        self.string(operand, path, "cidr")
        assert isinstance(operand, str)
        if self.unresolved(operand):
            return
        _address, slash, mask = operand.partition("/")
        if not slash or "/" in mask:
            self.fail(path, f"malformed CIDR {operand!r}: exactly one '/' is required")
        if not mask.isdigit():
            self.fail(path, f"malformed CIDR {operand!r}: the mask bits must be an integer")
        try:
            ipaddress.ip_network(operand, strict=False)
        except ValueError:
            self.fail(path, f"malformed CIDR {operand!r}: not an IPv4/IPv6 address and mask")

    def wildcard(self, operand: object, path: Path) -> None:
        self.string(operand, path, "wildcard")
        assert isinstance(operand, str)
        if self.unresolved(operand):
            return
        previous_star = False
        index = 0
        while index < len(operand):
            char = operand[index]
            if char == "\\":
                escaped = operand[index + 1 : index + 2]
                if escaped not in ("*", "\\"):
                    self.fail(
                        path,
                        f"invalid escape at position {index} of {operand!r}: a backslash may "
                        "only escape '*' or '\\'",
                    )
                previous_star = False
                index += 2
                continue
            if char == "*" and previous_star:
                self.fail(
                    path,
                    f"consecutive wildcard characters at position {index} of {operand!r}",
                )
            previous_star = char == "*"
            index += 1


def _top_level_keys(policy: Mapping[str, Any]) -> set[str]:
    """The keys SNS counts toward its 5-key limit: top-level names, through ``$or``."""
    keys: set[str] = set()
    for key, value in policy.items():
        if key == OR and _is_array(value):
            for branch in value:
                if isinstance(branch, Mapping):
                    keys |= _top_level_keys(branch)
        else:
            keys.add(key)
    return keys


def _combinations(policy: Mapping[str, Any], depth: int, path: Path) -> int:
    total = 1
    for key, value in policy.items():
        here = (*path, key)
        if key == OR and _is_array(value):
            branches = 0
            for index, branch in enumerate(value):
                if not isinstance(branch, Mapping):
                    raise FilterError(
                        "", _format_path((*here, index), "filter policy"), "not an object"
                    )
                branches += _combinations(branch, depth, (*here, index))
            total *= branches
        elif isinstance(value, Mapping):
            total *= _combinations(value, depth + 1, here)
        elif _is_array(value):
            total *= len(value) * depth
        else:
            raise FilterError("", _format_path(here, "filter policy"), "must be an array or object")
    return total


def count_filter_combinations(policy: Mapping[str, Any]) -> int:
    """The SNS "total combination" of a filter policy ("Filter policy constraints", "AND/OR logic").

    Each array contributes ``len(array) x nesting level`` (1 at the top level, so a flat policy
    is the plain product of its array lengths); keys of one object multiply; the branches of a
    ``$or`` add up (the sum over the OR statements). Doc examples: 6, 72, 7 and 32.
    """
    return _combinations(policy, 1, ())


def validate_sns_filter_policy(
    policy: Mapping[str, Any],
    *,
    scope: str = "MessageAttributes",
    where: str = "",
    unresolved: Unresolved | None = None,
) -> None:
    """Raise ``FilterError`` unless ``policy`` is a valid SNS subscription filter policy.

    ``scope`` is the subscription's ``FilterPolicyScope``. ``unresolved`` (for example CDK's
    ``Token.is_unresolved``) marks values still unknown at synth, whose content is then not
    checked (a CIDR, a numeric bound...).
    """
    if scope not in SNS_FILTER_POLICY_SCOPES:
        raise FilterError(
            where,
            "FilterPolicyScope",
            f"must be one of {', '.join(SNS_FILTER_POLICY_SCOPES)}, got {scope!r}",
        )
    checker = _Checker(_SNS_BODY if scope == "MessageBody" else _SNS_ATTRIBUTES, where, unresolved)
    checker.document(policy)
    keys = _top_level_keys(policy)
    if len(keys) > SNS_MAX_KEYS:
        counted = "top-level keys" if scope == "MessageBody" else "keys"
        checker.fail(
            (),
            f"has {len(keys)} {counted} ({', '.join(sorted(keys))}); SNS allows at most "
            f"{SNS_MAX_KEYS}",
        )
    combinations = count_filter_combinations(policy)
    if combinations > SNS_MAX_COMBINATIONS:
        checker.fail(
            (),
            f"is too complex: {combinations} combinations, SNS allows at most "
            f"{SNS_MAX_COMBINATIONS} (product of the array lengths, x nesting level, "
            "summed over '$or' branches)",
        )
    size = len(_compact_json(policy).encode("utf-8"))
    if size > SNS_MAX_POLICY_BYTES:
        checker.fail((), f"is {size} bytes of JSON; SNS allows at most {SNS_MAX_POLICY_BYTES}")


def validate_event_pattern(
    pattern: Mapping[str, Any],
    *,
    where: str = "",
    max_size: int = EVENT_PATTERN_MAX_CHARS,
    unresolved: Unresolved | None = None,
) -> None:
    """Raise ``FilterError`` unless ``pattern`` is a valid EventBridge event pattern.

    ``max_size`` is the account's "Event pattern size" quota in characters (2,048 unless
    raised). ``unresolved`` as for :func:`validate_sns_filter_policy`.
    """
    checker = _Checker(_EVENTBRIDGE, where, unresolved)
    checker.document(pattern)
    size = len(_compact_json(pattern))
    if size > max_size:
        checker.fail(
            (), f"is {size} characters of JSON; the event pattern size quota is {max_size}"
        )
