"""The MSK event source mapping (``Route(kind="kafka")``) against the local Kafka-protocol
broker, as Lambda's poller runs it:

- it consumes the mapping's topic in the mapping's consumer group (``ConsumerGroupId``;
  offsets committed to the broker: a new runtime resumes where the group stopped), from
  ``StartingPosition`` when the group has no offset (TRIM_HORIZON: the beginning, LATEST:
  what is produced once the mapping exists);
- one batch in flight per partition, in offset order (order holds per partition, hence per
  key); the event groups records by ``topic-partition`` with base64 keys and values and
  headers as lists of byte values;
- success commits the offset after the batch; ``ReportBatchItemFailures`` commits before the
  lowest failed offset and retries the rest (a retry); a function error with
  ``BisectBatchOnFunctionError`` splits the batch (no retry consumed); after
  ``MaximumRetryAttempts`` the records go to the on-failure destination (SQS: the offset
  range, :func:`~conveyor.sandbox.lambda_events.kafka_failure_record`) and the partition
  moves on; ``MaximumRecordAgeInSeconds`` sends older records there without an invocation.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from conveyor.sandbox import lambda_events
from conveyor.sandbox.execution import ExecutionEnvironment
from conveyor.sandbox.model import DeployedStack, Route
from conveyor.sandbox.sources.base import Delivery
from conveyor.sandbox.traces import InvocationResult

RETRY_EXHAUSTED = "RetryAttemptsExhausted"
RECORD_AGE_EXCEEDED = "RecordAgeExceeded"
_FETCH_TIMEOUT_S = 5.0


@dataclass
class _Batch:
    records: list[dict[str, Any]]
    attempts: int = 0


@dataclass
class _Partition:
    number: int
    next_offset: int  # the next offset to read
    buffered: deque[dict[str, Any]] = field(default_factory=deque)
    work: deque[_Batch] = field(default_factory=deque)


@dataclass
class _Mapping:
    consumer: Any
    topic: str
    partitions: dict[int, _Partition]


class KafkaPartitionPoller:
    """:class:`~conveyor.sandbox.sources.base.EventSource` of ``kind="kafka"``."""

    kind = "kafka"

    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery
        self._mappings: dict[tuple[str, str], _Mapping] = {}

    # -- reading ----------------------------------------------------------------------------

    def _mapping(self, stack: DeployedStack, route: Route) -> _Mapping:
        from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition

        key = (stack.name, route.source)
        existing = self._mappings.get(key)
        if existing is not None:
            return existing
        options = route.options
        topic = str(options["topic"])
        consumer = Consumer(
            {
                "bootstrap.servers": options["bootstrap_servers"],
                "group.id": options["consumer_group"],
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                # A short fetch long-poll: the watermark queries of every pump wait behind it.
                "fetch.wait.max.ms": 10,
                "log_level": 3,
            }
        )
        metadata = consumer.list_topics(topic, timeout=10)
        numbers = sorted(metadata.topics[topic].partitions)
        committed = consumer.committed([TopicPartition(topic, n) for n in numbers], timeout=10)
        partitions: dict[int, _Partition] = {}
        assignment = []
        for tp in committed:
            offset = tp.offset
            if offset < 0:
                start = (
                    OFFSET_BEGINNING if route.starting_position == "TRIM_HORIZON" else OFFSET_END
                )
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, tp.partition), timeout=10, cached=False
                )
                offset = low if start == OFFSET_BEGINNING else high
            partitions[tp.partition] = _Partition(tp.partition, offset)
            assignment.append(TopicPartition(topic, tp.partition, offset))
        consumer.assign(assignment)
        mapping = _Mapping(consumer, topic, partitions)
        self._mappings[key] = mapping
        return mapping

    def _fetch(self, mapping: _Mapping) -> None:
        """Buffer every record the partitions hold beyond what is buffered already."""
        from confluent_kafka import TopicPartition

        wanted: dict[int, int] = {}
        for partition in mapping.partitions.values():
            _, high = mapping.consumer.get_watermark_offsets(
                TopicPartition(mapping.topic, partition.number), timeout=10, cached=False
            )
            seen = (
                partition.buffered[-1]["offset"] + 1
                if partition.buffered
                else partition.next_offset
            )
            if high > seen:
                wanted[partition.number] = high
        deadline = time.monotonic() + _FETCH_TIMEOUT_S
        while wanted and time.monotonic() < deadline:
            for message in mapping.consumer.consume(num_messages=500, timeout=0.2):
                if message.error() is not None:
                    continue
                partition = mapping.partitions[message.partition()]
                partition.buffered.append(
                    lambda_events.kafka_record(
                        topic=message.topic(),
                        partition=message.partition(),
                        offset=message.offset(),
                        timestamp_ms=message.timestamp()[1],
                        key=message.key(),
                        value=message.value(),
                        headers=message.headers() or [],
                    )
                )
                if message.offset() + 1 >= wanted.get(message.partition(), 0):
                    wanted.pop(message.partition(), None)

    # -- EventSource --------------------------------------------------------------------------

    def pump(self, stack: DeployedStack, route: Route, target: ExecutionEnvironment) -> int:
        mapping = self._mapping(stack, route)
        if not any(p.work or p.buffered for p in mapping.partitions.values()):
            self._fetch(mapping)
        for partition in mapping.partitions.values():
            if not partition.work and partition.buffered:
                take = [
                    partition.buffered.popleft()
                    for _ in range(min(max(1, route.batch_size), len(partition.buffered)))
                ]
                partition.work.append(_Batch(take))
                self.delivery.count(messages_received=len(take))
            if partition.work:
                return self._deliver(stack, route, target, mapping, partition)
        return 0

    def settle(self) -> int:
        return 0

    def close(self) -> None:
        for mapping in self._mappings.values():
            mapping.consumer.close()
        self._mappings.clear()

    # -- delivery -------------------------------------------------------------------------------

    def _commit(
        self, mapping: _Mapping, partition: _Partition, records: list[dict[str, Any]]
    ) -> None:
        from confluent_kafka import TopicPartition

        if not records:
            return
        partition.next_offset = int(records[-1]["offset"]) + 1
        mapping.consumer.commit(
            offsets=[TopicPartition(mapping.topic, partition.number, partition.next_offset)],
            asynchronous=False,
        )

    def _deliver(
        self,
        stack: DeployedStack,
        route: Route,
        target: ExecutionEnvironment,
        mapping: _Mapping,
        partition: _Partition,
    ) -> int:
        batch = partition.work[0]
        taken = len(batch.records)
        if route.max_record_age_s >= 0:
            # The record's timestamp is on the real clock (the producer's librdkafka or the
            # broker stamps it): its age is measured on the sandbox clock, jumps included.
            clock = self.delivery.sandbox_clock
            now_s = clock.now()
            expired = [
                r
                for r in batch.records
                if now_s - clock.sandbox_time_of(r["timestamp"] / 1000) > route.max_record_age_s
            ]
            if expired and expired == batch.records[: len(expired)]:
                self._give_up(
                    stack,
                    route,
                    target,
                    mapping,
                    partition,
                    _Batch(expired),
                    RECORD_AGE_EXCEEDED,
                    None,
                )
                batch.records = batch.records[len(expired) :]
                if not batch.records:
                    partition.work.popleft()
                    return taken
        ids = tuple(f"{r['topic']}-{r['partition']}@{r['offset']}" for r in batch.records)
        self.delivery.trace(
            "receive",
            stack,
            route,
            target,
            ids,
            details={
                "route_kind": "kafka",
                "partition": f"{mapping.topic}-{partition.number}",
                "records": len(ids),
                "first_offset": batch.records[0]["offset"],
                "last_offset": batch.records[-1]["offset"],
                "attempt": batch.attempts + 1,
            },
        )
        result = self.delivery.invoke(
            target,
            lambda_events.kafka_event(
                batch.records,
                cluster_arn=route.queue_arn,
                bootstrap_servers=str(route.options["bootstrap_servers"]),
            ),
            request_id=str(uuid.uuid4()),
            attempt=batch.attempts + 1,
            route=route,
            message_ids=ids,
            records=len(ids),
        )
        failed_at = self._failed_at(stack, route, target, result, batch.records)
        if failed_at is None:
            self._commit(mapping, partition, batch.records)
            partition.work.popleft()
            self.delivery.count(records_processed=len(ids))
            return taken
        self._commit(mapping, partition, batch.records[:failed_at])
        self.delivery.count(records_processed=failed_at)
        remaining = batch.records[failed_at:]
        self.delivery.count_failed(target, len(remaining))
        if result.error is not None and route.bisect_batch_on_error and len(remaining) > 1:
            half = len(remaining) // 2
            partition.work.popleft()
            partition.work.extendleft(
                [_Batch(remaining[half:], batch.attempts), _Batch(remaining[:half], batch.attempts)]
            )
            self.delivery.trace(
                "retry",
                stack,
                route,
                target,
                ids[failed_at:],
                details={
                    "reason": f"function error {result.error.type}",
                    "bisected": [half, len(remaining) - half],
                },
            )
            return taken
        batch.records = remaining
        batch.attempts += 1
        if 0 <= route.max_retry_attempts < batch.attempts:
            partition.work.popleft()
            function_error = "Unhandled" if result.error is not None else None
            self._give_up(
                stack, route, target, mapping, partition, batch, RETRY_EXHAUSTED, function_error
            )
            return taken
        self.delivery.trace(
            "retry",
            stack,
            route,
            target,
            ids[failed_at:],
            details={
                "reason": f"function error {result.error.type}"
                if result.error
                else "batch item failure",
                "retries": batch.attempts,
                "max_retry_attempts": route.max_retry_attempts,
            },
        )
        return taken

    def _failed_at(
        self,
        stack: DeployedStack,
        route: Route,
        target: ExecutionEnvironment,
        result: InvocationResult,
        records: list[dict[str, Any]],
    ) -> int | None:
        if result.error is not None:
            return 0
        response = result.response
        entries = response.get("batchItemFailures") if isinstance(response, dict) else None
        if not route.report_batch_item_failures or not entries:
            if entries and not route.report_batch_item_failures:
                self.delivery.warn(
                    stack,
                    route,
                    target,
                    "the handler returned batchItemFailures but the mapping lacks "
                    "ReportBatchItemFailures: Lambda ignores them and commits the whole batch",
                )
            return None
        positions = {
            (f"{r['topic']}-{r['partition']}", int(r["offset"])): i for i, r in enumerate(records)
        }
        lowest: int | None = None
        for entry in entries if isinstance(entries, list) else [entries]:
            identifier = entry.get("itemIdentifier") if isinstance(entry, dict) else None
            key = (
                (identifier.get("partition"), identifier.get("offset"))
                if isinstance(identifier, dict)
                else None
            )
            if key not in positions:
                self.delivery.warn(
                    stack,
                    route,
                    target,
                    f"invalid batch response {json.dumps(entry)[:200]}: Lambda retries the whole "
                    "batch (itemIdentifier must be {partition: topic-p, offset: n} of the batch)",
                )
                return 0
            assert key is not None
            index = positions[key]
            lowest = index if lowest is None else min(lowest, index)
        return lowest

    def _give_up(
        self,
        stack: DeployedStack,
        route: Route,
        target: ExecutionEnvironment,
        mapping: _Mapping,
        partition: _Partition,
        batch: _Batch,
        condition: str,
        function_error: str | None,
    ) -> None:
        self._commit(mapping, partition, batch.records)
        ids = tuple(f"{r['topic']}-{r['partition']}@{r['offset']}" for r in batch.records)
        details: dict[str, Any] = {"condition": condition, "records": len(ids)}
        destination = route.on_failure_arn
        if destination is None:
            self.delivery.trace("drop", stack, route, target, ids, details=details)
            self.delivery.count(dropped=len(ids))
            return
        failure = lambda_events.kafka_failure_record(
            batch.records,
            cluster_arn=route.queue_arn,
            bootstrap_servers=str(route.options["bootstrap_servers"]),
            request_id=str(uuid.uuid4()),
            function_arn=target.spec.arn,
            condition=condition,
            attempts=batch.attempts,
            function_error=function_error,
        )
        if destination.split(":")[2] == "s3":
            bucket = destination.rsplit(":", 1)[-1]
            key = f"aws/lambda/{route.mapping_id}/{mapping.topic}-{partition.number}/{uuid.uuid4()}"
            body = {
                **failure,
                "payload": json.dumps(
                    lambda_events.kafka_event(
                        batch.records,
                        cluster_arn=route.queue_arn,
                        bootstrap_servers=str(route.options["bootstrap_servers"]),
                    )
                ),
            }
            self.delivery.client("s3").put_object(
                Bucket=bucket, Key=key, Body=json.dumps(body).encode()
            )
            details.update(bucket=bucket, key=key)
        else:
            name = destination.rsplit(":", 1)[-1]
            url = self.delivery.sqs.get_queue_url(QueueName=name)["QueueUrl"]
            self.delivery.sqs.send_message(QueueUrl=url, MessageBody=json.dumps(failure))
            details["queue"] = name
        self.delivery.trace("on-failure", stack, route, target, ids, details=details)
        self.delivery.count(on_failure=len(ids))
