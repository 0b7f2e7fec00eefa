"""EventBridge → Lambda (``Route(kind="events")``): each message of the internal queue added
as a target of the rule is the event (or a constant, possibly non-JSON, target input); the
function gets it asynchronously.

When EventBridge's ``Invoke`` of the function fails (throttled, or the function does not exist),
the target's ``RetryPolicy`` applies (EventBridge user guide, "Event retry policy and using
dead-letter queues"): throttling (429) and server errors (5xx) are retried with exponential
back-off until ``MaximumRetryAttempts`` (default 185) retries were made or the next would come
after ``MaximumEventAgeInSeconds`` (default 86,400 s); other errors (no such function, no
permission) are not retried. Then the event goes to the target's ``DeadLetterConfig`` queue
with the attributes ``RULE_ARN``, ``TARGET_ARN``, ``ERROR_CODE``, ``ERROR_MESSAGE``,
``EXHAUSTED_RETRY_CONDITION`` (``MaximumRetryAttempts`` / ``MaximumEventAgeInSeconds``, absent
for an error that is not retried) and ``RETRY_ATTEMPTS``; without one it is dropped.

AWS documents "exponential back off and jitter" but not the intervals: the sandbox waits 1 s
before the first retry, doubling up to 5 minutes, without jitter (deterministic).
"""

from __future__ import annotations

import json
from typing import Any

from conveyor.sandbox import lambda_events
from conveyor.sandbox.faults import InvokeRejection
from conveyor.sandbox.model import DeployedStack, Route
from conveyor.sandbox.providers.events import (
    DEFAULT_MAXIMUM_EVENT_AGE_S,
    DEFAULT_MAXIMUM_RETRY_ATTEMPTS,
)
from conveyor.sandbox.sources.async_invoke import AsyncInvokeSource, Handover

FIRST_RETRY_DELAY_S = 1.0
MAX_RETRY_DELAY_S = 300.0

# ERROR_CODE of the DLQ message for a Lambda Invoke error (EventBridge user guide, the DLQ
# message attributes); other codes: by HTTP status.
_ERROR_CODES = {
    "TooManyRequestsException": "THROTTLING",
    "ResourceNotFoundException": "NO_RESOURCE",
    "AccessDeniedException": "NO_PERMISSIONS",
}


def error_code(rejection: InvokeRejection) -> str:
    """The DLQ's ``ERROR_CODE`` for a failed ``Invoke``."""
    if rejection.code in _ERROR_CODES:
        return _ERROR_CODES[rejection.code]
    if rejection.status == 429:
        return "THROTTLING"
    return "INTERNAL_ERROR" if rejection.status >= 500 else "INVALID_PARAMETER"


class EventBridgeTargetSource(AsyncInvokeSource):
    """:class:`~conveyor.sandbox.sources.base.EventSource` of ``kind="events"``."""

    kind = "events"

    def event_for(
        self, stack: DeployedStack, route: Route, message: dict[str, Any]
    ) -> tuple[Any, str]:
        body = message.get("Body", "")
        try:
            event: Any = json.loads(body)
        except ValueError:
            return body, message["MessageId"]  # a constant, non-JSON target input
        event = lambda_events.eventbridge_event(
            event, account_id=self.delivery.deployment.account_id
        )
        return event, lambda_events.eventbridge_event_id(event, message["MessageId"])

    # -- EventBridge's retry policy and dead-letter queue ---------------------------------

    def next_delay(self, handover: Handover, failed_attempts: int) -> tuple[float | None, str]:
        options = handover.route.options
        retries = failed_attempts - 1
        if retries >= int(options.get("max_retry_attempts", DEFAULT_MAXIMUM_RETRY_ATTEMPTS)):
            return None, "MaximumRetryAttempts"
        delay = min(FIRST_RETRY_DELAY_S * 2**retries, MAX_RETRY_DELAY_S)
        age_after = self.delivery.sandbox_clock.now() + delay - handover.first_attempt_at
        if age_after > int(options.get("max_event_age_s", DEFAULT_MAXIMUM_EVENT_AGE_S)):
            return None, "MaximumEventAgeInSeconds"
        return delay, ""

    def steady_delay(self, handover: Handover) -> float | None:
        # the wait before attempt N is 2**(N-2) s, capped: constant once capped
        retries = handover.attempt - 2  # made so far
        return MAX_RETRY_DELAY_S if FIRST_RETRY_DELAY_S * 2**retries >= MAX_RETRY_DELAY_S else None

    def remaining_attempts(self, handover: Handover) -> int:
        options = handover.route.options
        by_count = int(options.get("max_retry_attempts", DEFAULT_MAXIMUM_RETRY_ATTEMPTS)) - (
            handover.attempt - 2
        )
        age_left = (
            handover.first_attempt_at
            + int(options.get("max_event_age_s", DEFAULT_MAXIMUM_EVENT_AGE_S))
            - self.delivery.sandbox_clock.now()
        )
        return max(1, min(by_count, int(age_left // MAX_RETRY_DELAY_S)))

    def dead_letter_request(
        self, handover: Handover, rejection: InvokeRejection, condition: str, retries: int
    ) -> dict[str, Any] | None:
        options = handover.route.options
        if not options.get("dead_letter_arn"):
            return None
        event = handover.event
        body = event if isinstance(event, str) else json.dumps(event)
        values = {
            "RULE_ARN": str(options.get("rule_arn", "")),
            "TARGET_ARN": str(options.get("target_arn", "")),
            "ERROR_CODE": error_code(rejection),
            "ERROR_MESSAGE": rejection.message,
            "RETRY_ATTEMPTS": str(retries),
        }
        if condition:
            values["EXHAUSTED_RETRY_CONDITION"] = condition
        attributes = {k: {"DataType": "String", "StringValue": v} for k, v in values.items()}
        return {"MessageBody": body, "MessageAttributes": attributes}
