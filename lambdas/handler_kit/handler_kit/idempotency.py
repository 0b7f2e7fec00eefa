"""Powertools idempotency wiring: a function run once per key, and the duplicate hook."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    IdempotentHookFunction,
    idempotent_function,
)

from .contract import DUPLICATES_SKIPPED
from .metrics import count

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger, Metrics
    from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
    from botocore.client import BaseClient

Work = Callable[..., dict[str, Any]]


def duplicate_hook(logger: Logger, metrics: Metrics, message: str) -> IdempotentHookFunction:
    """Powertools calls the hook instead of the work when the key was already processed:
    it logs ``message`` with the key and the stored result, and counts DuplicatesSkipped."""

    def on_duplicate(response: Any, idempotent_data: DataRecord) -> Any:
        logger.info(
            message,
            extra={"idempotency_key": idempotent_data.idempotency_key, "result": response},
        )
        count(metrics, DUPLICATES_SKIPPED)
        return response

    return on_duplicate


def idempotency_config(
    key_jmespath: str, expires_after_seconds: int, hook: IdempotentHookFunction
) -> IdempotencyConfig:
    """The key is required (an event without it is an error, never processed unguarded)."""
    return IdempotencyConfig(
        event_key_jmespath=key_jmespath,
        raise_on_no_idempotency_key=True,
        expires_after_seconds=expires_after_seconds,
        response_hook=hook,
    )


def once(
    work: Work,
    *,
    data_keyword_argument: str,
    table: str,
    client: BaseClient,
    config: IdempotencyConfig,
    key_prefix: str,
) -> Work:
    """``work`` made idempotent on the ``data_keyword_argument`` argument (records in
    ``table``, keys ``<key_prefix>#<hash>``)."""
    persistence = DynamoDBPersistenceLayer(table_name=table, boto3_client=client)
    return cast(
        Work,
        idempotent_function(
            work,
            data_keyword_argument=data_keyword_argument,
            persistence_store=persistence,
            config=config,
            key_prefix=key_prefix,
        ),
    )
