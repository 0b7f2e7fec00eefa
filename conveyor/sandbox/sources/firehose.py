"""A Firehose delivery stream reading a Kinesis stream into S3 (``Route(kind="firehose")``).

It reads every shard of the source stream from its own checkpoint (TRIM_HORIZON first, like
a new delivery stream), buffers the records' data, and writes one object when the buffer
reaches ``SizeInMBs`` or when ``IntervalInSeconds`` (default 300) has elapsed on the sandbox
clock since its first record (the pump advances the clock to it when idle): the data
concatenated as sent (Firehose adds no delimiter), GZIP-compressed when ``CompressionFormat``
is GZIP (``.gz``), under ``Prefix`` with its ``!{timestamp:…}`` expressions evaluated in UTC, named
``<stream>-1-yyyy-MM-dd-HH-mm-ss-<uuid>``, with SSE-KMS when a key is configured.
"""

from __future__ import annotations

import gzip
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from conveyor.sandbox.execution import ExecutionEnvironment
from conveyor.sandbox.model import DeployedStack, Route
from conveyor.sandbox.sources.base import Delivery

_TIMESTAMP = re.compile(r"!\{timestamp:([^}]*)\}")
# Java DateTimeFormatter letters Firehose prefixes use -> strftime.
_JAVA_TO_STRFTIME = (("yyyy", "%Y"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H"), ("mm", "%M"))


def evaluate_prefix(prefix: str, moment: datetime) -> str:
    def replace(match: re.Match[str]) -> str:
        pattern = match.group(1)
        for java, strftime in _JAVA_TO_STRFTIME:
            pattern = pattern.replace(java, strftime)
        return moment.strftime(pattern)

    return _TIMESTAMP.sub(replace, prefix)


@dataclass
class _Buffer:
    checkpoints: dict[str, str | None] = field(default_factory=dict)
    data: list[bytes] = field(default_factory=list)
    size: int = 0
    stack: str = ""
    route: Route | None = None
    opened: float = 0.0  # sandbox time of the first record in the buffer


def _interval_s(route: Route) -> float:
    """The stream's ``BufferingHints.IntervalInSeconds`` (Firehose's default: 300)."""
    return float(route.options.get("interval_s", 300))


class FirehoseDelivery:
    """:class:`~conveyor.sandbox.sources.base.EventSource` of ``kind="firehose"`` (no function)."""

    kind = "firehose"
    needs_function = False

    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery
        self._buffers: dict[tuple[str, str], _Buffer] = {}

    def pump(self, stack: DeployedStack, route: Route, target: ExecutionEnvironment) -> int:
        del target  # a delivery stream invokes no function here
        buffer = self._buffers.setdefault((stack.name, route.source), _Buffer())
        buffer.stack, buffer.route = stack.name, route
        kinesis = self.delivery.client("kinesis")
        name = route.queue_arn.rsplit("/", 1)[-1]
        taken = 0
        for shard in kinesis.list_shards(StreamName=name)["Shards"]:
            shard_id = shard["ShardId"]
            checkpoint = buffer.checkpoints.get(shard_id)
            request: dict[str, Any] = {"StreamName": name, "ShardId": shard_id}
            if checkpoint is None:
                request["ShardIteratorType"] = "TRIM_HORIZON"
            else:
                request.update(
                    ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=checkpoint
                )
            iterator = kinesis.get_shard_iterator(**request)["ShardIterator"]
            records = kinesis.get_records(ShardIterator=iterator, Limit=10_000)["Records"]
            if not records:
                continue
            buffer.checkpoints[shard_id] = str(records[-1]["SequenceNumber"])
            if not buffer.data:
                buffer.opened = self.delivery.sandbox_clock.now()
                self.delivery.sandbox_clock.schedule(buffer.opened + _interval_s(route))
            for record in records:
                buffer.data.append(bytes(record["Data"]))
                buffer.size += len(record["Data"])
            taken += len(records)
            self.delivery.trace(
                "receive",
                stack,
                route,
                None,
                tuple(str(r["SequenceNumber"]) for r in records),
                details={"route_kind": "firehose", "shard": shard_id, "records": len(records)},
            )
        self.delivery.count(messages_received=taken)
        if buffer.size >= int(route.options["size_mib"]) * 1024 * 1024:
            self._flush(buffer, "buffer size reached")
        return taken

    def settle(self) -> int:
        """Write every non-empty buffer whose buffering interval elapsed on the sandbox clock."""
        now = self.delivery.sandbox_clock.now()
        for buffer in self._buffers.values():
            route = buffer.route
            if buffer.data and route is not None and now >= buffer.opened + _interval_s(route):
                self._flush(buffer, "buffering interval elapsed")
        return 0

    def next_due(self) -> float | None:
        """When the earliest non-empty buffer's interval elapses (sandbox time)."""
        dues = [
            b.opened + _interval_s(b.route)
            for b in self._buffers.values()
            if b.data and b.route is not None
        ]
        return min(dues, default=None)

    def _flush(self, buffer: _Buffer, reason: str) -> None:
        route = buffer.route
        assert route is not None
        options = route.options
        started = time.perf_counter()
        moment = datetime.now(UTC)
        body = b"".join(buffer.data)
        gzipped = options["compression"] == "GZIP"
        if gzipped:
            body = gzip.compress(body)
        key = (
            f"{evaluate_prefix(options['prefix'], moment)}{options['name']}-1-"
            f"{moment:%Y-%m-%d-%H-%M-%S}-{uuid.uuid4()}{'.gz' if gzipped else ''}"
        )
        request: dict[str, Any] = {"Bucket": options["bucket"], "Key": key, "Body": body}
        if options.get("kms_key"):
            request.update(ServerSideEncryption="aws:kms", SSEKMSKeyId=options["kms_key"])
        self.delivery.client("s3").put_object(**request)
        records = len(buffer.data)
        self.delivery.emit(
            "deliver",
            stack=buffer.stack,
            route=route,
            duration_ms=(time.perf_counter() - started) * 1000,
            details={
                "bucket": options["bucket"],
                "key": key,
                "records": records,
                "bytes": len(body),
                "reason": reason,
            },
        )
        self.delivery.count(records_processed=records)
        buffer.data, buffer.size = [], 0
