"""conveyor.patterns: the public matcher API users call from their own tests."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from conveyor.constructs.filters import FilterError
from conveyor.patterns import (
    assert_matches,
    assert_sns_matches,
    eventbridge_event,
    matches,
    sns_attribute_values,
    sns_matches,
)

HIGH_VALUE = {"source": ["app.paiement"], "detail": {"montant": [{"numeric": [">", 5000]}]}}


def test_eventbridge_event_has_the_envelope_a_target_receives() -> None:
    event = eventbridge_event(
        source="app", detail={"n": 1}, time=datetime(2026, 12, 2, 6, 0, 5, tzinfo=UTC)
    )
    assert set(event) == {
        "version",
        "id",
        "detail-type",
        "source",
        "account",
        "time",
        "region",
        "resources",
        "detail",
    }
    assert event["time"] == "2026-12-02T06:00:05Z"
    assert event["resources"] == []


def test_matches_takes_dicts_or_json_text() -> None:
    event = eventbridge_event(source="app.paiement", detail={"montant": 7500})
    assert matches(HIGH_VALUE, event)
    assert matches('{"source": ["app.paiement"]}', '{"source": "app.paiement"}')
    assert not matches(HIGH_VALUE, eventbridge_event(source="app.paiement", detail={"montant": 1}))


def test_an_epoch_or_datetime_time_is_matched_as_the_iso_string() -> None:
    pattern = {"time": [{"prefix": "2026-12-02T06"}]}
    moment = datetime(2026, 12, 2, 6, 30, tzinfo=UTC)
    assert matches(pattern, {"source": "a", "time": moment.timestamp()})
    assert matches(pattern, {"source": "a", "time": moment})


def test_an_invalid_pattern_raises_the_validators_error() -> None:
    with pytest.raises(FilterError, match="unknown operator 'prefx'"):
        matches({"source": [{"prefx": "a"}]}, eventbridge_event())


def test_assert_matches_explains_a_mismatch() -> None:
    event = eventbridge_event(source="app.paiement", detail={"montant": 20})
    with pytest.raises(AssertionError) as error:
        assert_matches(HIGH_VALUE, event)
    assert "expected the event pattern to match" in str(error.value)
    assert '"montant": 20' in str(error.value)
    assert_matches(HIGH_VALUE, event, expected=False)


ATTRIBUTE_SHAPES = {
    "publish API": {"DataType": "Number", "StringValue": "150"},
    "notification": {"Type": "Number", "Value": "150"},
    "plain": 150,
}


@pytest.mark.parametrize("attribute", ATTRIBUTE_SHAPES.values(), ids=ATTRIBUTE_SHAPES.keys())
def test_sns_attributes_are_read_in_every_shape(attribute: object) -> None:
    assert sns_matches({"price": [{"numeric": [">", 100]}]}, attributes={"price": attribute})


def test_sns_attribute_types() -> None:
    values = sns_attribute_values(
        {
            "n": {"DataType": "Number", "StringValue": "2.5"},
            "tags": {"DataType": "String.Array", "StringValue": '["a", 1]'},
            "blob": {"DataType": "Binary", "BinaryValue": b"x"},
            "s": {"DataType": "String", "StringValue": "5"},
        }
    )
    assert values == {"n": 2.5, "tags": ["a", 1], "s": "5"}


def test_sns_body_scope_and_the_assert_helper() -> None:
    policy = {"order": {"total": [{"numeric": [">=", 100]}]}}
    assert_sns_matches(policy, message={"order": {"total": 120}}, scope="MessageBody")
    assert_sns_matches(
        policy, message='{"order": {"total": 99}}', scope="MessageBody", expected=False
    )
    with pytest.raises(AssertionError, match="expected the filter policy to match"):
        assert_sns_matches({"kind": ["order"]}, attributes={"kind": "refund"})
