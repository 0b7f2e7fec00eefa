"""Which errors are worth retrying: throttling, timeouts, 5xx, connection problems."""

from __future__ import annotations

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotocoreConnectionError

# Error codes worth retrying (SQS, DynamoDB and generic AWS ones); any 5xx status is too.
TRANSIENT_ERROR_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "TooManyRequestsException",
        "TransactionConflictException",
        "LimitExceededException",
        "InternalServerError",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "RequestTimeout",
        "RequestTimeoutException",
        "KMSThrottlingException",
    }
)


def is_transient(exc: BaseException) -> bool:
    """True if ``exc``, or an error it wraps (Powertools wraps DynamoDB errors), is transient."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (BotocoreConnectionError, HTTPClientError)):
            return True
        if isinstance(current, ClientError) and (
            error_code(current) in TRANSIENT_ERROR_CODES or http_status(current) >= 500
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def http_status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
