"""Helpers for test_payments.py: "facture" events as EventBridge delivers them.

conftest.py puts this folder and the ``payments`` asset root on sys.path. The generic pieces
(idempotency table, Lambda context, logs, JSON edits, the EventBridge envelope) come from
tests/support and are re-exported for the tests.
"""

from __future__ import annotations

from typing import Any

from tests.support import events
from tests.support.aws import REGION
from tests.support.documents import DELETE, with_field
from tests.support.idempotency import (
    IDEMPOTENCY_TABLE,
    Aws,
    create_idempotency_table,
    idempotency_key,
)
from tests.support.lambda_context import LambdaContext
from tests.support.observability import captured_logs

__all__ = [
    "DELETE",
    "IDEMPOTENCY_TABLE",
    "REGION",
    "Aws",
    "LambdaContext",
    "captured_logs",
    "create_idempotency_table",
    "idempotency_key",
    "with_field",
]


def facture(facture_id: str = "f-1", **fields: Any) -> dict[str, Any]:
    """The detail of a "facture" event."""
    return {
        "factureId": facture_id,
        "montant": 6000,
        "devise": "EUR",
        "client": "c-1",
        "version": "1.0",
        **fields,
    }


def eventbridge_event(
    detail: Any = None,
    *,
    detail_type: str = "facture",
    source: str = "app.paiement",
    event_id: str = "9f2b1c0e-1111-2222-3333-444455556666",
) -> dict[str, Any]:
    """The event EventBridge invokes a target Lambda function with."""
    event = events.eventbridge_event(
        facture() if detail is None else detail,
        source=source,
        detail_type=detail_type,
        event_id=event_id,
    )
    del event["event-bus-name"]
    return event
