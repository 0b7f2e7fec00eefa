"""The SQS partial-batch consumer skeleton, and failure logging for asynchronous handlers.

A consumer handler supplies only its record logic::

    logger = Logger()
    metrics = new_metrics()
    _settings = cached_settings(Settings)
    consumer = SqsConsumer(logger, metrics, _settings, BatchProcessor(event_type=EventType.SQS))

    @consumer.record_logic(logged_errors=(MalformedMessage,))
    def _handle_message(record: SQSRecord, settings: Settings) -> None:
        ...

    handler = consumer.lambda_handler()

Per invocation: the settings are checked first (an invalid configuration fails the whole
batch, counting every record in ``RecordsFailed``: each would fail the same way), then
Powertools' ``process_partial_response`` runs ``handle(record, settings)`` per record.
Returning acknowledges a record; raising makes it a batch item failure (``RecordsFailed``,
logged as transient or unexpected). If every record fails, Powertools raises instead: the
invocation counts as an error and the event source backs off.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, NoReturn, TypeVar

from aws_lambda_powertools.utilities.batch import process_partial_response

from .contract import RECORDS_FAILED
from .failures import is_transient
from .metrics import count
from .settings import ConfigError

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger, Metrics
    from aws_lambda_powertools.utilities.batch.base import BasePartialBatchProcessor
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

S = TypeVar("S")
RecordLogic = Callable[["SQSRecord", S], Any]
Handler = Callable[[dict[str, Any], "LambdaContext"], Any]
# An extra failure logger: returns True when it logged ``exc`` itself.
FailureLogger = Callable[[Exception], bool]

ASYNC_DESTINATION = "the function's on-failure destination / dead-letter queue"


@dataclass
class SqsConsumer(Generic[S]):
    """An SQS consumer over a Powertools partial-batch processor."""

    logger: Logger
    metrics: Metrics
    # Cached settings loader (raises ConfigError).
    settings: Callable[[], S]
    processor: BasePartialBatchProcessor
    # The record logic (see :meth:`record_logic`): returning acknowledges, raising fails it.
    handle: Callable[[SQSRecord, S], Any] | None = None
    # Errors the record logic logged itself (dead-letter failures...): not logged again.
    logged_errors: tuple[type[Exception], ...] = ()
    # Log keys the record logic appends, removed after each record.
    record_log_keys: Sequence[str] = ()
    # Extra log keys per record, besides message_id.
    record_context: Callable[[SQSRecord], Mapping[str, Any]] | None = None
    # Called once the settings are valid, before the batch (log keys, idempotency context).
    prepare: Callable[[S, LambdaContext], None] | None = None
    # Called after the batch, also when every record failed.
    finish: Callable[[], None] | None = None
    # What the failure logs say happens next.
    retry_note: str = "the message will be retried"
    redrive_note: str = "dead-lettered by the queue's redrive policy"
    log_failure_hook: FailureLogger | None = field(default=None)

    def record_logic(
        self, *, logged_errors: tuple[type[Exception], ...] = (), log_keys: Sequence[str] = ()
    ) -> Callable[[RecordLogic[S]], RecordLogic[S]]:
        """Decorator registering the record logic ``handle(record, settings)``.

        ``logged_errors``: errors it logs itself (not logged again); ``log_keys``: log keys it
        appends, removed after each record."""

        def register(handle: RecordLogic[S]) -> RecordLogic[S]:
            self.handle = handle
            self.logged_errors = logged_errors
            self.record_log_keys = log_keys
            return handle

        return register

    def lambda_handler(self) -> Handler:
        """The Lambda entry point: Powertools' Logger context and Metrics flush around
        :meth:`handle_event`."""
        decorated: Handler = self.logger.inject_lambda_context(clear_state=True)(
            self.metrics.log_metrics(self.handle_event)
        )
        return decorated

    def handle_event(
        self, event: dict[str, Any], context: LambdaContext
    ) -> PartialItemFailureResponse:
        settings = load_settings(
            self.logger,
            self.metrics,
            self.settings,
            scope="the whole batch",
            failed=record_count(event),
        )
        if self.prepare is not None:
            self.prepare(settings, context)
        try:
            return process_partial_response(
                event=event,
                record_handler=self.record_handler,
                processor=self.processor,
                context=context,
            )
        finally:
            if self.finish is not None:
                self.finish()

    def record_handler(self, record: SQSRecord) -> Any:
        """Handle one SQS message. Returning acknowledges it; raising makes it a batch failure."""
        keys = {"message_id": record.message_id}
        if self.record_context is not None:
            keys.update(self.record_context(record))
        with self.logger.append_context_keys(**keys):
            try:
                if self.handle is None:
                    raise TypeError("SqsConsumer has no record logic: use @consumer.record_logic")
                return self.handle(record, self.settings())
            except Exception as exc:
                self.log_failure(exc)
                count(self.metrics, RECORDS_FAILED)
                raise
            finally:
                if self.record_log_keys:
                    self.logger.remove_keys(list(self.record_log_keys))

    def log_failure(self, exc: Exception) -> None:
        if isinstance(exc, self.logged_errors):
            return
        if self.log_failure_hook is not None and self.log_failure_hook(exc):
            return
        if is_transient(exc):
            self.logger.warning(f"Transient error: {self.retry_note}", exc_info=exc)
        else:
            self.logger.exception(f"Unexpected error: {self.retry_note}, then {self.redrive_note}")


def load_settings(
    logger: Logger,
    metrics: Metrics,
    settings: Callable[[], S],
    *,
    scope: str = "the invocation",
    metric: str = RECORDS_FAILED,
    failed: int = 1,
) -> S:
    """``settings()``; on ConfigError log it, count ``failed`` in ``metric`` and raise."""
    try:
        return settings()
    except ConfigError as exc:
        # Every record would fail the same way: fail the invocation, the event source retries.
        logger.exception(
            f"Invalid configuration: failing {scope}", extra={"variable": exc.variable}
        )
        count(metrics, metric, failed)
        raise


def record_count(event: object) -> int:
    """How many records an event holds (0 for anything that is not a batch)."""
    records = event.get("Records") if isinstance(event, dict) else None
    return len(records) if isinstance(records, list) else 0


def log_invocation_failure(
    logger: Logger,
    metrics: Metrics,
    exc: Exception,
    *,
    metric: str,
    destination: str = ASYNC_DESTINATION,
) -> None:
    """An asynchronously invoked handler is about to raise ``exc``: count and log it."""
    count(metrics, metric)
    if is_transient(exc):
        logger.warning("Transient error: raising so that Lambda retries the event", exc_info=exc)
    else:
        logger.exception(
            "Unexpected error: raising, Lambda retries the event and then sends it to "
            + destination
        )


def reject_malformed(
    logger: Logger,
    metrics: Metrics,
    reason: str,
    *,
    what: str,
    metric: str,
    error: type[Exception],
    destination: str = ASYNC_DESTINATION,
) -> NoReturn:
    """An asynchronously invoked handler got an unusable event: log, count, raise ``error``."""
    logger.error(
        f"Malformed {what}: raising, Lambda retries the event and then sends it to {destination}",
        extra={"reason": reason},
    )
    count(metrics, metric)
    raise error(reason)
