"""Environment parsing for handler settings. Every error is a ConfigError naming the variable.

Powertools reads its own variables (``POWERTOOLS_SERVICE_NAME``,
``POWERTOOLS_METRICS_NAMESPACE``, ``POWERTOOLS_LOG_LEVEL``...) itself; they are not parsed here.
Blank values count as unset.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping, Sequence
from typing import Protocol, TypeVar
from urllib.parse import urlparse

T = TypeVar("T", covariant=True)

# One integer rule for every variable: 1 to 10 ASCII digits, no sign, no spaces inside.
_INTEGER = re.compile(r"[0-9]{1,10}")
# A DynamoDB table name (3-255 characters of letters, digits, '_', '-', '.') or a table ARN.
_TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")
_TABLE_ARN = re.compile(r"arn:aws[a-z-]*:dynamodb:[a-z0-9-]+:[0-9]{12}:table/[A-Za-z0-9_.-]{3,255}")
# General-purpose bucket names: 3-63 characters, lowercase letters, digits, dots and hyphens,
# starting and ending with a letter or digit.
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
FIFO_SUFFIX = ".fifo"


class ConfigError(ValueError):
    """An environment variable is missing or invalid. ``variable`` names it."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable} {problem}")
        self.variable = variable


class FromEnv(Protocol[T]):
    """A settings class: ``from_env(environ)`` builds it or raises ConfigError."""

    def from_env(self, environ: Mapping[str, str]) -> T: ...


def cached_settings(settings: FromEnv[T]) -> functools._lru_cache_wrapper[T]:
    """``settings.from_env(os.environ)``, read once per execution environment (first call;
    ``cache_clear()`` forgets it)."""

    def load() -> T:
        return settings.from_env(os.environ)

    return functools.cache(load)


def optional(environ: Mapping[str, str], name: str) -> str | None:
    """The stripped value, or None when unset or blank."""
    value = environ.get(name, "").strip()
    return value or None


def required(environ: Mapping[str, str], name: str) -> str:
    value = optional(environ, name)
    if value is None:
        raise ConfigError(name, "is required but is not set")
    return value


def choice(environ: Mapping[str, str], name: str, choices: Sequence[str]) -> str:
    value = required(environ, name)
    if value not in choices:
        raise ConfigError(name, f"must be one of {', '.join(choices)}, got {value!r}")
    return value


def is_integer(text: str) -> bool:
    """The one integer rule (1-10 digits)."""
    return _INTEGER.fullmatch(text) is not None


def positive_int(environ: Mapping[str, str], name: str, default: int, *, unit: str = "") -> int:
    """An integer > 0; ``default`` when unset. ``unit`` (e.g. "seconds") is shown in errors."""
    raw = optional(environ, name)
    if raw is None:
        return default
    if not is_integer(raw) or int(raw) == 0:
        shown = f" ({unit})" if unit else ""
        raise ConfigError(name, f"must be a positive integer{shown}, got {raw!r}")
    return int(raw)


def int_between(
    environ: Mapping[str, str], name: str, default: int, minimum: int, maximum: int
) -> int:
    """An integer in [minimum, maximum]; ``default`` when unset."""
    raw = optional(environ, name)
    if raw is None:
        return default
    if not is_integer(raw) or not minimum <= int(raw) <= maximum:
        raise ConfigError(name, f"must be an integer between {minimum} and {maximum}, got {raw!r}")
    return int(raw)


def table(environ: Mapping[str, str], name: str) -> str:
    """A DynamoDB table name or table ARN (required)."""
    value = required(environ, name)
    if not (_TABLE_NAME.fullmatch(value) or _TABLE_ARN.fullmatch(value)):
        raise ConfigError(name, f"must be a DynamoDB table name or table ARN, got {value!r}")
    return value


def optional_table(environ: Mapping[str, str], name: str) -> str | None:
    return None if optional(environ, name) is None else table(environ, name)


def queue_url(environ: Mapping[str, str], name: str, *, fifo: bool = False) -> str | None:
    """An SQS queue URL, or None when unset; ``fifo``: the queue's name must end in .fifo."""
    raw = optional(environ, name)
    if raw is None:
        return None
    parsed = urlparse(raw)
    if parsed.scheme not in ("https", "http") or not parsed.netloc or len(parsed.path) <= 1:
        raise ConfigError(name, f"must be an SQS queue URL (https://...), got {raw!r}")
    if fifo and not parsed.path.endswith(FIFO_SUFFIX):
        # A standard queue would reject MessageGroupId, and would lose the group's order.
        raise ConfigError(
            name, f"must be the URL of a FIFO queue (name ending in {FIFO_SUFFIX}), got {raw!r}"
        )
    return raw


def bucket_name(environ: Mapping[str, str], name: str) -> str:
    """A general-purpose S3 bucket name (required; not a URL or an ARN)."""
    value = required(environ, name)
    if not _BUCKET_NAME.fullmatch(value):
        raise ConfigError(name, f"must be a bucket name (not a URL or ARN), got {value!r}")
    return value
