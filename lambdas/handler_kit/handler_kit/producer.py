"""Producing to a Kinesis data stream: the partition-key strategy and a PutRecords producer.

Partition keys (Kinesis maps a key to a shard by the MD5 of the key; a shard takes 1 MB/s or
1,000 records/s):

- ``partition_key(entity_id)``: the entity's own id — every record of one entity lands on one
  shard, in order. The default: consumers rely on per-entity order (aggregates, state).
- ``partition_key(entity_id, spread=n)``: a hot entity (one device sending most of the
  traffic) saturates its shard; a suffix ``#0 … #n-1`` spreads it over up to ``n`` shards,
  and order then holds only per suffix. With ``salt`` (e.g. a reading id) the suffix is
  stable for that salt (a retried put lands on the same shard); without it, random.

``PutRecordsProducer`` puts in chunks of at most 500 records / 5 MiB (the API's limits) and
retries only the entries a response reports failed (``ProvisionedThroughputExceeded``,
``InternalFailure``) with exponential back-off and full jitter; what still fails after
``max_attempts`` is returned, never silently dropped.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

MAX_RECORDS_PER_CALL = 500
MAX_BYTES_PER_CALL = 5 * 1024 * 1024
KEY_SEPARATOR = "#"


def partition_key(entity_id: str, *, spread: int = 1, salt: str | None = None) -> str:
    """The partition key of a record of ``entity_id`` (see the module's docstring)."""
    if not entity_id:
        raise ValueError("entity_id must not be empty")
    if spread < 1:
        raise ValueError(f"spread must be at least 1 (got {spread})")
    if spread == 1:
        return entity_id
    if salt is None:
        suffix = random.randrange(spread)  # noqa: S311 - load spreading, not a secret
    else:
        suffix = int.from_bytes(hashlib.sha256(salt.encode()).digest()[:8], "big") % spread
    return f"{entity_id}{KEY_SEPARATOR}{suffix}"


@dataclass(frozen=True)
class Entry:
    partition_key: str
    data: bytes


@dataclass
class PutResult:
    """Sequence numbers by input index, and the entries that still failed (with their error)."""

    sequence_numbers: dict[int, str] = field(default_factory=dict)
    failed: list[tuple[int, Entry, str]] = field(default_factory=list)
    attempts: int = 0


class PutRecordsProducer:
    """Puts records on ``stream_name`` through ``client()`` (a lazy boto3 Kinesis client)."""

    def __init__(
        self,
        client: Callable[[], Any],
        stream_name: str,
        *,
        max_attempts: int = 5,
        base_delay_s: float = 0.05,
        max_delay_s: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.client = client
        self.stream_name = stream_name
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.sleep = sleep
        self.jitter = jitter

    def delay(self, retry: int) -> float:
        """Full jitter: uniform in [0, min(max, base × 2^retry))."""
        return self.jitter() * min(self.max_delay_s, self.base_delay_s * 2.0**retry)

    def put(self, entries: Sequence[Entry]) -> PutResult:
        result = PutResult()
        for chunk in _chunks(list(enumerate(entries))):
            self._put_chunk(chunk, result)
        return result

    def _put_chunk(self, chunk: list[tuple[int, Entry]], result: PutResult) -> None:
        pending = chunk
        errors: dict[int, str] = {}
        for attempt in range(self.max_attempts):
            if attempt:
                self.sleep(self.delay(attempt - 1))
            result.attempts += 1
            response = self.client().put_records(
                StreamName=self.stream_name,
                Records=[{"PartitionKey": e.partition_key, "Data": e.data} for _, e in pending],
            )
            retry: list[tuple[int, Entry]] = []
            for (index, entry), answer in zip(pending, response["Records"], strict=True):
                if "SequenceNumber" in answer and not answer.get("ErrorCode"):
                    result.sequence_numbers[index] = str(answer["SequenceNumber"])
                else:
                    errors[index] = str(answer.get("ErrorCode", "Unknown"))
                    retry.append((index, entry))
            pending = retry
            if not pending:
                return
        result.failed.extend((index, entry, errors[index]) for index, entry in pending)


def _chunks(entries: list[tuple[int, Entry]]) -> list[list[tuple[int, Entry]]]:
    chunks: list[list[tuple[int, Entry]]] = [[]]
    size = 0
    for item in entries:
        weight = len(item[1].data) + len(item[1].partition_key.encode())
        if chunks[-1] and (
            len(chunks[-1]) >= MAX_RECORDS_PER_CALL or size + weight > MAX_BYTES_PER_CALL
        ):
            chunks.append([])
            size = 0
        chunks[-1].append(item)
        size += weight
    return [c for c in chunks if c]
