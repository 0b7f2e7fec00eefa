"""What the order-fulfilment step handlers, the workflow definition and the CDK code agree on.
Stdlib only: the CDK code imports it as ``conveyor.lambdas.fulfillment.fulfillment.contract``."""

from __future__ import annotations

from typing import Final

# One handler per step (handler strings).
CHARGE_PAYMENT_HANDLER: Final = "fulfillment.steps.charge_payment"
REFUND_PAYMENT_HANDLER: Final = "fulfillment.steps.refund_payment"
RESERVE_STOCK_HANDLER: Final = "fulfillment.steps.reserve_stock"
RELEASE_STOCK_HANDLER: Final = "fulfillment.steps.release_stock"
RESERVE_SHIPPING_HANDLER: Final = "fulfillment.steps.reserve_shipping"
CANCEL_SHIPPING_HANDLER: Final = "fulfillment.steps.cancel_shipping"
SHIP_ORDER_HANDLER: Final = "fulfillment.steps.ship_order"
HANDLERS: Final = (
    CHARGE_PAYMENT_HANDLER,
    REFUND_PAYMENT_HANDLER,
    RESERVE_STOCK_HANDLER,
    RELEASE_STOCK_HANDLER,
    RESERVE_SHIPPING_HANDLER,
    CANCEL_SHIPPING_HANDLER,
    SHIP_ORDER_HANDLER,
)

# The EventBridge events: the workflow starts on OrderPlaced and ends with one of the others.
SOURCE: Final = "conveyor.orders"
ORDER_PLACED: Final = "OrderPlaced"
ORDER_FULFILLED: Final = "OrderFulfilled"
ORDER_FAILED: Final = "OrderFailed"

# Error names (the exception class names, which Lambda reports as ``errorType`` and the
# workflow's Retry/Catch ``ErrorEquals`` match).
TRANSIENT_ERROR: Final = "TransientError"  # retried with backoff and jitter
INVALID_ORDER: Final = "InvalidOrder"  # permanent: compensate and fail the order
OUT_OF_STOCK: Final = "OutOfStock"  # permanent
REFUND_REJECTED: Final = "RefundRejected"  # a compensation that cannot complete
PERMANENT_ERRORS: Final = (INVALID_ORDER, OUT_OF_STOCK, REFUND_REJECTED)

# Payment outcomes (``status`` of the ProcessPayment result; the Choice state reads it).
PAYMENT_CHARGED: Final = "CHARGED"
PAYMENT_DECLINED: Final = "DECLINED"

# The simulated payment provider's test tokens (as card test numbers are).
TOKEN_DECLINED: Final = "tok_declined"  # noqa: S105 - a payment test token, not a secret
TOKEN_FLAKY: Final = "tok_flaky"  # noqa: S105 - unavailable on the first attempt
TOKEN_REFUND_FAILS: Final = "tok_refund_fails"  # noqa: S105 - every refund rejected

# Order status recorded in the orders table, in the order the workflow sets them.
STATUS_PAID: Final = "PAID"
STATUS_DECLINED: Final = "PAYMENT_DECLINED"
STATUS_SHIPPED: Final = "SHIPPED"
STATUS_REFUNDED: Final = "REFUNDED"

# Environment variables.
ORDERS_TABLE: Final = "ORDERS_TABLE"
INVENTORY_TABLE: Final = "INVENTORY_TABLE"
ENVIRONMENT: Final = (ORDERS_TABLE, INVENTORY_TABLE)

# Handler string -> "<module>:<settings class>" that parses the function's environment.
SETTINGS: Final = {handler: "fulfillment.config:Settings" for handler in HANDLERS}

# Metrics (namespace: POWERTOOLS_METRICS_NAMESPACE), besides the kit's shared ones.
STEPS_FAILED: Final = "StepsFailed"
INVALID_ORDERS: Final = "InvalidOrders"
METRICS: Final = (
    STEPS_FAILED,
    INVALID_ORDERS,
    "PaymentsCharged",
    "PaymentsDeclined",
    "PaymentsRefunded",
    "StockReserved",
    "StockReleased",
    "OrdersShipped",
    "CompensationsSkipped",
)

# Largest order the handlers accept (lines), far below the 256 KB state payload limit.
MAX_LINES: Final = 100
