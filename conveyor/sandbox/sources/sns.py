"""SNS → Lambda (``Route(kind="sns")``): each message of the internal queue subscribed to the
topic is an SNS envelope; the function gets Lambda's SNS event, asynchronously."""

from __future__ import annotations

import uuid
from typing import Any

from conveyor.sandbox import lambda_events
from conveyor.sandbox.model import DeployedStack, Route
from conveyor.sandbox.sources.async_invoke import AsyncInvokeSource


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


def _subscription_arn(stack: DeployedStack, route: Route, topic_arn: str) -> str:
    """The subscription's ARN (its physical id), or a stable one under the topic."""
    resource = stack.resources.get(route.source)
    subscription_arn = resource.physical_id if resource is not None else ""
    if not subscription_arn.startswith("arn:"):
        suffix = uuid.uuid5(uuid.NAMESPACE_URL, f"{stack.name}/{route.source}")
        subscription_arn = f"{topic_arn}:{suffix}"
    return subscription_arn
