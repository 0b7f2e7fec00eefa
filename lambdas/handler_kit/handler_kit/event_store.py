"""Event sourcing on DynamoDB: append events to an aggregate, load it, rebuild it.

The event store is a table keyed by ``aggregateId`` (partition, string) and ``version``
(sort, number). Each item is one immutable event (:class:`StoredEvent`): its type and schema
version, the JSON ``data``, an ``eventId``, the ``correlationId`` of the request that led to
it and the ``causationId`` of the message that caused it. State is never stored: it is the
fold of the aggregate's events (``apply(state, event) -> state``), optionally started from a
snapshot (a second table keyed by ``aggregateId``, rewritten every ``snapshot_every`` events).

Optimistic concurrency: :meth:`EventStore.append` writes version ``expected + 1 …`` with the
condition that no item has that key. Two commands that loaded the same version race; the
second write fails with :class:`ConcurrencyConflict` — it never overwrites. The caller
reloads and decides again (or reports the conflict).

Nothing here imports CDK; clients come from the caller (lazily created, see ``clients``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from botocore.exceptions import ClientError

from .contract import (
    ES_AGGREGATE_ID,
    ES_CAUSATION_ID,
    ES_CORRELATION_ID,
    ES_DATA,
    ES_EVENT_ID,
    ES_EVENT_TYPE,
    ES_RECORDED_AT,
    ES_SCHEMA_VERSION,
    ES_SNAPSHOT_STATE,
    ES_VERSION,
)

S = TypeVar("S")
Apply = Callable[[S, "StoredEvent"], S]
# DynamoDB's TransactWriteItems limit: one command appends at most this many events.
MAX_EVENTS_PER_APPEND = 100


class ConcurrencyConflict(Exception):
    """Another writer appended to the aggregate after it was loaded at ``expected_version``."""

    def __init__(self, aggregate_id: str, expected_version: int) -> None:
        super().__init__(
            f"aggregate {aggregate_id!r} changed after version {expected_version}: "
            "reload it and retry the command"
        )
        self.aggregate_id = aggregate_id
        self.expected_version = expected_version


class MalformedStoredEvent(ValueError):
    """An item (or stream image) that is not an event of the store."""


@dataclass(frozen=True)
class NewEvent:
    """An event to append: what happened, and why (correlation and causation ids)."""

    type: str
    data: Mapping[str, Any]
    schema_version: int = 1
    correlation_id: str | None = None  # Default: the event's own id (it starts a flow)
    causation_id: str | None = None  # Default: none (a command from outside)
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass(frozen=True)
class StoredEvent:
    aggregate_id: str
    version: int
    type: str
    schema_version: int
    data: dict[str, Any]
    event_id: str
    correlation_id: str
    causation_id: str | None
    recorded_at: str

    def as_json(self) -> dict[str, Any]:
        """The event as published (the outbox sends exactly this as the event's detail)."""
        return {
            ES_AGGREGATE_ID: self.aggregate_id,
            ES_VERSION: self.version,
            ES_EVENT_TYPE: self.type,
            ES_SCHEMA_VERSION: self.schema_version,
            ES_DATA: self.data,
            ES_EVENT_ID: self.event_id,
            ES_CORRELATION_ID: self.correlation_id,
            ES_CAUSATION_ID: self.causation_id,
            ES_RECORDED_AT: self.recorded_at,
        }


@dataclass(frozen=True)
class Aggregate(Generic[S]):
    """An aggregate's state at ``version`` (0: no event yet)."""

    aggregate_id: str
    state: S
    version: int


def to_item(event: StoredEvent) -> dict[str, Any]:
    """The DynamoDB item (low-level attribute values) of ``event``."""
    item: dict[str, Any] = {
        ES_AGGREGATE_ID: {"S": event.aggregate_id},
        ES_VERSION: {"N": str(event.version)},
        ES_EVENT_TYPE: {"S": event.type},
        ES_SCHEMA_VERSION: {"N": str(event.schema_version)},
        ES_DATA: {"S": json.dumps(event.data, separators=(",", ":"), sort_keys=True)},
        ES_EVENT_ID: {"S": event.event_id},
        ES_CORRELATION_ID: {"S": event.correlation_id},
        ES_RECORDED_AT: {"S": event.recorded_at},
    }
    if event.causation_id:
        item[ES_CAUSATION_ID] = {"S": event.causation_id}
    return item


def from_item(item: Mapping[str, Any]) -> StoredEvent:
    """A stored event from its item or a stream record's ``NewImage`` (low-level values)."""
    try:
        data = json.loads(item[ES_DATA]["S"])
        if not isinstance(data, dict):
            raise MalformedStoredEvent(f"{ES_DATA} is not a JSON object")
        causation = item.get(ES_CAUSATION_ID, {}).get("S")
        return StoredEvent(
            aggregate_id=str(item[ES_AGGREGATE_ID]["S"]),
            version=int(item[ES_VERSION]["N"]),
            type=str(item[ES_EVENT_TYPE]["S"]),
            schema_version=int(item[ES_SCHEMA_VERSION]["N"]),
            data=data,
            event_id=str(item[ES_EVENT_ID]["S"]),
            correlation_id=str(item[ES_CORRELATION_ID]["S"]),
            causation_id=str(causation) if causation else None,
            recorded_at=str(item[ES_RECORDED_AT]["S"]),
        )
    except MalformedStoredEvent:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedStoredEvent(f"not a stored event: {exc!r}") from exc


class EventStore:
    """One event store table (and its optional snapshot table), through a boto3 client."""

    def __init__(
        self,
        client: Callable[[], Any],
        table: str,
        *,
        snapshot_table: str | None = None,
        snapshot_every: int = 0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """
        :param client: a zero-argument factory of the DynamoDB client (lazy).
        :param snapshot_table: where snapshots go. Default: none (always replay from 0).
        :param snapshot_every: write a snapshot when an append crosses a multiple of this
            many events (needs ``snapshot_table``). Default: 0 (never).
        """
        if snapshot_every < 0:
            raise ValueError(f"snapshot_every must be 0 or more (got {snapshot_every})")
        if snapshot_every and not snapshot_table:
            raise ValueError("snapshot_every needs a snapshot_table")
        self.client = client
        self.table = table
        self.snapshot_table = snapshot_table
        self.snapshot_every = snapshot_every
        self.clock = clock

    # -- reading -----------------------------------------------------------------------------

    def events(
        self, aggregate_id: str, *, after_version: int = 0, up_to_version: int | None = None
    ) -> Iterator[StoredEvent]:
        """The aggregate's events with ``after_version < version (<= up_to_version)``, in
        version order (strongly consistent reads)."""
        condition = f"{ES_AGGREGATE_ID} = :id AND {ES_VERSION} > :after"
        values: dict[str, Any] = {":id": {"S": aggregate_id}, ":after": {"N": str(after_version)}}
        if up_to_version is not None:
            condition = f"{ES_AGGREGATE_ID} = :id AND {ES_VERSION} BETWEEN :first AND :last"
            values = {
                ":id": {"S": aggregate_id},
                ":first": {"N": str(after_version + 1)},
                ":last": {"N": str(up_to_version)},
            }
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ConsistentRead": True,
        }
        while True:
            page = self.client().query(**request)
            for item in page.get("Items", []):
                yield from_item(item)
            if "LastEvaluatedKey" not in page:
                return
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def aggregate_ids(self) -> Iterator[str]:
        """Every aggregate with at least one event (a full scan: for rebuilds only)."""
        seen: set[str] = set()
        request: dict[str, Any] = {
            "TableName": self.table,
            "ProjectionExpression": ES_AGGREGATE_ID,
        }
        while True:
            page = self.client().scan(**request)
            for item in page.get("Items", []):
                aggregate_id = str(item[ES_AGGREGATE_ID]["S"])
                if aggregate_id not in seen:
                    seen.add(aggregate_id)
                    yield aggregate_id
            if "LastEvaluatedKey" not in page:
                return
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def load(
        self,
        aggregate_id: str,
        apply: Apply[S],
        initial: S,
        *,
        decode: Callable[[Any], S] | None = None,
    ) -> Aggregate[S]:
        """The aggregate's current state: its latest snapshot (``decode`` turns the stored
        JSON back into a state) plus the events after it; ``initial`` when it has none."""
        state, version = initial, 0
        snapshot = self._snapshot(aggregate_id) if self.snapshot_table else None
        if snapshot is not None:
            if decode is None:
                raise ValueError("a store with snapshots needs decode= to load them")
            version, stored = snapshot
            state = decode(stored)
        return self.rebuild(aggregate_id, apply, state, from_version=version)

    def rebuild(
        self,
        aggregate_id: str,
        apply: Apply[S],
        initial: S,
        *,
        from_version: int = 0,
        to_version: int | None = None,
    ) -> Aggregate[S]:
        """Replay the events after ``from_version`` (0: from the start) onto ``initial``,
        up to ``to_version`` (default: the latest) — the state at any point in time."""
        state, version = initial, from_version
        for event in self.events(
            aggregate_id, after_version=from_version, up_to_version=to_version
        ):
            if event.version != version + 1:
                raise MalformedStoredEvent(
                    f"{aggregate_id}: version {event.version} follows {version} (a gap)"
                )
            state, version = apply(state, event), event.version
        return Aggregate(aggregate_id, state, version)

    # -- writing -----------------------------------------------------------------------------

    def append(
        self,
        aggregate_id: str,
        expected_version: int,
        events: Sequence[NewEvent],
    ) -> list[StoredEvent]:
        """Append ``events`` as versions ``expected_version + 1 …``, all or none.

        Raises :class:`ConcurrencyConflict` when any of those versions exists (another
        command won the race). Then call :meth:`maybe_snapshot` with the new state.
        """
        if not events:
            return []
        if len(events) > MAX_EVENTS_PER_APPEND:
            raise ValueError(f"at most {MAX_EVENTS_PER_APPEND} events per append")
        if expected_version < 0:
            raise ValueError(f"expected_version must be 0 or more (got {expected_version})")
        now = self.clock().isoformat().replace("+00:00", "Z")
        stored = [
            StoredEvent(
                aggregate_id=aggregate_id,
                version=expected_version + index,
                type=event.type,
                schema_version=event.schema_version,
                data=dict(event.data),
                event_id=event.event_id,
                correlation_id=event.correlation_id or event.event_id,
                causation_id=event.causation_id,
                recorded_at=now,
            )
            for index, event in enumerate(events, start=1)
        ]
        condition = f"attribute_not_exists({ES_AGGREGATE_ID})"
        try:
            if len(stored) == 1:
                self.client().put_item(
                    TableName=self.table, Item=to_item(stored[0]), ConditionExpression=condition
                )
            else:
                self.client().transact_write_items(
                    TransactItems=[
                        {
                            "Put": {
                                "TableName": self.table,
                                "Item": to_item(event),
                                "ConditionExpression": condition,
                            }
                        }
                        for event in stored
                    ]
                )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("ConditionalCheckFailedException", "TransactionCanceledException"):
                raise ConcurrencyConflict(aggregate_id, expected_version) from exc
            raise
        return stored

    def maybe_snapshot(self, aggregate_id: str, before: int, after: int, state: Any) -> bool:
        """Snapshot ``state`` (JSON-serialisable, at version ``after``) when going from
        ``before`` to ``after`` crossed a multiple of ``snapshot_every``; True if written."""
        if not self.snapshot_every or after // self.snapshot_every <= before // self.snapshot_every:
            return False
        return self.save_snapshot(aggregate_id, after, state)

    def save_snapshot(self, aggregate_id: str, version: int, state: Any) -> bool:
        """Store ``state`` at ``version`` unless a newer snapshot exists; True if written."""
        if not self.snapshot_table:
            raise ValueError("this store has no snapshot table")
        try:
            self.client().put_item(
                TableName=self.snapshot_table,
                Item={
                    ES_AGGREGATE_ID: {"S": aggregate_id},
                    ES_VERSION: {"N": str(version)},
                    ES_SNAPSHOT_STATE: {"S": json.dumps(state, sort_keys=True)},
                },
                ConditionExpression=f"attribute_not_exists({ES_VERSION}) OR {ES_VERSION} < :v",
                ExpressionAttributeValues={":v": {"N": str(version)}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False  # a newer snapshot is already there: keep it
            raise
        return True

    def _snapshot(self, aggregate_id: str) -> tuple[int, Any] | None:
        item = (
            self.client()
            .get_item(
                TableName=self.snapshot_table,
                Key={ES_AGGREGATE_ID: {"S": aggregate_id}},
                ConsistentRead=True,
            )
            .get("Item")
        )
        if not item:
            return None
        return int(item[ES_VERSION]["N"]), json.loads(item[ES_SNAPSHOT_STATE]["S"])


def from_json(detail: Any) -> StoredEvent:
    """A stored event from its published form (:meth:`StoredEvent.as_json`, e.g. the detail
    of the event the outbox put on the bus)."""
    if not isinstance(detail, Mapping):
        raise MalformedStoredEvent("the event detail is not a JSON object")
    try:
        data = detail[ES_DATA]
        version = detail[ES_VERSION]
        schema = detail[ES_SCHEMA_VERSION]
        if not isinstance(data, dict):
            raise MalformedStoredEvent(f"{ES_DATA} is not a JSON object")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise MalformedStoredEvent(f"{ES_VERSION} must be a positive integer")
        if isinstance(schema, bool) or not isinstance(schema, int):
            raise MalformedStoredEvent(f"{ES_SCHEMA_VERSION} must be an integer")
        causation = detail.get(ES_CAUSATION_ID)
        return StoredEvent(
            aggregate_id=_text(detail, ES_AGGREGATE_ID),
            version=version,
            type=_text(detail, ES_EVENT_TYPE),
            schema_version=schema,
            data=data,
            event_id=_text(detail, ES_EVENT_ID),
            correlation_id=_text(detail, ES_CORRELATION_ID),
            causation_id=str(causation) if causation else None,
            recorded_at=_text(detail, ES_RECORDED_AT),
        )
    except KeyError as exc:
        raise MalformedStoredEvent(f"missing field {exc.args[0]!r}") from exc


def _text(detail: Mapping[str, Any], name: str) -> str:
    value = detail[name]
    if not isinstance(value, str) or not value:
        raise MalformedStoredEvent(f"{name} must be a non-empty string")
    return value
