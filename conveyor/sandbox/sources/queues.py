"""The SQS side of queue-backed routes: queue attributes (redrive policy), receives that
report the DLQ moves of moto's redrive policy, batched deletes."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from conveyor.sandbox.model import DeployedStack, Route

if TYPE_CHECKING:
    from conveyor.sandbox.execution import ExecutionEnvironment
    from conveyor.sandbox.sources.base import Delivery

SQS_BATCH = 10  # ReceiveMessage / DeleteMessageBatch / ChangeMessageVisibilityBatch maximum
FALLBACK_VISIBILITY_TIMEOUT = 30


@dataclass
class RouteQueue:
    url: str
    arn: str
    name: str
    fifo: bool
    visibility_timeout: int
    dlq_url: str | None = None
    dlq_name: str | None = None
    max_receive_count: int | None = None


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Queues:
    """The queues of one runtime's routes (attributes read once)."""

    def __init__(self, delivery: Delivery) -> None:
        self._delivery = delivery
        self._sqs = delivery.sqs
        self._known: dict[str, RouteQueue] = {}
        # queue url -> {message id: receive count}: failed at maxReceiveCount, so moto's
        # redrive policy moves them to the DLQ on the next receive.
        self.at_risk: dict[str, dict[str, int]] = {}

    def name(self, url: str) -> str:
        """The queue's name when it is known, else its URL."""
        queue = self._known.get(url)
        return queue.name if queue else url

    def get(self, url: str) -> RouteQueue:
        queue = self._known.get(url)
        if queue is not None:
            return queue
        attributes = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])[
            "Attributes"
        ]
        arn = attributes.get("QueueArn", "")
        queue = RouteQueue(
            url=url,
            arn=arn,
            name=arn.rsplit(":", 1)[-1] or url.rsplit("/", 1)[-1],
            fifo=attributes.get("FifoQueue") == "true",
            visibility_timeout=int(attributes.get("VisibilityTimeout", "30")),
        )
        redrive = attributes.get("RedrivePolicy")
        if redrive:
            policy = json.loads(redrive)
            dlq_arn = str(policy.get("deadLetterTargetArn", ""))
            queue.max_receive_count = int(policy.get("maxReceiveCount", 0)) or None
            queue.dlq_name = dlq_arn.rsplit(":", 1)[-1] or None
            if queue.dlq_name:
                with contextlib.suppress(ClientError):
                    queue.dlq_url = self._sqs.get_queue_url(QueueName=queue.dlq_name)["QueueUrl"]
        self._known[url] = queue
        return queue

    def depth(self, url: str) -> int:
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return sum(int(value) for value in attributes.values())

    def receive(
        self, stack: DeployedStack, route: Route, queue: RouteQueue, count: int
    ) -> list[dict[str, Any]]:
        at_risk = self.at_risk.get(queue.url)
        depth_before = self.depth(queue.dlq_url) if at_risk and queue.dlq_url else None
        request: dict[str, Any] = {
            "QueueUrl": queue.url,
            "MaxNumberOfMessages": max(1, min(SQS_BATCH, count)),
            "MessageSystemAttributeNames": ["All"],
            "MessageAttributeNames": ["All"],
            "WaitTimeSeconds": 0,
        }
        if queue.visibility_timeout <= 0:  # keep received messages in flight
            request["VisibilityTimeout"] = FALLBACK_VISIBILITY_TIMEOUT
        messages: list[dict[str, Any]] = self._sqs.receive_message(**request).get("Messages", [])
        if at_risk and depth_before is not None and queue.dlq_url:
            self._account_redrive(stack, route, queue, at_risk, messages, depth_before)
        return messages

    def _account_redrive(
        self,
        stack: DeployedStack,
        route: Route,
        queue: RouteQueue,
        at_risk: dict[str, int],
        received: list[dict[str, Any]],
        depth_before: int,
    ) -> None:
        """moto moves a message to the DLQ when a receive finds it at maxReceiveCount: compare
        the DLQ depth around that receive and report the moves."""
        assert queue.dlq_url is not None
        moved = self.depth(queue.dlq_url) - depth_before
        received_ids = {m["MessageId"] for m in received}
        for message_id in received_ids & at_risk.keys():
            del at_risk[message_id]  # delivered again instead (redrive policy changed?)
        candidates = [mid for mid in at_risk if mid not in received_ids][: max(moved, 0)]
        for message_id in candidates:
            receive_count = at_risk.pop(message_id)
            self._delivery.trace(
                "dead-letter",
                stack,
                route,
                None,
                (message_id,),
                details={
                    "queue": queue.name,
                    "dead_letter_queue": queue.dlq_name,
                    "receive_count": receive_count,
                    "max_receive_count": queue.max_receive_count,
                },
            )
        unknown = moved - len(candidates)
        if unknown > 0:
            self._delivery.trace(
                "dead-letter",
                stack,
                route,
                None,
                details={
                    "queue": queue.name,
                    "dead_letter_queue": queue.dlq_name,
                    "count": unknown,
                    "note": "moved by the redrive policy without a failure seen by this runtime",
                },
            )
        self._delivery.count(moved_to_dlq=max(moved, 0))
        if not at_risk:
            self.at_risk.pop(queue.url, None)

    def delete(
        self,
        stack: DeployedStack,
        route: Route,
        queue: RouteQueue,
        target: ExecutionEnvironment | None,
        messages: list[dict[str, Any]],
        *,
        event_ids: tuple[str, ...] | None = None,
    ) -> None:
        """Delete processed messages. ``event_ids``: an async route's internal queue; the trace
        then names the SNS message / EventBridge event ids, as its receive did."""
        started = time.perf_counter()
        problems: list[Any] = []
        for chunk in chunks(messages, SQS_BATCH):
            response = self._sqs.delete_message_batch(
                QueueUrl=queue.url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(chunk)
                ],
            )
            problems.extend(response.get("Failed", []))
        details: dict[str, Any] = {"queue": queue.name}
        message_ids = tuple(m["MessageId"] for m in messages)
        if event_ids is not None:
            details["internal_message_ids"] = message_ids
            message_ids = event_ids
        if problems:
            details["failed"] = problems
        self._delivery.trace(
            "delete",
            stack,
            route,
            target,
            message_ids,
            duration_ms=(time.perf_counter() - started) * 1000,
            details=details,
        )
