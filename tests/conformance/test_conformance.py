"""Conformance: Conveyor's matcher and validator answer as AWS answered the published cases
(recorded TestEventPattern results, the rule engine's README and tests, the AWS guides)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conformance.runner import (
    INVALID,
    MATCH,
    NO_MATCH,
    Case,
    conveyor_outcome,
    load_cases,
    measure,
    moto_outcome,
    table,
)

CASES = load_cases()
BY_ID = {case.id: case for case in CASES}
README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_conveyor_answers_as_aws_did(case: Case) -> None:
    outcome = conveyor_outcome(case)
    if case.deviation is None:
        assert outcome == case.expect, f"{case.source}: AWS answered {case.expect}"
    else:  # a known deviation stays listed only while it is one
        assert outcome != case.expect, f"{case.id} is no longer a deviation: {case.deviation}"


def test_every_case_names_its_source_and_a_valid_expectation() -> None:
    assert len(BY_ID) == len(CASES), "case names are unique within a file"
    for case in CASES:
        assert case.expect in (MATCH, NO_MATCH, INVALID), case.id
        assert any(
            origin in case.source
            for origin in (
                "localstack/localstack ",
                "aws/event-ruler ",
                "User Guide",
                "Developer Guide",
                "issue 11",
            )
        ), case.id


# One case per class of disagreement listed in issue 11: each is one moto's matcher got wrong
# (the sandbox's answer before this change) and AWS's answer is what Conveyor now gives.
ISSUE_CLASSES = {
    "array of objects": "reference_eventbridge::alarm metrics array of objects",
    "exists false inside arrays": (
        "reference_eventbridge::alarm metrics exists false on a field an element has"
    ),
    "cidr with host bits set": "reference_eventbridge::cidr with host bits set",
    "exists true on []": "recorded_eventbridge::exists list empty NEG",
    "prefix on time": "reference_eventbridge::prefix on the ISO time",
    "invalid pattern accepted": "recorded_eventbridge::operator case sensitive EXC",
    "SNS cidr": "sns::cidr on a String attribute",
    "SNS anything-but on a body array": "sns::body: anything-but in an array of strings",
    "SNS $or with MessageBody": "sns::$or in body: metricName and source",
}


@pytest.mark.parametrize("case_id", ISSUE_CLASSES.values(), ids=ISSUE_CLASSES.keys())
def test_each_issue_class_has_a_case_moto_answered_wrongly(case_id: str) -> None:
    case = BY_ID[case_id]
    assert moto_outcome(case) != case.expect
    assert conveyor_outcome(case) == case.expect


def test_readme_fidelity_table_states_the_measured_agreement() -> None:
    measured = table(measure(CASES))
    assert measured in README.read_text(encoding="utf-8"), (
        "update the README's filter conformance table with:\n" + measured
    )
