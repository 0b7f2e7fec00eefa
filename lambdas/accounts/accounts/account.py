"""The account aggregate: its state is the fold of its events; commands become new events.

``apply`` is the only place state changes (replay, projection and snapshots all use it);
``decide_*`` validate a command against the current state and return the events to append,
or raise :class:`CommandRejected` (the write model refuses, nothing is appended).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from handler_kit.event_store import MalformedStoredEvent, NewEvent, StoredEvent

from . import contract

OPEN = "OPEN"


class CommandRejected(ValueError):
    """The command is invalid for the account's state. ``status``: the HTTP status to answer."""

    def __init__(self, message: str, *, status: int = 422, code: str = "CommandRejected") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class Account:
    """An account's state (the course's balance starts at 0)."""

    owner: str = ""
    phone: str = ""
    status: str = ""  # "" until CompteCréé, then OPEN
    balance: int = 0  # whole units of the currency

    @property
    def opened(self) -> bool:
        return self.status == OPEN


def initial() -> Account:
    return Account()


def apply(state: Account, event: StoredEvent) -> Account:
    """The state after ``event`` (replaying CompteCréé, DépôtEffectué(100), RetraitEffectué(30)
    from 0 gives 100, then 70)."""
    if event.schema_version != contract.SCHEMA_VERSION:
        raise MalformedStoredEvent(
            f"{event.type} schema version {event.schema_version} is not supported"
        )
    data = event.data
    if event.type == contract.ACCOUNT_OPENED:
        return Account(
            owner=str(data[contract.OWNER]), phone=str(data.get(contract.PHONE, "")), status=OPEN
        )
    if event.type == contract.DEPOSITED:
        return replace(state, balance=state.balance + int(data[contract.AMOUNT]))
    if event.type == contract.WITHDRAWN:
        return replace(state, balance=state.balance - int(data[contract.AMOUNT]))
    raise MalformedStoredEvent(f"unknown account event type {event.type!r}")


def encode(state: Account) -> dict[str, Any]:
    """The balance read model's attributes (and the snapshot's JSON)."""
    return asdict(state)


def decode(attributes: Mapping[str, Any]) -> Account:
    return Account(
        owner=str(attributes.get("owner", "")),
        phone=str(attributes.get("phone", "")),
        status=str(attributes.get(contract.STATUS, "")),
        balance=int(attributes.get(contract.BALANCE, 0)),
    )


def amount_of(body: Mapping[str, Any]) -> int:
    amount = body.get(contract.AMOUNT)
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise CommandRejected(
            f"{contract.AMOUNT} must be a positive integer, got {amount!r}",
            status=400,
            code="InvalidAmount",
        )
    return amount


def decide_open(state: Account, body: Mapping[str, Any], **ids: str | None) -> list[NewEvent]:
    if state.status:
        raise CommandRejected("the account already exists", status=409, code="AccountExists")
    owner = body.get(contract.OWNER)
    if not isinstance(owner, str) or not owner.strip():
        raise CommandRejected(f"{contract.OWNER} is required", status=400, code="InvalidOwner")
    phone = body.get(contract.PHONE, "")
    if not isinstance(phone, str):
        raise CommandRejected(f"{contract.PHONE} must be a string", status=400, code="InvalidPhone")
    data = {contract.OWNER: owner.strip(), contract.PHONE: phone}
    return [_event(contract.ACCOUNT_OPENED, data, **ids)]


def decide_deposit(state: Account, body: Mapping[str, Any], **ids: str | None) -> list[NewEvent]:
    _require_open(state)
    return [_event(contract.DEPOSITED, {contract.AMOUNT: amount_of(body)}, **ids)]


def decide_withdraw(state: Account, body: Mapping[str, Any], **ids: str | None) -> list[NewEvent]:
    _require_open(state)
    amount = amount_of(body)
    if amount > state.balance:
        raise CommandRejected(
            f"insufficient funds: balance {state.balance}, withdrawal {amount}",
            status=422,
            code="InsufficientFunds",
        )
    return [_event(contract.WITHDRAWN, {contract.AMOUNT: amount}, **ids)]


def _require_open(state: Account) -> None:
    if not state.opened:
        raise CommandRejected("no such account", status=404, code="AccountNotFound")


def _event(
    event_type: str,
    data: dict[str, Any],
    *,
    correlation_id: str | None = None,
    causation_id: str | None = None,
) -> NewEvent:
    return NewEvent(
        type=event_type,
        data=data,
        schema_version=contract.SCHEMA_VERSION,
        correlation_id=correlation_id,
        causation_id=causation_id,
    )
