"""The SQS event source mapping (``Route(kind="sqs")``), as Lambda's poller runs it.

Batches of up to ``batch_size`` records within ``MaximumBatchingWindowInSeconds`` (measured
with the injectable clock, by default the sandbox clock: a batch that is not full waits, held
in flight, until its window has elapsed, and the pump advances the clock to the window's end
when nothing else can move), the SQS event in Lambda's shape
(:func:`~conveyor.sandbox.lambda_events.sqs_record`), then ``ReportBatchItemFailures`` as
Lambda applies it. Failed records stay in flight (their message group stays blocked on a FIFO
queue, as in SQS) for the queue's visibility timeout, measured by moto on the sandbox clock
(:mod:`conveyor.sandbox.clock`): when nothing else can move, the pump advances the clock to the
earliest visibility end or ``DelaySeconds`` end of a route queue's message
(:meth:`next_due`), and :meth:`settle` traces the records whose timeout elapsed. moto's own
redrive policy moves a message to the DLQ on the receive after its ``maxReceiveCount``-th;
:class:`~.queues.Queues` checks the DLQ depth around that receive and reports the move.

Concurrency (``Runtime(concurrency=N)``, capped by the function's
``ReservedConcurrentExecutions`` and the mapping's ``ScalingConfig.MaximumConcurrency``): each
``pump`` receives up to N batches and runs them at once, one execution environment each, as
Lambda's scaled-out pollers do; on a FIFO queue SQS keeps a message group to one batch in
flight, so groups run in parallel and a group's batches one after the other.
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
from conveyor.sandbox.sources.base import Call, Delivery
from conveyor.sandbox.sources.queues import SQS_BATCH, RouteQueue, chunks
from conveyor.sandbox.traces import InvocationResult

_FIFO_SEQUENCE_START = 18_000_000_000_000_000_000


@dataclass
class _Parked:
    message_id: str
    receipt_handle: str
    stack: str
    route: Route
    due: float  # sandbox time when the visibility timeout has elapsed


@dataclass
class _Held:
    """A batch that is not full and whose batching window has not elapsed yet."""

    messages: list[dict[str, Any]]
    window_start: float
    receives: int


@dataclass
class _Batch:
    messages: list[dict[str, Any]]
    receives: int
    duration_ms: float


class SqsPoller:
    """:class:`~conveyor.sandbox.sources.base.EventSource` of ``kind="sqs"``."""

    kind = "sqs"

    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery
        self._parked: dict[str, list[_Parked]] = {}
        self._sequence_numbers: dict[str, str] = {}
        self._held: dict[tuple[str, str], _Held] = {}

    def pump(self, stack: DeployedStack, route: Route, target: ExecutionEnvironment) -> int:
        if target.spec.reserved_concurrency == 0:  # AWS: every invocation is throttled
            self.delivery.warn_once(
                f"throttled:{stack.name}:{route.source}",
                stack=stack.name,
                route=route,
                problem=f"{target.spec.logical_id} has ReservedConcurrentExecutions 0: every "
                "invocation is throttled, the messages stay in the queue",
            )
            return 0
        queue = self.delivery.queues.get(route.queue_url)
        if self.delivery.concurrency_for(route, target) > 1:
            return self._pump_concurrently(stack, route, target, queue)
        batch = self._collect(stack, route, queue)
        messages = batch.messages
        if not messages:
            return 0
        ids = tuple(m["MessageId"] for m in messages)
        records = self._received(stack, route, target, queue, batch)
        result = self.delivery.invoke(
            target,
            lambda_events.sqs_event(records),
            request_id=str(uuid.uuid4()),
            attempt=1,
            route=route,
            message_ids=ids,
            records=len(records),
        )
        self._settle_batch(stack, route, target, queue, messages, records, result)
        return len(messages)

    def _pump_concurrently(
        self, stack: DeployedStack, route: Route, target: ExecutionEnvironment, queue: RouteQueue
    ) -> int:
        """Up to ``concurrency_for`` batches at once, as Lambda's scaled-out pollers run them:
        each in its own execution environment. On a FIFO queue SQS hands out no message of a
        group while one of it is in flight, so at most one batch per message group runs."""
        batches: list[tuple[list[dict[str, Any]], list[dict[str, Any]]]] = []
        in_flight_groups: set[str] = set()
        for _ in range(self.delivery.concurrency_for(route, target)):
            batch = self._collect(stack, route, queue)
            if not batch.messages:
                break
            if route.fifo or queue.fifo:
                groups = {_group(m) for m in batch.messages}
                if groups & in_flight_groups:  # SQS should not have: say so, run it anyway
                    self.delivery.warn(
                        stack,
                        route,
                        target,
                        "SQS handed out a message group already in flight",
                        message_ids=tuple(m["MessageId"] for m in batch.messages),
                        groups=sorted(groups & in_flight_groups),
                    )
                in_flight_groups |= groups
            records = self._received(stack, route, target, queue, batch)
            batches.append((batch.messages, records))
        calls = [
            Call(
                event=lambda_events.sqs_event(records),
                request_id=str(uuid.uuid4()),
                message_ids=tuple(m["MessageId"] for m in messages),
                records=len(records),
            )
            for messages, records in batches
        ]
        for index, result in self.delivery.invoke_concurrently(target, calls, route=route):
            messages, records = batches[index]
            self._settle_batch(stack, route, target, queue, messages, records, result)
        return sum(len(messages) for messages, _ in batches)

    def _received(
        self,
        stack: DeployedStack,
        route: Route,
        target: ExecutionEnvironment,
        queue: RouteQueue,
        batch: _Batch,
    ) -> list[dict[str, Any]]:
        """Trace and count a received batch; its records in Lambda's shape."""
        self._trace_receive(stack, route, target, queue, batch, route.fifo or queue.fifo)
        self.delivery.count(messages_received=len(batch.messages))
        return [self._record(m, route, queue) for m in batch.messages]

    def _settle_batch(
        self,
        stack: DeployedStack,
        route: Route,
        target: ExecutionEnvironment,
        queue: RouteQueue,
        messages: list[dict[str, Any]],
        records: list[dict[str, Any]],
        result: InvocationResult,
    ) -> None:
        """Lambda's handling of an invocation's outcome: delete what succeeded, leave the
        failed records in flight until their visibility timeout."""
        fifo = route.fifo or queue.fifo
        failed, reason = self._batch_failures(stack, route, target, result, records)
        if fifo and failed:
            self._check_fifo_order(stack, route, target, records, failed)
        succeeded = [m for m in messages if m["MessageId"] not in failed]
        returned = [m for m in messages if m["MessageId"] in failed]
        if succeeded:
            self.delivery.queues.delete(stack, route, queue, target, succeeded)
        if returned:
            self._return_to_queue(stack, route, queue, target, returned, reason)
        self.delivery.count(records_processed=len(succeeded))
        self.delivery.count_failed(target, len(returned))

    def _trace_receive(
        self,
        stack: DeployedStack,
        route: Route,
        target: ExecutionEnvironment,
        queue: RouteQueue,
        batch: _Batch,
        fifo: bool,
    ) -> None:
        details: dict[str, Any] = {
            "route_kind": "sqs",
            "queue": queue.name,
            "records": len(batch.messages),
            "batch_size": route.batch_size,
            "receives": batch.receives,
        }
        if fifo:
            details["groups"] = sorted(
                {str(m.get("Attributes", {}).get("MessageGroupId")) for m in batch.messages}
            )
        ids = tuple(m["MessageId"] for m in batch.messages)
        self.delivery.trace(
            "receive", stack, route, target, ids, duration_ms=batch.duration_ms, details=details
        )

    def _collect(self, stack: DeployedStack, route: Route, queue: RouteQueue) -> _Batch:
        """Receive up to batch_size messages within the batching window; a batch that is not
        full is held (empty result) until its window has elapsed."""
        started = time.perf_counter()
        key = (stack.name, route.source)
        held = self._held.pop(key, None)
        clock = self.delivery.clock
        window_start = held.window_start if held else clock()
        target = max(1, route.batch_size)
        window = max(0, route.batching_window_s)
        messages: list[dict[str, Any]] = held.messages if held else []
        receives = held.receives if held else 0
        while len(messages) < target:
            received = self.delivery.queues.receive(stack, route, queue, target - len(messages))
            receives += 1
            messages.extend(received)
            if not received or window == 0 or clock() - window_start >= window:
                break
        if messages and len(messages) < target and window and clock() - window_start < window:
            self._held[key] = _Held(messages, window_start, receives)
            if clock is self.delivery.sandbox_clock:
                self.delivery.sandbox_clock.schedule(window_start + window)
            return _Batch([], receives, (time.perf_counter() - started) * 1000)
        return _Batch(messages, receives, (time.perf_counter() - started) * 1000)

    def _record(self, message: dict[str, Any], route: Route, queue: RouteQueue) -> dict[str, Any]:
        sequence_number = None
        if (route.fifo or queue.fifo) and "SequenceNumber" not in message.get("Attributes", {}):
            # moto only numbers messages sent with an explicit deduplication id.
            sequence_number = self._sequence_numbers.setdefault(
                message["MessageId"], f"{_FIFO_SEQUENCE_START + len(self._sequence_numbers)}"
            )
        return lambda_events.sqs_record(
            message,
            queue_arn=route.queue_arn or queue.arn,
            region=self.delivery.region,
            sequence_number=sequence_number,
        )

    def _batch_failures(
        self,
        stack: DeployedStack,
        route: Route,
        target: ExecutionEnvironment,
        result: InvocationResult,
        records: list[dict[str, Any]],
    ) -> tuple[set[str], str]:
        """The ids of the records that go back to the queue, and why (Lambda's rules)."""
        every = {str(r["messageId"]) for r in records}
        if result.error is not None:
            return every, f"function error {result.error.type}"
        response = result.response
        entries = response.get("batchItemFailures") if isinstance(response, dict) else None
        if not route.report_batch_item_failures:
            if isinstance(entries, list) and entries:
                problem = (
                    "the handler returned batchItemFailures but the event source mapping lacks "
                    "ReportBatchItemFailures: AWS ignores them and deletes the whole batch"
                )
                self.delivery.warn(stack, route, target, problem, records=len(records))
                if self.delivery.fail_unflagged_batch_failures:
                    return every, "batchItemFailures without ReportBatchItemFailures"
            return set(), ""
        if response is None:
            return set(), ""  # a null response: complete success
        if not isinstance(response, dict):
            return self._invalid(stack, route, target, every, response)
        if entries is None or entries == []:
            return set(), ""  # no, null or empty batchItemFailures: complete success
        if not isinstance(entries, list):
            return self._invalid(stack, route, target, every, response)
        failed: set[str] = set()
        for entry in entries:
            identifier = entry.get("itemIdentifier") if isinstance(entry, dict) else None
            if not isinstance(identifier, str) or identifier not in every:
                return self._invalid(stack, route, target, every, entry)
            failed.add(identifier)
        return failed, "batch item failure"

    def _invalid(
        self,
        stack: DeployedStack,
        route: Route,
        target: ExecutionEnvironment,
        every: set[str],
        what: Any,
    ) -> tuple[set[str], str]:
        problem = (
            f"invalid batch response {json.dumps(what)[:200]}: Lambda fails the whole batch "
            "(itemIdentifier must be the messageId of a record of the batch)"
        )
        self.delivery.warn(stack, route, target, problem)
        return every, "invalid batchItemFailures"

    def _check_fifo_order(
        self,
        stack: DeployedStack,
        route: Route,
        target: ExecutionEnvironment,
        records: list[dict[str, Any]],
        failed: set[str],
    ) -> None:
        """A record reported successful after a failed one of its group breaks the group's
        order: Lambda deletes it all the same. Say so."""
        blocked: dict[str, str] = {}
        out_of_order: list[str] = []
        for record in records:
            group = str(record["attributes"].get("MessageGroupId"))
            if record["messageId"] in failed:
                blocked.setdefault(group, record["messageId"])
            elif group in blocked:
                out_of_order.append(record["messageId"])
        if out_of_order:
            self.delivery.warn(
                stack,
                route,
                target,
                "FIFO order broken by the handler: records processed after a failed record of "
                "their message group are deleted (report them in batchItemFailures too, e.g. "
                "Powertools' SqsFifoPartialProcessor)",
                message_ids=tuple(out_of_order),
            )

    def _return_to_queue(
        self,
        stack: DeployedStack,
        route: Route,
        queue: RouteQueue,
        target: ExecutionEnvironment,
        messages: list[dict[str, Any]],
        reason: str,
    ) -> None:
        """Failed records stay in flight until the pump has nothing else to do (sandbox
        visibility timeout); then :meth:`settle` makes them visible again."""
        counts = {
            m["MessageId"]: int(m.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
            for m in messages
        }
        parked = self._parked.setdefault(queue.url, [])
        # No earlier than moto's own visible_at (the receive happened before the invocation).
        timeout = max(0, queue.visibility_timeout)
        due = self.delivery.sandbox_clock.now() + timeout
        parked.extend(
            _Parked(m["MessageId"], m["ReceiptHandle"], stack.name, route, due) for m in messages
        )
        if timeout:
            self.delivery.sandbox_clock.schedule(due)
        details: dict[str, Any] = {
            "queue": queue.name,
            "reason": reason,
            "receive_counts": counts,
            "visibility_timeout_s": timeout,
        }
        if queue.max_receive_count is not None:
            details["max_receive_count"] = queue.max_receive_count
            details["dead_letter_queue"] = queue.dlq_name
            exhausted = {mid: n for mid, n in counts.items() if n >= queue.max_receive_count}
            if exhausted and queue.dlq_url:
                self.delivery.queues.at_risk.setdefault(queue.url, {}).update(exhausted)
                details["next"] = f"dead-letter {sorted(exhausted)}"
        else:
            details["note"] = "no redrive policy: the message is retried until it succeeds"
        self.delivery.trace("retry", stack, route, target, tuple(counts), details=details)

    def settle(self) -> int:
        """Release (``ChangeMessageVisibility`` 0) and trace the parked records whose
        visibility timeout elapsed on the sandbox clock; how many."""
        released = 0
        now = self.delivery.sandbox_clock.now()
        for url, parked in list(self._parked.items()):
            ready = [p for p in parked if p.due <= now]
            if not ready:
                continue
            started = time.perf_counter()
            # moto makes them visible by itself, but keeps a FIFO message group blocked by
            # an expired receipt within the receive that finds it: release explicitly.
            problems = self._release(url, ready)
            details: dict[str, Any] = {
                "queue": self.delivery.queues.name(url),
                "reason": "visibility timeout elapsed",
            }
            if problems:
                details["failed"] = problems
            self.delivery.emit(
                "release",
                stack=ready[0].stack,
                route=ready[0].route,
                message_ids=tuple(p.message_id for p in ready),
                duration_ms=(time.perf_counter() - started) * 1000,
                details=details,
            )
            released += len(ready)
            waiting = [p for p in parked if p.due > now]
            if waiting:
                self._parked[url] = waiting
            else:
                del self._parked[url]
        self.delivery.count(released=released)
        return released

    def next_due(self) -> float | None:
        """The earliest sandbox time a message of a route queue becomes receivable: a parked
        record's visibility end, or (read from moto's backend in this process) any in-flight
        or delayed message's."""
        dues = [p.due for parked in self._parked.values() for p in parked]
        # Held (a batching window) and parked messages are this poller's to time.
        mine = {m["MessageId"] for h in self._held.values() for m in h.messages}
        mine.update(p.message_id for parked in self._parked.values() for p in parked)
        dues.extend(moto_due_times(self.delivery, exclude=mine))
        now = self.delivery.sandbox_clock.now()
        future = [due for due in dues if due > now]
        return min(future) if future else None

    def _release(self, url: str, parked: list[_Parked]) -> list[Any]:
        problems: list[Any] = []
        for chunk in chunks(parked, SQS_BATCH):
            entries = [
                {"Id": str(n), "ReceiptHandle": p.receipt_handle, "VisibilityTimeout": 0}
                for n, p in enumerate(chunk)
            ]
            try:
                response = self.delivery.sqs.change_message_visibility_batch(
                    QueueUrl=url, Entries=entries
                )
            except (ClientError, BotoCoreError) as exc:
                problems.append(str(exc))
                continue
            # Already deleted (a late redelivery succeeded): nothing to release.
            problems.extend(response.get("Failed", []))
        return problems


def _group(message: dict[str, Any]) -> str:
    return str(message.get("Attributes", {}).get("MessageGroupId"))


def moto_due_times(
    delivery: Delivery, *, exclude: set[str] | frozenset[str] = frozenset()
) -> list[float]:
    """When each invisible message of the deployment's SQS route queues becomes receivable
    (epoch seconds): in flight (``visible_at``) or delayed (``DelaySeconds``). Read from moto's
    in-process backend (the sandbox server and ``mock_aws`` run in this process); empty when
    moto is not importable. ``exclude``: message ids the poller times itself."""
    try:
        from moto.sqs.models import sqs_backends
    except ImportError:  # pragma: no cover - moto is a sandbox dependency
        return []
    urls = {
        route.queue_url
        for stack in delivery.deployment.stacks.values()
        for route in stack.routes
        if route.queue_url
    }
    now_ms = delivery.sandbox_clock.now() * 1000
    dues: list[float] = []
    for url in urls:
        parts = url.rstrip("/").rsplit("/", 2)
        if len(parts) != 3:
            continue
        account, name = parts[1], parts[2]
        try:
            queue = sqs_backends[account][delivery.region].queues.get(name)
        except (KeyError, TypeError):
            continue
        if queue is None:
            continue
        for message in list(getattr(queue, "_messages", [])):
            if message.id in exclude:
                continue
            for moment in (message.visible_at, message.delayed_until):
                if moment and moment > now_ms:
                    dues.append(moment / 1000)
    return dues
