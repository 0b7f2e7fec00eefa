"""What the order_pipeline handler and the CDK code that deploys it agree on. Stdlib only: the
CDK code imports it as ``conveyor.lambdas.order_pipeline.order_pipeline.contract``."""

from __future__ import annotations

from typing import Final

HANDLER: Final = "order_pipeline.handler.handler"

# The order events, in state machine order (the "event" field; the API's schema enum).
CREATED: Final = "created"
PAID: Final = "paid"
SHIPPED: Final = "shipped"
EVENTS: Final = (CREATED, PAID, SHIPPED)

# Environment variables (DEAD_LETTER_QUEUE_URL, a FIFO queue here, is the kit's).
ORDERS_TABLE: Final = "ORDERS_TABLE"
ENVIRONMENT: Final = (ORDERS_TABLE,)

# Handler string -> "<module>:<settings class>" that parses the function's environment.
SETTINGS: Final = {HANDLER: "order_pipeline.config:Settings"}

# Metrics (namespace: POWERTOOLS_METRICS_NAMESPACE), besides the kit's shared ones.
METRICS: Final = (
    "OrdersCreated",
    "OrdersPaid",
    "OrdersShipped",
    "DuplicatesIgnored",
    "OutOfOrderRejected",
    "ConflictsRejected",
)
