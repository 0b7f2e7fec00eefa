"""The DynamoDB Streams event source mapping (``Route(kind="dynamodb-streams")``), as
Lambda's shard poller runs it: the semantics of :mod:`~conveyor.sandbox.sources.shards`
(shared with Kinesis: per-shard order, ``FilterCriteria``, bisect on error,
``ReportBatchItemFailures`` checkpointing, bounded retries and record age, SQS/S3 on-failure
destinations with Lambda's ``DDBStreamBatchInfo`` record).

moto keeps the stream (one shard per table, INSERT/MODIFY/REMOVE with the view type's
images, sequence numbers, TRIM_HORIZON/LATEST/AFTER_SEQUENCE_NUMBER iterators); the poller
reads it through the ``dynamodbstreams`` API. A new mapping starting at LATEST begins after
the records the shard holds when the poller first sees it (DynamoDB Streams has no
AT_TIMESTAMP). Records are invoked with Lambda's event shape (``eventSourceARN``,
``dynamodb.ApproximateCreationDateTime`` in epoch seconds); ``itemIdentifier`` is the
record's ``dynamodb.SequenceNumber``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from conveyor.sandbox import lambda_events
from conveyor.sandbox.execution import ExecutionEnvironment
from conveyor.sandbox.model import DeployedStack, Route
from conveyor.sandbox.sources.shards import ShardPoller, _Shard

__all__ = ["DynamoDBStreamPoller"]


class DynamoDBStreamPoller(ShardPoller):
    """:class:`~conveyor.sandbox.sources.base.EventSource` of ``kind="dynamodb-streams"``."""

    kind = "dynamodb-streams"

    def _warn_unemulated(self, stack: DeployedStack, route: Route) -> None:
        if route.parallelization_factor > 1 or route.tumbling_window_s:
            self.delivery.warn_once(
                f"dynamodb-streams-unemulated:{stack.name}:{route.source}",
                stack=stack.name,
                route=route,
                problem=(
                    "not emulated: ParallelizationFactor > 1 and tumbling windows (the sandbox "
                    "delivers one batch per shard at a time, without window state)"
                ),
            )

    def _streams(self) -> Any:
        return self.delivery.client("dynamodbstreams")

    def _list_shards(self, route: Route) -> list[str]:
        description = self._streams().describe_stream(StreamArn=route.queue_arn)
        return [str(s["ShardId"]) for s in description["StreamDescription"]["Shards"]]

    def _start(self, route: Route) -> tuple[str, float | None]:
        return ("LATEST" if route.starting_position == "LATEST" else "TRIM_HORIZON", None)

    def _get_records(
        self, route: Route, shard: _Shard, start: tuple[str, float | None] | None
    ) -> list[dict[str, Any]]:
        request: dict[str, Any] = {"StreamArn": route.queue_arn, "ShardId": shard.shard_id}
        if shard.checkpoint is not None:
            request.update(
                ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=shard.checkpoint
            )
        else:
            assert start is not None
            if start[0] == "LATEST":
                # Pin LATEST once: the records already in the shard are skipped, the ones
                # written from now on are read (a LATEST iterator per pump would skip them).
                shard.checkpoint = self._last_sequence(route, shard)
                shard.start = ("TRIM_HORIZON", None)
                return self._get_records(route, shard, shard.start)
            request["ShardIteratorType"] = "TRIM_HORIZON"
        streams = self._streams()
        iterator = streams.get_shard_iterator(**request)["ShardIterator"]
        records: list[dict[str, Any]] = streams.get_records(
            ShardIterator=iterator, Limit=max(1, min(route.batch_size, 1000))
        )["Records"]
        return records

    def _last_sequence(self, route: Route, shard: _Shard) -> str | None:
        streams = self._streams()
        iterator = streams.get_shard_iterator(
            StreamArn=route.queue_arn, ShardId=shard.shard_id, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        last: str | None = None
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            if not page["Records"]:
                break
            last = str(page["Records"][-1]["dynamodb"]["SequenceNumber"])
            iterator = page.get("NextShardIterator")
        return last

    def _sequence(self, record: dict[str, Any]) -> str:
        return str(record["dynamodb"]["SequenceNumber"])

    def _arrival_s(self, record: dict[str, Any]) -> float:
        created = record["dynamodb"].get("ApproximateCreationDateTime")
        if isinstance(created, datetime):
            return created.timestamp()
        return float(created) if created is not None else self.now()

    def _event_record(
        self,
        stack: DeployedStack,
        route: Route,
        target: ExecutionEnvironment,
        shard: _Shard,
        record: dict[str, Any],
    ) -> dict[str, Any]:
        return lambda_events.dynamodb_stream_record(
            record, stream_arn=route.queue_arn, region=self.delivery.region
        )

    def _event_sequence(self, event_record: dict[str, Any]) -> str:
        return str(event_record["dynamodb"]["SequenceNumber"])

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
