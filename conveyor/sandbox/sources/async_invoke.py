"""Asynchronous invocation (Lambda's event queue), for the routes whose internal queue holds
one event per message (SNS subscriptions, EventBridge targets).

Each message becomes one asynchronous invocation; errors are retried ``max_retry_attempts``
times (default 2), immediately, then the event goes to the on-failure queue
(:func:`~conveyor.sandbox.lambda_events.async_failure_record`), or is dropped. A subclass says
how a message becomes the event (:meth:`AsyncInvokeSource.event_for`) and sets ``kind``.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from conveyor.sandbox import lambda_events
from conveyor.sandbox.execution import ExecutionEnvironment
from conveyor.sandbox.model import DeployedStack, Route
from conveyor.sandbox.sources.base import Delivery
from conveyor.sandbox.sources.queues import SQS_BATCH
from conveyor.sandbox.traces import InvocationError

# Lambda's asynchronous invocation retries a failed event twice by default.
DEFAULT_MAX_RETRY_ATTEMPTS = 2


class AsyncInvokeSource:
    """Base of the asynchronous :class:`~conveyor.sandbox.sources.base.EventSource` s."""

    kind = ""

    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery

    def event_for(
        self, stack: DeployedStack, route: Route, message: dict[str, Any]
    ) -> tuple[Any, str]:
        """The event a message of the route's internal queue stands for, and its id."""
        raise NotImplementedError

    def settle(self) -> int:
        return 0  # nothing is held back: retries are immediate

    def pump(self, stack: DeployedStack, route: Route, target: ExecutionEnvironment) -> int:
        queue = self.delivery.queues.get(route.queue_url)
        started = time.perf_counter()
        messages = self.delivery.queues.receive(stack, route, queue, SQS_BATCH)
        if not messages:
            return 0
        receive_ms = (time.perf_counter() - started) * 1000
        event_ids: list[str] = []
        for message in messages:
            event, event_id = self.event_for(stack, route, message)
            details = {
                "route_kind": route.kind,
                "queue": queue.name,
                "internal_message_id": message["MessageId"],
            }
            self.delivery.trace(
                "receive",
                stack,
                route,
                target,
                (event_id,),
                duration_ms=receive_ms,
                details=details,
            )
            self.delivery.count(messages_received=1)
            self._invoke_async(stack, route, target, event, event_id)
            event_ids.append(event_id)
        self.delivery.queues.delete(
            stack, route, queue, target, messages, event_ids=tuple(event_ids)
        )
        return len(messages)

    def _invoke_async(
        self,
        stack: DeployedStack,
        route: Route,
        target: ExecutionEnvironment,
        event: Any,
        event_id: str,
    ) -> None:
        spec = target.spec
        retries = (
            DEFAULT_MAX_RETRY_ATTEMPTS
            if spec.max_retry_attempts is None
            else spec.max_retry_attempts
        )
        request_id = str(uuid.uuid4())  # the same for every attempt, as in Lambda
        ids = (event_id,)
        error: InvocationError | None = None
        for attempt in range(1, retries + 2):
            result = self.delivery.invoke(
                target, event, request_id=request_id, attempt=attempt, route=route, message_ids=ids
            )
            if result.ok:
                self.delivery.count(records_processed=1)
                return
            error = result.error
            self.delivery.count_failed(target, 1)
            if attempt <= retries:
                details = {
                    "request_id": request_id,
                    "attempt": attempt + 1,
                    "max_retry_attempts": retries,
                    "error_type": error.type if error else None,
                }
                self.delivery.trace("retry", stack, route, target, ids, details=details)
                self.delivery.count(retries=1)
        assert error is not None
        failure = _Failure(event, ids, request_id, retries + 1, error)
        if not self._send_to_destination(stack, route, target, failure):
            self._drop(stack, route, target, failure)

    def _send_to_destination(
        self, stack: DeployedStack, route: Route, target: ExecutionEnvironment, failure: _Failure
    ) -> bool:
        """Send the failure record to the on-failure queue; False: none, or it failed."""
        spec = target.spec
        destination = spec.on_failure_queue_url
        if not destination:
            return False
        record = lambda_events.async_failure_record(
            failure.event,
            request_id=failure.request_id,
            function_arn=spec.arn,
            attempts=failure.attempts,
            error_payload=failure.error.payload(failure.request_id),
        )
        try:
            sent = self.delivery.sqs.send_message(
                QueueUrl=destination, MessageBody=json.dumps(record)
            )
        except (ClientError, BotoCoreError) as exc:
            self.delivery.warn(stack, route, target, f"on-failure destination failed: {exc}")
            return False
        details = {
            "destination": destination.rsplit("/", 1)[-1],
            "destination_message_id": sent.get("MessageId"),
            "attempts": failure.attempts,
            "error_type": failure.error.type,
        }
        self.delivery.trace("on-failure", stack, route, target, failure.ids, details=details)
        self.delivery.count(on_failure=1)
        return True

    def _drop(
        self, stack: DeployedStack, route: Route, target: ExecutionEnvironment, failure: _Failure
    ) -> None:
        details = {
            "request_id": failure.request_id,
            "attempts": failure.attempts,
            "error_type": failure.error.type,
            "reason": "retries exhausted and no on-failure destination",
        }
        self.delivery.trace("drop", stack, route, target, failure.ids, details=details)
        self.delivery.count(dropped=1)


class _Failure:
    """An event whose attempts all failed."""

    def __init__(
        self,
        event: Any,
        ids: tuple[str, ...],
        request_id: str,
        attempts: int,
        error: InvocationError,
    ) -> None:
        self.event = event
        self.ids = ids
        self.request_id = request_id
        self.attempts = attempts
        self.error = error
