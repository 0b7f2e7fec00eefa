"""Payments: put events on the synthesized bus deployed by the sandbox deployer, observe.

Rules and patterns are the real template's, evaluated by moto: the audit queue is the deployed
queue, the review Lambda target is the deployer's internal queue (see conftest), the archive
is moto's archive of the deployed bus (its event count). moto has no retry or DLQ delivery for
EventBridge; the review handler is tested on its own in tests/lambdas.
"""

from __future__ import annotations

import json
from typing import Any

import pytest


@pytest.fixture
def routing(deployed):
    routing = deployed("PaymentsRouting")
    events = routing.client("events")
    bus = routing.stack.outputs["EventBusName"]
    review = routing.function_queue("payments.review.handler")
    audit = routing.stack.outputs["AuditQueueUrl"]
    (archive,) = [
        r.physical_id for r in routing.stack.resources.values() if r.type == "AWS::Events::Archive"
    ]
    archived = [0]

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
        count = int(events.describe_archive(ArchiveName=archive)["EventCount"])
        new, archived[0] = count - archived[0], count
        return {
            "review": len(routing.drain(review)),
            "audit": len(routing.drain(audit)),
            "archive": new,
        }

    return put, received


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
