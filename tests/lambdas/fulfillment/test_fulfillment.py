"""The step handlers' outcome for every bad input (the sandbox tests cover the good paths)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from fulfillment import steps
from handler_kit.settings import ConfigError

from tests.support.lambda_context import LambdaContext


def _order(**changes: Any) -> dict[str, Any]:
    order = {
        "orderId": "o-1",
        "customerId": "c-1",
        "amount": 42,
        "currency": "EUR",
        "paymentToken": "tok_ok",
        "lines": [{"sku": "SKU-A", "quantity": 1}],
    }
    order.update(changes)
    return {"order": order}


@pytest.fixture(autouse=True)
def tables(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("ORDERS_TABLE", "orders")
    monkeypatch.setenv("INVENTORY_TABLE", "inventory")
    steps._settings.cache_clear()
    yield
    steps._settings.cache_clear()


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ("not an object", "no 'order' object"),
        ({"order": []}, "no 'order' object"),
        (_order(orderId=""), "orderId must be"),
        (_order(orderId="a" * 65), "orderId must be"),
        (_order(amount="lots"), "amount must be a number"),
        (_order(amount=True), "amount must be a number"),
        (_order(amount=0), "amount must be > 0"),
        (_order(amount="NaN"), "amount must be > 0"),
        (_order(currency="euro"), "currency must be"),
        (_order(paymentToken=""), "paymentToken"),
        (_order(lines=[]), "lines must be a list of 1-100"),
        (_order(lines=[{"sku": "A", "quantity": 1}] * 101), "lines must be a list of 1-100"),
        (_order(lines=["x"]), "a line must be an object"),
        (_order(lines=[{"sku": "A", "quantity": "2"}]), "quantity must be an integer"),
        (_order(lines=[{"sku": "A", "quantity": 0}]), "quantity must be 1-1000"),
        (_order(lines=[{"quantity": 1}]), "sku must be"),
    ],
)
def test_a_malformed_order_is_an_invalid_order_naming_the_problem(event, reason):
    with pytest.raises(steps.InvalidOrder, match=reason):
        steps.parse_order(event)


def test_the_payment_step_raises_invalid_order_which_the_workflow_does_not_retry():
    with pytest.raises(steps.InvalidOrder):
        steps.charge_payment(_order(amount=-1), LambdaContext())


@pytest.mark.parametrize(
    "handler", [steps.refund_payment, steps.release_stock, steps.cancel_shipping]
)
@pytest.mark.parametrize("event", [{}, {"order": {"orderId": 7}}, "junk"])
def test_a_compensation_for_an_unreadable_order_is_a_counted_no_op(handler, event):
    result = handler(event, LambdaContext())
    assert result["status"] == "SKIPPED"
    assert "no readable orderId" in result["reason"]


def test_an_invalid_configuration_fails_the_step(monkeypatch):
    monkeypatch.delenv("ORDERS_TABLE")
    with pytest.raises(ConfigError):
        steps.charge_payment(_order(), LambdaContext())


def test_a_throttled_table_becomes_a_transient_error_the_workflow_retries(monkeypatch):
    error = ClientError(
        {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}},
        "UpdateItem",
    )

    class Throttled:
        def update_item(self, **_: Any) -> None:
            raise error

    monkeypatch.setattr(steps, "_dynamodb", lambda: Throttled())
    with pytest.raises(steps.TransientError, match="ProvisionedThroughputExceeded") as raised:
        steps.charge_payment(_order(), LambdaContext())
    assert raised.value.__cause__ is error


def test_an_unexpected_error_is_raised_as_is_not_retried(monkeypatch):
    class Broken:
        def update_item(self, **_: Any) -> None:
            raise KeyError("bug")

    monkeypatch.setattr(steps, "_dynamodb", lambda: Broken())
    with pytest.raises(KeyError):
        steps.charge_payment(_order(), LambdaContext())
