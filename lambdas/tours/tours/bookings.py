"""The booking event both brokers carry, the API request that produces it, and the
Notification service's work (shared by the RabbitMQ and the Kafka consumers).

Notifying is idempotent per (event type, booking id): Powertools' idempotency records in
DynamoDB, expiring after 24 h (the course's Redis ``processed:<bookingId>`` with ``SETEX
86400``). A redelivered message or a duplicate booking sends nothing twice
(``DuplicatesSkipped``). The "sent" notification is an item of the notifications table
(``sends`` counts them, ``history`` lists the event types in the order they were handled).
The update is also conditional on the event type not being in the item's ``notified`` set:
if the idempotency record's completion write fails after the kit's retries and the message is
redelivered once it expired, the second run sends nothing (``DuplicatesSkipped``) — the
notification is sent once per (event type, booking id) even then.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from handler_kit.idempotency import duplicate_hook, idempotency_config, once
from handler_kit.messages import load_json_object, shown
from handler_kit.metrics import count

from .contract import (
    BOOKING_DATE,
    BOOKING_ID,
    CORRELATION_HEADER,
    EVENT_TYPE_FIELD,
    EVENT_TYPES,
    HISTORY,
    IDEMPOTENCY_WINDOW_S,
    LAST_CORRELATION_ID,
    MESSAGE,
    NOTIFICATIONS_KEY,
    NOTIFICATIONS_SENT,
    SENDS,
    STATUS,
    TIER,
    TIERS,
    TOTAL_PRICE,
    TOUR_BOOKED,
    TOUR_CANCELLED,
    TOUR_ID,
    USER_ID,
)

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger, Metrics
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from botocore.client import BaseClient

    from .config import ConsumerSettings


class MalformedBooking(ValueError):
    """A booking event the Notification service cannot use (retrying will not help)."""


# The item attribute (string set) of the event types already notified for a booking.
NOTIFIED_EVENT_TYPES = "notified"
DUPLICATES_SKIPPED_AT_DESTINATION = "DuplicatesSkipped"


class UnknownEventType(MalformedBooking):
    """An event type this service does not know (a newer producer): acknowledged, counted."""


@dataclass(frozen=True)
class Booking:
    booking_id: str
    tour_id: str
    user_id: str
    booking_date: str
    status: str
    total_price: Decimal
    event_type: str = TOUR_BOOKED

    def body(self) -> dict[str, Any]:
        """The course's payload (what goes on the wire)."""
        return {
            BOOKING_ID: self.booking_id,
            TOUR_ID: self.tour_id,
            USER_ID: self.user_id,
            BOOKING_DATE: self.booking_date,
            STATUS: self.status,
            TOTAL_PRICE: str(self.total_price),
        }

    def encoded(self) -> bytes:
        return json.dumps(self.body(), separators=(",", ":")).encode()


def _text(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # the course's ids may be numbers
    if not isinstance(value, str) or not value.strip():
        raise MalformedBooking(f"{name} must be a non-empty string, got {shown(value)}")
    return value.strip()


def parse_booking(payload: dict[str, Any], *, event_type: str = TOUR_BOOKED) -> Booking:
    """A booking from its JSON object; raises MalformedBooking."""
    if event_type not in EVENT_TYPES:
        raise UnknownEventType(f"unknown event type {shown(event_type)}")
    price = payload.get(TOTAL_PRICE)
    try:
        total = Decimal(str(price)) if not isinstance(price, bool) and price is not None else None
    except ArithmeticError:
        total = None
    if total is None or not total.is_finite() or total < 0:
        raise MalformedBooking(f"{TOTAL_PRICE} must be a number >= 0, got {shown(price)}")
    return Booking(
        booking_id=_text(payload, BOOKING_ID),
        tour_id=_text(payload, TOUR_ID),
        user_id=_text(payload, USER_ID),
        booking_date=_text(payload, BOOKING_DATE),
        status=_text(payload, STATUS),
        total_price=total,
        event_type=event_type,
    )


def parse_body(text: str | None, *, event_type: str = TOUR_BOOKED) -> Booking:
    return parse_booking(
        load_json_object(text, "the message", error=MalformedBooking), event_type=event_type
    )


# -- the API side (producers) -------------------------------------------------------------------


@dataclass(frozen=True)
class BookingRequest:
    booking: Booking
    correlation_id: str


def booking_request(event: dict[str, Any]) -> BookingRequest:
    """An API Gateway (REST, proxy) request: the booking, its event type (``eventType``, or
    ``tour.booked[.<tier>]``) and the correlation id (header, or a new one)."""
    payload = load_json_object(event.get("body"), "the request body", error=MalformedBooking)
    event_type = payload.get(EVENT_TYPE_FIELD)
    tier = payload.get(TIER)
    if event_type is None:
        if tier is None:
            event_type = TOUR_BOOKED
        elif tier in TIERS:
            event_type = f"{TOUR_BOOKED}.{tier}"
        else:
            raise MalformedBooking(f"{TIER} must be one of {', '.join(TIERS)}, got {shown(tier)}")
    if not isinstance(event_type, str):
        raise MalformedBooking(f"{EVENT_TYPE_FIELD} must be a string, got {shown(event_type)}")
    booking = parse_booking(payload, event_type=event_type)
    headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
    correlation = headers.get(CORRELATION_HEADER)
    if not isinstance(correlation, str) or not 0 < len(correlation) <= 128:
        correlation = str(uuid.uuid4())
    return BookingRequest(booking, correlation)


def response(
    status: int, body: dict[str, Any], correlation_id: str | None = None
) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if correlation_id:
        headers[CORRELATION_HEADER] = correlation_id
    return {"statusCode": status, "headers": headers, "body": json.dumps(body)}


# -- the Notification service (consumers) --------------------------------------------------------


def notification_text(booking: Booking) -> str:
    if booking.event_type == TOUR_CANCELLED:
        return f"Cancellation sent to user {booking.user_id} for booking {booking.booking_id}"
    return (
        f"Notification sent to user {booking.user_id} for booking {booking.booking_id} "
        f"(tour {booking.tour_id}, {booking.total_price})"
    )


class Notifier:
    """Sends each (event type, booking) notification once; see the module docstring."""

    def __init__(
        self,
        logger: Logger,
        metrics: Metrics,
        settings: ConsumerSettings,
        dynamodb: BaseClient,
        context: LambdaContext | None = None,
    ) -> None:
        self.logger = logger
        self.metrics = metrics
        self.settings = settings
        self.dynamodb = dynamodb
        config = idempotency_config(
            "[eventType, bookingId]",
            IDEMPOTENCY_WINDOW_S,
            duplicate_hook(logger, metrics, "Duplicate booking event: already notified, skipped"),
        )
        if context is not None:
            config.register_lambda_context(context)  # in-progress records expire with it
        self._once = once(
            self._send,
            data_keyword_argument="key",
            table=settings.idempotency_table,
            client=dynamodb,
            config=config,
            key_prefix="tours-notification",
        )
        self._current: tuple[Booking, str] | None = None

    def notify(self, booking: Booking, correlation_id: str) -> dict[str, Any]:
        self._current = (booking, correlation_id)
        try:
            return self._once(
                key={"eventType": booking.event_type, "bookingId": booking.booking_id}
            )
        finally:
            self._current = None

    def _send(self, key: dict[str, str]) -> dict[str, Any]:
        assert self._current is not None
        booking, correlation_id = self._current
        text = notification_text(booking)
        result = {"bookingId": booking.booking_id, "eventType": booking.event_type}
        try:
            # Keyed by (booking, event type) at the destination too: a second run of this
            # work (its idempotency record expired after a lost completion write) finds the
            # event type in ``notified`` and sends nothing again.
            self.dynamodb.update_item(
                TableName=self.settings.notifications_table,
                Key={NOTIFICATIONS_KEY: {"S": booking.booking_id}},
                UpdateExpression=(
                    "ADD #sends :one, #notified :types "
                    "SET #history = list_append(if_not_exists(#history, :empty), "
                    ":event), #message = :message, #correlation = :correlation"
                ),
                ConditionExpression="NOT contains(#notified, :type)",
                ExpressionAttributeNames={
                    "#sends": SENDS,
                    "#notified": NOTIFIED_EVENT_TYPES,
                    "#history": HISTORY,
                    "#message": MESSAGE,
                    "#correlation": LAST_CORRELATION_ID,
                },
                ExpressionAttributeValues={
                    ":one": {"N": "1"},
                    ":types": {"SS": [booking.event_type]},
                    ":type": {"S": booking.event_type},
                    ":empty": {"L": []},
                    ":event": {"L": [{"S": booking.event_type}]},
                    ":message": {"S": text},
                    ":correlation": {"S": correlation_id},
                },
            )
        except self.dynamodb.exceptions.ConditionalCheckFailedException:
            count(self.metrics, DUPLICATES_SKIPPED_AT_DESTINATION)
            self.logger.info(
                "Already notified of this event type for this booking: nothing sent again",
                extra={"booking_id": booking.booking_id, "event_type": booking.event_type},
            )
            return result
        count(self.metrics, NOTIFICATIONS_SENT)
        self.logger.info(
            text, extra={"booking_id": booking.booking_id, "event_type": booking.event_type}
        )
        return result
