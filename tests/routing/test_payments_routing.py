"""Payments: put events on the synthesized bus's rules in moto and observe the targets.

Rules and patterns come from the real template (see moto_topology); targets are SQS probes
(moto cannot invoke Lambda targets: PutEvents raises NotImplementedError). moto has no retry
or DLQ delivery for EventBridge; the review handler is tested directly in tests/lambdas.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.routing.moto_topology import add_pattern_probe, deploy_event_routing
from tests.template_helpers import logical_id


@pytest.fixture(scope="module")
def stack(synthesized):
    return synthesized["stacks"]["Conveyor-test-PaymentsRouting"]


@pytest.fixture(scope="module")
def template(synthesized, stack) -> dict[str, Any]:
    return json.loads((synthesized["outdir"] / f"{stack.artifact_id}.template.json").read_text())


@pytest.fixture
def routing(aws_credentials, template, stack):
    with mock_aws():
        events = boto3.client("events", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        buses, probes = deploy_event_routing(template, events, sqs)
        (bus,) = buses.values()
        (archive,) = [
            r for r in template["Resources"].values() if r["Type"] == "AWS::Events::Archive"
        ]
        add_pattern_probe(events, probes, bus, "archive", archive["Properties"]["EventPattern"])
        names = {
            "review": logical_id(stack, "HighValueReview/Function"),
            "audit": logical_id(stack, "Audit"),
            "archive": "archive",
        }

        def put(source: str, detail_type: str, detail: dict[str, Any]) -> None:
            response = events.put_events(
                Entries=[
                    {
                        "Source": source,
                        "DetailType": detail_type,
                        "Detail": json.dumps(detail),
                        "EventBusName": bus,
                    }
                ]
            )
            assert response["FailedEntryCount"] == 0

        def received() -> dict[str, int]:
            return {name: len(probes.drain(probe)) for name, probe in names.items()}

        yield put, received


def invoice(montant: float) -> dict[str, Any]:
    return {"factureId": "f-1", "montant": montant, "devise": "EUR", "client": "c-1"}


@pytest.mark.parametrize(
    ("montant", "reviewed"),
    [(6000, True), (5000.01, True), (5000, False), (4999, False), (0, False)],
)
def test_only_invoices_above_5000_reach_review_all_are_audited_and_archived(
    routing, montant, reviewed
):
    put, received = routing
    put("app.paiement", "facture", invoice(montant))
    assert received() == {"review": int(reviewed), "audit": 1, "archive": 1}


def test_other_payment_events_are_audited_but_not_reviewed_or_archived(routing):
    put, received = routing
    put("app.paiement", "remboursement", invoice(9000))
    assert received() == {"review": 0, "audit": 1, "archive": 0}


def test_events_from_another_source_reach_nothing(routing):
    put, received = routing
    put("app.commandes", "facture", invoice(9000))
    assert received() == {"review": 0, "audit": 0, "archive": 0}


def test_montant_as_a_string_does_not_match_the_numeric_filter(routing):
    put, received = routing
    put("app.paiement", "facture", {**invoice(0), "montant": "9000"})
    assert received() == {"review": 0, "audit": 1, "archive": 1}
