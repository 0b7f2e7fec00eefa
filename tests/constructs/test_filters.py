"""filters: SNS filter policies and EventBridge event patterns, checked as AWS documents them."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest

from conveyor.constructs.filters import (
    EVENT_PATTERN_MAX_CHARS,
    SNS_MAX_POLICY_BYTES,
    FilterError,
    compile_event_pattern,
    count_filter_combinations,
    count_or_combinations,
    validate_event_pattern,
    validate_sns_filter_policy,
    wildcard_complexity,
)

BODY = "MessageBody"
ATTRIBUTES = "MessageAttributes"


def values(count: int, prefix: str = "v") -> list[str]:
    return [f"{prefix}{index}" for index in range(count)]


def keys(count: int) -> dict[str, list[str]]:
    return {f"key_{index}": ["x"] for index in range(count)}


def sns_error(policy: Any, scope: str = ATTRIBUTES, **kwargs: Any) -> FilterError:
    with pytest.raises(FilterError) as caught:
        validate_sns_filter_policy(policy, scope=scope, **kwargs)
    return caught.value


def pattern_error(pattern: Any, **kwargs: Any) -> FilterError:
    with pytest.raises(FilterError) as caught:
        validate_event_pattern(pattern, **kwargs)
    return caught.value


# --- the course examples -----------------------------------------------------------------

COURSE_PATTERN = {
    "source": ["app.paiement"],
    "detail-type": ["facture"],
    "detail": {"montant": [{"numeric": [">", 5000]}]},
}


def test_course_attribute_policy_passes() -> None:
    validate_sns_filter_policy({"eventType": ["invoice"]})


def test_course_body_policy_passes() -> None:
    validate_sns_filter_policy({"total": [{"numeric": [">=", 100]}]}, scope=BODY)


def test_course_event_pattern_passes() -> None:
    validate_event_pattern(COURSE_PATTERN)


def test_misspelt_operator_names_the_path_and_the_known_operators() -> None:
    pattern = {**COURSE_PATTERN, "detail": {"montant": [{"numric": [">", 5000]}]}}
    error = pattern_error(pattern, where="Billing/Router")
    assert str(error).startswith(
        "Billing/Router: detail.montant[0]: unknown operator 'numric' (known: numeric, prefix,"
    )
    assert "did you mean 'numeric'?" in str(error)
    assert (error.where, error.path) == ("Billing/Router", "detail.montant[0]")


def test_filter_error_is_a_value_error() -> None:
    assert issubclass(FilterError, ValueError)


# --- SNS: every operator in a valid form -------------------------------------------------

SNS_VALID = {
    "exact strings": {"sport": ["rugby", "tennis"]},
    "exact number": {"price": [301.5, 0, -3]},
    "exact true false null": {"flag": [True, False, None]},
    "empty string": {"note": [""]},
    "prefix": {"sport": [{"prefix": "bas"}]},
    "suffix": {"file": [{"suffix": ".png"}]},
    "equals-ignore-case": {"name": [{"equals-ignore-case": "alice"}]},
    "anything-but string": {"state": [{"anything-but": "initializing"}]},
    "anything-but number": {"limit": [{"anything-but": 123}]},
    "anything-but strings": {"state": [{"anything-but": ["rugby", "tennis"]}]},
    "anything-but numbers": {"price": [{"anything-but": [100, 500]}]},
    "anything-but prefix": {"event": [{"anything-but": {"prefix": "order-"}}]},
    "anything-but or absent": {"state": [{"anything-but": "x"}, {"exists": False}]},
    "numeric =": {"price": [{"numeric": ["=", 301.5]}]},
    "numeric <": {"price": [{"numeric": ["<", 0]}]},
    "numeric <=": {"price": [{"numeric": ["<=", 1e9]}]},
    "numeric >": {"price": [{"numeric": [">", -1e9]}]},
    "numeric >=": {"price": [{"numeric": [">=", 100]}]},
    "numeric range": {"price": [{"numeric": [">", 0, "<=", 150]}]},
    "numeric half-open range": {"price": [{"numeric": [">=", 0.5, "<", 1]}]},
    "exists true": {"store": [{"exists": True}]},
    "exists false": {"store": [{"exists": False}]},
    "cidr ipv4": {"source_ip": [{"cidr": "10.0.0.0/24"}]},
    "cidr ipv6": {"source_ip": [{"cidr": "2001:db8::/32"}]},
    "mixed": {"sport": ["rugby", {"prefix": "bas"}, {"anything-but": "golf"}]},
    "or": {
        "source": ["aws.cloudwatch"],
        "$or": [{"metricName": ["CPUUtilization"]}, {"namespace": ["AWS/EC2"]}],
    },
}


@pytest.mark.parametrize("policy", SNS_VALID.values(), ids=SNS_VALID.keys())
@pytest.mark.parametrize("scope", [ATTRIBUTES, BODY])
def test_sns_operator_is_accepted(policy: dict[str, Any], scope: str) -> None:
    validate_sns_filter_policy(policy, scope=scope)


SNS_BODY_VALID = {
    "nested": {"customer": {"interests": ["rugby"], "tier": [{"prefix": "gold"}]}},
    "deep": {"a": {"b": {"c": [{"exists": True}]}}},
    "nested or (doc)": {
        "$or": [
            {"metricName": ["CPUUtilization", "ReadLatency"]},
            {"namespace": ["AWS/EC2", "AWS/ES"]},
        ],
        "detail": {
            "scope": ["Service"],
            "$or": [{"source": ["aws.cloudwatch"]}, {"type": ["CloudWatch Alarm State Change"]}],
        },
    },
}


@pytest.mark.parametrize("policy", SNS_BODY_VALID.values(), ids=SNS_BODY_VALID.keys())
def test_sns_body_scope_accepts_nesting(policy: dict[str, Any]) -> None:
    validate_sns_filter_policy(policy, scope=BODY)


# --- SNS: malformed forms, each rejected at its path ---------------------------------------

SNS_INVALID: dict[str, tuple[Any, str, str]] = {
    "misspelt prefix": ({"a": [{"prefx": "x"}]}, "a[0]", "did you mean 'prefix'?"),
    "misspelt numeric": ({"a": [{"numric": [">", 1]}]}, "a[0]", "unknown operator 'numric'"),
    "wrong case": ({"a": [{"Numeric": [">", 1]}]}, "a[0]", "case-sensitive"),
    "wildcard is EventBridge-only": (
        {"a": [{"wildcard": "*x"}]},
        "a[0]",
        "'wildcard' is not supported by SNS",
    ),
    "two operators": ({"a": [{"prefix": "x", "suffix": "y"}]}, "a[0]", "exactly one operator"),
    "empty operator": ({"a": [{}]}, "a[0]", "exactly one operator, got none"),
    "prefix not string": ({"a": [{"prefix": 5}]}, "a[0].prefix", "prefix takes a string"),
    "prefix ignore case": (
        {"a": [{"prefix": {"equals-ignore-case": "x"}}]},
        "a[0].prefix",
        "takes a string",
    ),
    "suffix not string": ({"a": [{"suffix": ["x"]}]}, "a[0].suffix", "takes a string"),
    "equals-ignore-case not string": (
        {"a": [{"equals-ignore-case": None}]},
        "a[0].equals-ignore-case",
        "takes a string",
    ),
    "exists as string": ({"a": [{"exists": "true"}]}, "a[0].exists", "true or false"),
    "anything-but empty": ({"a": [{"anything-but": []}]}, "a[0].anything-but", "non-empty"),
    "anything-but mixed": (
        {"a": [{"anything-but": ["x", 1]}]},
        "a[0].anything-but",
        "only strings or only numbers",
    ),
    "anything-but null": ({"a": [{"anything-but": None}]}, "a[0].anything-but", "strings or"),
    "anything-but bool in list": (
        {"a": [{"anything-but": ["x", True]}]},
        "a[0].anything-but[1]",
        "strings or numbers",
    ),
    "anything-but suffix": (
        {"a": [{"anything-but": {"suffix": ".png"}}]},
        "a[0].anything-but",
        "does not support 'suffix' in SNS",
    ),
    "anything-but prefix number": (
        {"a": [{"anything-but": {"prefix": 1}}]},
        "a[0].anything-but.prefix",
        "takes a string",
    ),
    "anything-but prefix empty": (
        {"a": [{"anything-but": {"prefix": ""}}]},
        "a[0].anything-but.prefix",
        "must not be empty",
    ),
    "numeric not array": ({"a": [{"numeric": 5}]}, "a[0].numeric", "takes an array"),
    "numeric empty": ({"a": [{"numeric": []}]}, "a[0].numeric", "got 0 elements"),
    "numeric three terms": ({"a": [{"numeric": [">", 0, "<"]}]}, "a[0].numeric", "3 elements"),
    "numeric five terms": (
        {"a": [{"numeric": [">", 0, "<", 5, "="]}]},
        "a[0].numeric",
        "5 elements",
    ),
    "numeric unknown operator": (
        {"a": [{"numeric": ["!=", 5]}]},
        "a[0].numeric[0]",
        'unknown numeric operator "!="',
    ),
    "numeric string bound": (
        {"a": [{"numeric": ["<", "5"]}]},
        "a[0].numeric[1]",
        'expected a number, got "5"',
    ),
    "numeric bool bound": ({"a": [{"numeric": ["<", True]}]}, "a[0].numeric[1]", "a number"),
    "numeric nan": ({"a": [{"numeric": ["<", float("nan")]}]}, "a[0].numeric[1]", "not a JSON"),
    "numeric out of range": (
        {"a": [{"numeric": [">", 1_000_000_001]}]},
        "a[0].numeric[1]",
        "outside the SNS numeric range",
    ),
    "range starts with upper bound": (
        {"a": [{"numeric": ["<", 5, ">", 1]}]},
        "a[0].numeric[0]",
        "starts with '>' or '>='",
    ),
    "range ends with lower bound": (
        {"a": [{"numeric": [">", 0, ">", 5]}]},
        "a[0].numeric[2]",
        "ends with '<' or '<='",
    ),
    "range with equals": (
        {"a": [{"numeric": ["=", 0, "<", 5]}]},
        "a[0].numeric[0]",
        "starts with '>'",
    ),
    "inverted range": (
        {"a": [{"numeric": [">", 10, "<", 5]}]},
        "a[0].numeric",
        "lower bound 10 must be below the upper 5",
    ),
    "empty range": ({"a": [{"numeric": [">", 5, "<=", 5]}]}, "a[0].numeric", "empty range"),
    "exact number out of range": ({"a": [2e9]}, "a[0]", "outside the SNS numeric range"),
    "cidr without mask": ({"ip": [{"cidr": "10.0.0.1"}]}, "ip[0].cidr", "one '/' is required"),
    "cidr mask too wide": ({"ip": [{"cidr": "10.0.0.0/33"}]}, "ip[0].cidr", "malformed CIDR"),
    "cidr mask not integer": (
        {"ip": [{"cidr": "10.0.0.0/abc"}]},
        "ip[0].cidr",
        "mask bits must be an integer",
    ),
    "cidr not an address": ({"ip": [{"cidr": "not-an-ip/24"}]}, "ip[0].cidr", "malformed CIDR"),
    "cidr not string": ({"ip": [{"cidr": 10}]}, "ip[0].cidr", "cidr takes a string"),
    "nested array": ({"a": [["x"]]}, "a[0]", "nested arrays are not allowed"),
    "object value": ({"a": [object()]}, "a[0]", "got object"),
    "value not in array": ({"a": "x"}, "a", 'must be an array of match values, e.g. ["x"]'),
    "empty array": ({"a": []}, "a", "empty arrays are not allowed"),
    "or not array": ({"$or": {"a": ["x"]}}, "$or", "at least 2 objects"),
    "or single branch": ({"$or": [{"a": ["x"]}]}, "$or", "at least 2 objects"),
    "or branch not object": ({"$or": [{"a": ["x"]}, ["b"]]}, "$or[1]", "must be an object"),
    "or empty branch": ({"$or": [{"a": ["x"]}, {}]}, "$or[1]", "empty object"),
    "or reserved keyword": (
        {"$or": [{"numeric": [">", 1]}, {"prefix": ["abc"]}]},
        "$or[0].numeric",
        "reserved operator keyword",
    ),
    "empty policy": ({}, "filter policy", "empty object"),
    "policy not object": ([{"a": ["x"]}], "filter policy", "must be a JSON object, got list"),
    "non-string key": ({1: ["x"]}, "filter policy", "field names must be strings"),
}


@pytest.mark.parametrize(
    ("policy", "path", "fragment"), SNS_INVALID.values(), ids=SNS_INVALID.keys()
)
def test_sns_malformed_form_is_rejected_at_its_path(policy: Any, path: str, fragment: str) -> None:
    error = sns_error(policy)
    assert error.path == path
    assert fragment in error.reason


def test_sns_message_attributes_scope_rejects_nesting() -> None:
    error = sns_error({"customer": {"tier": ["gold"]}}, scope=ATTRIBUTES)
    assert error.path == "customer"
    assert "use scope MessageBody" in error.reason


def test_sns_message_attributes_scope_rejects_nesting_inside_or() -> None:
    error = sns_error({"$or": [{"a": ["x"]}, {"b": {"c": ["y"]}}]}, scope=ATTRIBUTES)
    assert error.path == "$or[1].b"


def test_sns_unknown_scope_is_rejected() -> None:
    error = sns_error({"a": ["x"]}, scope="Body")
    assert error.path == "FilterPolicyScope"
    assert "MessageAttributes, MessageBody" in error.reason


def test_sns_forgotten_brackets_around_an_operator_are_rejected() -> None:
    error = sns_error({"total": {"numeric": [">=", 100]}}, scope=BODY)
    assert error.path == "total"
    assert '{"total": [{"numeric": [">=", 100]}]}' in error.reason


def test_where_prefixes_the_message() -> None:
    error = sns_error({"a": [{"prefx": "x"}]}, where="Orders/FanOut/Billing")
    assert str(error).startswith("Orders/FanOut/Billing: a[0]: unknown operator 'prefx'")


def test_a_non_json_value_is_reported_not_crashed_on() -> None:
    error = sns_error({"a": {1, 2}})
    assert error.path == "a"
    assert "must be an array of match values, e.g. [{1, 2}]" in error.reason


# --- SNS limits: 5 keys ----------------------------------------------------------------------


@pytest.mark.parametrize("scope", [ATTRIBUTES, BODY])
def test_sns_five_keys_pass(scope: str) -> None:
    validate_sns_filter_policy(keys(5), scope=scope)


@pytest.mark.parametrize("scope", [ATTRIBUTES, BODY])
def test_sns_six_keys_fail(scope: str) -> None:
    error = sns_error(keys(6), scope=scope)
    assert error.path == "filter policy"
    assert "has 6" in error.reason
    assert "at most 5" in error.reason


def test_sns_keys_inside_or_branches_count() -> None:
    five = {"a": ["x"], "b": ["x"], "c": ["x"], "$or": [{"d": ["x"]}, {"e": ["x"]}]}
    validate_sns_filter_policy(five)
    six = {**five, "$or": [{"d": ["x"]}, {"e": ["x"], "f": ["x"]}]}
    assert "has 6 keys (a, b, c, d, e, f)" in sns_error(six).reason


def test_sns_a_key_repeated_across_or_branches_counts_once() -> None:
    policy = {**keys(4), "$or": [{"x": ["1"]}, {"x": ["2"], "key_0": ["3"]}]}
    validate_sns_filter_policy(policy)


def test_sns_body_scope_counts_only_top_level_keys() -> None:
    # "Filter policy constraints": in payload-based filtering nested keys don't count.
    policy = {**keys(4), "finding": {"control": ["x"], "region": ["x"], "account": ["x"]}}
    validate_sns_filter_policy(policy, scope=BODY)


def test_sns_body_scope_six_top_level_keys_fail() -> None:
    policy = {**keys(5), "finding": {"control": ["x"]}}
    assert "has 6 top-level keys" in sns_error(policy, scope=BODY).reason


# --- SNS limits: 150 combinations ------------------------------------------------------------

DOC_EXAMPLES = {
    "flat 3x1x2 (constraints)": (
        {
            "key_a": ["value_one", "value_two", "value_three"],
            "key_b": ["value_one"],
            "key_c": ["value_one", "value_two"],
        },
        6,
    ),
    "nested 3x4x2x3 (constraints)": (
        {
            "key_a": {"key_b": {"key_c": ["value_one", "value_two", "value_three", "value_four"]}},
            "key_d": {"key_e": ["value_one", "value_two", "value_three"]},
        },
        72,
    ),
    "or (and-or-logic)": (
        {
            "source": ["aws.cloudwatch"],
            "$or": [
                {"metricName": ["CPUUtilization", "ReadLatency"]},
                {
                    "metricType": ["MetricType"],
                    "$or": [{"metricId": [1234, 4321]}, {"spaceId": [1000, 2000, 3000]}],
                },
            ],
        },
        7,
    ),
    "nested or (and-or-logic)": (SNS_BODY_VALID["nested or (doc)"], 32),
}


@pytest.mark.parametrize(("policy", "expected"), DOC_EXAMPLES.values(), ids=DOC_EXAMPLES.keys())
def test_combinations_follow_the_documented_worked_examples(
    policy: dict[str, Any], expected: int
) -> None:
    assert count_filter_combinations(policy) == expected


@pytest.mark.parametrize(
    "policy",
    [
        {"a": values(150)},
        {"a": values(10), "b": values(15)},
        {"$or": [{"a": values(75)}, {"b": values(75)}]},
        {"a": {"b": values(75)}},  # 75 values x nesting level 2
    ],
    ids=["one array", "product", "or sum", "nested"],
)
def test_sns_exactly_150_combinations_pass(policy: dict[str, Any]) -> None:
    assert count_filter_combinations(policy) == 150
    validate_sns_filter_policy(policy, scope=BODY)


@pytest.mark.parametrize(
    ("policy", "count"),
    [
        ({"a": values(151)}, 151),
        ({"$or": [{"a": values(75)}, {"b": values(76)}]}, 151),
        ({"x": values(1), "$or": [{"a": values(75)}, {"b": values(76)}]}, 151),
        ({"a": {"b": values(76)}}, 152),
    ],
    ids=["one array", "or sum", "or times key", "nested"],
)
def test_sns_over_150_combinations_fail(policy: dict[str, Any], count: int) -> None:
    error = sns_error(policy, scope=BODY)
    assert error.path == "filter policy"
    assert f"{count} combinations" in error.reason


def test_combinations_reject_a_malformed_or_branch() -> None:
    with pytest.raises(FilterError, match=r"\$or\[1\]"):
        count_filter_combinations({"$or": [{"a": ["x"]}, "b"]})


def test_sns_policy_of_exactly_256_kb_passes() -> None:
    policy = {"k": ["x" * (SNS_MAX_POLICY_BYTES - len('{"k":[""]}'))]}
    validate_sns_filter_policy(policy)


def test_sns_policy_over_256_kb_fails() -> None:
    policy = {"k": ["x" * (SNS_MAX_POLICY_BYTES - len('{"k":[""]}') + 1)]}
    error = sns_error(policy)
    assert error.reason == f"is 262145 bytes of JSON; SNS allows at most {SNS_MAX_POLICY_BYTES}"


# --- EventBridge: every operator in a valid form ---------------------------------------------


def detail(field: str, *matches: Any) -> dict[str, Any]:
    return {"source": ["app"], "detail": {field: list(matches)}}


EB_VALID = {
    "envelope fields": {
        "version": ["0"],
        "id": [{"exists": True}],
        "detail-type": ["facture"],
        "source": ["app.paiement", {"prefix": "aws."}],
        "account": ["111122223333"],
        "time": [{"prefix": "2017-10-02"}],
        "region": [{"anything-but": "us-east-1"}],
        "resources": [{"wildcard": "arn:aws:s3:::bucket/*"}],
    },
    "live events only": {"source": ["app"], "replay-name": [{"exists": False}]},
    "exact values": detail("f", "x", "", 3, 3.5, True, False, None),
    "prefix": detail("f", {"prefix": "us-"}),
    "prefix ignore case": detail("f", {"prefix": {"equals-ignore-case": "eventb"}}),
    "suffix": detail("f", {"suffix": ".png"}),
    "suffix ignore case": detail("f", {"suffix": {"equals-ignore-case": ".png"}}),
    "equals-ignore-case": detail("f", {"equals-ignore-case": "alice"}),
    "anything-but string": detail("f", {"anything-but": "initializing"}),
    "anything-but number": detail("f", {"anything-but": 123}),
    "anything-but strings": detail("f", {"anything-but": ["stopped", "overloaded"]}),
    "anything-but numbers": detail("f", {"anything-but": [100, 200, 300]}),
    "anything-but prefix": detail("f", {"anything-but": {"prefix": "init"}}),
    "anything-but suffix": detail("f", {"anything-but": {"suffix": ".png"}}),
    "anything-but ignore case": detail("f", {"anything-but": {"equals-ignore-case": "init"}}),
    "anything-but ignore case list": detail(
        "f", {"anything-but": {"equals-ignore-case": ["a", "b"]}}
    ),
    "anything-but wildcard": detail("f", {"anything-but": {"wildcard": "*/lib/*"}}),
    "anything-but wildcards": detail("f", {"anything-but": {"wildcard": ["*/lib/*", "*.so"]}}),
    "numeric": detail("f", {"numeric": ["=", 3.018e2]}, {"numeric": ["<", 10]}),
    "numeric range": detail("f", {"numeric": [">", 0, "<=", 5]}),
    "exists": detail("f", {"exists": False}),
    "cidr ipv4": detail("ip", {"cidr": "10.0.0.0/24"}),
    "cidr ipv6": detail("ip", {"cidr": "2001:db8::/64"}),
    "wildcard": detail("f", {"wildcard": "dir/*/file*.png"}),
    "wildcard escapes": detail("f", {"wildcard": "literal\\*star\\\\slash*"}),
    "nested detail": {"detail": {"order": {"lines": {"sku": [{"prefix": "A-"}]}}}},
    "top-level or": {
        "$or": [{"source": ["aws.ec2"]}, {"detail-type": ["Scheduled Event"]}],
    },
    "detail or": {
        "source": ["aws.cloudwatch"],
        "detail": {
            "$or": [
                {"c-count": [{"numeric": [">", 0, "<=", 5]}]},
                {"d-count": [{"numeric": ["<", 10]}]},
            ]
        },
    },
}


@pytest.mark.parametrize("pattern", EB_VALID.values(), ids=EB_VALID.keys())
def test_event_pattern_operator_is_accepted(pattern: dict[str, Any]) -> None:
    validate_event_pattern(pattern)


EB_INVALID: dict[str, tuple[Any, str, str]] = {
    "empty pattern": ({}, "event pattern", "empty object"),
    "detail not object": ({"detail": ["x"]}, "detail", "'detail' must be an object"),
    "source not array": ({"source": "app"}, "source", "must be an array"),
    "empty detail": ({"detail": {}}, "detail", "empty object"),
    "empty array": (detail("f"), "detail.f", "empty arrays"),
    "unknown operator": (detail("f", {"contains": "x"}), "detail.f[0]", "unknown operator"),
    "forgotten brackets": (
        {"detail": {"montant": {"numeric": [">", 5000]}}},
        "detail.montant",
        "'numeric' is an operator, not a field name",
    ),
    "prefix bad ignore case": (
        detail("f", {"prefix": {"equals_ignore_case": "x"}}),
        "detail.f[0].prefix",
        '{"equals-ignore-case": string}',
    ),
    "prefix ignore case number": (
        detail("f", {"suffix": {"equals-ignore-case": 1}}),
        "detail.f[0].suffix.equals-ignore-case",
        "takes a string",
    ),
    "anything-but numeric": (
        detail("f", {"anything-but": {"numeric": [">", 1]}}),
        "detail.f[0].anything-but",
        "does not support 'numeric'",
    ),
    "anything-but two operators": (
        detail("f", {"anything-but": {"prefix": "a", "suffix": "b"}}),
        "detail.f[0].anything-but",
        "exactly one nested operator",
    ),
    "anything-but mixed list": (
        detail("f", {"anything-but": ["a", 1]}),
        "detail.f[0].anything-but",
        "only strings or only numbers",
    ),
    "anything-but null": (
        detail("f", {"anything-but": [None]}),
        "detail.f[0].anything-but[0]",
        "strings or numbers",
    ),
    "anything-but empty prefix": (
        detail("f", {"anything-but": {"prefix": ""}}),
        "detail.f[0].anything-but.prefix",
        "must not be empty",
    ),
    "anything-but empty suffix list": (
        detail("f", {"anything-but": {"suffix": ["a", ""]}}),
        "detail.f[0].anything-but.suffix[1]",
        "must not be empty",
    ),
    "wildcard too complex": (
        detail("arn", {"wildcard": "*:*:*:*:*:event-bus/*"}),
        "detail.arn",
        "rule is too complex",
    ),
    "wildcards of one field add up": (
        detail("f", {"wildcard": "*a*a*"}, {"wildcard": "*a*a*a*"}),
        "detail.f",
        "rule is too complex",
    ),
    "anything-but empty ignore-case list": (
        detail("f", {"anything-but": {"equals-ignore-case": []}}),
        "detail.f[0].anything-but.equals-ignore-case",
        "non-empty array",
    ),
    "anything-but bad wildcard": (
        detail("f", {"anything-but": {"wildcard": ["ok*", "a**"]}}),
        "detail.f[0].anything-but.wildcard",
        "consecutive wildcard",
    ),
    "wildcard consecutive stars": (
        detail("f", {"wildcard": "a**b"}),
        "detail.f[0].wildcard",
        "consecutive wildcard characters at position 2",
    ),
    "wildcard bad escape": (
        detail("f", {"wildcard": "a\\d"}),
        "detail.f[0].wildcard",
        "may only escape",
    ),
    "wildcard trailing backslash": (
        detail("f", {"wildcard": "a\\"}),
        "detail.f[0].wildcard",
        "invalid escape",
    ),
    "wildcard not string": (
        detail("f", {"wildcard": ["*"]}),
        "detail.f[0].wildcard",
        "takes a string",
    ),
    "numeric inverted": (
        detail("f", {"numeric": [">", 10, "<", 5]}),
        "detail.f[0].numeric",
        "empty range",
    ),
    "numeric string bound": (
        detail("f", {"numeric": [">", "5"]}),
        "detail.f[0].numeric[1]",
        "expected a number",
    ),
    "exists not bool": (detail("f", {"exists": 1}), "detail.f[0].exists", "true or false"),
    "cidr malformed": (detail("f", {"cidr": "10.0.0.0/8/8"}), "detail.f[0].cidr", "one '/'"),
    "or single branch": ({"detail": {"$or": [{"a": ["x"]}]}}, "detail.$or", "at least 2"),
    "or reserved keyword": (
        {"detail": {"$or": [{"a": ["x"]}, {"exists": [True]}]}},
        "detail.$or[1].exists",
        "reserved operator keyword",
    ),
}


OUTSIDE_ENVELOPE = {
    "typo detail_type": ({"detail_type": ["x"]}, "detail_type", "did you mean 'detail-type'?"),
    "wrong case Source": ({"Source": ["x"]}, "Source", "did you mean 'source'?"),
    "data at top level": ({"montant": [5]}, "montant", "carries its data under 'detail'"),
    "engine example without detail": (
        {"FileName": [{"suffix": ".png"}]},
        "FileName",
        "may never match a custom event",
    ),
    "envelope typo inside or": (
        {"$or": [{"source": ["a"]}, {"detailtype": ["b"]}]},
        "$or[1].detailtype",
        "outside the event envelope",
    ),
}


@pytest.mark.parametrize(
    ("pattern", "path", "fragment"), OUTSIDE_ENVELOPE.values(), ids=OUTSIDE_ENVELOPE.keys()
)
def test_top_level_field_outside_the_envelope_is_a_warning_not_an_error(
    pattern: dict[str, Any], path: str, fragment: str
) -> None:
    (warning,) = validate_event_pattern(pattern, where="Stack/Router/Rule")
    assert warning.startswith(f"Stack/Router/Rule: {path}: ")
    assert fragment in warning
    assert "PutEvents" in warning


def test_envelope_fields_give_no_warning() -> None:
    assert validate_event_pattern(COURSE_PATTERN) == ()


EMPTY_OPERANDS_AWS_ACCEPTS = {
    "anything-but wildcard": detail("f", {"anything-but": {"wildcard": ""}}),
    "anything-but ignore case": detail("f", {"anything-but": {"equals-ignore-case": ""}}),
    "anything-but ignore case list": detail(
        "f", {"anything-but": {"equals-ignore-case": ["a", ""]}}
    ),
    "equals-ignore-case": detail("f", {"equals-ignore-case": ""}),
    "wildcard": detail("f", {"wildcard": ""}),
    "prefix": detail("f", {"prefix": ""}),
    "suffix": detail("f", {"suffix": ""}),
    "list with an empty string": detail("f", "", "x"),
    "anything-but list with an empty string": detail("f", {"anything-but": ["", "x"]}),
}


@pytest.mark.parametrize(
    "pattern", EMPTY_OPERANDS_AWS_ACCEPTS.values(), ids=EMPTY_OPERANDS_AWS_ACCEPTS.keys()
)
def test_empty_operands_are_accepted_as_aws_accepts_them(pattern: dict[str, Any]) -> None:
    assert validate_event_pattern(pattern) == ()


def or_of(branches: int, depth: int) -> dict[str, Any]:
    """``depth`` nested ``$or`` groups of ``branches`` branches each: branches**depth rules."""
    inner: dict[str, Any] = {"leaf": ["x"]}
    for level in range(depth):
        inner = {"$or": [{f"f{level}_{index}": ["x"], **inner} for index in range(branches)]}
    return {"source": ["app"], "detail": inner}


def test_or_expanding_to_1000_combinations_passes() -> None:
    pattern = or_of(10, 3)
    compiled = compile_event_pattern(pattern, max_size=1_000_000)
    assert count_or_combinations(compiled.root) == 1000


def test_or_expanding_past_1000_combinations_is_too_complex() -> None:
    error = pattern_error(or_of(2, 10), max_size=1_000_000)  # 1024 rules
    assert "too complex" in error.reason
    assert "1024 combinations" in error.reason


def test_parallel_or_groups_multiply() -> None:
    pattern = {
        "$or": [{"a": ["1"]}, {"b": ["2"]}],
        "detail": {"$or": [{"c": ["3"]}, {"d": ["4"]}, {"e": ["5"]}]},
    }
    assert count_or_combinations(compile_event_pattern(pattern).root) == 6


WILDCARD_COMPLEXITY = {  # aws/event-ruler MachineComplexityEvaluatorTest's worked examples
    "*ab": 2,
    "*aa": 3,
    "a*b": 2,
    "aa*": 2,
    "a*bb": 3,
    "a*bcb": 3,
    "a*bbb": 4,
    "abc": 1,
}


@pytest.mark.parametrize(
    ("wildcard", "expected"), WILDCARD_COMPLEXITY.items(), ids=WILDCARD_COMPLEXITY.keys()
)
def test_wildcard_complexity_is_the_rule_engines_measure(wildcard: str, expected: int) -> None:
    assert wildcard_complexity([wildcard]) == expected


def test_wildcard_complexity_of_a_field_sums_its_wildcards() -> None:
    assert wildcard_complexity(["*", "ab*c"]) == 3  # "abc": "*", "ab*", "ab*c"


def test_wildcard_recorded_as_accepted_by_aws_passes() -> None:
    validate_event_pattern(detail("f", {"wildcard": "/Users/*/dir/dir/dir/dir/dir/doc.txt"}))


def test_escaped_star_between_wildcards_is_not_consecutive() -> None:
    validate_event_pattern(detail("f", {"wildcard": "*\\**"}))


@pytest.mark.parametrize(
    ("pattern", "path", "fragment"), EB_INVALID.values(), ids=EB_INVALID.keys()
)
def test_event_pattern_malformed_form_is_rejected_at_its_path(
    pattern: Any, path: str, fragment: str
) -> None:
    error = pattern_error(pattern)
    assert error.path == path
    assert fragment in error.reason


def source_of_length(size: int) -> dict[str, Any]:
    """A pattern whose compact JSON is exactly ``size`` characters."""
    return {"source": ["s" * (size - len('{"source":[""]}'))]}


def test_event_pattern_at_the_size_quota_passes() -> None:
    validate_event_pattern(source_of_length(EVENT_PATTERN_MAX_CHARS))


def test_event_pattern_over_the_size_quota_fails() -> None:
    error = pattern_error(source_of_length(EVENT_PATTERN_MAX_CHARS + 1))
    assert error.reason == "is 2049 characters of JSON; the event pattern size quota is 2048"


def test_event_pattern_size_quota_can_be_raised() -> None:
    validate_event_pattern(source_of_length(4096), max_size=4096)


def test_event_pattern_numbers_are_not_limited_like_sns() -> None:
    validate_event_pattern(detail("f", 2e9, {"numeric": [">", 2e9]}))


# --- values unknown at synth -----------------------------------------------------------------

TOKEN = "${Token[TOKEN.42]}"


def is_token(value: object) -> bool:
    return value == TOKEN


def test_unresolved_values_are_not_content_checked() -> None:
    validate_sns_filter_policy({"ip": [{"cidr": TOKEN}]}, unresolved=is_token)
    validate_event_pattern(detail("f", {"wildcard": TOKEN}), unresolved=is_token)


def test_without_the_predicate_a_token_is_checked_like_any_string() -> None:
    assert "malformed CIDR" in sns_error({"ip": [{"cidr": TOKEN}]}).reason


# --- cross-check with moto's SNS (faithful for these cases) ---------------------------------

_names = itertools.count()


@pytest.fixture(scope="module")
def aws() -> Iterator[tuple[Any, Any]]:
    import boto3
    from moto import mock_aws

    from tests.support.aws import fake_aws_env

    with pytest.MonkeyPatch.context() as env:
        fake_aws_env(env)
        with mock_aws():
            yield (
                boto3.client("sns", region_name="us-east-1"),
                boto3.client("sqs", region_name="us-east-1"),
            )


def subscribe(aws: tuple[Any, Any], policy: dict[str, Any], scope: str) -> tuple[str, str]:
    """A topic and an SQS queue subscribed to it with ``policy``; the scope is set first."""
    sns, sqs = aws
    name = f"filters-{next(_names)}"
    topic = sns.create_topic(Name=name)["TopicArn"]
    queue = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    arn = sns.subscribe(
        TopicArn=topic, Protocol="sqs", Endpoint=queue_arn["Attributes"]["QueueArn"]
    )["SubscriptionArn"]
    for attribute, value in (
        ("RawMessageDelivery", "true"),
        ("FilterPolicyScope", scope),
        ("FilterPolicy", json.dumps(policy)),
    ):
        sns.set_subscription_attributes(
            SubscriptionArn=arn, AttributeName=attribute, AttributeValue=value
        )
    return topic, queue


def attributes(**fields: str | float) -> dict[str, dict[str, str]]:
    return {
        name: {"DataType": "Number", "StringValue": str(value)}
        if isinstance(value, int | float)
        else {"DataType": "String", "StringValue": value}
        for name, value in fields.items()
    }


MOTO_CASES = {
    "course attributes": (
        {"eventType": ["invoice"]},
        ATTRIBUTES,
        [("yes", attributes(eventType="invoice")), ("no", attributes(eventType="refund"))],
    ),
    "course body": (
        {"total": [{"numeric": [">=", 100]}]},
        BODY,
        [("yes", {"total": 150}), ("no", {"total": 99.5})],
    ),
    "operators on attributes": (
        {
            "store": [{"prefix": "eu-"}],
            "kind": [{"anything-but": ["test", "debug"]}],
            "price": [{"numeric": [">", 0, "<=", 150]}],
        },
        ATTRIBUTES,
        [
            ("yes", attributes(store="eu-west", kind="order", price=150)),
            ("no-kind", attributes(store="eu-west", kind="test", price=10)),
            ("no-price", attributes(store="eu-west", kind="order", price=151)),
        ],
    ),
    "nested body": (
        {"order": {"status": [{"suffix": "ed"}]}, "channel": [{"equals-ignore-case": "web"}]},
        BODY,
        [
            ("yes", {"order": {"status": "shipped"}, "channel": "WEB"}),
            ("no", {"order": {"status": "pending"}, "channel": "web"}),
        ],
    ),
}


@pytest.mark.parametrize(
    ("policy", "scope", "messages"), MOTO_CASES.values(), ids=MOTO_CASES.keys()
)
def test_valid_policy_filters_in_moto_as_expected(
    aws: tuple[Any, Any], policy: dict[str, Any], scope: str, messages: list[tuple[str, Any]]
) -> None:
    validate_sns_filter_policy(policy, scope=scope)
    sns, sqs = aws
    topic, queue = subscribe(aws, policy, scope)
    for label, payload in messages:
        if scope == BODY:
            sns.publish(TopicArn=topic, Message=json.dumps({"label": label, **payload}))
        else:
            sns.publish(TopicArn=topic, Message=label, MessageAttributes=payload)
    received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)
    bodies = [message["Body"] for message in received.get("Messages", [])]
    labels = [json.loads(body)["label"] if scope == BODY else body for body in bodies]
    assert labels == ["yes"]


MOTO_REJECTS = {
    "misspelt operator": {"a": [{"numric": [">", 1]}]},
    "inverted range": {"a": [{"numeric": [">", 10, "<", 5]}]},
    "exists as string": {"a": [{"exists": "yes"}]},
    "six keys": keys(6),
    "151 combinations": {"a": values(151)},
}


@pytest.mark.parametrize("policy", MOTO_REJECTS.values(), ids=MOTO_REJECTS.keys())
def test_invalid_policy_is_rejected_by_moto_too(
    aws: tuple[Any, Any], policy: dict[str, Any]
) -> None:
    from botocore.exceptions import ClientError

    sns_error(policy)
    with pytest.raises(ClientError, match="InvalidParameter"):
        subscribe(aws, policy, ATTRIBUTES)
