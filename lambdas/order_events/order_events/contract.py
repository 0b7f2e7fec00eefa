"""What the order_events handlers and the CDK code that deploys them agree on. Stdlib only: the
CDK code imports it as ``conveyor.lambdas.order_events.order_events.contract``."""

from __future__ import annotations

from typing import Final

CONSUMER_HANDLER: Final = "order_events.handler.handler"
INVOICE_HANDLER: Final = "order_events.routing.invoice_handler"
USER_HANDLER: Final = "order_events.routing.user_handler"

# The OrderPlaced consumers: one deployment each, told apart by CONSUMER_NAME.
CONSUMER_NAMES: Final = ("payment", "inventory", "shipping", "notification")
# The routed event types (the eventType message attribute): one function each.
ROUTED_EVENT_TYPES: Final = ("invoice", "user")

# Environment variables (DEAD_LETTER_QUEUE_URL and IDEMPOTENCY_* are the kit's).
CONSUMER_NAME: Final = "CONSUMER_NAME"
ENVIRONMENT: Final = (CONSUMER_NAME,)

# Handler string -> "<module>:<settings class>" that parses the function's environment.
SETTINGS: Final = {
    CONSUMER_HANDLER: "order_events.config:ConsumerSettings",
    INVOICE_HANDLER: "order_events.config:RoutingSettings",
    USER_HANDLER: "order_events.config:RoutingSettings",
}

# Metrics (namespace: POWERTOOLS_METRICS_NAMESPACE), besides the kit's shared ones.
METRICS: Final = ("OrdersProcessed", "MessagesProcessed")
