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

Limits enforced beyond the documented ones above (see ``EVENT_PATTERN_MAX_OR_COMBINATIONS`` and
``EVENT_PATTERN_MAX_WILDCARD_COMPLEXITY`` for where each number comes from): a rule whose ``$or``
branches expand to more than 1,000 combinations, and a field whose wildcards are too complex, are
"too complex" for EventBridge.

Not an error, a warning: a top-level field outside the envelope (``{"FileName": [...]}``).
EventBridge accepts it, and it matches events whose envelope carries that field (some AWS
service events do), but a custom ``PutEvents`` event only has the envelope fields, its data is
under ``detail``: such a rule may never match one. ``validate_event_pattern`` returns those
warnings (constructs turn them into CDK Annotations).

Not encoded: SNS's five digits of decimal precision (a loss of precision, not an error);
per-topic/per-account filter policy quotas (not a property of one policy); SNS double-escaping
of ``"`` and ``\\`` in attribute values (matching behaviour, not validity).

The pattern model
    Validating a pattern also *compiles* it into a small immutable model (:class:`Pattern`:
    fields, nested objects, ``$or`` groups, and per field the :class:`Leaf` of value
    matchers, each with ``accepts(value)``). :mod:`conveyor.patterns` evaluates that model
    against events and messages: the validator and the matcher share one reading of a pattern.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final, NoReturn

__all__ = [
    "EVENT_ENVELOPE_FIELDS",
    "EVENT_PATTERN_MAX_CHARS",
    "EVENT_PATTERN_MAX_OR_COMBINATIONS",
    "EVENT_PATTERN_MAX_WILDCARD_COMPLEXITY",
    "EVENT_PATTERN_OPERATORS",
    "SNS_FILTER_POLICY_SCOPES",
    "SNS_MAX_COMBINATIONS",
    "SNS_MAX_KEYS",
    "SNS_MAX_POLICY_BYTES",
    "SNS_OPERATORS",
    "AnythingBut",
    "Cidr",
    "CompiledPattern",
    "EqualsIgnoreCase",
    "Exact",
    "Exists",
    "FilterError",
    "Leaf",
    "Matcher",
    "Numeric",
    "Pattern",
    "Prefix",
    "Suffix",
    "Wildcard",
    "compile_event_pattern",
    "compile_sns_filter_policy",
    "count_filter_combinations",
    "count_or_combinations",
    "validate_event_pattern",
    "validate_sns_filter_policy",
    "wildcard_complexity",
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
#: A rule whose ``$or`` branches expand to more than this many combinations (the product, over
#: the ``$or`` groups, of their branch counts, branches expanding recursively) is rejected as
#: too complex (the limit the EventBridge user guide states for ``$or`` matching).
EVENT_PATTERN_MAX_OR_COMBINATIONS: Final = 1000
#: The wildcard complexity above which a field's wildcards make a rule "too complex". The
#: measure is the EventBridge rule engine's (aws/event-ruler ``MachineComplexityEvaluator``):
#: the largest number of wildcard pattern prefixes one input value can match at once. AWS
#: publishes no number; 10 separates the cases recorded against AWS (``*:*:*:*:*:event-bus/*``,
#: complexity 11, was rejected; ``/Users/*/dir/dir/dir/dir/dir/doc.txt``, 7, was accepted).
EVENT_PATTERN_MAX_WILDCARD_COMPLEXITY: Final = 10
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
Scalar = str | int | float | bool | None


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


# --- the pattern model -------------------------------------------------------------------------


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class Exact:
    """An exact value: strings compare as strings, numbers as numbers (``300`` is ``3.0e2``),
    ``true``/``false``/``null`` only equal themselves."""

    value: Scalar

    def accepts(self, value: Scalar) -> bool:
        expected = self.value
        if expected is None or isinstance(expected, bool):
            return value is expected
        if isinstance(expected, str):
            return isinstance(value, str) and value == expected
        return _is_number(value) and value == expected


@dataclass(frozen=True)
class Prefix:
    """``{"prefix": text}`` or ``{"prefix": {"equals-ignore-case": text}}``: strings only."""

    text: str
    ignore_case: bool = False

    def accepts(self, value: Scalar) -> bool:
        if not isinstance(value, str):
            return False
        if self.ignore_case:
            return value.lower().startswith(self.text.lower())
        return value.startswith(self.text)


@dataclass(frozen=True)
class Suffix:
    """``{"suffix": text}`` or with ``equals-ignore-case``: strings only."""

    text: str
    ignore_case: bool = False

    def accepts(self, value: Scalar) -> bool:
        if not isinstance(value, str):
            return False
        if self.ignore_case:
            return value.lower().endswith(self.text.lower())
        return value.endswith(self.text)


@dataclass(frozen=True)
class EqualsIgnoreCase:
    """``{"equals-ignore-case": text}``: strings only."""

    text: str

    def accepts(self, value: Scalar) -> bool:
        return isinstance(value, str) and value.lower() == self.text.lower()


def _wildcard_tokens(text: str) -> tuple[str, ...]:
    """The characters of a (valid) wildcard, ``"*"`` for a wildcard, escapes resolved."""
    tokens: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            tokens.append("\\" + text[index + 1])  # an escaped literal
            index += 2
            continue
        tokens.append(char)
        index += 1
    return tuple(tokens)


def _wildcard_regex(text: str) -> re.Pattern[str]:
    parts = []
    for piece in _wildcard_tokens(text):
        if piece == "*":
            parts.append(".*")
        else:
            parts.append(re.escape(piece[-1]))
    return re.compile("".join(parts), re.DOTALL)


@dataclass(frozen=True)
class Wildcard:
    """``{"wildcard": text}``: ``*`` matches any run of characters (``\\*`` and ``\\\\`` are
    literals); the whole string must match; strings only."""

    text: str
    regex: re.Pattern[str] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "regex", _wildcard_regex(self.text))

    def accepts(self, value: Scalar) -> bool:
        return isinstance(value, str) and self.regex.fullmatch(value) is not None


_COMPARE: Final[dict[str, Callable[[float, float], bool]]] = {
    "=": lambda a, b: a == b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


@dataclass(frozen=True)
class Numeric:
    """``{"numeric": [op, n, ...]}``: JSON numbers only (a string ``"5"`` never matches)."""

    bounds: tuple[tuple[str, float], ...]

    def accepts(self, value: Scalar) -> bool:
        if not _is_number(value):
            return False
        assert isinstance(value, int | float)
        return all(_COMPARE[op](value, bound) for op, bound in self.bounds)


@dataclass(frozen=True)
class Cidr:
    """``{"cidr": "10.0.0.0/24"}``: an IPv4 or IPv6 address string inside the network; host
    bits set in the pattern's address are ignored (``220.160.154.255/24`` is
    ``220.160.154.0/24``)."""

    text: str
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = field(
        init=False, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        try:
            network = ipaddress.ip_network(self.text, strict=False)
        except ValueError:
            network = None  # an unresolved token at synth: never matches
        object.__setattr__(self, "network", network)

    def accepts(self, value: Scalar) -> bool:
        if not isinstance(value, str) or self.network is None:
            return False
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            return False
        return address.version == self.network.version and address in self.network


ValueMatcher = Exact | Prefix | Suffix | EqualsIgnoreCase | Wildcard | Numeric | Cidr


@dataclass(frozen=True)
class AnythingBut:
    """``{"anything-but": ...}``: any present value that none of ``excluded`` accepts (values,
    or prefixes, suffixes, ignore-case values, wildcards). A missing field does not match."""

    excluded: tuple[ValueMatcher, ...]

    def accepts(self, value: Scalar) -> bool:
        return not any(matcher.accepts(value) for matcher in self.excluded)


@dataclass(frozen=True)
class Exists:
    """``{"exists": true|false}``: whether the field has a value (a leaf: a string, number,
    boolean or null; an object or an empty array is no value)."""

    present: bool

    def accepts(self, value: Scalar) -> bool:  # a value is there: only exists true holds
        return self.present


Matcher = ValueMatcher | AnythingBut | Exists


@dataclass(frozen=True)
class Leaf:
    """The array of match values of one field: the field matches when any of them does."""

    matchers: tuple[Matcher, ...]


@dataclass(frozen=True)
class Pattern:
    """An object of a pattern: every field must match (``Leaf`` values or a nested
    ``Pattern``), and each ``$or`` group needs one branch that matches the same object."""

    fields: tuple[tuple[str, Pattern | Leaf], ...]
    alternatives: tuple[tuple[Pattern, ...], ...] = ()


@dataclass(frozen=True)
class CompiledPattern:
    """A validated pattern: its model, its dialect and the warnings found while validating."""

    root: Pattern
    service: str  # "EventBridge" or "SNS"
    scope: str  # "event" (EventBridge), "MessageAttributes" or "MessageBody" (SNS)
    warnings: tuple[str, ...] = ()


# --- the dialects ------------------------------------------------------------------------------


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


# --- wildcard complexity -------------------------------------------------------------------------


def wildcard_complexity(wildcards: tuple[str, ...] | list[str], cap: int = 1000) -> int:
    """The largest number of prefixes of ``wildcards`` that one input string matches at once.

    This is the rule engine's measure of wildcard complexity (aws/event-ruler: a prefix
    ``a*b`` of ``a*bc`` "matches" ``ab``): ``*ab`` scores 2 (``ab`` is matched by ``*`` and
    ``*ab``), ``a*bbb`` 4. Computed on the subset automaton of the prefixes, capped at ``cap``.
    """
    token_lists = [_wildcard_tokens(text) for text in wildcards]
    alphabet = {piece[-1] for tokens in token_lists for piece in tokens if piece != "*"}
    alphabet.add("\x00")  # any other character

    def closure(tokens: tuple[str, ...], states: frozenset[int]) -> frozenset[int]:
        result = set(states)
        for state in sorted(states):
            position = state
            while position < len(tokens) and tokens[position] == "*":
                position += 1
                result.add(position)
        return frozenset(result)

    def step(tokens: tuple[str, ...], states: frozenset[int], char: str) -> frozenset[int]:
        moved: set[int] = set()
        for state in states:
            if state > 0 and tokens[state - 1] == "*":
                moved.add(state)  # the wildcard absorbs the character
            if state < len(tokens) and tokens[state] != "*" and tokens[state][-1] == char:
                moved.add(state + 1)
        return closure(tokens, frozenset(moved))

    start = tuple(closure(tokens, frozenset({0})) for tokens in token_lists)
    seen = {start}
    frontier = [start]
    best = 0
    while frontier:
        current = frontier.pop()
        for char in alphabet:
            following = tuple(
                step(tokens, states, char)
                for tokens, states in zip(token_lists, current, strict=True)
            )
            score = sum(len(states - {0}) for states in following)
            best = max(best, score)
            if best >= cap:
                return cap
            if following not in seen:
                seen.add(following)
                frontier.append(following)
    return best


def count_or_combinations(pattern: Pattern) -> int:
    """How many rules ``pattern`` expands to: each ``$or`` group multiplies by the sum of its
    branches' own expansions (EventBridge's "$or" complexity)."""
    total = 1
    for _name, child in pattern.fields:
        if isinstance(child, Pattern):
            total *= count_or_combinations(child)
    for group in pattern.alternatives:
        total *= sum(count_or_combinations(branch) for branch in group)
    return total


# --- the checker (validates and compiles) ------------------------------------------------------


class _Checker:
    def __init__(self, dialect: _Dialect, where: str, unresolved: Unresolved | None) -> None:
        self.dialect = dialect
        self.where = where
        self.unresolved = unresolved or (lambda _value: False)
        self.warnings: list[str] = []

    def fail(self, path: Path, reason: str) -> NoReturn:
        raise FilterError(self.where, _format_path(path, self.dialect.root), reason)

    def warn(self, path: Path, reason: str) -> None:
        location = _format_path(path, self.dialect.root)
        prefix = f"{self.where}: " if self.where else ""
        self.warnings.append(f"{prefix}{location}: {reason}")

    # --- structure -----------------------------------------------------------------------

    def document(self, document: object) -> Pattern:
        if not isinstance(document, Mapping):
            self.fail((), f"must be a JSON object, got {type(document).__name__}")
        return self.fields(document, (), top_level=True)

    def fields(self, obj: Mapping[Any, Any], path: Path, *, top_level: bool) -> Pattern:
        if not obj:
            self.fail(path, "must not be an empty object (it would constrain nothing)")
        fields: list[tuple[str, Pattern | Leaf]] = []
        alternatives: list[tuple[Pattern, ...]] = []
        for key, value in obj.items():
            if not isinstance(key, str):
                self.fail(path, f"field names must be strings, got {key!r}")
            here = (*path, key)
            if key == OR:
                alternatives.append(self.or_(value, here, top_level=top_level))
                continue
            if top_level and self.dialect.envelope:
                self.envelope_field(key, value, here)
            if isinstance(value, Mapping):
                fields.append((key, self.nested(key, value, here)))
            elif _is_array(value):
                fields.append((key, self.leaf(value, here)))
            else:
                self.fail(here, f"must be an array of match values, e.g. [{_show(value)}]")
        return Pattern(tuple(fields), tuple(alternatives))

    def envelope_field(self, key: str, value: object, path: Path) -> None:
        if key not in EVENT_ENVELOPE_FIELDS:
            self.warn(
                path,
                f"top-level field {key!r} is outside the event envelope "
                f"({', '.join(EVENT_ENVELOPE_FIELDS)}): EventBridge accepts it and it matches "
                "events whose envelope has that field (some AWS service events), but an event "
                "put with PutEvents carries its data under 'detail', so this rule may never "
                f"match a custom event (did you mean {{'detail': {{{key!r}: ...}}}}?)"
                + _suggest(key, EVENT_ENVELOPE_FIELDS),
            )
            return
        if key == "detail" and not isinstance(value, Mapping):
            self.fail(path, "'detail' must be an object of fields to match")
        if key != "detail" and not _is_array(value):
            self.fail(path, f"{key!r} must be an array of match values")

    def nested(self, key: str, value: Mapping[Any, Any], path: Path) -> Pattern:
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
        return self.fields(value, path, top_level=False)

    def or_(self, value: object, path: Path, *, top_level: bool) -> tuple[Pattern, ...]:
        if not isinstance(value, list | tuple) or len(value) < 2:
            self.fail(path, "'$or' must be an array of at least 2 objects")
        branches: list[Pattern] = []
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
            branches.append(self.fields(branch, here, top_level=top_level))
        return tuple(branches)

    def leaf(self, values: list[Any] | tuple[Any, ...], path: Path) -> Leaf:
        if not values:
            self.fail(path, "empty arrays are not allowed (they would never match)")
        matchers = tuple(
            self.match_value(value, (*path, index)) for index, value in enumerate(values)
        )
        if self.dialect.service == "EventBridge":
            wildcards = [m.text for m in matchers if isinstance(m, Wildcard)]
            for matcher in matchers:
                if isinstance(matcher, AnythingBut):
                    wildcards += [m.text for m in matcher.excluded if isinstance(m, Wildcard)]
            if wildcards and not any(self.unresolved(text) for text in wildcards):
                limit = EVENT_PATTERN_MAX_WILDCARD_COMPLEXITY
                complexity = wildcard_complexity(wildcards, cap=limit + 1)
                if complexity > limit:
                    self.fail(
                        path,
                        f"rule is too complex: its wildcards have complexity {complexity} "
                        f"(EventBridge rejects more than about {limit}); use fewer wildcard "
                        "characters or fewer repeating character sequences after a wildcard",
                    )
        return Leaf(matchers)

    def match_value(self, value: object, path: Path) -> Matcher:
        if value is None or isinstance(value, str | bool):
            return Exact(value)
        if _is_number(value):
            self.number(value, path)
            assert isinstance(value, int | float)
            return Exact(value)
        if isinstance(value, Mapping):
            return self.operator(value, path)
        if _is_array(value):
            self.fail(path, "nested arrays are not allowed in an array of match values")
        self.fail(
            path,
            "match values must be strings, numbers, true, false, null or operator objects, "
            f"got {type(value).__name__}",
        )

    # --- operators -----------------------------------------------------------------------

    def operator(self, obj: Mapping[Any, Any], path: Path) -> Matcher:
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
            return self.affix(name, operand, here)
        if name == "equals-ignore-case":
            return EqualsIgnoreCase(self.string(operand, here, name))
        if name == "anything-but":
            return self.anything_but(operand, here)
        if name == "numeric":
            return self.numeric(operand, here)
        if name == "exists":
            if not isinstance(operand, bool):
                self.fail(here, f"exists takes true or false, got {_show(operand)}")
            return Exists(operand)
        if name == "cidr":
            return self.cidr(operand, here)
        return self.wildcard(operand, here)

    def string(self, operand: object, path: Path, name: str, *, non_empty: bool = False) -> str:
        if not isinstance(operand, str):
            self.fail(path, f"{name} takes a string, got {_show(operand)}")
        if non_empty and not operand:
            self.fail(path, f"{name} must not be empty")
        return operand

    def strings(self, operand: object, path: Path, name: str, *, non_empty: bool) -> list[str]:
        """A string, or (EventBridge inside anything-but) a non-empty array of strings."""
        if isinstance(operand, str) or not (
            self.dialect.listed_anything_but_operands and _is_array(operand)
        ):
            return [self.string(operand, path, name, non_empty=non_empty)]
        assert isinstance(operand, list | tuple)
        if not operand:
            self.fail(path, f"{name} takes a string or a non-empty array of strings")
        return [
            self.string(item, (*path, index), name, non_empty=non_empty)
            for index, item in enumerate(operand)
        ]

    def affix(self, name: str, operand: object, path: Path) -> Prefix | Suffix:
        kind = Prefix if name == "prefix" else Suffix
        if isinstance(operand, Mapping) and self.dialect.ignore_case_affixes:
            if list(operand) != ["equals-ignore-case"]:
                self.fail(path, f'{name} takes a string or {{"equals-ignore-case": string}}')
            text = self.string(operand["equals-ignore-case"], (*path, "equals-ignore-case"), name)
            return kind(text, ignore_case=True)
        return kind(self.string(operand, path, name))

    def anything_but(self, operand: object, path: Path) -> AnythingBut:
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
            # An empty prefix or suffix would exclude every string: AWS rejects it. An empty
            # wildcard or ignore-case value only excludes "" and is accepted.
            non_empty = name in ("prefix", "suffix")
            texts = self.strings(inner, here, f"anything-but/{name}", non_empty=non_empty)
            excluded: list[ValueMatcher] = []
            for text in texts:
                if name == "prefix":
                    excluded.append(Prefix(text))
                elif name == "suffix":
                    excluded.append(Suffix(text))
                elif name == "equals-ignore-case":
                    excluded.append(EqualsIgnoreCase(text))
                else:
                    excluded.append(self.wildcard(text, here))
            return AnythingBut(tuple(excluded))
        if _is_array(operand):
            assert isinstance(operand, list | tuple)
            if not operand:
                self.fail(path, "anything-but takes a non-empty array")
            kinds: set[str] = set()
            values: list[ValueMatcher] = []
            for index, value in enumerate(operand):
                values.append(self.anything_but_value(value, (*path, index)))
                kinds.add("string" if isinstance(value, str) else "number")
            if len(kinds) > 1:
                self.fail(path, "anything-but arrays hold only strings or only numbers, not both")
            return AnythingBut(tuple(values))
        return AnythingBut((self.anything_but_value(operand, path),))

    def anything_but_value(self, value: object, path: Path) -> Exact:
        if isinstance(value, str):
            return Exact(value)
        if not _is_number(value):
            self.fail(
                path,
                f"anything-but takes strings or numbers, got {_show(value)}",
            )
        self.number(value, path)
        assert isinstance(value, int | float)
        return Exact(value)

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

    def numeric(self, operand: object, path: Path) -> Numeric:
        if not _is_array(operand):
            self.fail(path, 'numeric takes an array such as [">", 0, "<=", 100]')
        assert isinstance(operand, list | tuple)
        if len(operand) not in (2, 4):
            self.fail(
                path,
                "numeric takes [operator, number] or a range [lower-operator, number, "
                f"upper-operator, number], got {len(operand)} elements",
            )
        bounds: list[tuple[str, float]] = []
        for index in range(0, len(operand), 2):
            comparison = operand[index]
            if not isinstance(comparison, str) or comparison not in COMPARISONS:
                self.fail(
                    (*path, index),
                    f"unknown numeric operator {_show(comparison)} "
                    f"(known: {', '.join(COMPARISONS)})",
                )
            self.number(operand[index + 1], (*path, index + 1))
            bounds.append((comparison, operand[index + 1]))
        if len(operand) == 2:
            return Numeric(tuple(bounds))
        lower_op, lower, upper_op, upper = operand
        if lower_op not in _LOWER_BOUNDS:
            self.fail((*path, 0), f"a numeric range starts with '>' or '>=', got {lower_op!r}")
        if upper_op not in _UPPER_BOUNDS:
            self.fail((*path, 2), f"a numeric range ends with '<' or '<=', got {upper_op!r}")
        if not (self.unresolved(lower) or self.unresolved(upper)) and not lower < upper:
            self.fail(path, f"empty range: the lower bound {lower} must be below the upper {upper}")
        return Numeric(tuple(bounds))

    def cidr(self, operand: object, path: Path) -> Cidr:
        text = self.string(operand, path, "cidr")
        if self.unresolved(operand):
            return Cidr(text)
        _address, slash, mask = text.partition("/")
        if not slash or "/" in mask:
            self.fail(path, f"malformed CIDR {text!r}: exactly one '/' is required")
        if not mask.isdigit():
            self.fail(path, f"malformed CIDR {text!r}: the mask bits must be an integer")
        try:
            ipaddress.ip_network(text, strict=False)
        except ValueError:
            self.fail(path, f"malformed CIDR {text!r}: not an IPv4/IPv6 address and mask")
        return Cidr(text)

    def wildcard(self, operand: object, path: Path) -> Wildcard:
        text = self.string(operand, path, "wildcard")
        if self.unresolved(operand):
            return Wildcard(text)
        previous_star = False
        index = 0
        while index < len(text):
            char = text[index]
            if char == "\\":
                escaped = text[index + 1 : index + 2]
                if escaped not in ("*", "\\"):
                    self.fail(
                        path,
                        f"invalid escape at position {index} of {text!r}: a backslash may "
                        "only escape '*' or '\\'",
                    )
                previous_star = False
                index += 2
                continue
            if char == "*" and previous_star:
                self.fail(
                    path,
                    f"consecutive wildcard characters at position {index} of {text!r}",
                )
            previous_star = char == "*"
            index += 1
        return Wildcard(text)


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


def compile_sns_filter_policy(
    policy: Mapping[str, Any],
    *,
    scope: str = "MessageAttributes",
    where: str = "",
    unresolved: Unresolved | None = None,
) -> CompiledPattern:
    """Validate ``policy`` (see :func:`validate_sns_filter_policy`) and return its model."""
    if scope not in SNS_FILTER_POLICY_SCOPES:
        raise FilterError(
            where,
            "FilterPolicyScope",
            f"must be one of {', '.join(SNS_FILTER_POLICY_SCOPES)}, got {scope!r}",
        )
    checker = _Checker(_SNS_BODY if scope == "MessageBody" else _SNS_ATTRIBUTES, where, unresolved)
    root = checker.document(policy)
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
    return CompiledPattern(root, "SNS", scope, tuple(checker.warnings))


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
    compile_sns_filter_policy(policy, scope=scope, where=where, unresolved=unresolved)


def compile_event_pattern(
    pattern: Mapping[str, Any],
    *,
    where: str = "",
    max_size: int = EVENT_PATTERN_MAX_CHARS,
    unresolved: Unresolved | None = None,
) -> CompiledPattern:
    """Validate ``pattern`` (see :func:`validate_event_pattern`) and return its model."""
    checker = _Checker(_EVENTBRIDGE, where, unresolved)
    root = checker.document(pattern)
    size = len(_compact_json(pattern))
    if size > max_size:
        checker.fail(
            (), f"is {size} characters of JSON; the event pattern size quota is {max_size}"
        )
    combinations = count_or_combinations(root)
    if combinations > EVENT_PATTERN_MAX_OR_COMBINATIONS:
        checker.fail(
            (),
            f"is too complex: its '$or' branches expand to {combinations} combinations, "
            f"EventBridge allows at most {EVENT_PATTERN_MAX_OR_COMBINATIONS}",
        )
    return CompiledPattern(root, "EventBridge", "event", tuple(checker.warnings))


def validate_event_pattern(
    pattern: Mapping[str, Any],
    *,
    where: str = "",
    max_size: int = EVENT_PATTERN_MAX_CHARS,
    unresolved: Unresolved | None = None,
) -> tuple[str, ...]:
    """Raise ``FilterError`` unless ``pattern`` is a valid EventBridge event pattern; return
    its warnings (top-level fields outside the envelope), each a sentence naming the path.

    ``max_size`` is the account's "Event pattern size" quota in characters (2,048 unless
    raised). ``unresolved`` as for :func:`validate_sns_filter_policy`.
    """
    return compile_event_pattern(
        pattern, where=where, max_size=max_size, unresolved=unresolved
    ).warnings
