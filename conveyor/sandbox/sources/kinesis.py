"""The Kinesis event source mapping (``Route(kind="kinesis")``), as Lambda's shard poller runs it.

moto keeps the stream (shards from the MD5 of the partition key, sequence numbers, every
iterator type) but its own mapping invokes once per record; this poller does what Lambda does
per shard:

- reads up to ``batch_size`` records from the shard's checkpoint (a new mapping from its
  starting position: TRIM_HORIZON, AT_TIMESTAMP, or LATEST = the records put after the
  runtime started), one batch in flight per shard, so order holds per shard;
- records older than ``MaximumRecordAgeInSeconds`` go to the on-failure destination without
  an invocation (``RecordAgeExceeded``);
- a function error with ``BisectBatchOnFunctionError`` splits the batch in two, each half
  retried in order (a bisection does not consume a retry: the sandbox's reading); a batch
  that cannot be split (one record, or no bisect) counts a retry;
- ``ReportBatchItemFailures``: the checkpoint moves to just before the lowest failed
  sequence number and the rest of the batch is retried from there (one retry); an invalid
  response (unknown ``itemIdentifier``...) fails the whole batch;
- after ``MaximumRetryAttempts`` retries the records go to the on-failure destination with
  Lambda's payload (:func:`~conveyor.sandbox.lambda_events.stream_failure_record`): an SQS
  queue gets the shard and sequence range, an S3 bucket the same plus ``payload`` (the
  event, records included) under ``aws/lambda/<mapping id>/<shard>/<yyyy/mm/dd>/...``;
  the checkpoint moves past them: the shard is unblocked.

Retries happen at the next pump (no back-off wait in sandbox time). :meth:`replay` restarts a
mapping from a timestamp (what a new mapping with AT_TIMESTAMP does).
"""

from __future__ import annotations

import json
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from conveyor.sandbox import lambda_events
from conveyor.sandbox.execution import ExecutionEnvironment
from conveyor.sandbox.model import DeployedStack, Route
from conveyor.sandbox.providers.values import arn_service
from conveyor.sandbox.sources.base import Delivery
from conveyor.sandbox.traces import InvocationResult

RETRY_EXHAUSTED = "RetryAttemptsExhausted"
RECORD_AGE_EXCEEDED = "RecordAgeExceeded"


@dataclass
class _Batch:
    records: list[dict[str, Any]]  # GetRecords records, in shard order
    attempts: int = 0  # failed invocations that counted as retries


@dataclass
class _Shard:
    shard_id: str
    checkpoint: str | None = None  # the last sequence number done with
    start: tuple[str, float | None] | None = None  # iterator type + timestamp, until reading
    work: deque[_Batch] = field(default_factory=deque)


class KinesisShardPoller:
    """:class:`~conveyor.sandbox.sources.base.EventSource` of ``kind="kinesis"``."""

    kind = "kinesis"

    def __init__(self, delivery: Delivery, *, now: Callable[[], float] = time.time) -> None:
        self.delivery = delivery
        self.now = now  # wall clock: record ages compare with arrival timestamps
        self._started = now()
        self._shards: dict[tuple[str, str], dict[str, _Shard]] = {}

    # -- public -------------------------------------------------------------------------------

    def replay(self, stack: str, mapping: str, timestamp: float) -> None:
        """Re-read every shard of ``mapping`` (its logical id) from ``timestamp`` (Unix s)."""
        for shard in self._shards.get((stack, mapping), {}).values():
            shard.checkpoint = None
            shard.work.clear()
            shard.start = ("AT_TIMESTAMP", timestamp)

    def checkpoints(self, stack: str, mapping: str) -> dict[str, str | None]:
        return {s.shard_id: s.checkpoint for s in self._shards.get((stack, mapping), {}).values()}

    # -- EventSource ----------------------------------------------------------------------------

    def pump(self, stack: DeployedStack, route: Route, target: ExecutionEnvironment) -> int:
        if route.parallelization_factor > 1 or route.tumbling_window_s:
            self.delivery.warn_once(
                f"kinesis-unemulated:{stack.name}:{route.source}",
                stack=stack.name,
                route=route,
                problem=(
                    "not emulated: ParallelizationFactor > 1 and tumbling windows (the sandbox "
                    "delivers one batch per shard at a time, without window state)"
                ),
            )
        for shard in self._route_shards(stack, route):
            if not shard.work:
                records = self._read(route, shard)
                if not records:
                    continue
                shard.work.append(_Batch(records))
                self.delivery.count(messages_received=len(records))
            return self._deliver(stack, route, target, shard)
        return 0

    def settle(self) -> int:
        return 0  # nothing is held back: retries are the next pump's batch

    # -- reading --------------------------------------------------------------------------------

    def _route_shards(self, stack: DeployedStack, route: Route) -> list[_Shard]:
        known = self._shards.setdefault((stack.name, route.source), {})
        listed = self.delivery.client("kinesis").list_shards(StreamName=_name(route))["Shards"]
        for entry in listed:
            shard_id = entry["ShardId"]
            if shard_id not in known:
                known[shard_id] = _Shard(shard_id, start=self._start(route))
        return [known[s["ShardId"]] for s in listed]

    def _start(self, route: Route) -> tuple[str, float | None]:
        if route.starting_position == "AT_TIMESTAMP":
            return ("AT_TIMESTAMP", route.starting_position_timestamp)
        if route.starting_position == "LATEST":
            return ("AT_TIMESTAMP", self._started)  # what was put once the mapping existed
        return ("TRIM_HORIZON", None)

    def _read(self, route: Route, shard: _Shard) -> list[dict[str, Any]]:
        kinesis = self.delivery.client("kinesis")
        # By name: moto 5.2 loses the stream of an iterator obtained with StreamARN.
        request: dict[str, Any] = {"StreamName": _name(route), "ShardId": shard.shard_id}
        if shard.checkpoint is not None:
            request.update(
                ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                StartingSequenceNumber=shard.checkpoint,
            )
        else:
            assert shard.start is not None
            kind, timestamp = shard.start
            request["ShardIteratorType"] = kind
            if timestamp is not None:
                request["Timestamp"] = datetime.fromtimestamp(timestamp, UTC)
        iterator = kinesis.get_shard_iterator(**request)["ShardIterator"]
        records: list[dict[str, Any]] = kinesis.get_records(
            ShardIterator=iterator, Limit=max(1, route.batch_size)
        )["Records"]
        if records and shard.checkpoint is None:
            shard.start = None
        return records

    # -- delivery ---------------------------------------------------------------------------------

    def _deliver(
        self, stack: DeployedStack, route: Route, target: ExecutionEnvironment, shard: _Shard
    ) -> int:
        batch = shard.work[0]
        taken = len(batch.records)
        expired = self._expired(route, batch.records)
        if expired:
            self._give_up(
                stack,
                route,
                target,
                shard,
                _Batch(expired, batch.attempts),
                RECORD_AGE_EXCEEDED,
                None,
            )
            batch.records = batch.records[len(expired) :]
            if not batch.records:
                shard.work.popleft()
                return taken
        events = [self._event_record(stack, route, target, shard, r) for r in batch.records]
        ids = tuple(e["kinesis"]["sequenceNumber"] for e in events)
        self.delivery.trace(
            "receive",
            stack,
            route,
            target,
            ids,
            details={
                "route_kind": "kinesis",
                "stream": route.queue_url.split(":", 1)[-1],
                "shard": shard.shard_id,
                "records": len(events),
                "first_sequence": ids[0],
                "last_sequence": ids[-1],
                "attempt": batch.attempts + 1,
            },
        )
        result = self.delivery.invoke(
            target,
            lambda_events.kinesis_event(events),
            request_id=str(uuid.uuid4()),
            attempt=batch.attempts + 1,
            route=route,
            message_ids=ids,
            records=len(events),
        )
        failed_at = self._failed_at(stack, route, target, result, ids)
        if failed_at is None:
            self._done(shard, batch.records)
            shard.work.popleft()
            self.delivery.count(records_processed=len(events))
            return taken
        self._done(shard, batch.records[:failed_at])
        self.delivery.count(records_processed=failed_at)
        remaining = batch.records[failed_at:]
        self.delivery.count_failed(target, len(remaining))
        if result.error is not None and route.bisect_batch_on_error and len(remaining) > 1:
            half = len(remaining) // 2
            halves = [
                _Batch(remaining[:half], batch.attempts),
                _Batch(remaining[half:], batch.attempts),
            ]
            shard.work.popleft()
            shard.work.extendleft(reversed(halves))
            self.delivery.trace(
                "retry",
                stack,
                route,
                target,
                ids[failed_at:],
                details={
                    "shard": shard.shard_id,
                    "reason": f"function error {result.error.type}",
                    "bisected": [half, len(remaining) - half],
                },
            )
            return taken
        batch.records = remaining
        batch.attempts += 1
        reason = (
            f"function error {result.error.type}"
            if result.error is not None
            else "batch item failure"
        )
        if 0 <= route.max_retry_attempts < batch.attempts:
            function_error = "Unhandled" if result.error is not None else None
            shard.work.popleft()
            self._give_up(stack, route, target, shard, batch, RETRY_EXHAUSTED, function_error)
            return taken
        self.delivery.trace(
            "retry",
            stack,
            route,
            target,
            tuple(str(r["SequenceNumber"]) for r in remaining),
            details={
                "shard": shard.shard_id,
                "reason": reason,
                "retries": batch.attempts,
                "max_retry_attempts": route.max_retry_attempts,
            },
        )
        return taken

    @staticmethod
    def _done(shard: _Shard, records: list[dict[str, Any]]) -> None:
        """Checkpoint after ``records`` (the first records of the batch in flight)."""
        if records:
            shard.checkpoint = str(records[-1]["SequenceNumber"])

    def _expired(self, route: Route, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if route.max_record_age_s < 0:
            return []
        now = self.now()
        expired: list[dict[str, Any]] = []
        for record in records:  # arrival times only grow along a shard
            if now - record["ApproximateArrivalTimestamp"].timestamp() <= route.max_record_age_s:
                break
            expired.append(record)
        return expired

    def _event_record(
        self,
        stack: DeployedStack,
        route: Route,
        target: ExecutionEnvironment,
        shard: _Shard,
        record: dict[str, Any],
    ) -> dict[str, Any]:
        role = f"arn:aws:iam::{self.delivery.deployment.account_id}:role/{target.spec.name}-role"
        return lambda_events.kinesis_record(
            record,
            shard_id=shard.shard_id,
            stream_arn=route.queue_arn,
            region=self.delivery.region,
            role_arn=role,
        )

    def _failed_at(
        self,
        stack: DeployedStack,
        route: Route,
        target: ExecutionEnvironment,
        result: InvocationResult,
        ids: tuple[str, ...],
    ) -> int | None:
        """The index of the first record to retry, or None (the whole batch succeeded)."""
        if result.error is not None:
            return 0
        response = result.response
        entries = response.get("batchItemFailures") if isinstance(response, dict) else None
        if not route.report_batch_item_failures:
            if isinstance(entries, list) and entries:
                self.delivery.warn(
                    stack,
                    route,
                    target,
                    "the handler returned batchItemFailures but the mapping lacks "
                    "ReportBatchItemFailures: AWS ignores them and checkpoints the whole batch",
                )
            return None
        if response is None or entries is None or entries == []:
            return None
        if not isinstance(entries, list):
            return self._invalid(stack, route, target, response)
        positions = {sequence: index for index, sequence in enumerate(ids)}
        lowest: int | None = None
        for entry in entries:
            identifier = entry.get("itemIdentifier") if isinstance(entry, dict) else None
            if not isinstance(identifier, str) or identifier not in positions:
                return self._invalid(stack, route, target, entry)
            index = positions[identifier]
            lowest = index if lowest is None else min(lowest, index)
        return lowest

    def _invalid(
        self, stack: DeployedStack, route: Route, target: ExecutionEnvironment, what: Any
    ) -> int:
        self.delivery.warn(
            stack,
            route,
            target,
            f"invalid batch response {json.dumps(what)[:200]}: Lambda retries the whole batch "
            "(itemIdentifier must be the sequenceNumber of a record of the batch)",
        )
        return 0

    def _give_up(
        self,
        stack: DeployedStack,
        route: Route,
        target: ExecutionEnvironment,
        shard: _Shard,
        batch: _Batch,
        condition: str,
        function_error: str | None,
    ) -> None:
        events = [self._event_record(stack, route, target, shard, r) for r in batch.records]
        ids = tuple(e["kinesis"]["sequenceNumber"] for e in events)
        shard.checkpoint = ids[-1]
        request_id = str(uuid.uuid4())
        failure = lambda_events.stream_failure_record(
            events,
            shard_id=shard.shard_id,
            stream_arn=route.queue_arn,
            request_id=request_id,
            function_arn=target.spec.arn,
            condition=condition,
            attempts=batch.attempts,  # the failed invocations of these records
            function_error=function_error,
        )
        destination = route.on_failure_arn
        details: dict[str, Any] = {
            "shard": shard.shard_id,
            "condition": condition,
            "records": len(ids),
        }
        if destination is None:
            self.delivery.trace("drop", stack, route, target, ids, details=details)
            self.delivery.count(dropped=len(ids))
            return
        if arn_service(destination) == "s3":
            bucket = destination.rsplit(":", 1)[-1]
            moment = datetime.now(UTC)
            key = (
                f"aws/lambda/{route.mapping_id}/{shard.shard_id}/{moment:%Y/%m/%d}/"
                f"{moment:%Y-%m-%dT%H.%M.%S}-{uuid.uuid4()}"
            )
            body = {**failure, "payload": json.dumps(lambda_events.kinesis_event(events))}
            self.delivery.client("s3").put_object(
                Bucket=bucket, Key=key, Body=json.dumps(body).encode()
            )
            details.update(bucket=bucket, key=key)
        else:
            url = self._queue_url(destination)
            self.delivery.sqs.send_message(QueueUrl=url, MessageBody=json.dumps(failure))
            details["queue"] = destination.rsplit(":", 1)[-1]
        self.delivery.trace("on-failure", stack, route, target, ids, details=details)
        self.delivery.count(on_failure=len(ids))

    def _queue_url(self, arn: str) -> str:
        name = arn.rsplit(":", 1)[-1]
        return str(self.delivery.sqs.get_queue_url(QueueName=name)["QueueUrl"])


def _name(route: Route) -> str:
    return route.queue_arn.rsplit("/", 1)[-1]
