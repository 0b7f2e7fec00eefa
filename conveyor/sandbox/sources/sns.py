"""SNS → Lambda (``Route(kind="sns")``): each message of the internal queue subscribed to the
topic is an SNS envelope; the function gets Lambda's SNS event, asynchronously.

When SNS's ``Invoke`` of the function fails, SNS's delivery policy for AWS-managed endpoints
applies (SNS developer guide, "Amazon SNS message delivery retries"): a server-side error
(throttling 429, 5xx) is retried 3 times without delay, 2 times 1 second apart, 10 times with
exponential back-off from 1 to 20 seconds, then 100,000 times 20 seconds apart — 100,015
attempts over 23 days (sandbox time: instantly); a client-side error (no such function, no
permission) is not retried ("Amazon SNS dead-letter queues"). Then the message goes to the
subscription's ``RedrivePolicy.deadLetterTargetArn`` queue — the SNS message as an SQS
subscription without raw delivery gets it, the JSON envelope — or is dropped.
"""

from __future__ import annotations

import uuid
from typing import Any

from conveyor.sandbox import lambda_events
from conveyor.sandbox.faults import InvokeRejection
from conveyor.sandbox.model import DeployedStack, Route
from conveyor.sandbox.sources.async_invoke import AsyncInvokeSource, Handover

# SNS's delivery policy for AWS-managed endpoints (Lambda, SQS): the wait before each attempt
# after the first, phase by phase: 3 immediate, 2 one second apart, 10 with exponential back-off
# from 1 to 20 s, then 100,000 twenty seconds apart (100,015 attempts in all).
IMMEDIATE_RETRIES = 3
PRE_BACKOFF_RETRIES = 2
BACKOFF_DELAYS_S = tuple(min(2.0**n, 20.0) for n in range(10))
POST_BACKOFF_RETRIES = 100_000
POST_BACKOFF_DELAY_S = 20.0
TOTAL_ATTEMPTS = (
    IMMEDIATE_RETRIES + PRE_BACKOFF_RETRIES + len(BACKOFF_DELAYS_S) + POST_BACKOFF_RETRIES
)


def delay_before(attempt: int) -> float | None:
    """The wait before attempt ``attempt`` (2 and later), None past the last."""
    retry = attempt - 1  # 1: the first retry
    if retry < 1 or attempt > TOTAL_ATTEMPTS:
        return None
    if retry <= IMMEDIATE_RETRIES - 1:
        return 0.0
    retry -= IMMEDIATE_RETRIES - 1
    if retry <= PRE_BACKOFF_RETRIES:
        return 1.0
    retry -= PRE_BACKOFF_RETRIES
    if retry <= len(BACKOFF_DELAYS_S):
        return BACKOFF_DELAYS_S[retry - 1]
    return POST_BACKOFF_DELAY_S


class SnsSubscriptionSource(AsyncInvokeSource):
    """:class:`~conveyor.sandbox.sources.base.EventSource` of ``kind="sns"``."""

    kind = "sns"

    def event_for(
        self, stack: DeployedStack, route: Route, message: dict[str, Any]
    ) -> tuple[dict[str, Any], str]:
        envelope = lambda_events.parse_sns_envelope(message.get("Body", ""))
        if envelope is not None:
            sns = lambda_events.sns_notification(envelope)
        else:
            self.delivery.warn_once(
                f"raw:{stack.name}:{route.source}",
                stack=stack.name,
                route=route,
                problem="SNS route message is not an SNS envelope (raw message delivery on the "
                "internal subscription?): built the SNS record from the SQS message",
            )
            sns = lambda_events.sns_notification_from_sqs_message(message)
        event = lambda_events.sns_event(
            sns, subscription_arn=_subscription_arn(stack, route, str(sns["TopicArn"]))
        )
        return event, str(sns["MessageId"])

    # -- SNS's delivery policy and the subscription's dead-letter queue -------------------

    def next_delay(self, handover: Handover, failed_attempts: int) -> tuple[float | None, str]:
        delay = delay_before(failed_attempts + 1)
        return (delay, "") if delay is not None else (None, "delivery policy exhausted")

    def steady_delay(self, handover: Handover) -> float | None:
        return (
            POST_BACKOFF_DELAY_S if delay_before(handover.attempt) == POST_BACKOFF_DELAY_S else None
        )

    def remaining_attempts(self, handover: Handover) -> int:
        return TOTAL_ATTEMPTS - handover.attempt + 1

    def dead_letter_request(
        self, handover: Handover, rejection: InvokeRejection, condition: str, retries: int
    ) -> dict[str, Any] | None:
        if not handover.route.options.get("dead_letter_arn"):
            return None
        request: dict[str, Any] = {"MessageBody": handover.message.get("Body", "")}
        if handover.route.fifo:
            attributes = handover.message.get("Attributes", {})
            request["MessageGroupId"] = attributes.get("MessageGroupId", "default")
            request["MessageDeduplicationId"] = attributes.get(
                "MessageDeduplicationId", handover.event_id
            )
        return request


def _subscription_arn(stack: DeployedStack, route: Route, topic_arn: str) -> str:
    """The subscription's ARN (its physical id), or a stable one under the topic."""
    resource = stack.resources.get(route.source)
    subscription_arn = resource.physical_id if resource is not None else ""
    if not subscription_arn.startswith("arn:"):
        suffix = uuid.uuid5(uuid.NAMESPACE_URL, f"{stack.name}/{route.source}")
        subscription_arn = f"{topic_arn}:{suffix}"
    return subscription_arn
