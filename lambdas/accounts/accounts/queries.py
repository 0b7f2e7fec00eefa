"""Lambda handler (API Gateway, Lambda proxy integration): ``GET /accounts/{accountId}``.

The query side of CQRS: it reads the balance read model only (never the event store), so it
answers with the state as of the last projected event (``version``); 404 for an account the
projection has not seen.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from handler_kit.clients import lazy_client
from handler_kit.consumer import load_settings
from handler_kit.contract import ES_AGGREGATE_ID, ES_LAST_VERSION
from handler_kit.metrics import new_metrics
from handler_kit.settings import cached_settings

from . import contract
from .config import QuerySettings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = ["handler"]

logger = Logger()
metrics = new_metrics()
app = APIGatewayRestResolver()
_settings = cached_settings(QuerySettings)
_dynamodb_client = lazy_client("dynamodb")


@app.get(f"/{contract.ACCOUNTS_RESOURCE}/<accountId>")
def balance(accountId: str) -> Response[str]:
    item = (
        _dynamodb_client()
        .get_item(TableName=_settings().read_model_table, Key={ES_AGGREGATE_ID: {"S": accountId}})
        .get("Item")
    )
    if not item:
        body: dict[str, Any] = {"error": "AccountNotFound", "message": "no such account"}
        return Response(404, "application/json", json.dumps(body))
    body = {
        contract.ACCOUNT_ID_PARAMETER: accountId,
        contract.BALANCE: int(item[contract.BALANCE]["N"]),
        contract.STATUS: item[contract.STATUS]["S"],
        "version": int(item[ES_LAST_VERSION]["N"]),
    }
    return Response(200, "application/json", json.dumps(body, sort_keys=True))


@logger.inject_lambda_context(
    clear_state=True, correlation_id_path=correlation_paths.API_GATEWAY_REST
)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    load_settings(logger, metrics, _settings, scope="the query")
    return app.resolve(event, context)
