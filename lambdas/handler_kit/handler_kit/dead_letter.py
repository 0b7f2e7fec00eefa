"""Direct sends to a dead-letter queue: a message that can never succeed leaves the source
queue at once instead of after maxReceiveCount attempts.

The DLQ copy keeps the body and the message's own String/Number attributes (so that a
redriven message looks like the original), plus ``ErrorReason`` (truncated) and
``SourceMessageId``. On a FIFO DLQ it keeps the message group (a redrive replays it in order)
and is deduplicated by the source message id. When the send is not possible (no queue
configured, or SQS refused it) the given error is raised: the record becomes a batch item
failure and the source queue's redrive policy takes over.

One copy per source message: a standard DLQ does not deduplicate, so a poison message whose
delete is lost (or whose invocation times out after the copy) would be copied again on its
redelivery. With a :class:`DeadLetterLedger` (a DynamoDB table, e.g. the handler's Powertools
idempotency table), the copy is recorded under the source queue and message id once sent, and
a redelivery of an already copied message is acknowledged without a second copy or a second
``MessagesDeadLettered``. What remains: the function dying between the send and the ledger
write (milliseconds) still copies twice, and two deliveries of one message processed at the
same moment may both copy. Without a ledger the copy is at-least-once; every copy carries
``SourceMessageId``, so duplicates are recognisable in the DLQ.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from .contract import DEAD_LETTER_QUEUE_URL, DUPLICATES_SKIPPED, MESSAGES_DEAD_LETTERED
from .metrics import count

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger, Metrics
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from botocore.client import BaseClient

MAX_ERROR_REASON_CHARS = 1024
# SQS allows 10 message attributes; the DLQ copy needs two of them for the reason.
MAX_MESSAGE_ATTRIBUTES = 10
DEAD_LETTER_ATTRIBUTES = ("ErrorReason", "SourceMessageId")
REDRIVE_NOTE = "the queue's redrive policy moves it to the DLQ after maxReceiveCount"


# How long the ledger remembers a copy: the longest a DLQ keeps a message (14 days).
LEDGER_RETENTION_SECONDS = 14 * 24 * 3600
LEDGER_STATUS = "DEAD_LETTERED"


@dataclass(frozen=True)
class DeadLetterLedger:
    """Which source messages were already copied to the DLQ, in a DynamoDB table whose
    partition key is ``id`` (string) and TTL attribute ``expiration`` — the layout of the
    Powertools idempotency table, which it can share (items ``dead-letter#<queue>#<id>``).

    ``table`` returns the table name, or None for no ledger (at-least-once copies)."""

    client: Callable[[], BaseClient]
    table: Callable[[], str | None]
    retention_seconds: int = LEDGER_RETENTION_SECONDS

    @staticmethod
    def key(record: SQSRecord) -> str:
        return f"dead-letter#{record.get('eventSourceARN') or ''}#{record.message_id}"

    def copied(self, record: SQSRecord) -> str | None:
        """The DLQ message id of this record's earlier copy, if there is one."""
        table = self.table()
        if table is None:
            return None
        item = (
            self.client()
            .get_item(TableName=table, Key={"id": {"S": self.key(record)}}, ConsistentRead=True)
            .get("Item")
        )
        if not item:
            return None
        return str(item.get("dlqMessageId", {}).get("S", ""))

    def record(self, record: SQSRecord, dead_letter_message_id: str) -> None:
        table = self.table()
        if table is None:
            return
        self.client().put_item(
            TableName=table,
            Item={
                "id": {"S": self.key(record)},
                "status": {"S": LEDGER_STATUS},
                "dlqMessageId": {"S": dead_letter_message_id},
                "expiration": {"N": str(int(time.time()) + self.retention_seconds)},
            },
        )


@dataclass(frozen=True)
class DeadLetterQueue:
    """Where and how a handler dead-letters the messages it can never process.

    ``label`` starts the log lines ("Poison message", "Malformed message"...); ``fallback``
    says what happens when a message cannot be dead-lettered.
    """

    logger: Logger
    metrics: Metrics
    client: Callable[[], BaseClient]
    label: str = "Poison message"
    fallback: str = REDRIVE_NOTE
    fifo: bool = False
    # Standard DLQs: one copy per source message (see the module docstring). FIFO DLQs
    # deduplicate by the source message id themselves.
    ledger: DeadLetterLedger | None = None

    def send(self, record: SQSRecord, reason: str, error: Exception, url: str | None) -> None:
        """Send ``record`` to the queue ``url`` and count it; or log and raise ``error``."""
        reason = reason[:MAX_ERROR_REASON_CHARS]
        if url is None:
            self.logger.error(
                f"{self.label} and no {DEAD_LETTER_QUEUE_URL}: failing it, {self.fallback}",
                extra={"reason": reason},
            )
            raise error
        if self._already_copied(record, reason):
            return
        request: dict[str, Any] = {
            "QueueUrl": url,
            "MessageBody": record.body,
            "MessageAttributes": dead_letter_attributes(record, reason),
        }
        if self.fifo:
            # Same group: the DLQ keeps the group's order, a redrive replays it in order. A
            # missing group (not a FIFO record) falls back to the message's own id.
            request["MessageGroupId"] = system_attribute(record, "MessageGroupId") or (
                record.message_id
            )
            # A redelivery of this message (the Lambda died before acknowledging it) is
            # dead-lettered at most once within the 5-minute deduplication interval.
            request["MessageDeduplicationId"] = record.message_id
        try:
            response = self.client().send_message(**request)
        except (BotoCoreError, ClientError) as exc:
            self.logger.exception(
                f"{self.label} could not be sent to the dead-letter queue: failing it, "
                f"{self.fallback}",
                extra={"reason": reason},
            )
            raise error from exc
        self.logger.warning(
            f"{self.label} sent to the dead-letter queue",
            extra={
                "reason": reason,
                "error": type(error).__name__,
                "dead_letter_message_id": response.get("MessageId"),
            },
        )
        count(self.metrics, MESSAGES_DEAD_LETTERED)
        if self.ledger is not None:
            try:
                self.ledger.record(record, str(response.get("MessageId", "")))
            except (BotoCoreError, ClientError):
                # The copy exists: failing the record now would copy it again.
                self.logger.exception(
                    f"{self.label} dead-lettered, but its copy could not be recorded: a "
                    "redelivery of it would be copied again",
                    extra={"reason": reason},
                )

    def _already_copied(self, record: SQSRecord, reason: str) -> bool:
        if self.ledger is None:
            return False
        try:
            earlier = self.ledger.copied(record)
        except (BotoCoreError, ClientError):
            # Unknown: copying again (a possible duplicate) beats losing the message.
            self.logger.exception(
                f"{self.label}: the dead-letter ledger could not be read; copying it anyway",
                extra={"reason": reason},
            )
            return False
        if earlier is None:
            return False
        self.logger.info(
            f"{self.label} was already sent to the dead-letter queue: acknowledged, not "
            "copied again",
            extra={"reason": reason, "dead_letter_message_id": earlier},
        )
        count(self.metrics, DUPLICATES_SKIPPED)
        return True


def dead_letter_attributes(record: Mapping[str, Any], reason: str) -> dict[str, Any]:
    """ErrorReason and SourceMessageId, plus the record's own String/Number attributes (at
    most 10 attributes in all, the first ones kept)."""
    attributes: dict[str, Any] = {
        "ErrorReason": {"DataType": "String", "StringValue": reason[:MAX_ERROR_REASON_CHARS]},
        "SourceMessageId": {"DataType": "String", "StringValue": str(record.get("messageId"))},
    }
    original = record.get("messageAttributes")
    for name, attribute in original.items() if isinstance(original, dict) else ():
        if len(attributes) >= MAX_MESSAGE_ATTRIBUTES or name in DEAD_LETTER_ATTRIBUTES:
            continue
        if not isinstance(attribute, dict):
            continue
        data_type = attribute.get("dataType")
        value = attribute.get("stringValue")
        if isinstance(data_type, str) and data_type.startswith(("String", "Number")) and value:
            attributes[name] = {"DataType": data_type, "StringValue": value}
    return attributes


def system_attribute(record: Mapping[str, Any], name: str) -> str | None:
    """A system attribute of an SQS record (MessageGroupId, SentTimestamp...), if present."""
    attributes = record.get("attributes")
    value = attributes.get(name) if isinstance(attributes, dict) else None
    return value if isinstance(value, str) else None
