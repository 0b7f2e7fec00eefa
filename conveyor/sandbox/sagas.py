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


def describe_history(execution: Execution, *, width: int = 110) -> list[str]:
    """The execution history as text, state by state.

    ``→ State  in {…}`` when a state is entered (its input, left out when it is the output of
    the state that exited last); ``← State  out +key={…}`` when it exits (the keys its
    ``ResultPath`` added or changed, or its whole output when it replaced the input); one ``✗``
    line per failed task attempt (the error name: what Retry/Catch matched); one ``↻`` line per
    retry (attempt number and the error that caused it); Map iterations by index; compensation
    states marked; then the end. Texts longer than ``width`` characters are cut with ``…``.
    """
    by_id = {int(e["id"]): e for e in execution.history if "id" in e}
    attempts: dict[int, int] = {}  # entered-event id -> task attempts scheduled so far
    last_error: dict[int, str] = {}  # entered-event id -> the error of its last failed attempt
    inputs: dict[str, Any] = {}
    previous_output: Any = _MISSING  # a state's input is shown unless it is the last output
    lines: list[str] = []
    first: float | None = None
    for event in execution.history:
        kind = str(event["type"])
        stamp: Any = event.get("timestamp")
        ms = stamp.timestamp() * 1000 if hasattr(stamp, "timestamp") else 0.0
        first = ms if first is None else first
        at = f"{ms - first:8.1f} ms"
        if "stateEnteredEventDetails" in event:
            details = event["stateEnteredEventDetails"]
            name = str(details["name"])
            inputs[name] = _json(details.get("input"))
            tag = "  (compensation)" if name in _COMPENSATIONS else ""
            same = bool(lines) and inputs[name] == previous_output
            text = "" if same else f"  in {_clip(_compact(inputs[name]), width)}"
            lines.append(f"  {at}  → {name}{tag}{text}")
        elif "stateExitedEventDetails" in event:
            details = event["stateExitedEventDetails"]
            name = str(details["name"])
            previous_output = _json(details.get("output"))
            out = _changes(inputs.get(name), previous_output)
            lines.append(f"  {at}  ← {name}  out {_clip(out, width)}")
        elif kind in _SCHEDULED:
            entered = _entered(event, by_id)
            if entered is None:
                continue
            attempts[entered] = attempts.get(entered, 0) + 1
            if attempts[entered] > 1:
                state = by_id[entered]["stateEnteredEventDetails"]["name"]
                cause = last_error.get(entered, "?")
                lines.append(f"  {at}    ↻ {state}: retry {attempts[entered] - 1} after {cause}")
        elif (details := _failure(event)) is not None:
            cause = str(details.get("cause", ""))
            with contextlib.suppress(ValueError, AttributeError):
                cause = str(json.loads(cause).get("errorMessage", cause))
            entered = _entered(event, by_id)
            if entered is not None:
                last_error[entered] = str(details.get("error"))
            attempt = f" (attempt {attempts.get(entered, 1)})" if entered is not None else ""
            lines.append(f"  {at}    ✗ {details.get('error')}{attempt}: {_clip(cause, width)}")
        elif kind == "MapIterationStarted":
            details = event.get("mapIterationStartedEventDetails", {})
            lines.append(f"  {at}    ⋯ {details.get('name')}[{details.get('index')}]")
        elif kind == "ExecutionSucceeded":
            lines.append(f"  {at}  ■ SUCCEEDED")
        elif kind in ("ExecutionFailed", "ExecutionTimedOut", "ExecutionAborted"):
            details = event.get("executionFailedEventDetails", {})
            lines.append(
                f"  {at}  ■ {kind.removeprefix('Execution').upper()} {details.get('error', '')}"
            )
    return lines


_SCHEDULED = ("LambdaFunctionScheduled", "TaskScheduled", "ActivityScheduled")


def _entered(event: dict[str, Any], by_id: dict[int, dict[str, Any]]) -> int | None:
    """The id of the state-entered event a task event belongs to (``previousEventId`` links an
    attempt to the state's entry or to the previous attempt's events), also inside Parallel
    branches and Map iterations where the events of several states interleave."""
    seen: set[int] = set()
    current = event
    while True:
        previous = int(current.get("previousEventId") or 0)
        if previous == 0 or previous in seen or previous not in by_id:
            return None
        seen.add(previous)
        current = by_id[previous]
        if "stateEnteredEventDetails" in current:
            return previous


def _json(text: Any) -> Any:
    try:
        return json.loads(text) if isinstance(text, str) else text
    except ValueError:
        return text


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _changes(before: Any, after: Any) -> str:
    """What a state did to its input: the keys added or changed (``+key=…``) and removed
    (``-key``) when both are objects, else the whole output."""
    if not (isinstance(before, dict) and isinstance(after, dict)):
        return _compact(after)
    if before == after:
        return "(unchanged)"
    if not any(after.get(k, _MISSING) == v for k, v in before.items()):
        return _compact(after)  # the result replaced the input (no ResultPath)
    changed = [f"+{k}={_compact(v)}" for k, v in after.items() if before.get(k, _MISSING) != v]
    removed = [f"-{k}" for k in before if k not in after]
    return " ".join(changed + removed)


_MISSING = object()


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


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
