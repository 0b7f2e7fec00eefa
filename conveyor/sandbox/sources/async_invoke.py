"""Asynchronous invocation (Lambda's event queue), for the routes whose internal queue holds
one event per message (SNS subscriptions, EventBridge targets).

Each message becomes one asynchronous invocation; errors are retried ``max_retry_attempts``
times (default 2) as Lambda does: one minute after the first attempt, then two minutes after
the second (sandbox time: scheduled on the sandbox clock, which the pump advances when
nothing else is pending, :mod:`conveyor.sandbox.clock`), then the event goes to the on-failure queue
(:func:`~conveyor.sandbox.lambda_events.async_failure_record`), or is dropped. A subclass says
how a message becomes the event (:meth:`AsyncInvokeSource.event_for`) and sets ``kind``.

Before that, the *service* (EventBridge, SNS) hands the event to Lambda with an ``Invoke`` call,
which can itself fail: the function does not exist (the route's function is not deployed), or
the call is rejected (injected: ``runtime.faults.throttle("lambda", "Invoke", target=...)``).
Then the service's own retry policy applies (:meth:`AsyncInvokeSource.next_delay`: EventBridge's
``RetryPolicy``, SNS's delivery policy), its delays on the sandbox clock, and once it is
exhausted — or at once for an error that is not retried (4xx other than 429) — the event goes to
the target's / subscription's dead-letter queue (:meth:`AsyncInvokeSource.dead_letter_request`)
or is dropped (a ``drop`` trace, counted). A function *error* is not that path: the ``Invoke``
succeeded, Lambda's asynchronous retries above apply.
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
from conveyor.sandbox.faults import InvokeRejection
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


@dataclass
class Handover:
    """An event the service (EventBridge, SNS) is trying to hand to Lambda (``Invoke``)."""

    due: float
    stack: DeployedStack
    route: Route
    event: Any
    event_id: str
    message: dict[str, Any]  # the internal queue's message (the event as the service sent it)
    first_attempt_at: float  # when the service got the event (sandbox time)
    attempt: int = 1  # the attempt to make at ``due`` (1: the first)
    batch: int = 1  # attempts to make at ``due`` (> 1: failures known ahead, see _schedule)


class AsyncInvokeSource:
    """Base of the asynchronous :class:`~conveyor.sandbox.sources.base.EventSource` s."""

    kind = ""
    needs_function = False  # a route whose function is missing: the service's Invoke fails

    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery
        self._retries: list[_Retry] = []
        self._handovers: list[Handover] = []
        self._queue_urls: dict[str, str] = {}

    # -- the service's delivery policy (subclasses) ---------------------------------------

    def next_delay(self, handover: Handover, failed_attempts: int) -> tuple[float | None, str]:
        """After ``failed_attempts`` failed ``Invoke`` s (retriable errors): the wait before
        the next one, or None and the exhausted condition."""
        return None, ""

    def dead_letter_request(
        self, handover: Handover, rejection: InvokeRejection, condition: str, retries: int
    ) -> dict[str, Any] | None:
        """The ``SendMessage`` request (without ``QueueUrl``) for the dead-letter queue, or None:
        the route has no dead-letter queue."""
        return None

    def steady_delay(self, handover: Handover) -> float | None:
        """The wait between the remaining attempts when it is constant from here on (then a
        run of failures known ahead is waited in one step), or None."""
        return None

    def event_for(
        self, stack: DeployedStack, route: Route, message: dict[str, Any]
    ) -> tuple[Any, str]:
        """The event a message of the route's internal queue stands for, and its id."""
        raise NotImplementedError

    def settle(self) -> int:
        return 0  # retries wait on the sandbox clock (next_due), nothing to release

    def next_due(self) -> float | None:
        """When the earliest waiting retry is due (sandbox time)."""
        return min([r.due for r in self._retries] + [h.due for h in self._handovers], default=None)

    def pump(self, stack: DeployedStack, route: Route, target: ExecutionEnvironment) -> int:
        retried = self._run_due_retries(stack, route) + self._run_due_handovers(
            stack, route, target
        )
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
            now = self.delivery.sandbox_clock.now()
            sent = message.get("Attributes", {}).get("SentTimestamp")
            first = min(now, int(sent) / 1000) if sent else now
            self._hand_over(Handover(now, stack, route, event, event_id, message, first), target)
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

    # -- the service's Invoke -------------------------------------------------------------

    def _run_due_handovers(
        self, stack: DeployedStack, route: Route, target: ExecutionEnvironment | None
    ) -> int:
        now = self.delivery.sandbox_clock.now()
        due = [
            h
            for h in self._handovers
            if h.due <= now and h.stack.name == stack.name and h.route is route
        ]
        for handover in due:
            self._handovers.remove(handover)
            self._hand_over(handover, target)
        return len(due)

    def _rejection(
        self, handover: Handover, target: ExecutionEnvironment | None
    ) -> InvokeRejection | None:
        if target is None:
            arn = str(
                handover.route.options.get("target_arn") or handover.route.function_logical_id
            )
            return InvokeRejection("ResourceNotFoundException", f"Function not found: {arn}", 404)
        faults = self.delivery.faults
        return faults.service_invoke(target.spec) if faults is not None else None

    def _hand_over(self, handover: Handover, target: ExecutionEnvironment | None) -> None:
        """The service's ``Invoke`` attempt(s) due now: on success the event is in Lambda's
        asynchronous queue (invoked at once); on failure, retried or dead-lettered."""
        while True:
            rejection = None
            for _ in range(handover.batch):
                rejection = self._rejection(handover, target)
                if rejection is None:
                    break
                handover.attempt += 1
            if rejection is None:
                assert target is not None
                self._invoke_async(
                    handover.stack, handover.route, target, handover.event, handover.event_id
                )
                return
            failed = handover.attempt - 1  # attempts made so far, all failed
            handover.batch = 1
            delay, condition = (
                self.next_delay(handover, failed) if rejection.retriable else (None, "")
            )
            if delay is None:
                self._give_up(handover, target, rejection, condition, failed - 1)
                return
            if delay > 0:
                self._schedule(handover, target, rejection, delay)
                return
            # an immediate retry (SNS's first phase): loop

    def _schedule(
        self,
        handover: Handover,
        target: ExecutionEnvironment | None,
        rejection: InvokeRejection,
        delay: float,
    ) -> None:
        now = self.delivery.sandbox_clock.now()
        steady = self.steady_delay(handover)
        faults = self.delivery.faults
        if steady is not None and target is not None and faults is not None:
            # A run of rejections known ahead (a fault still failing the next N calls) at a
            # constant interval: wait for the last of them in one step, with the same times
            # and counts as attempt by attempt (SNS's 100,000 post-backoff attempts).
            ahead = faults.rejections_ahead(target.spec)
            remaining = self.remaining_attempts(handover)
            run = remaining if ahead is None else min(ahead, remaining)
            if run > 1:
                handover.batch = run
                delay = steady * run
        handover.due = now + delay
        details = {
            "attempt": handover.attempt,
            "attempts_at_due": handover.batch,
            "error_code": rejection.code,
            "status": rejection.status,
            "delay_s": delay,
            "due": handover.due,
            "retried_by": self.kind,
        }
        self._trace_service("retry", handover, target, details)
        self.delivery.count(retries=1)
        self._handovers.append(handover)
        self.delivery.sandbox_clock.schedule(handover.due)

    def remaining_attempts(self, handover: Handover) -> int:
        """Attempts left after the failed ``handover.attempt - 1`` (for a steady delay)."""
        return 1

    def _give_up(
        self,
        handover: Handover,
        target: ExecutionEnvironment | None,
        rejection: InvokeRejection,
        condition: str,
        retries: int,
    ) -> None:
        details: dict[str, Any] = {
            "error_code": rejection.code,
            "error_message": rejection.message,
            "status": rejection.status,
            "retry_attempts": retries,
            "exhausted_retry_condition": condition or None,
            "by": self.kind,
        }
        request = self.dead_letter_request(handover, rejection, condition, retries)
        arn = handover.route.options.get("dead_letter_arn")
        if request is not None and arn:
            try:
                url = self._dead_letter_url(str(arn))
                sent = self.delivery.sqs.send_message(QueueUrl=url, **request)
            except (ClientError, BotoCoreError) as exc:
                details["problem"] = f"could not send to the dead-letter queue {arn}: {exc}"
            else:
                details.update(
                    dead_letter_queue=url.rsplit("/", 1)[-1],
                    dead_letter_message_id=sent.get("MessageId"),
                )
                self._trace_service("dead-letter", handover, target, details)
                self.delivery.count(dead_lettered=1)
                return
        details["reason"] = details.get("problem") or (
            "the service's retries are exhausted and there is no dead-letter queue"
            if rejection.retriable
            else "the error is not retried and there is no dead-letter queue"
        )
        self._trace_service("drop", handover, target, details)
        self.delivery.count(dropped=1)

    def _dead_letter_url(self, arn: str) -> str:
        if arn not in self._queue_urls:
            account = arn.split(":")[4] if arn.count(":") >= 5 else None
            request: dict[str, Any] = {"QueueName": arn.rsplit(":", 1)[-1]}
            if account:
                request["QueueOwnerAWSAccountId"] = account
            self._queue_urls[arn] = str(self.delivery.sqs.get_queue_url(**request)["QueueUrl"])
        return self._queue_urls[arn]

    def _trace_service(
        self,
        kind: str,
        handover: Handover,
        target: ExecutionEnvironment | None,
        details: dict[str, Any],
    ) -> None:
        self.delivery.emit(
            kind,
            stack=handover.stack.name,
            route=handover.route,
            function=handover.route.function_logical_id,
            message_ids=(handover.event_id,),
            details={"stage": f"{self.kind} Invoke", **details},
        )

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
