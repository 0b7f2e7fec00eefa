"""What the choreography services and the CDK code that deploys them agree on. Stdlib only:
the CDK code imports it as ``conveyor.lambdas.choreography.choreography.contract``."""

from __future__ import annotations

from typing import Final

ORDERS_HANDLER: Final = "choreography.orders.handler"  # Service Commande
STOCK_HANDLER: Final = "choreography.stock.handler"  # Service Stock
BILLING_HANDLER: Final = "choreography.billing.handler"  # Service Facturation
NOTIFICATION_HANDLER: Final = "choreography.notification.handler"  # Service Notification
HANDLERS: Final = (ORDERS_HANDLER, STOCK_HANDLER, BILLING_HANDLER, NOTIFICATION_HANDLER)

# The services (POWERTOOLS_SERVICE_NAME, idempotency key prefix, log "service" field) and the
# source each publishes its events with.
ORDERS: Final = "commande"
STOCK: Final = "stock"
BILLING: Final = "facturation"
NOTIFICATION: Final = "notification"
SERVICES: Final = (ORDERS, STOCK, BILLING, NOTIFICATION)
SOURCE_PREFIX: Final = "conveyor.choreography."
SOURCES: Final = {service: SOURCE_PREFIX + service for service in SERVICES}

# The events (EventBridge detail-type; the course's names).
ORDER_CREATED: Final = "CommandeCréée"
STOCK_UPDATED: Final = "StockMisAJour"
STOCK_UNAVAILABLE: Final = "StockIndisponible"
INVOICE_CREATED: Final = "FactureCréée"
ORDER_CANCELLED: Final = "CommandeAnnulée"
INVOICE_CANCELLED: Final = "FactureAnnulée"
CUSTOMER_NOTIFIED: Final = "ClientNotifié"
# Who publishes what, and who reacts to what (each reaction is one rule of the service).
PUBLISHES: Final = {
    ORDERS: (ORDER_CREATED, ORDER_CANCELLED),
    STOCK: (STOCK_UPDATED, STOCK_UNAVAILABLE),
    BILLING: (INVOICE_CREATED, INVOICE_CANCELLED),
    NOTIFICATION: (CUSTOMER_NOTIFIED,),
}
REACTS_TO: Final = {
    ORDERS: ((STOCK, STOCK_UNAVAILABLE),),
    STOCK: ((ORDERS, ORDER_CREATED),),
    BILLING: ((ORDERS, ORDER_CREATED), (ORDERS, ORDER_CANCELLED)),
    NOTIFICATION: ((BILLING, INVOICE_CREATED), (STOCK, STOCK_UPDATED), (ORDERS, ORDER_CANCELLED)),
}
SCHEMA_VERSION: Final = 1

# Every event's detail: the envelope below, plus the event's own fields.
EVENT_ID: Final = "eventId"
TYPE: Final = "type"
SCHEMA: Final = "schemaVersion"
CORRELATION_ID: Final = "correlationId"
CAUSATION_ID: Final = "causationId"
ORDER_ID: Final = "orderId"
CUSTOMER_ID: Final = "customerId"
LINES: Final = "lines"  # [{"sku", "quantity", "unitPrice"}]
SKU: Final = "sku"
QUANTITY: Final = "quantity"
UNIT_PRICE: Final = "unitPrice"  # cents
TOTAL: Final = "total"
INVOICE_ID: Final = "invoiceId"
REASON: Final = "reason"
MISSING: Final = "missing"  # StockIndisponible: [{"sku", "requested", "available"}]

# The PlaceOrder command (Service Commande, invoked directly):
# {"command": "PlaceOrder", "orderId"?, "customerId", "lines": [...], "correlationId"?}
COMMAND: Final = "command"
PLACE_ORDER: Final = "PlaceOrder"

# Tables: orders (orderId), inventory (sku: available, reserved), reservations
# (orderId: the lines reserved), invoices (orderId), notifications (notificationId).
STATUS: Final = "status"
ORDER_CREATED_STATUS: Final = "CREATED"
ORDER_CANCELLED_STATUS: Final = "CANCELLED"
AVAILABLE: Final = "available"
NOTIFICATION_ID: Final = "notificationId"

# Environment variables.
EVENT_BUS_NAME: Final = "EVENT_BUS_NAME"
ORDERS_TABLE: Final = "ORDERS_TABLE"
INVENTORY_TABLE: Final = "INVENTORY_TABLE"
RESERVATIONS_TABLE: Final = "RESERVATIONS_TABLE"
INVOICES_TABLE: Final = "INVOICES_TABLE"
NOTIFICATIONS_TABLE: Final = "NOTIFICATIONS_TABLE"
ENVIRONMENT: Final = (
    EVENT_BUS_NAME,
    ORDERS_TABLE,
    INVENTORY_TABLE,
    RESERVATIONS_TABLE,
    INVOICES_TABLE,
    NOTIFICATIONS_TABLE,
)

SETTINGS: Final = {
    ORDERS_HANDLER: "choreography.config:OrdersSettings",
    STOCK_HANDLER: "choreography.config:StockSettings",
    BILLING_HANDLER: "choreography.config:BillingSettings",
    NOTIFICATION_HANDLER: "choreography.config:NotificationSettings",
}

# Metrics (namespace: POWERTOOLS_METRICS_NAMESPACE), besides the kit's shared ones.
EVENTS_HANDLED: Final = "EventsHandled"
EVENTS_PUBLISHED: Final = "EventsPublished"
METRICS: Final = (EVENTS_HANDLED, EVENTS_PUBLISHED)
