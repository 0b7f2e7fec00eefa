"""EventBridge target: high-value invoices ("factures") are sent for review.

The custom bus's rule ``{"source": ["app.paiement"], "detail-type": ["facture"],
"detail": {"montant": [{"numeric": [">", 5000]}]}}`` targets this function (handler string
``payments.review.handler``). The detail is ``{"factureId": "f-1", "montant": 6000,
"devise": "EUR", "client": "c-1", "version": "1.0"}`` (``client`` and ``version`` optional; a
missing version means 1.0).

EventBridge invokes Lambda asynchronously. Each event ends in exactly one way:

* review requested: a structured "Review requested" log line, ``HighValueReviewsRequested``,
  and ``{"factureId", "montant", "status": "PENDING_REVIEW"}`` returned - once per factureId
  (Powertools idempotency, DynamoDB): a duplicate returns the same result and counts
  ``DuplicatesSkipped``;
* dropped with a log line and a metric, returning without error: a detail-type other than
  "facture" (``UnknownEventTypesIgnored``, returns None), or a montant <= REVIEW_THRESHOLD
  (``BelowThresholdIgnored``, status "IGNORED_BELOW_THRESHOLD"): the rule should have filtered
  both, retrying could never change the outcome;
* raised: a malformed event (``MalformedEvents``), a detail of an unsupported major version
  (``UnsupportedVersions``; replay it once this function is upgraded), a transient or
  unexpected error (DynamoDB throttling...) or an invalid configuration (``EventsFailed``).
  Function errors are retried by Lambda's asynchronous invocation (MaximumRetryAttempts,
  default 2; malformed events too, in vain), then the event goes to the function's on-failure
  destination / dead-letter queue. The rule target's own retry policy and dead-letter queue
  only cover EventBridge failing to hand the event to Lambda (missing permission, deleted
  function...). All of them are configured by the CDK stack, not here.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NoReturn

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig
from handler_kit import idempotency
from handler_kit.clients import lazy_client
from handler_kit.consumer import load_settings, log_invocation_failure, reject_malformed
from handler_kit.contract import (
    NEWER_MINOR_VERSION_PROCESSED,
    UNKNOWN_EVENT_TYPES_IGNORED,
    UNSUPPORTED_VERSIONS,
)
from handler_kit.failures import is_transient
from handler_kit.messages import shown as _shown
from handler_kit.metrics import count, new_metrics
from handler_kit.settings import cached_settings

from .config import ReviewSettings
from .contract import DETAIL_TYPE, EVENTS_FAILED, MALFORMED_EVENTS

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = ["DETAIL_TYPE", "IDEMPOTENCY_KEY_PREFIX", "handler", "is_transient"]

logger = Logger()
metrics = new_metrics()

SUPPORTED_MAJOR = 1
# The newest minor version this code was written for; newer minors only add optional fields.
SUPPORTED_MINOR = 0
DEFAULT_VERSION = "1.0"
IDEMPOTENCY_KEY_PREFIX = "payments.review.facture"

_VERSION = re.compile(r"([0-9]{1,9})\.([0-9]{1,9})")
_CURRENCY = re.compile(r"[A-Z]{3}")  # ISO 4217: three uppercase ASCII letters


class MalformedEvent(ValueError):
    """The event is not a usable facture event: retrying cannot fix it."""


class UnsupportedVersion(ValueError):
    """A detail major version this code does not know."""


# ---------------------------------------------------------------------------------------------
# Lazily created, cached per execution environment (nothing AWS is touched at import time).


_settings = cached_settings(ReviewSettings)


_dynamodb_client = lazy_client("dynamodb")


@functools.cache
def _idempotency_config() -> IdempotencyConfig:
    return idempotency.idempotency_config(
        "factureId", _settings().idempotency_expires_after_seconds, _on_duplicate
    )


@functools.cache
def _review_once() -> Callable[..., dict[str, Any]]:
    """``_request_review`` made idempotent by factureId (not by the EventBridge event id)."""
    return idempotency.once(
        _request_review,
        data_keyword_argument="facture",
        table=_settings().idempotency_table,
        client=_dynamodb_client(),
        config=_idempotency_config(),
        key_prefix=IDEMPOTENCY_KEY_PREFIX,
    )


# ---------------------------------------------------------------------------------------------
# Entry point


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any] | None:
    settings = load_settings(logger, metrics, _settings, metric=EVENTS_FAILED)
    _idempotency_config().register_lambda_context(context)
    if not isinstance(event, dict):
        _malformed(f"event is {type(event).__name__}, not an EventBridge event object")
    bridge_event = EventBridgeEvent(event)
    logger.append_keys(event_id=bridge_event.get("id"), source=bridge_event.get("source"))

    detail_type = bridge_event.get("detail-type")
    if detail_type != DETAIL_TYPE:
        logger.warning(
            f"Event of detail-type {detail_type!r} ignored: the rule should have filtered it",
            extra={"detail_type": str(detail_type)[:200]},
        )
        count(metrics, UNKNOWN_EVENT_TYPES_IGNORED)
        return None

    facture, version = _parse_detail(bridge_event.get("detail"))
    logger.append_keys(facture_id=facture["factureId"])
    if _as_decimal(facture["montant"]) <= settings.review_threshold:
        logger.warning(
            "Invoice at or below the review threshold ignored: the rule should have filtered it",
            extra={"montant": facture["montant"], "threshold": str(settings.review_threshold)},
        )
        count(metrics, "BelowThresholdIgnored")
        return _result(facture, "IGNORED_BELOW_THRESHOLD")

    try:
        result = _review_once()(facture=facture, event_id=bridge_event.get("id"))
    except Exception as exc:
        log_invocation_failure(logger, metrics, exc, metric=EVENTS_FAILED)
        raise
    if version[0] == SUPPORTED_MAJOR and version[1] > SUPPORTED_MINOR:
        logger.info(
            "Processed a detail of a newer minor version; its unknown fields were ignored",
            extra={"version": f"{version[0]}.{version[1]}"},
        )
        count(metrics, NEWER_MINOR_VERSION_PROCESSED)
    return result


# ---------------------------------------------------------------------------------------------
# Validation


def _parse_detail(detail: object) -> tuple[dict[str, Any], tuple[int, int]]:
    """The validated facture (JSON values as received) and its (major, minor) version."""
    if not isinstance(detail, dict):
        _malformed(f"detail must be an object, got {_shown(detail)}")
    version = _version(detail.get("version", DEFAULT_VERSION))
    if version[0] != SUPPORTED_MAJOR:
        reason = (
            f"unsupported version {version[0]}.{version[1]} of the facture detail: this "
            f"function supports {SUPPORTED_MAJOR}.x (up to {SUPPORTED_MAJOR}.{SUPPORTED_MINOR})"
        )
        logger.error(
            "Unsupported detail version: raising, the event ends in the on-failure destination "
            "to be replayed once this function is upgraded",
            extra={"reason": reason},
        )
        count(metrics, UNSUPPORTED_VERSIONS)
        raise UnsupportedVersion(reason)

    facture_id = detail.get("factureId")
    if not isinstance(facture_id, str) or not facture_id.strip():
        _malformed(f"detail.factureId must be a non-empty string, got {_shown(facture_id)}")
    montant = detail.get("montant")
    if (
        isinstance(montant, bool)
        or not isinstance(montant, (int, float, Decimal))
        or not math.isfinite(montant)
        or montant <= 0
    ):
        _malformed(f"detail.montant must be a number > 0, got {_shown(montant)}")
    devise = detail.get("devise")
    if not isinstance(devise, str) or not _CURRENCY.fullmatch(devise):
        _malformed(f"detail.devise must be a 3-letter ISO 4217 code, got {_shown(devise)}")
    client = detail.get("client")
    if client is not None and not isinstance(client, str):
        _malformed(f"detail.client must be a string when present, got {_shown(client)}")
    facture = {"factureId": facture_id, "montant": montant, "devise": devise, "client": client}
    return facture, version


def _version(raw: object) -> tuple[int, int]:
    match = _VERSION.fullmatch(raw) if isinstance(raw, str) else None
    if match is None:
        _malformed(f"detail.version must be a 'MAJOR.MINOR' string, got {_shown(raw)}")
    return int(match[1]), int(match[2])


def _as_decimal(number: float | Decimal) -> Decimal:
    """Exact for JSON numbers: 5000.01 (a float) is compared as Decimal('5000.01')."""
    return number if isinstance(number, Decimal) else Decimal(repr(number))


# ---------------------------------------------------------------------------------------------
# The work, run once per factureId


def _request_review(*, facture: dict[str, Any], event_id: str | None) -> dict[str, Any]:
    """Request the review. ``facture`` is what Powertools hashes (its factureId only)."""
    logger.info(
        "Review requested",
        extra={"review": {**facture, "status": "PENDING_REVIEW", "event_id": event_id}},
    )
    count(metrics, "HighValueReviewsRequested")
    return _result(facture, "PENDING_REVIEW")


def _result(facture: dict[str, Any], status: str) -> dict[str, Any]:
    return {"factureId": facture["factureId"], "montant": facture["montant"], "status": status}


_on_duplicate = idempotency.duplicate_hook(
    logger, metrics, "Duplicate facture event skipped: its review was already requested"
)


# ---------------------------------------------------------------------------------------------
# Failures


def _malformed(reason: str) -> NoReturn:
    reject_malformed(
        logger, metrics, reason, what="event", metric=MALFORMED_EVENTS, error=MalformedEvent
    )
