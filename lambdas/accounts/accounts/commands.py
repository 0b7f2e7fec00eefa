"""Lambda handler (API Gateway, Lambda proxy integration): the account commands.

- ``POST /accounts`` ``{"owner", "phone"}`` — OpenAccount → CompteCréé; 201 with the id;
- ``POST /accounts/{accountId}/deposits`` ``{"amount"}`` — Deposit → DépôtEffectué;
- ``POST /accounts/{accountId}/withdrawals`` ``{"amount"}`` — Withdraw → RetraitEffectué,
  or 422 ``InsufficientFunds`` (the aggregate refuses: nothing is appended).

The account is loaded from the event store (snapshot + the events after it), the command
decided against it, and the new event appended at ``version + 1`` with a conditional write.
``expectedVersion`` in the body pins the version the client saw. Either way, if another
command appended in between, the answer is 409 ``ConcurrencyConflict`` with nothing written
(never an overwrite, never a silent retry that would decide on a state nobody looked at).

Every answer is JSON; malformed JSON or a bad field is a 400 with a reason; an unexpected
error is logged and becomes a 500 (the command was not applied). The correlation id is the
``X-Correlation-Id`` header, or API Gateway's request id; it goes on every event appended.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import BadRequestError
from handler_kit.clients import lazy_client
from handler_kit.consumer import load_settings
from handler_kit.contract import MALFORMED_MESSAGES
from handler_kit.event_store import ConcurrencyConflict, EventStore
from handler_kit.metrics import count, new_metrics
from handler_kit.settings import cached_settings

from . import account, contract
from .account import CommandRejected
from .config import CommandSettings

if TYPE_CHECKING:
    from collections.abc import Callable

    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = ["handler"]

logger = Logger()
metrics = new_metrics()
app = APIGatewayRestResolver()
_settings = cached_settings(CommandSettings)
_dynamodb_client = lazy_client("dynamodb")


def _store() -> EventStore:
    settings = _settings()
    return EventStore(
        _dynamodb_client,
        settings.event_store_table,
        snapshot_table=settings.snapshot_table,
        snapshot_every=settings.snapshot_every,
    )


def _json(status: int, body: dict[str, Any]) -> Response[str]:
    return Response(
        status_code=status, content_type="application/json", body=json.dumps(body, sort_keys=True)
    )


def _body() -> dict[str, Any]:
    try:
        body = app.current_event.json_body
    except (ValueError, TypeError) as exc:
        count(metrics, MALFORMED_MESSAGES)
        raise BadRequestError(f"the body is not JSON: {exc}") from exc
    if body is None:
        return {}
    if not isinstance(body, dict):
        count(metrics, MALFORMED_MESSAGES)
        raise BadRequestError("the body must be a JSON object")
    return body


def _run(
    account_id: str,
    decide: Callable[..., list[Any]],
    body: dict[str, Any],
    *,
    created: bool = False,
) -> Response[str]:
    store = _store()
    loaded = store.load(account_id, account.apply, account.initial(), decode=account.decode)
    expected = body.get(contract.EXPECTED_VERSION)
    correlation_id = logger.get_correlation_id()
    try:
        if expected is not None and (
            isinstance(expected, bool) or not isinstance(expected, int) or expected < 0
        ):
            raise CommandRejected(
                f"{contract.EXPECTED_VERSION} must be a version number, got {expected!r}",
                status=400,
                code="InvalidExpectedVersion",
            )
        if expected is not None and expected != loaded.version:
            raise ConcurrencyConflict(account_id, expected)
        new = decide(loaded.state, body, correlation_id=correlation_id)
        appended = store.append(account_id, loaded.version, new)
        state = loaded.state
        for event in appended:
            state = account.apply(state, event)
        last = appended[-1]
        store.maybe_snapshot(account_id, loaded.version, last.version, account.encode(state))
    except CommandRejected as exc:
        count(metrics, contract.COMMANDS_REJECTED)
        logger.info("Command rejected", extra={"code": exc.code, "reason": str(exc)})
        return _json(exc.status, {"error": exc.code, "message": str(exc)})
    except ConcurrencyConflict as exc:
        count(metrics, contract.CONCURRENCY_CONFLICTS)
        logger.warning("Concurrency conflict: nothing appended", extra={"reason": str(exc)})
        return _json(409, {"error": "ConcurrencyConflict", "message": str(exc)})
    count(metrics, contract.COMMANDS_ACCEPTED)
    logger.info("Command accepted", extra={"event_type": last.type, "version": last.version})
    answer = {
        contract.ACCOUNT_ID_PARAMETER: account_id,
        "version": last.version,
        "event": last.type,
        "eventId": last.event_id,
        contract.BALANCE: state.balance,
    }
    return _json(201 if created else 200, answer)


@app.post(f"/{contract.ACCOUNTS_RESOURCE}")
def open_account() -> Response[str]:
    body = _body()
    account_id = str(uuid.uuid4())
    with logger.append_context_keys(account_id=account_id, command="OpenAccount"):
        return _run(account_id, account.decide_open, body, created=True)


@app.post(f"/{contract.ACCOUNTS_RESOURCE}/<accountId>/{contract.DEPOSITS_RESOURCE}")
def deposit(accountId: str) -> Response[str]:
    body = _body()
    with logger.append_context_keys(account_id=accountId, command="Deposit"):
        return _run(accountId, account.decide_deposit, body)


@app.post(f"/{contract.ACCOUNTS_RESOURCE}/<accountId>/{contract.WITHDRAWALS_RESOURCE}")
def withdraw(accountId: str) -> Response[str]:
    body = _body()
    with logger.append_context_keys(account_id=accountId, command="Withdraw"):
        return _run(accountId, account.decide_withdraw, body)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
    request_id = (event.get("requestContext") or {}).get("requestId")
    logger.set_correlation_id(
        headers.get(contract.CORRELATION_HEADER.lower()) or request_id or str(uuid.uuid4())
    )
    load_settings(logger, metrics, _settings, scope="the command")
    return app.resolve(event, context)
