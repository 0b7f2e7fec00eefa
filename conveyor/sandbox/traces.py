"""What the runtime reports: :class:`TraceEvent` (one step of a delivery), the
:class:`InvocationResult` of a handler call (with its :class:`InvocationError`), and the
:class:`PumpReport` of a delivery run with its per-function :class:`FunctionStats`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

TRACE_KINDS = (
    "receive",  # messages received from a route's queue (or an async event taken from it)
    "invoke",  # a handler invocation starts
    "result",  # it ended: status, error, duration
    "delete",  # messages deleted from a queue (processed)
    "retry",  # SQS: failed records returned to the queue; async: the event is retried
    "release",  # failed records visible again (their visibility timeout elapsed, sandbox time)
    "dead-letter",  # a redrive policy moved a message to its DLQ (SQS), or EventBridge / SNS
    # could not deliver an event to a function and sent it to the target's / subscription's DLQ
    "on-failure",  # an async event sent to the function's on-failure destination
    "drop",  # an async event discarded after its retries (no on-failure destination / DLQ)
    "deliver",  # a Firehose buffer written to its destination as one object
    "execution",  # a Step Functions execution started by an event (details["execution"])
    "duplicate",  # a redelivered event whose execution already exists (not started again)
    "warning",  # a configuration or handler problem worth seeing (details["problem"])
    "filter",  # stream records that matched no FilterCriteria: consumed, not invoked
)


@dataclass(frozen=True)
class TraceEvent:
    """One step of a delivery, for a CLI to print the path hop by hop."""

    timestamp: float  # time.time()
    kind: str  # one of TRACE_KINDS
    stack: str | None = None
    route: str | None = None  # the route's source: mapping / subscription / rule logical id
    function: str | None = None  # function logical id
    message_ids: tuple[str, ...] = ()  # SQS message ids; SNS message id; EventBridge event id
    duration_ms: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    # The invocation, on "result" events (logs in .stdout, EMF blobs in .metrics).
    invocation: InvocationResult | None = field(default=None, repr=False, compare=False)

    def describe(self) -> str:
        """One line: kind, where, ids, duration and details."""
        where = "/".join(part for part in (self.stack, self.route, self.function) if part)
        parts = [f"{self.kind:<11}", where]
        if self.message_ids:
            shown = ",".join(mid[:8] for mid in self.message_ids[:5])
            more = len(self.message_ids) - 5
            parts.append(f"[{shown}{f',+{more}' if more > 0 else ''}]")
        if self.duration_ms is not None:
            parts.append(f"{self.duration_ms:.1f} ms")
        if self.details:
            parts.append(" ".join(f"{k}={v}" for k, v in self.details.items()))
        return " ".join(p for p in parts if p)


@dataclass(frozen=True)
class InvocationError:
    """A function error as Lambda reports it (``errorType``, ``errorMessage``, stack trace)."""

    type: str
    message: str
    stack_trace: tuple[str, ...] = ()

    def payload(self, request_id: str) -> dict[str, Any]:
        """The response payload of the failed invocation, as Lambda's Python runtime builds it."""
        return {
            "errorMessage": self.message,
            "errorType": self.type,
            "requestId": request_id,
            "stackTrace": list(self.stack_trace),
        }


@dataclass(frozen=True)
class InvocationResult:
    function: str  # logical id
    function_name: str
    stack: str
    request_id: str
    response: Any  # the handler's return value after a JSON round trip; None on error
    error: InvocationError | None
    stdout: str
    stderr: str
    duration_ms: float
    cold_start: bool
    attempt: int = 1

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def timed_out(self) -> bool:
        return self.error is not None and self.error.type == "Sandbox.Timedout"

    @property
    def logs(self) -> list[dict[str, Any]]:
        """The JSON objects printed on stdout (Powertools log lines), EMF blobs excluded."""
        return [line for line in json_lines(self.stdout) if "_aws" not in line]

    @property
    def metrics(self) -> list[dict[str, Any]]:
        """The EMF blobs printed on stdout (Powertools metrics)."""
        return [line for line in json_lines(self.stdout) if "_aws" in line]


@dataclass
class FunctionStats:
    logical_id: str
    name: str
    stack: str
    invocations: int = 0
    # Invocations that failed (raised, timed out, could not start): Lambda's Errors metric.
    # Partial batch failures are not errors.
    errors: int = 0
    records: int = 0  # records delivered (an async event counts as one per attempt)
    records_failed: int = 0  # records returned to their queue, or failed async attempts
    duration_ms: float = 0.0  # total
    max_duration_ms: float = 0.0
    cold_starts: int = 0

    @property
    def mean_duration_ms(self) -> float:
        return self.duration_ms / self.invocations if self.invocations else 0.0


@dataclass
class PumpReport:
    rounds: int = 0
    invocations: int = 0
    messages_received: int = 0  # from route queues (SQS records and async events)
    records_processed: int = 0  # records done: deleted after success, or async success
    records_failed: int = 0  # failed deliveries (a record failing three times counts three)
    retries: int = 0  # async retries
    moved_to_dlq: int = 0  # moved by a queue's redrive policy
    on_failure: int = 0  # async events sent to an on-failure destination
    dropped: int = 0  # async events discarded
    dead_lettered: int = 0  # events EventBridge / SNS sent to a target's / subscription's DLQ
    released: int = 0  # failed SQS records made visible again
    idle: bool = False  # True: the pump stopped because nothing moved any more
    clock_advanced_s: float = 0.0  # how far the pump jumped the sandbox clock (idle rounds)
    elapsed_ms: float = 0.0
    functions: dict[str, FunctionStats] = field(default_factory=dict)  # by logical id

    @property
    def messages_per_second(self) -> float:
        return self.messages_received / (self.elapsed_ms / 1000) if self.elapsed_ms else 0.0


def json_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for line in text.splitlines():
        if not line.startswith("{"):
            continue
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            lines.append(value)
    return lines
