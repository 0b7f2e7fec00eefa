"""The OrderChoreography topology in the sandbox: place orders (the Commande service's
PlaceOrder command, invoked in-process), deliver the choreography's events, read each
service's table, and follow one order across the services by its correlation id.

:class:`CorrelationTrace` collects, from the runtime's ``result`` trace events, every log line
a handler printed (Powertools JSON logs) and keeps those whose ``correlation_id`` is the one
asked for: one order's path through every service, in the order the lines were written —
what ``conveyor trace OrderChoreography --correlation-id ID`` prints, and what CloudWatch Logs
Insights shows with ``filter correlation_id = "ID"`` across the services' log groups.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from conveyor.lambdas.choreography.choreography import contract
from conveyor.sandbox.traces import TraceEvent


@dataclass(frozen=True)
class LogLine:
    service: str
    function: str
    timestamp: str
    level: str
    message: str
    fields: dict[str, Any]

    def describe(self) -> str:
        extra = " ".join(
            f"{k}={self.fields[k]}"
            for k in ("event_type", "event_id", "causation_id", "published_event_id")
            if self.fields.get(k)
        )
        return f"{self.timestamp}  {self.service:<13} {self.level:<7} {self.message}  {extra}"


@dataclass
class CorrelationTrace:
    """Feed it the runtime's trace events (``on_event``); read :meth:`lines`."""

    forward: Callable[[TraceEvent], None] | None = None
    _lines: list[LogLine] = field(default_factory=list)

    def __call__(self, event: TraceEvent) -> None:
        if self.forward is not None:
            self.forward(event)
        if event.kind != "result" or event.invocation is None:
            return
        for line in event.invocation.logs:
            self._lines.append(
                LogLine(
                    service=str(line.get("service", "")),
                    function=event.function or "",
                    timestamp=str(line.get("timestamp", "")),
                    level=str(line.get("level", "")),
                    message=str(line.get("message", "")),
                    fields=line,
                )
            )

    def lines(self, correlation_id: str | None = None) -> list[LogLine]:
        if correlation_id is None:
            return list(self._lines)
        return [line for line in self._lines if line.fields.get("correlation_id") == correlation_id]

    def correlation_ids(self) -> list[str]:
        seen: list[str] = []
        for line in self._lines:
            value = line.fields.get("correlation_id")
            if isinstance(value, str) and value not in seen:
                seen.append(value)
        return seen


def render(lines: Iterable[LogLine], correlation_id: str) -> list[str]:
    rows = list(lines)
    services = sorted({line.service for line in rows})
    head = (
        f"correlation id {correlation_id}: {len(rows)} log lines from "
        f"{len(services)} services ({', '.join(services)})"
    )
    return [head, *(f"  {line.describe()}" for line in rows)]


@dataclass(frozen=True)
class Placed:
    order_id: str
    correlation_id: str
    status: str


class ChoreographyDemo:
    """``client(service)``: a boto3 client of the sandbox; ``output(name)``: a stack output;
    ``runtime``: the sandbox runtime."""

    def __init__(
        self,
        client: Callable[[str], Any],
        output: Callable[[str], str],
        runtime: Any,
        *,
        stack: str | None = None,
    ) -> None:
        self.client = client
        self.output = output
        self.runtime = runtime
        self.stack = stack

    def seed_stock(self, stock: dict[str, int]) -> None:
        dynamodb = self.client("dynamodb")
        for sku, available in stock.items():
            dynamodb.put_item(
                TableName=self.output("InventoryTableName"),
                Item={contract.SKU: {"S": sku}, contract.AVAILABLE: {"N": str(available)}},
            )

    def place(
        self,
        order_id: str,
        customer_id: str,
        lines: list[tuple[str, int, int]],
        *,
        pump: bool = True,
    ) -> Placed:
        command = {
            contract.COMMAND: contract.PLACE_ORDER,
            contract.ORDER_ID: order_id,
            contract.CUSTOMER_ID: customer_id,
            contract.LINES: [
                {contract.SKU: sku, contract.QUANTITY: quantity, contract.UNIT_PRICE: price}
                for sku, quantity, price in lines
            ],
        }
        result = self.runtime.invoke(self.output("CommandeFunctionName"), command, stack=self.stack)
        if result.error is not None:
            raise RuntimeError(f"PlaceOrder: {result.error.type}: {result.error.message}")
        answer = result.response
        if pump:
            self.runtime.pump()
        return Placed(
            str(answer.get(contract.ORDER_ID, order_id)),
            str(answer.get(contract.CORRELATION_ID, "")),
            str(answer.get(contract.STATUS, answer.get("error", ""))),
        )

    def tap(self) -> str:
        """A sandbox-only rule on the bus copying every choreography event to an SQS queue
        (to read what the services published); returns the queue URL."""
        sqs, events = self.client("sqs"), self.client("events")
        url = sqs.create_queue(QueueName="sandbox-choreography-tap")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        bus = self.output("EventBusName")
        events.put_rule(
            Name="sandbox-choreography-tap",
            EventBusName=bus,
            EventPattern=json.dumps({"source": [{"prefix": contract.SOURCE_PREFIX}]}),
        )
        events.put_targets(
            Rule="sandbox-choreography-tap", EventBusName=bus, Targets=[{"Id": "tap", "Arn": arn}]
        )
        self._tap = str(url)
        self._tapped: list[dict[str, Any]] = []
        return self._tap

    def published(self) -> list[dict[str, Any]]:
        """Every event the tap saw so far (EventBridge events, in arrival order)."""
        sqs = self.client("sqs")
        while True:
            messages = sqs.receive_message(QueueUrl=self._tap, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not messages:
                return list(self._tapped)
            for message in messages:
                self._tapped.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self._tap, ReceiptHandle=message["ReceiptHandle"])

    def redeliver(self, event: dict[str, Any]) -> None:
        """Put a published event on the bus again, detail unchanged (same ``eventId``): an
        at-least-once delivery's duplicate; then deliver."""
        self.client("events").put_events(
            Entries=[
                {
                    "EventBusName": self.output("EventBusName"),
                    "Source": event["source"],
                    "DetailType": event["detail-type"],
                    "Detail": json.dumps(event["detail"], ensure_ascii=False),
                }
            ]
        )
        self.runtime.pump()

    # -- each service's state --------------------------------------------------------------------

    def _item(self, table_output: str, key: str, value: str) -> dict[str, Any] | None:
        item = (
            self.client("dynamodb")
            .get_item(TableName=self.output(table_output), Key={key: {"S": value}})
            .get("Item")
        )
        return dict(item) if item else None

    def order_status(self, order_id: str) -> str | None:
        item = self._item("OrdersTableName", contract.ORDER_ID, order_id)
        return item[contract.STATUS]["S"] if item else None

    def invoice(self, order_id: str) -> tuple[str, int] | None:
        item = self._item("InvoicesTableName", contract.ORDER_ID, order_id)
        return (item[contract.STATUS]["S"], int(item[contract.TOTAL]["N"])) if item else None

    def available(self, sku: str) -> int:
        item = self._item("InventoryTableName", contract.SKU, sku)
        return int(item[contract.AVAILABLE]["N"]) if item else 0

    def notifications(self, order_id: str) -> list[str]:
        """What the customer was notified about (the incoming event types), sorted."""
        items = self.client("dynamodb").scan(TableName=self.output("NotificationsTableName"))[
            "Items"
        ]
        return sorted(i["about"]["S"] for i in items if i[contract.ORDER_ID]["S"] == order_id)

    def queue_depth(self, output: str) -> int:
        attributes = self.client("sqs").get_queue_attributes(
            QueueUrl=self.output(output),
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )
