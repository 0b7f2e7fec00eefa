"""Read models fed by the event store's stream: idempotent, order-tolerant projections.

A read model item holds the projected state of one aggregate and ``lastVersion``, the last
event version applied to it. For each stream record (:func:`stored_event_of`):

- ``version <= lastVersion``: a duplicate (a retried batch, a replay) — ignored;
- ``version == lastVersion + 1``: applied;
- ``version > lastVersion + 1``: an event arrived before an earlier one (an aggregate's
  events are distinct items, and DynamoDB Streams orders per item, not per aggregate): the
  missing events are read from the event store and applied first (a catch-up); the earlier
  event, when it arrives, is then a duplicate.

The write is conditional on the ``lastVersion`` it read: two projections of the same
aggregate racing never lose an event (the loser raises :class:`ProjectionConflict` and its
record is retried). :func:`rebuild_read_model` replays the whole store into a fresh table:
the same items the live projection holds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from .contract import ES_AGGREGATE_ID, ES_LAST_VERSION
from .event_store import Apply, EventStore, MalformedStoredEvent, StoredEvent, from_item

S = TypeVar("S")
APPLIED = "applied"
DUPLICATE = "duplicate"
CAUGHT_UP = "caught-up"

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class ProjectionConflict(Exception):
    """Another invocation updated the read model item between the read and the write."""


def stored_event_of(record: Mapping[str, Any]) -> StoredEvent:
    """The stored event of a DynamoDB Streams record (an INSERT's ``NewImage``)."""
    dynamodb = record.get("dynamodb")
    image = dynamodb.get("NewImage") if isinstance(dynamodb, Mapping) else None
    if record.get("eventName") != "INSERT" or not isinstance(image, Mapping):
        raise MalformedStoredEvent(
            f"expected an INSERT with a NewImage, got {record.get('eventName')!r}: events are "
            "never modified or deleted in an event store"
        )
    return from_item(image)


@dataclass
class Projection(Generic[S]):
    """How one read model is computed from the events of one aggregate type.

    ``encode(state)`` gives the read model's attributes (plain Python values, e.g.
    ``{"balance": 70}``), ``decode(attributes)`` the state back.
    """

    client: Callable[[], Any]
    table: str
    store: EventStore
    apply: Apply[S]
    initial: Callable[[], S]
    encode: Callable[[S], Mapping[str, Any]]
    decode: Callable[[Mapping[str, Any]], S]

    def project(self, event: StoredEvent) -> str:
        """Apply ``event`` to its read model item: APPLIED, DUPLICATE or CAUGHT_UP."""
        key = {ES_AGGREGATE_ID: {"S": event.aggregate_id}}
        item = (
            self.client().get_item(TableName=self.table, Key=key, ConsistentRead=True).get("Item")
        )
        attributes = _plain(item) if item else None
        last = int(attributes.pop(ES_LAST_VERSION)) if attributes else 0
        if event.version <= last:
            return DUPLICATE
        state = self.decode(attributes) if attributes is not None else self.initial()
        outcome = APPLIED
        if event.version == last + 1:
            state, version = self.apply(state, event), event.version
        else:
            caught = self.store.rebuild(
                event.aggregate_id,
                self.apply,
                state,
                from_version=last,
                to_version=event.version,
            )
            if caught.version != event.version:
                raise MalformedStoredEvent(
                    f"{event.aggregate_id}: the store has no events up to {event.version}"
                )
            state, version, outcome = caught.state, caught.version, CAUGHT_UP
        self._write(event.aggregate_id, state, version, expected=last if item else None)
        return outcome

    def _write(self, aggregate_id: str, state: S, version: int, *, expected: int | None) -> None:
        item = self.item(aggregate_id, state, version)
        if expected is None:
            condition = f"attribute_not_exists({ES_AGGREGATE_ID})"
            values: dict[str, Any] = {}
        else:
            condition = f"{ES_LAST_VERSION} = :expected"
            values = {":expected": {"N": str(expected)}}
        request: dict[str, Any] = {
            "TableName": self.table,
            "Item": item,
            "ConditionExpression": condition,
        }
        if values:
            request["ExpressionAttributeValues"] = values
        try:
            self.client().put_item(**request)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise ProjectionConflict(
                    f"{aggregate_id}: the read model moved while projecting version {version}"
                ) from exc
            raise

    def item(self, aggregate_id: str, state: S, version: int) -> dict[str, Any]:
        """The read model item (low-level attribute values) of ``state`` at ``version``."""
        attributes = {
            **dict(self.encode(state)),
            ES_AGGREGATE_ID: aggregate_id,
            ES_LAST_VERSION: version,
        }
        return {name: _serializer.serialize(value) for name, value in attributes.items()}


def rebuild_read_model(projection: Projection[S], target_table: str) -> int:
    """Replay every aggregate of the store from version 0 into ``target_table`` (a fresh read
    model, keyed like the live one); returns how many items were written."""
    written = 0
    for aggregate_id in projection.store.aggregate_ids():
        rebuilt = projection.store.rebuild(aggregate_id, projection.apply, projection.initial())
        projection.client().put_item(
            TableName=target_table,
            Item=projection.item(aggregate_id, rebuilt.state, rebuilt.version),
        )
        written += 1
    return written


def _plain(item: Mapping[str, Any]) -> dict[str, Any]:
    """Low-level attribute values to Python values (numbers: int when integral)."""
    plain: dict[str, Any] = {}
    for name, value in item.items():
        python = _deserializer.deserialize(value)
        if hasattr(python, "as_integer_ratio") and not isinstance(python, bool | int | float):
            python = int(python) if python == int(python) else float(python)
        plain[name] = python
    return plain
