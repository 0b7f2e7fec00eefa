"""Asynchronous invocation (Lambda's event queue), for the routes whose internal queue holds
one event per message (SNS subscriptions, EventBridge targets).

Each message becomes one asynchronous invocation; errors are retried ``max_retry_attempts``
times (default 2) as Lambda does: one minute after the first attempt, then two minutes after
the second (sandbox time: scheduled on the sandbox clock, which the pump advances when
nothing else is pending, :mod:`conveyor.sandbox.clock`), then the event goes to the on-failure queue
(:func:`~conveyor.sandbox.lambda_events.async_failure_record`), or is dropped. A subclass says
how a message becomes the event (:meth:`AsyncInvokeSource.event_for`) and sets ``kind``.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from conveyor.sandbox import lambda_events
from conveyor.sandbox.execution import ExecutionEnvironment
from conveyor.sandbox.model import DeployedStack, Route
from conveyor.sandbox.sources.base import Delivery
from conveyor.sandbox.sources.queues import SQS_BATCH
from conveyor.sandbox.traces import InvocationError

# Lambda's asynchronous invocation retries a failed event twice by default, "waits one minute
# before the second attempt and two minutes before the third" (Lambda developer guide,
# asynchronous invocation / error handling).
DEFAULT_MAX_RETRY_ATTEMPTS = 2
RETRY_DELAYS_S = (60.0, 120.0)


def retry_delay_s(attempt: int) -> float:
    """The wait before ``attempt`` (2: one minute, 3 and later: two minutes)."""
    return RETRY_DELAYS_S[min(attempt - 2, len(RETRY_DELAYS_S) - 1)]


@dataclass
class _Retry:
    """An event waiting for its next attempt on the sandbox clock."""

    due: float
    stack: DeployedStack
    route: Route
    target: ExecutionEnvironment
    event: Any
    ids: tuple[str, ...]
    request_id: str
    attempt: int
    retries: int


class AsyncInvokeSource:
    """Base of the asynchronous :class:`~conveyor.sandbox.sources.base.EventSource` s."""

    kind = ""

    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery
        self._retries: list[_Retry] = []

    def event_for(
        self, stack: DeployedStack, route: Route, message: dict[str, Any]
    ) -> tuple[Any, str]:
        """The event a message of the route's internal queue stands for, and its id."""
        raise NotImplementedError

    def settle(self) -> int:
        return 0  # retries wait on the sandbox clock (next_due), nothing to release

    def next_due(self) -> float | None:
        """When the earliest waiting retry is due (sandbox time)."""
        return min((r.due for r in self._retries), default=None)

    def pump(self, stack: DeployedStack, route: Route, target: ExecutionEnvironment) -> int:
        retried = self._run_due_retries(stack, route)
        queue = self.delivery.queues.get(route.queue_url)
        started = time.perf_counter()
        messages = self.delivery.queues.receive(stack, route, queue, SQS_BATCH)
        if not messages:
            return retried
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
        return retried + len(messages)

    def _run_due_retries(self, stack: DeployedStack, route: Route) -> int:
        now = self.delivery.sandbox_clock.now()
        due = [
            r
            for r in self._retries
            if r.due <= now and r.stack.name == stack.name and r.route is route
        ]
        for retry in due:
            self._retries.remove(retry)
            self._attempt(retry)
        return len(due)

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
        now = self.delivery.sandbox_clock.now()
        self._attempt(_Retry(now, stack, route, target, event, (event_id,), request_id, 1, retries))

    def _attempt(self, pending: _Retry) -> None:
        """One attempt; on an error, the next one is scheduled (or the failure handled)."""
        stack, route, target, ids = pending.stack, pending.route, pending.target, pending.ids
        attempt, retries, request_id = pending.attempt, pending.retries, pending.request_id
        result = self.delivery.invoke(
            target,
            pending.event,
            request_id=request_id,
            attempt=attempt,
            route=route,
            message_ids=ids,
        )
        if result.ok:
            self.delivery.count(records_processed=1)
            return
        error = result.error
        self.delivery.count_failed(target, 1)
        if attempt <= retries:
            delay = retry_delay_s(attempt + 1)
            due = self.delivery.sandbox_clock.now() + delay
            details = {
                "request_id": request_id,
                "attempt": attempt + 1,
                "max_retry_attempts": retries,
                "error_type": error.type if error else None,
                "delay_s": delay,
                "due": due,
            }
            self.delivery.trace("retry", stack, route, target, ids, details=details)
            self.delivery.count(retries=1)
            self._retries.append(
                _Retry(
                    due, stack, route, target, pending.event, ids, request_id, attempt + 1, retries
                )
            )
            self.delivery.sandbox_clock.schedule(due)
            return
        assert error is not None
        failure = _Failure(pending.event, ids, request_id, retries + 1, error)
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
