"""What the image_resize handler and the CDK code that deploys it agree on. Stdlib only: the
CDK code imports it as ``conveyor.lambdas.image_resize.image_resize.contract``."""

from __future__ import annotations

from typing import Final

HANDLER: Final = "image_resize.handler.handler"

# Environment variables (DEAD_LETTER_QUEUE_URL is the kit's, set by QueueConsumer).
DESTINATION_BUCKET: Final = "DESTINATION_BUCKET"
THUMBNAIL_SIZES: Final = "THUMBNAIL_SIZES"
OUTPUT_PREFIX: Final = "OUTPUT_PREFIX"
MAX_SOURCE_BYTES: Final = "MAX_SOURCE_BYTES"
MAX_IMAGE_PIXELS: Final = "MAX_IMAGE_PIXELS"
ENVIRONMENT: Final = (
    DESTINATION_BUCKET,
    THUMBNAIL_SIZES,
    OUTPUT_PREFIX,
    MAX_SOURCE_BYTES,
    MAX_IMAGE_PIXELS,
)

# Handler string -> "<module>:<settings class>" that parses the function's environment.
SETTINGS: Final = {HANDLER: "image_resize.config:Settings"}

# Metrics (namespace: POWERTOOLS_METRICS_NAMESPACE), besides the kit's shared ones.
METRICS: Final = (
    "TestEventsIgnored",
    "EventsIgnored",
    "RecursionPrevented",
    "ObjectsMissing",
    "StaleEventsIgnored",
    "ImagesRejected",
    "ThumbnailsWritten",
    "ImagesProcessed",
)
