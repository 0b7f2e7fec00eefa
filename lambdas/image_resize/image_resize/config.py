"""Settings of the thumbnail Lambda, read from environment variables and validated.

Powertools reads its own variables (``POWERTOOLS_SERVICE_NAME``,
``POWERTOOLS_METRICS_NAMESPACE``, ``POWERTOOLS_LOG_LEVEL``...) itself; they are not here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from handler_kit.contract import DEAD_LETTER_QUEUE_URL, IDEMPOTENCY_TABLE
from handler_kit.settings import (
    ConfigError,
    bucket_name,
    is_integer,
    optional_table,
    positive_int,
    queue_url,
    required,
)

from . import contract

__all__ = ["ConfigError", "Settings"]

DEFAULT_OUTPUT_PREFIX = "thumbnails/"
DEFAULT_MAX_SOURCE_BYTES = 25 * 1024 * 1024  # 26214400
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000
MIN_THUMBNAIL_SIZE = 16
MAX_THUMBNAIL_SIZE = 4096


@dataclass(frozen=True)
class Settings:
    destination_bucket: str
    # Sorted, deduplicated; each size is the bounding box (max width and max height).
    thumbnail_sizes: tuple[int, ...]
    output_prefix: str = DEFAULT_OUTPUT_PREFIX
    max_source_bytes: int = DEFAULT_MAX_SOURCE_BYTES
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    # Where malformed SQS messages are sent directly; None: they fail and SQS redrives them.
    dead_letter_queue_url: str | None = None
    # The DynamoDB table (Powertools idempotency layout) that records which messages were
    # dead-lettered: one DLQ copy per source message. None: copies are at-least-once.
    dead_letter_ledger_table: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Build the settings from ``environ`` (normally ``os.environ``); raise ConfigError."""
        return cls(
            destination_bucket=bucket_name(environ, contract.DESTINATION_BUCKET),
            thumbnail_sizes=_sizes(environ, contract.THUMBNAIL_SIZES),
            output_prefix=environ.get(contract.OUTPUT_PREFIX, DEFAULT_OUTPUT_PREFIX),
            max_source_bytes=positive_int(
                environ, contract.MAX_SOURCE_BYTES, DEFAULT_MAX_SOURCE_BYTES
            ),
            max_image_pixels=positive_int(
                environ, contract.MAX_IMAGE_PIXELS, DEFAULT_MAX_IMAGE_PIXELS
            ),
            dead_letter_queue_url=queue_url(environ, DEAD_LETTER_QUEUE_URL),
            dead_letter_ledger_table=optional_table(environ, IDEMPOTENCY_TABLE),
        )


def _sizes(environ: Mapping[str, str], name: str) -> tuple[int, ...]:
    raw = required(environ, name)
    sizes = set()
    for item in raw.split(","):
        text = item.strip()
        if not is_integer(text):
            raise ConfigError(
                name, f"must be comma-separated positive integers like '128,512', got {raw!r}"
            )
        size = int(text)
        if not MIN_THUMBNAIL_SIZE <= size <= MAX_THUMBNAIL_SIZE:
            raise ConfigError(
                name,
                f"sizes must be between {MIN_THUMBNAIL_SIZE} and {MAX_THUMBNAIL_SIZE}, "
                f"got {size} in {raw!r}",
            )
        sizes.add(size)
    return tuple(sorted(sizes))
