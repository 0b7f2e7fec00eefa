"""What the payments handlers and the CDK code that deploys them agree on. Stdlib only: the
CDK code imports it as ``conveyor.lambdas.payments.payments.contract``."""

from __future__ import annotations

from typing import Final

REVIEW_HANDLER: Final = "payments.review.handler"

# The EventBridge event the review function is a target of.
SOURCE: Final = "app.paiement"
DETAIL_TYPE: Final = "facture"

# Environment variables (IDEMPOTENCY_* are the kit's).
REVIEW_THRESHOLD: Final = "REVIEW_THRESHOLD"
ENVIRONMENT: Final = (REVIEW_THRESHOLD,)

# Handler string -> "<module>:<settings class>" that parses the function's environment.
SETTINGS: Final = {REVIEW_HANDLER: "payments.config:ReviewSettings"}

# Metrics (namespace: POWERTOOLS_METRICS_NAMESPACE), besides the kit's shared ones.
EVENTS_FAILED: Final = "EventsFailed"
MALFORMED_EVENTS: Final = "MalformedEvents"
METRICS: Final = (
    EVENTS_FAILED,
    MALFORMED_EVENTS,
    "HighValueReviewsRequested",
    "BelowThresholdIgnored",
)
