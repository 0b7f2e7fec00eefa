"""The order-fulfilment saga's demo paths in the sandbox, and execution histories as text.

Each path puts an ``OrderPlaced`` event on the orders bus, lets the runtime start the
execution (``Route(kind="stepfunctions")``), waits for moto's ASL interpreter to finish it,
and checks what the topology promises: the execution's status, the order's state in DynamoDB,
the stock, the states the execution went through, the outcome event. Expected values come from
the orders sent and the handlers' contract, never from what the run produced.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from conveyor.lambdas.fulfillment.fulfillment import contract
from conveyor.sandbox.sources.stepfunctions import execution_name

STOCK = {"SKU-A": 10, "SKU-B": 5, "SKU-GONE": 0}


@dataclass(frozen=True)
class PathCheck:
    name: str
    expected: Any
    observed: Any

    @property
    def ok(self) -> bool:
        return bool(self.expected == self.observed)


@dataclass
class Execution:
    """What one path's execution did."""

    arn: str
    status: str
    error: str | None
    output: Any
    history: list[dict[str, Any]] = field(default_factory=list)

    def entered(self) -> list[str]:
        """The states entered, in order (Map iterations and Parallel branches included)."""
        return [
            str(e["stateEnteredEventDetails"]["name"])
            for e in self.history
            if "stateEnteredEventDetails" in e
        ]

    def task_errors(self) -> list[str]:
        """The error names of the failed task attempts (what Retry/Catch matched), in order."""
        return [str(details.get("error")) for details in map(_failure, self.history) if details]


def _failure(event: dict[str, Any]) -> dict[str, Any] | None:
    """A task attempt's failure (``lambda:invoke`` tasks report LambdaFunctionFailed)."""
    for key in _FAILURE_DETAILS:
        if key in event:
            return dict(event[key])
    return None


_FAILURE_DETAILS = ("taskFailedEventDetails", "lambdaFunctionFailedEventDetails")


def order(
    order_id: str, token: str, lines: list[tuple[str, int]], amount: int = 42
) -> dict[str, Any]:
    return {
        "orderId": order_id,
        "customerId": "c-demo",
        "amount": amount,
        "currency": "EUR",
        "paymentToken": token,
        "lines": [{"sku": sku, "quantity": quantity} for sku, quantity in lines],
    }


def describe_history(execution: Execution) -> list[str]:
    """The execution history, state by state: entered states, task failures (error names:
    what Retry/Catch matched), retries, the compensation path, the end."""
    lines: list[str] = []
    started: dict[int, float] = {}
    for event in execution.history:
        kind = str(event["type"])
        stamp: Any = event.get("timestamp")
        ms = stamp.timestamp() * 1000 if hasattr(stamp, "timestamp") else 0.0
        started.setdefault(0, ms)
        at = f"{ms - started[0]:8.1f} ms"
        if "stateEnteredEventDetails" in event:
            name = event["stateEnteredEventDetails"]["name"]
            lines.append(f"  {at}  → {name}")
        elif (details := _failure(event)) is not None:
            cause = str(details.get("cause", ""))
            with contextlib.suppress(ValueError, AttributeError):
                cause = str(json.loads(cause).get("errorMessage", cause))
            lines.append(f"  {at}    ✗ {details.get('error')}: {cause[:100]}")
        elif kind == "ExecutionSucceeded":
            lines.append(f"  {at}  ■ SUCCEEDED")
        elif kind in ("ExecutionFailed", "ExecutionTimedOut", "ExecutionAborted"):
            details = event.get("executionFailedEventDetails", {})
            lines.append(
                f"  {at}  ■ {kind.removeprefix('Execution').upper()} {details.get('error', '')}"
            )
    return lines


class OrderSagaDemo:
    """Runs the five demo paths against a deployed OrderFulfillment stack."""

    def __init__(
        self,
        client: Callable[[str], Any],
        output: Callable[[str], str],
        runtime: Any,
        *,
        wait_s: float = 60.0,
    ) -> None:
        self.client = client
        self.output = output
        self.runtime = runtime
        self.wait_s = wait_s
        self.trace_lines: list[str] = []

    # -- driving -----------------------------------------------------------------------------

    def seed_stock(self) -> None:
        dynamodb = self.client("dynamodb")
        for sku, available in STOCK.items():
            dynamodb.put_item(
                TableName=self.output("InventoryTableName"),
                Item={"sku": {"S": sku}, "available": {"N": str(available)}},
            )

    def place(self, detail: dict[str, Any]) -> Execution:
        """Put OrderPlaced on the bus, deliver it, wait for its execution to end."""
        response = self.client("events").put_events(
            Entries=[
                {
                    "EventBusName": self.output("EventBusName"),
                    "Source": contract.SOURCE,
                    "DetailType": contract.ORDER_PLACED,
                    "Detail": json.dumps(detail),
                }
            ]
        )
        event_id = str(response["Entries"][0]["EventId"])
        self.runtime.pump()
        machine = self.output("StateMachineArn")
        arn = machine.replace(":stateMachine:", ":execution:") + ":" + execution_name(event_id)
        return self.wait(arn)

    def wait(self, arn: str) -> Execution:
        sfn = self.client("stepfunctions")
        deadline = time.monotonic() + self.wait_s
        while True:
            described = sfn.describe_execution(executionArn=arn)
            if described["status"] != "RUNNING" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        history: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = sfn.get_execution_history(
                executionArn=arn, maxResults=1000, **({"nextToken": token} if token else {})
            )
            history.extend(page["events"])
            token = page.get("nextToken")
            if not token:
                break
        output = described.get("output")
        return Execution(
            arn=arn,
            status=str(described["status"]),
            error=described.get("error"),
            output=json.loads(output) if output else None,
            history=history,
        )

    def order_item(self, order_id: str) -> dict[str, Any]:
        item = self.client("dynamodb").get_item(
            TableName=self.output("OrdersTableName"),
            Key={"orderId": {"S": order_id}},
            ConsistentRead=True,
        )
        return dict(item.get("Item", {}))

    def available(self, sku: str) -> int:
        item = self.client("dynamodb").get_item(
            TableName=self.output("InventoryTableName"),
            Key={"sku": {"S": sku}},
            ConsistentRead=True,
        )
        return int(item["Item"]["available"]["N"])

    def outcomes(self) -> dict[str, str]:
        """orderId -> detail-type of the outcome events received so far (drains the queue)."""
        sqs, url = self.client("sqs"), self.output("OutcomesQueueUrl")
        found: dict[str, str] = {}
        while True:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return found
            for message in messages:
                event = json.loads(message["Body"])
                found[str(event["detail"]["orderId"])] = str(event["detail-type"])
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    def _record(self, title: str, execution: Execution) -> None:
        self.trace_lines.append(f"▶ {title}  ({execution.arn.rsplit(':', 1)[-1]})")
        self.trace_lines.extend(describe_history(execution))

    # -- the paths ---------------------------------------------------------------------------

    def run(self) -> list[PathCheck]:
        self.seed_stock()
        checks: list[PathCheck] = []
        runs = [
            ("happy path", self.happy),
            ("payment declined", self.declined),
            ("out of stock after payment", self.out_of_stock),
            ("transient payment error", self.transient),
            ("compensation fails", self.compensation_fails),
        ]
        for title, path in runs:
            path_checks, execution = path()
            self._record(title, execution)
            checks.extend(
                PathCheck(f"{title}: {c.name}", c.expected, c.observed) for c in path_checks
            )
        outcomes = self.outcomes()
        checks.append(
            PathCheck(
                "outcome events: OrderFulfilled ×2, OrderFailed ×2 (none for the alarm path)",
                {
                    "o-happy": contract.ORDER_FULFILLED,
                    "o-declined": contract.ORDER_FAILED,
                    "o-nostock": contract.ORDER_FAILED,
                    "o-flaky": contract.ORDER_FULFILLED,
                },
                outcomes,
            )
        )
        return checks

    def happy(self) -> tuple[list[PathCheck], Execution]:
        before = self.available("SKU-A"), self.available("SKU-B")
        run = self.place(order("o-happy", "tok_ok", [("SKU-A", 2), ("SKU-B", 1)]))
        item = self.order_item("o-happy")
        return [
            PathCheck("execution succeeded", "SUCCEEDED", run.status),
            PathCheck("order shipped", contract.STATUS_SHIPPED, _s(item, "status")),
            PathCheck(
                "stock reserved per line",
                (before[0] - 2, before[1] - 1),
                (self.available("SKU-A"), self.available("SKU-B")),
            ),
            PathCheck("no compensation ran", [], _compensations(run)),
        ], run

    def declined(self) -> tuple[list[PathCheck], Execution]:
        run = self.place(order("o-declined", contract.TOKEN_DECLINED, [("SKU-A", 1)]))
        item = self.order_item("o-declined")
        return [
            PathCheck("execution ended as payment declined", "PaymentDeclined", run.entered()[-1]),
            PathCheck("order recorded as declined", contract.STATUS_DECLINED, _s(item, "status")),
            PathCheck("no inventory touched", False, "UpdateInventory" in run.entered()),
            PathCheck("customer notified", True, "NotifyCustomerDeclined" in run.entered()),
        ], run

    def out_of_stock(self) -> tuple[list[PathCheck], Execution]:
        before = self.available("SKU-A")
        run = self.place(order("o-nostock", "tok_ok", [("SKU-A", 3), ("SKU-GONE", 1)]))
        item = self.order_item("o-nostock")
        return [
            PathCheck("execution succeeded (compensated)", "SUCCEEDED", run.status),
            PathCheck(
                "failed on OutOfStock once (not retried)",
                1,
                run.task_errors().count(contract.OUT_OF_STOCK),
            ),
            PathCheck(
                "compensations in reverse order",
                ["CancelShipping", "ReleaseStock", "RefundPayment"],
                _compensations(run),
            ),
            PathCheck("payment refunded", contract.STATUS_REFUNDED, _s(item, "status")),
            PathCheck("reserved stock released", before, self.available("SKU-A")),
            PathCheck("shipping reservation cancelled", "CANCELLED", _s(item, "shippingStatus")),
        ], run

    def transient(self) -> tuple[list[PathCheck], Execution]:
        run = self.place(order("o-flaky", contract.TOKEN_FLAKY, [("SKU-B", 1)]))
        item = self.order_item("o-flaky")
        return [
            PathCheck("execution succeeded", "SUCCEEDED", run.status),
            PathCheck(
                "one TransientError, then retried", [contract.TRANSIENT_ERROR], run.task_errors()
            ),
            PathCheck("payment attempted twice", "2", item.get("paymentAttempts", {}).get("N")),
            PathCheck("order shipped", contract.STATUS_SHIPPED, _s(item, "status")),
        ], run

    def compensation_fails(self) -> tuple[list[PathCheck], Execution]:
        before = self.available("SKU-A")
        run = self.place(
            order("o-refund-fails", contract.TOKEN_REFUND_FAILS, [("SKU-A", 1), ("SKU-GONE", 1)])
        )
        item = self.order_item("o-refund-fails")
        return [
            PathCheck("execution failed (alarm on failed executions)", "FAILED", run.status),
            PathCheck("failure named CompensationFailed", "CompensationFailed", run.error),
            PathCheck("operators notified", True, "NotifyOperators" in run.entered()),
            PathCheck("stock still released first", before, self.available("SKU-A")),
            PathCheck(
                "payment left charged for the operators", "CHARGED", _s(item, "paymentStatus")
            ),
        ], run


_COMPENSATIONS = ("CancelShipping", "ReleaseStock", "RefundPayment")


def _compensations(run: Execution) -> list[str]:
    return [name for name in run.entered() if name in _COMPENSATIONS]


def _s(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name, {}).get("S")
    return str(value) if value is not None else None
