"""What every choreography service shares: the event envelope, publishing, and the handler
skeleton (settings, correlation id, idempotency, reactions).

A service is a set of reactions, ``{event type: reaction}``; a reaction gets the incoming
:class:`Message` and the settings and returns the events to publish (:class:`Outgoing`). The
skeleton:

- validates the settings (an invalid configuration fails the event: Lambda retries it, then
  it goes to the function's on-failure queue);
- reads the envelope; the Logger's correlation id is the envelope's ``correlationId`` (every
  log line of this invocation carries it), and ``service`` is the service's name;
- runs the reaction once per ``eventId`` and service (Powertools idempotency on DynamoDB,
  key ``<service>#<hash of eventId>``): a duplicate delivery is logged, counted
  (``DuplicatesSkipped``) and changes nothing;
- publishes the reaction's events with the same correlation id and the incoming event's id
  as their causation id, and a deterministic ``eventId`` (:func:`event_id`: the service, the
  incoming event's id, the type and the position).

Delivery: the services' own writes are conditional (written once per order or per incoming
event), but publishing is **at-least-once**: EventBridge ``PutEvents`` cannot be deduplicated.
A reaction runs a second time when its idempotency record's completion write failed after the
kit's retries (the record expires, the retried event runs again) or when the publish itself
failed after the write; that second run finds its write already done and publishes the same
events again, with the same ``eventId`` (never a lost event, never a new id). Consumers must
dedupe by ``eventId``, as every service here does.

An envelope that is not valid is logged, counted (``MalformedMessages``) and raised (on to the
on-failure queue after Lambda's retries); an event type the service has no reaction for is
logged and counted (``UnknownEventTypesIgnored``): its rules should not send it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from aws_lambda_powertools import Logger, Metrics
from handler_kit.clients import lazy_client
from handler_kit.consumer import load_settings, log_invocation_failure, reject_malformed
from handler_kit.contract import MALFORMED_MESSAGES, RECORDS_FAILED, UNKNOWN_EVENT_TYPES_IGNORED
from handler_kit.idempotency import duplicate_hook, idempotency_config, once
from handler_kit.metrics import count

from . import contract
from .config import ServiceSettings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig
    from aws_lambda_powertools.utilities.typing import LambdaContext

S = TypeVar("S", bound=ServiceSettings)
_events_client = lazy_client("events")
_dynamodb_client = lazy_client("dynamodb")


class MalformedEvent(ValueError):
    """The event's envelope is missing or invalid."""


class PublishFailed(RuntimeError):
    """EventBridge did not accept an entry."""


@dataclass(frozen=True)
class Message:
    """An incoming event (its detail): the envelope and the event's own fields."""

    event_id: str
    type: str
    correlation_id: str
    causation_id: str | None
    order_id: str
    body: dict[str, Any]

    @classmethod
    def parse(cls, detail: Any, detail_type: Any) -> Message:
        if not isinstance(detail, dict):
            raise MalformedEvent("the detail is not a JSON object")
        for name in (contract.EVENT_ID, contract.TYPE, contract.CORRELATION_ID, contract.ORDER_ID):
            if not isinstance(detail.get(name), str) or not detail[name]:
                raise MalformedEvent(f"{name} must be a non-empty string")
        if detail[contract.TYPE] != detail_type:
            raise MalformedEvent(
                f"detail-type {detail_type!r} and the envelope's type {detail[contract.TYPE]!r} "
                "differ"
            )
        if detail.get(contract.SCHEMA) != contract.SCHEMA_VERSION:
            raise MalformedEvent(
                f"{contract.SCHEMA} {detail.get(contract.SCHEMA)!r} is not supported"
            )
        causation = detail.get(contract.CAUSATION_ID)
        return cls(
            event_id=detail[contract.EVENT_ID],
            type=detail[contract.TYPE],
            correlation_id=detail[contract.CORRELATION_ID],
            causation_id=causation if isinstance(causation, str) else None,
            order_id=detail[contract.ORDER_ID],
            body=detail,
        )


@dataclass(frozen=True)
class Outgoing:
    """An event a reaction publishes: its type and fields (the envelope is added)."""

    type: str
    fields: Mapping[str, Any]


# Namespace of the published events' ids (uuid5): any fixed UUID works, it must never change.
EVENT_ID_NAMESPACE = uuid.UUID("6f1b8a52-3c1e-5d2a-9b7e-2f4c8d0e1a37")


def event_id(source: str, cause: str, event_type: str, index: int) -> str:
    """The id of the ``index``-th event of type ``event_type`` that ``source`` publishes for
    ``cause`` (the incoming event's id, or the order id for a command): a second run of the
    same reaction (the idempotency record expired after a lost completion write, a retried
    publish) publishes the same ids, so a consumer that dedupes by ``eventId`` (every service
    here: Powertools idempotency, and Notification's inbox item) applies it once."""
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{source}|{cause}|{event_type}|{index}"))


def envelope(
    outgoing: Outgoing,
    *,
    order_id: str,
    correlation_id: str,
    causation_id: str | None,
    source: str = "",
    index: int = 0,
) -> dict[str, Any]:
    return {
        **dict(outgoing.fields),
        contract.EVENT_ID: event_id(source, causation_id or order_id, outgoing.type, index),
        contract.TYPE: outgoing.type,
        contract.SCHEMA: contract.SCHEMA_VERSION,
        contract.CORRELATION_ID: correlation_id,
        contract.CAUSATION_ID: causation_id,
        contract.ORDER_ID: order_id,
    }


Reaction = Callable[[Message, S], list[Outgoing]]


@dataclass
class Service(Generic[S]):
    name: str
    logger: Logger
    metrics: Metrics
    settings: Callable[[], S]
    reactions: dict[str, Reaction[S]]
    _once: Callable[..., dict[str, Any]] | None = field(default=None, init=False)
    _config: IdempotencyConfig | None = field(default=None, init=False)

    @property
    def source(self) -> str:
        return contract.SOURCES[self.name]

    def publish(
        self,
        settings: S,
        events: list[Outgoing],
        *,
        order_id: str,
        correlation_id: str,
        causation_id: str | None,
    ) -> list[dict[str, Any]]:
        """Put ``events`` on the bus (one call, ≤ 10 entries); raise if any is refused."""
        if not events:
            return []
        details = [
            envelope(
                e,
                order_id=order_id,
                correlation_id=correlation_id,
                causation_id=causation_id,
                source=self.source,
                index=index,
            )
            for index, e in enumerate(events)
        ]
        response = _events_client().put_events(
            Entries=[
                {
                    "EventBusName": settings.event_bus,
                    "Source": self.source,
                    "DetailType": detail[contract.TYPE],
                    "Detail": json.dumps(detail, ensure_ascii=False, sort_keys=True),
                }
                for detail in details
            ]
        )
        if response.get("FailedEntryCount"):
            failed = [e for e in response["Entries"] if e.get("ErrorCode")]
            raise PublishFailed(f"EventBridge refused {len(failed)} entries: {failed}")
        for detail in details:
            count(self.metrics, contract.EVENTS_PUBLISHED)
            self.logger.info(
                f"Published {detail[contract.TYPE]}",
                extra={"published_event_id": detail[contract.EVENT_ID]},
            )
        return details

    def _run(self, *, event: dict[str, Any]) -> dict[str, Any]:
        """The reaction to one event (``event`` is the detail: what Powertools hashes)."""
        message = Message.parse(event, event.get(contract.TYPE))
        settings = self.settings()
        outgoing = self.reactions[message.type](message, settings)
        published = self.publish(
            settings,
            outgoing,
            order_id=message.order_id,
            correlation_id=message.correlation_id,
            causation_id=message.event_id,
        )
        count(self.metrics, contract.EVENTS_HANDLED)
        return {"published": [p[contract.TYPE] for p in published]}

    def _idempotent(self, settings: S) -> Callable[..., dict[str, Any]]:
        if self._once is None:
            self._config = idempotency_config(
                contract.EVENT_ID,
                settings.idempotency_expires_after_seconds,
                duplicate_hook(
                    self.logger, self.metrics, "Duplicate event: already handled, nothing changes"
                ),
            )
            self._once = once(
                self._run,
                data_keyword_argument="event",
                table=settings.idempotency_table,
                client=_dynamodb_client(),
                config=self._config,
                key_prefix=self.name,
            )
        return self._once

    def handle_event(self, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        """An EventBridge event (a rule's target, asynchronous)."""
        settings = load_settings(self.logger, self.metrics, self.settings, scope="the event")
        try:
            message = Message.parse(event.get("detail"), event.get("detail-type"))
        except MalformedEvent as exc:
            reject_malformed(
                self.logger,
                self.metrics,
                str(exc),
                what="event",
                metric=MALFORMED_MESSAGES,
                error=MalformedEvent,
            )
        self.logger.set_correlation_id(message.correlation_id)
        self.logger.append_keys(
            order_id=message.order_id,
            event_type=message.type,
            event_id=message.event_id,
            causation_id=message.causation_id,
        )
        self.logger.info(f"Received {message.type}")
        if message.type not in self.reactions:
            count(self.metrics, UNKNOWN_EVENT_TYPES_IGNORED)
            self.logger.warning(f"No reaction to {message.type}: ignored (check the rules)")
            return {"ignored": message.type}
        run = self._idempotent(settings)
        assert self._config is not None
        self._config.register_lambda_context(context)
        try:
            return run(event=message.body)
        except Exception as exc:
            log_invocation_failure(self.logger, self.metrics, exc, metric=RECORDS_FAILED)
            raise
