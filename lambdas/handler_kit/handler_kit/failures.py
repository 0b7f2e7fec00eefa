"""Which AWS errors are worth retrying, and which mean that a queue no longer exists.

One classification for every handler: the union of what they each knew (SQS, S3, DynamoDB,
KMS and generic throttling codes; any 5xx; connection errors; a DynamoDB transaction cancelled
by throttling or a conflict), following wrapped errors through ``__cause__``/``__context__``
(Powertools wraps DynamoDB errors), cycles included.
"""

from __future__ import annotations

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotocoreConnectionError

# Error codes worth retrying; any 5xx status is too.
TRANSIENT_ERROR_CODES = frozenset(
    {
        # Throttling
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "RequestThrottled",
        "AWS.SimpleQueueService.RequestThrottled",
        "TooManyRequestsException",
        "LimitExceededException",
        "KMSThrottlingException",
        "SlowDown",
        # Conflicts that a later attempt resolves
        "TransactionConflictException",
        "TransactionInProgressException",
        # Server side
        "InternalServerError",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)

# Why DynamoDB cancels a transaction, when retrying may succeed.
TRANSIENT_CANCELLATION_CODES = frozenset(
    {
        "ThrottlingError",
        "ProvisionedThroughputExceeded",
        "TransactionConflict",
        "RequestLimitExceeded",
    }
)

# SQS's answers for a queue that does not exist. With the JSON protocol botocore reports the
# legacy query code ("AWS.SimpleQueueService.NonExistentQueue") as Code and the modeled one
# ("QueueDoesNotExist") as QueryErrorCode; the message-move-task APIs answer
# ResourceNotFoundException.
QUEUE_MISSING_ERROR_CODES = frozenset(
    {
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "ResourceNotFoundException",
    }
)


def is_transient(exc: BaseException) -> bool:
    """True if ``exc``, or an error it wraps, is transient (throttling, 5xx, connection...)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (BotocoreConnectionError, HTTPClientError)):
            return True
        if isinstance(current, ClientError) and (
            error_code(current) in TRANSIENT_ERROR_CODES
            or http_status(current) >= 500
            or _transaction_cancelled_transiently(current)
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


def _transaction_cancelled_transiently(exc: ClientError) -> bool:
    """A DynamoDB transaction cancelled by throttling or a conflicting transaction (not by
    one of its conditions)."""
    if error_code(exc) != "TransactionCanceledException":
        return False
    reasons = exc.response.get("CancellationReasons") or []
    codes = {str(reason.get("Code", "")) for reason in reasons if isinstance(reason, dict)}
    return bool(codes & TRANSIENT_CANCELLATION_CODES)


def is_queue_missing(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    return bool(
        {str(error.get("Code", "")), str(error.get("QueryErrorCode", ""))}
        & QUEUE_MISSING_ERROR_CODES
    )


def is_conditional_check_failed(exc: ClientError) -> bool:
    return error_code(exc) == "ConditionalCheckFailedException"


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def http_status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
