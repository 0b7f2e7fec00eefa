"""The Kinesis event source mapping (``Route(kind="kinesis")``), as Lambda's shard poller runs it
(the shared semantics live in :mod:`~conveyor.sandbox.sources.shards`).

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

import base64
import json
from datetime import UTC, datetime
from typing import Any

from conveyor.sandbox import lambda_events
from conveyor.sandbox.execution import ExecutionEnvironment
from conveyor.sandbox.model import DeployedStack, Route
from conveyor.sandbox.sources.shards import (
    RECORD_AGE_EXCEEDED,
    RETRY_EXHAUSTED,
    ShardPoller,
    _Shard,
)

__all__ = ["RECORD_AGE_EXCEEDED", "RETRY_EXHAUSTED", "KinesisShardPoller"]


class KinesisShardPoller(ShardPoller):
    """:class:`~conveyor.sandbox.sources.base.EventSource` of ``kind="kinesis"``."""

    kind = "kinesis"

    # -- public -------------------------------------------------------------------------------

    def replay(self, stack: str, mapping: str, timestamp: float) -> None:
        """Re-read every shard of ``mapping`` (its logical id) from ``timestamp`` (Unix s)."""
        for shard in self._shards.get((stack, mapping), {}).values():
            shard.checkpoint = None
            shard.work.clear()
            shard.start = ("AT_TIMESTAMP", timestamp)

    # -- hooks ----------------------------------------------------------------------------------

    def _warn_unemulated(self, stack: DeployedStack, route: Route) -> None:
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

    def _list_shards(self, route: Route) -> list[str]:
        listed = self.delivery.client("kinesis").list_shards(StreamName=_name(route))["Shards"]
        return [str(entry["ShardId"]) for entry in listed]

    def _start(self, route: Route) -> tuple[str, float | None]:
        if route.starting_position == "AT_TIMESTAMP":
            return ("AT_TIMESTAMP", route.starting_position_timestamp)
        if route.starting_position == "LATEST":
            return ("AT_TIMESTAMP", self._started)  # what was put once the mapping existed
        return ("TRIM_HORIZON", None)

    def _get_records(
        self, route: Route, shard: _Shard, start: tuple[str, float | None] | None
    ) -> list[dict[str, Any]]:
        kinesis = self.delivery.client("kinesis")
        # By name: moto 5.2 loses the stream of an iterator obtained with StreamARN.
        request: dict[str, Any] = {"StreamName": _name(route), "ShardId": shard.shard_id}
        if shard.checkpoint is not None:
            request.update(
                ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                StartingSequenceNumber=shard.checkpoint,
            )
        else:
            assert start is not None
            kind, timestamp = start
            request["ShardIteratorType"] = kind
            if timestamp is not None:
                request["Timestamp"] = datetime.fromtimestamp(timestamp, UTC)
        iterator = kinesis.get_shard_iterator(**request)["ShardIterator"]
        records: list[dict[str, Any]] = kinesis.get_records(
            ShardIterator=iterator, Limit=max(1, route.batch_size)
        )["Records"]
        return records

    def _sequence(self, record: dict[str, Any]) -> str:
        return str(record["SequenceNumber"])

    def _arrival_s(self, record: dict[str, Any]) -> float:
        return float(record["ApproximateArrivalTimestamp"].timestamp())

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

    def _event(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        return lambda_events.kinesis_event(records)

    def _event_sequence(self, event_record: dict[str, Any]) -> str:
        return str(event_record["kinesis"]["sequenceNumber"])

    def _filter_view(self, event_record: dict[str, Any]) -> dict[str, Any]:
        """Lambda matches a Kinesis filter's ``data`` against the decoded JSON record."""
        raw = base64.b64decode(event_record["kinesis"]["data"])
        try:
            data: Any = json.loads(raw)
        except ValueError:
            data = raw.decode(errors="replace")
        return {**event_record, "data": data}

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
    ) -> dict[str, Any]:
        return lambda_events.stream_failure_record(
            events,
            shard_id=shard_id,
            stream_arn=route.queue_arn,
            request_id=request_id,
            function_arn=function_arn,
            condition=condition,
            attempts=attempts,
            function_error=function_error,
        )


def _name(route: Route) -> str:
    return route.queue_arn.rsplit("/", 1)[-1]
