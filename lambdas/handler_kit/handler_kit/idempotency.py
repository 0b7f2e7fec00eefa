"""Powertools idempotency wiring: a function run once per key, and the duplicate hook.

The completion write (Powertools' ``save_success``: the record goes from INPROGRESS to
COMPLETED with the result) is retried with capped exponential backoff and full jitter on
throttling and transient DynamoDB errors (:class:`RetryingPersistenceLayer`). Without that, one
throttled write leaves the record INPROGRESS until it expires with the invocation, and the
redelivery runs the work a second time. If every attempt fails the record still fails and is
retried later: delivery of the *work* is then at-least-once, so a work with an external side
effect must key that effect by the idempotency key at its destination (a conditional write, a
deterministic id) — see each handler's docstring for what it does.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, cast

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    IdempotentHookFunction,
    idempotent_function,
)
from botocore.exceptions import ClientError

from .contract import DUPLICATES_SKIPPED
from .metrics import count

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger, Metrics
    from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
    from botocore.client import BaseClient

Work = Callable[..., dict[str, Any]]

# Attempts of the completion write, and the backoff between them (full jitter, capped): at
# most ~1.5 s in all, well inside a handler's timeout.
COMPLETION_WRITE_ATTEMPTS: Final = 5
COMPLETION_BACKOFF_BASE_S: Final = 0.05
COMPLETION_BACKOFF_CAP_S: Final = 0.8
RETRYABLE_ERRORS: Final = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionConflictException",
    }
)


class RetryingPersistenceLayer(DynamoDBPersistenceLayer):
    """Powertools' DynamoDB persistence layer whose completion write is retried (above).

    ``sleep`` is injectable so that tests do not wait."""

    def __init__(self, *args: Any, sleep: Callable[[float], None] = time.sleep, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._sleep = sleep

    def _update_record(self, data_record: DataRecord) -> None:
        for attempt in range(COMPLETION_WRITE_ATTEMPTS):
            try:
                super()._update_record(data_record)
                return
            except ClientError as error:
                code = error.response.get("Error", {}).get("Code", "")
                if code not in RETRYABLE_ERRORS or attempt == COMPLETION_WRITE_ATTEMPTS - 1:
                    raise
                cap = min(COMPLETION_BACKOFF_CAP_S, COMPLETION_BACKOFF_BASE_S * 2**attempt)
                self._sleep(random.uniform(0, cap))  # noqa: S311 - jitter, not a secret


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
    persistence = RetryingPersistenceLayer(table_name=table, boto3_client=client)
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
