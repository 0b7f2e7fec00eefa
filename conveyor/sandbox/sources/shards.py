"""Lambda's shard poller for stream event sources (Kinesis, DynamoDB Streams): the semantics
both mappings share, with the stream-specific reading and event shapes left to subclasses.

Per shard of a mapping, one batch in flight at a time (order holds per shard):

- reads up to ``batch_size`` records from the shard's checkpoint (a new mapping from its
  starting position);
- ``FilterCriteria``: records that match no filter are consumed without an invocation (the
  checkpoint moves past them; traced as ``filter``); the batch holds the matching ones;
- records older than ``MaximumRecordAgeInSeconds`` go to the on-failure destination without
  an invocation (``RecordAgeExceeded``);
- a function error with ``BisectBatchOnFunctionError`` splits the batch in two, each half
  retried in order (a bisection does not consume a retry: the sandbox's reading); a batch
  that cannot be split (one record, or no bisect) counts a retry;
- ``ReportBatchItemFailures``: the checkpoint moves to just before the lowest failed
  sequence number and the rest of the batch is retried from there (one retry); an invalid
  response (unknown ``itemIdentifier``...) fails the whole batch;
- after ``MaximumRetryAttempts`` retries the records go to the on-failure destination with
  Lambda's invocation record (an SQS queue: the shard and sequence range; an S3 bucket: the
  same plus ``payload``, the event, under ``aws/lambda/<mapping id>/<shard>/<yyyy/mm/dd>/``);
  the checkpoint moves past them: the shard is unblocked.

Retries happen at the next pump (no back-off wait in sandbox time).
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

from conveyor.sandbox.execution import ExecutionEnvironment
from conveyor.sandbox.model import DeployedStack, Route
from conveyor.sandbox.providers.values import arn_service
from conveyor.sandbox.sources.base import Delivery
from conveyor.sandbox.traces import InvocationResult

RETRY_EXHAUSTED = "RetryAttemptsExhausted"
RECORD_AGE_EXCEEDED = "RecordAgeExceeded"


@dataclass
class _Batch:
    records: list[dict[str, Any]]  # the stream's records, in shard order
    attempts: int = 0  # failed invocations that counted as retries
    # The last sequence number read with this batch (records filtered out after the last
    # record of the batch): the checkpoint once the batch is done.
    read_until: str | None = None


@dataclass
class _Shard:
    shard_id: str
    checkpoint: str | None = None  # the last sequence number done with
    start: tuple[str, float | None] | None = None  # iterator type + timestamp, until reading
    work: deque[_Batch] = field(default_factory=deque)


class ShardPoller:
    """The shared poller. Subclasses set ``kind`` and implement the stream-specific hooks:
    :meth:`_list_shards`, :meth:`_get_records`, :meth:`_sequence`, :meth:`_arrival_s`,
    :meth:`_event_record`, :meth:`_event`, :meth:`_failure_record`, and optionally
    :meth:`_start` and :meth:`_filter_view`."""

    kind = ""

    def __init__(self, delivery: Delivery, *, now: Callable[[], float] = time.time) -> None:
        self.delivery = delivery
        self.now = now  # wall clock: record ages compare with arrival timestamps
        self._started = now()
        self._shards: dict[tuple[str, str], dict[str, _Shard]] = {}
        self._patterns: dict[str, list[Any]] = {}

    # -- public -------------------------------------------------------------------------------

    def checkpoints(self, stack: str, mapping: str) -> dict[str, str | None]:
        return {s.shard_id: s.checkpoint for s in self._shards.get((stack, mapping), {}).values()}

    # -- EventSource ----------------------------------------------------------------------------

    def pump(self, stack: DeployedStack, route: Route, target: ExecutionEnvironment) -> int:
        self._warn_unemulated(stack, route)
        for shard in self._route_shards(stack, route):
            if not shard.work:
                records = self._read(route, shard)
                if not records:
                    continue
                self.delivery.count(messages_received=len(records))
                kept = self._filtered(stack, route, target, shard, records)
                if not kept:
                    return len(records)
                shard.work.append(kept)
            return self._deliver(stack, route, target, shard)
        return 0

    def settle(self) -> int:
        return 0  # nothing is held back: retries are the next pump's batch

    # -- hooks ------------------------------------------------------------------------------------

    def _warn_unemulated(self, stack: DeployedStack, route: Route) -> None:
        del stack, route

    def _list_shards(self, route: Route) -> list[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _get_records(
        self, route: Route, shard: _Shard, start: tuple[str, float | None] | None
    ) -> list[dict[str, Any]]:  # pragma: no cover - abstract
        """Up to ``batch_size`` records after ``shard.checkpoint`` (or from ``start``)."""
        raise NotImplementedError

    def _sequence(self, record: dict[str, Any]) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def _arrival_s(self, record: dict[str, Any]) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def _event_record(
        self,
        stack: DeployedStack,
        route: Route,
        target: ExecutionEnvironment,
        shard: _Shard,
        record: dict[str, Any],
    ) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _event(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        return {"Records": records}

    def _event_sequence(self, event_record: dict[str, Any]) -> str:  # pragma: no cover
        raise NotImplementedError

    def _failure_record(
        self,
        events: list[dict[str, Any]],
        *,
        shard_id: str,
        route: Route,
        request_id: str,
        function_arn: str,
        condition: str,
        attempts: int,
        function_error: str | None,
    ) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _start(self, route: Route) -> tuple[str, float | None]:
        return ("TRIM_HORIZON", None)

    def _filter_view(self, event_record: dict[str, Any]) -> dict[str, Any]:
        """What the filter patterns are matched against (the event record by default)."""
        return event_record

    # -- reading --------------------------------------------------------------------------------

    def _route_shards(self, stack: DeployedStack, route: Route) -> list[_Shard]:
        known = self._shards.setdefault((stack.name, route.source), {})
        listed = self._list_shards(route)
        for shard_id in listed:
            if shard_id not in known:
                known[shard_id] = _Shard(shard_id, start=self._start(route))
        return [known[s] for s in listed]

    def _read(self, route: Route, shard: _Shard) -> list[dict[str, Any]]:
        records = self._get_records(route, shard, None if shard.checkpoint else shard.start)
        if records and shard.checkpoint is None:
            shard.start = None
        return records

    def _filtered(
        self,
        stack: DeployedStack,
        route: Route,
        target: ExecutionEnvironment,
        shard: _Shard,
        records: list[dict[str, Any]],
    ) -> _Batch | None:
        """The batch of the records that match the mapping's filters (all without filters);
        None when none does (the checkpoint then moves past them)."""
        last = self._sequence(records[-1])
        if not route.filters:
            return _Batch(records, read_until=last)
        patterns = self._compiled(route)
        kept = [
            record
            for record in records
            if any(
                pattern.matches_event(
                    self._filter_view(self._event_record(stack, route, target, shard, record))
                )
                for pattern in patterns
            )
        ]
        dropped = [self._sequence(r) for r in records if r not in kept]
        if dropped:
            self.delivery.trace(
                "filter",
                stack,
                route,
                target,
                tuple(dropped),
                details={
                    "shard": shard.shard_id,
                    "records": len(dropped),
                    "reason": "no filter criteria matched: not invoked",
                },
            )
            self.delivery.count(records_processed=len(dropped))
        if not kept:
            shard.checkpoint = last
            return None
        return _Batch(kept, read_until=last)

    def _compiled(self, route: Route) -> list[Any]:
        key = f"{route.source}:{route.mapping_id}"
        if key not in self._patterns:
            from moto.events.models import EventPattern

            self._patterns[key] = [EventPattern.load(p) for p in route.filters]
        return self._patterns[key]

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
                self._done(shard, [], batch.read_until)
                return taken
        events = [self._event_record(stack, route, target, shard, r) for r in batch.records]
        ids = tuple(self._event_sequence(e) for e in events)
        self.delivery.trace(
            "receive",
            stack,
            route,
            target,
            ids,
            details={
                "route_kind": self.kind,
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
            self._event(events),
            request_id=str(uuid.uuid4()),
            attempt=batch.attempts + 1,
            route=route,
            message_ids=ids,
            records=len(events),
        )
        failed_at = self._failed_at(stack, route, target, result, ids)
        if failed_at is None:
            self._done(shard, batch.records, batch.read_until)
            shard.work.popleft()
            self.delivery.count(records_processed=len(events))
            return taken
        self._done(shard, batch.records[:failed_at], None)
        self.delivery.count(records_processed=failed_at)
        remaining = batch.records[failed_at:]
        self.delivery.count_failed(target, len(remaining))
        if result.error is not None and route.bisect_batch_on_error and len(remaining) > 1:
            half = len(remaining) // 2
            halves = [
                _Batch(remaining[:half], batch.attempts),
                _Batch(remaining[half:], batch.attempts, batch.read_until),
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
            self._done(shard, [], batch.read_until)
            return taken
        self.delivery.trace(
            "retry",
            stack,
            route,
            target,
            tuple(self._sequence(r) for r in remaining),
            details={
                "shard": shard.shard_id,
                "reason": reason,
                "retries": batch.attempts,
                "max_retry_attempts": route.max_retry_attempts,
            },
        )
        return taken

    def _done(self, shard: _Shard, records: list[dict[str, Any]], read_until: str | None) -> None:
        """Checkpoint after ``records`` (the first records of the batch in flight), or after
        ``read_until`` when the whole batch is done (filtered records after it)."""
        candidates = [self._sequence(records[-1])] if records else []
        if read_until is not None:
            candidates.append(read_until)
        if shard.checkpoint is not None:
            candidates.append(shard.checkpoint)
        if candidates:
            shard.checkpoint = max(candidates, key=int)

    def _expired(self, route: Route, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if route.max_record_age_s < 0:
            return []
        now = self.now()
        expired: list[dict[str, Any]] = []
        for record in records:  # arrival times only grow along a shard
            if now - self._arrival_s(record) <= route.max_record_age_s:
                break
            expired.append(record)
        return expired

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
            "(itemIdentifier must be the sequence number of a record of the batch)",
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
        ids = tuple(self._event_sequence(e) for e in events)
        shard.checkpoint = max(
            [ids[-1], *([shard.checkpoint] if shard.checkpoint else [])], key=int
        )
        request_id = str(uuid.uuid4())
        failure = self._failure_record(
            events,
            shard_id=shard.shard_id,
            route=route,
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
            body = {**failure, "payload": json.dumps(self._event(events))}
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
