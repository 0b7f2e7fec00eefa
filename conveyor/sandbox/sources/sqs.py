"""The SQS event source mapping (``Route(kind="sqs")``), as Lambda's poller runs it.

Batches of up to ``batch_size`` records (the batching window is measured with the injectable
clock; an empty receive closes the window, since nothing else can add messages while the
sandbox is single-threaded), the SQS event in Lambda's shape
(:func:`~conveyor.sandbox.lambda_events.sqs_record`), then ``ReportBatchItemFailures`` as
Lambda applies it. Failed records stay in flight (their message group stays blocked on a FIFO
queue, as in SQS) until nothing else can move, then become visible again (:meth:`settle`):
the visibility timeout elapses in sandbox time. moto's own redrive policy moves a message to
the DLQ on the receive after its ``maxReceiveCount``-th; :class:`~.queues.Queues` checks the
DLQ depth around that receive and reports the move.
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
from conveyor.sandbox.sources.queues import SQS_BATCH, RouteQueue, chunks
from conveyor.sandbox.traces import InvocationResult

_FIFO_SEQUENCE_START = 18_000_000_000_000_000_000


@dataclass
class _Parked:
    message_id: str
    receipt_handle: str
    stack: str
    route: Route


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

    def pump(self, stack: DeployedStack, route: Route, target: ExecutionEnvironment) -> int:
        queue = self.delivery.queues.get(route.queue_url)
        batch = self._collect(stack, route, queue)
        messages = batch.messages
        if not messages:
            return 0
        ids = tuple(m["MessageId"] for m in messages)
        fifo = route.fifo or queue.fifo
        self._trace_receive(stack, route, target, queue, batch, fifo)
        self.delivery.count(messages_received=len(messages))
        records = [self._record(m, route, queue) for m in messages]
        result = self.delivery.invoke(
            target,
            lambda_events.sqs_event(records),
            request_id=str(uuid.uuid4()),
            attempt=1,
            route=route,
            message_ids=ids,
            records=len(records),
        )
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
        return len(messages)

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
        """Receive up to batch_size messages within the batching window."""
        started = time.perf_counter()
        window_start = self.delivery.clock()
        target = max(1, route.batch_size)
        window = max(0, route.batching_window_s)
        messages: list[dict[str, Any]] = []
        receives = 0
        while len(messages) < target:
            received = self.delivery.queues.receive(stack, route, queue, target - len(messages))
            receives += 1
            messages.extend(received)
            if not received or window == 0 or self.delivery.clock() - window_start >= window:
                break
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
        parked.extend(
            _Parked(m["MessageId"], m["ReceiptHandle"], stack.name, route) for m in messages
        )
        details: dict[str, Any] = {"queue": queue.name, "reason": reason, "receive_counts": counts}
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
        """Make every parked record visible again (its visibility timeout elapsed)."""
        released = 0
        for url, parked in list(self._parked.items()):
            started = time.perf_counter()
            problems = self._release(url, parked)
            details: dict[str, Any] = {
                "queue": self.delivery.queues.name(url),
                "reason": "visibility timeout elapsed (sandbox time)",
            }
            if problems:
                details["failed"] = problems
            self.delivery.emit(
                "release",
                stack=parked[0].stack,
                route=parked[0].route,
                message_ids=tuple(p.message_id for p in parked),
                duration_ms=(time.perf_counter() - started) * 1000,
                details=details,
            )
            released += len(parked)
        self._parked.clear()
        self.delivery.count(released=released)
        return released

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
