"""Settings of the thumbnail Lambda, read from environment variables and validated.

Powertools reads its own variables (``POWERTOOLS_SERVICE_NAME``,
``POWERTOOLS_METRICS_NAMESPACE``, ``POWERTOOLS_LOG_LEVEL``...) itself; they are not here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlparse

DEFAULT_OUTPUT_PREFIX = "thumbnails/"
DEFAULT_MAX_SOURCE_BYTES = 25 * 1024 * 1024  # 26214400
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000
MIN_THUMBNAIL_SIZE = 16
MAX_THUMBNAIL_SIZE = 4096

# General-purpose bucket names: 3-63 characters, lowercase letters, digits, dots and hyphens,
# starting and ending with a letter or digit.
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_UNSIGNED_INT = re.compile(r"[0-9]+")


class ConfigError(ValueError):
    """An environment variable is missing or invalid. ``variable`` names it."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable} {problem}")
        self.variable = variable


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

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Build the settings from ``environ`` (normally ``os.environ``); raise ConfigError."""
        return cls(
            destination_bucket=_bucket_name(environ, "DESTINATION_BUCKET"),
            thumbnail_sizes=_sizes(environ, "THUMBNAIL_SIZES"),
            output_prefix=environ.get("OUTPUT_PREFIX", DEFAULT_OUTPUT_PREFIX),
            max_source_bytes=_positive_int(environ, "MAX_SOURCE_BYTES", DEFAULT_MAX_SOURCE_BYTES),
            max_image_pixels=_positive_int(environ, "MAX_IMAGE_PIXELS", DEFAULT_MAX_IMAGE_PIXELS),
            dead_letter_queue_url=_queue_url(environ, "DEAD_LETTER_QUEUE_URL"),
        )


def _optional(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip()
    return value or None


def _required(environ: Mapping[str, str], name: str) -> str:
    value = _optional(environ, name)
    if value is None:
        raise ConfigError(name, "is required but is not set")
    return value


def _bucket_name(environ: Mapping[str, str], name: str) -> str:
    value = _required(environ, name)
    if not _BUCKET_NAME.fullmatch(value):
        raise ConfigError(name, f"must be a bucket name (not a URL or ARN), got {value!r}")
    return value


def _sizes(environ: Mapping[str, str], name: str) -> tuple[int, ...]:
    raw = _required(environ, name)
    sizes = set()
    for item in raw.split(","):
        text = item.strip()
        if not _UNSIGNED_INT.fullmatch(text):
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


def _positive_int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = _optional(environ, name)
    if raw is None:
        return default
    if not _UNSIGNED_INT.fullmatch(raw) or int(raw) == 0:
        raise ConfigError(name, f"must be a positive integer, got {raw!r}")
    return int(raw)


def _queue_url(environ: Mapping[str, str], name: str) -> str | None:
    raw = _optional(environ, name)
    if raw is None:
        return None
    parsed = urlparse(raw)
    if parsed.scheme not in ("https", "http") or not parsed.netloc or len(parsed.path) <= 1:
        raise ConfigError(name, f"must be an SQS queue URL (https://...), got {raw!r}")
    return raw
