"""EventBridge → Lambda (``Route(kind="events")``): each message of the internal queue added
as a target of the rule is the event (or a constant, possibly non-JSON, target input); the
function gets it asynchronously."""

from __future__ import annotations

import json
from typing import Any

from conveyor.sandbox import lambda_events
from conveyor.sandbox.model import DeployedStack, Route
from conveyor.sandbox.sources.async_invoke import AsyncInvokeSource


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
