"""Fault injection for the sandbox: make the handlers' own AWS calls fail, lose the event
source mapping's deletes, crash an invocation part-way through its batch.

Every fault works through botocore's event hooks, on the clients that really make the calls:
the handlers' clients all come from the runtime's sandbox session (a dispatcher is registered on
it before the first handler client exists), the runtime's SQS client does the mapping's
receives and deletes. Nothing in the handler is patched.

Use it through :attr:`conveyor.sandbox.runtime.Runtime.faults`::

    with runtime.faults.throttle("dynamodb", "PutItem", times=1) as fault:
        runtime.pump()
    assert fault.fired == 1

Each fault is a context manager yielding a :class:`Fault`: ``fired`` counts the calls it
failed (or the deletes it lost, the invocations it crashed), ``calls`` what it saw. On exit the
fault is removed, fired or not.

What each fault means in AWS terms:

- :meth:`Faults.throttle` — the call fails with the service's throttling error as the handler
  sees it once the SDK's own retries are exhausted (the hook runs before the request is sent, so
  botocore does not retry it): ``ProvisionedThroughputExceededException`` for DynamoDB,
  ``Throttling`` (SNS), ``SlowDown`` (S3), ``ThrottlingException`` (EventBridge, Kinesis,
  Firehose, Step Functions, Lambda), ``RequestThrottled`` (SQS).
- :meth:`Faults.throttle` with ``target=`` (``throttle("lambda", "Invoke", target="Fn")``) —
  the ``Invoke`` call that a *service* makes to deliver to the function (EventBridge's to a
  rule target, SNS's to a subscribed function) fails, before the event reaches Lambda's
  asynchronous event queue: ``TooManyRequestsException`` (429, retried by EventBridge's
  ``RetryPolicy`` and SNS's delivery policy), or ``code=`` another Lambda ``Invoke`` error,
  e.g. ``ResourceNotFoundException`` (404: not retried, straight to the dead-letter queue).
- :meth:`Faults.lose_deletes` — the mapping's ``DeleteMessageBatch`` after a successful batch
  does not delete: the messages come back with the same message id and a higher receive count
  once their visibility timeout elapses (made to elapse at once, as the runtime does for failed
  records), so the handler sees a redelivery, and ``maxReceiveCount`` still applies.
- :meth:`Faults.rendezvous` — the next calls of an operation wait for each other before any is
  sent: concurrent invocations (``Runtime(concurrency=N)``) reach the service at the same
  moment, as two Lambda environments can (a race of two conditional writes).
- :meth:`Faults.crash_after` — the invocation dies (as a process crash or a timeout does) right
  after the function's ``calls``-th successful AWS call: the effects so far stay, the batch fails
  as a whole and comes back. The crash is a :class:`SandboxCrash`, a ``BaseException``, so the
  handler's ``except Exception`` cannot swallow it.

Helpers to send the bad inputs of DESIGN.md ("Bad input every handler must survive") are in
:data:`POISON` and :func:`send_duplicate`.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse

__all__ = [
    "POISON",
    "THROTTLING_CODES",
    "Fault",
    "Faults",
    "InvokeRejection",
    "SandboxCrash",
    "send_duplicate",
]

# The error code each service answers when it throttles a caller (AWS API references).
THROTTLING_CODES: dict[str, str] = {
    "dynamodb": "ProvisionedThroughputExceededException",
    "sns": "Throttling",
    "s3": "SlowDown",
    "sqs": "RequestThrottled",
    "events": "ThrottlingException",
    "kinesis": "ProvisionedThroughputExceededException",
    "firehose": "ThrottlingException",
    "stepfunctions": "ThrottlingException",
    "lambda": "TooManyRequestsException",
}
_STATUS = {"s3": 503, "lambda": 429}
# botocore names its call events after the service id, not the client name: a throttle of
# ``"events"`` must match ``before-call.eventbridge.PutEvents``.
_EVENT_NAMES = {"events": "eventbridge", "stepfunctions": "sfn"}

# HTTP status of the Lambda Invoke errors a service-side invocation can meet (Lambda API
# reference, Invoke: Errors); any other code is taken as a 400.
LAMBDA_INVOKE_STATUS: dict[str, int] = {
    "TooManyRequestsException": 429,
    "ResourceNotFoundException": 404,
    "AccessDeniedException": 403,
    "InvalidParameterValueException": 400,
    "RequestTooLargeException": 413,
    "ResourceConflictException": 409,
    "ServiceException": 500,
    "EC2ThrottledException": 502,
    "ResourceNotReadyException": 502,
}


@dataclass(frozen=True)
class InvokeRejection:
    """A service's ``Invoke`` of a function that failed (the event never reached it)."""

    code: str
    message: str
    status: int

    @property
    def retriable(self) -> bool:
        """Throttling (429) and server errors (5xx) are retried; other 4xx are not."""
        return self.status == 429 or self.status >= 500


class SandboxCrash(BaseException):
    """The invocation died part-way (injected by :meth:`Faults.crash_after`)."""


@dataclass
class Fault:
    """One injected fault while its ``with`` block runs."""

    kind: str
    description: str
    times: int | None  # None: every matching call
    fired: int = 0
    calls: list[str] = field(default_factory=list)  # the operations it matched, in order

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times


_Hook = Callable[[str, str, dict[str, Any]], Any]


class Faults:
    """The fault injector of one :class:`~conveyor.sandbox.runtime.Runtime`
    (``runtime.faults``). Not thread-safe beyond the runtime's own lock."""

    def __init__(self, current_function: Callable[[], Any | None], sqs: Any) -> None:
        # current_function(): the ExecutionEnvironment running now (None: the runtime itself);
        # sqs: the runtime's SQS client (lost deletes are released with it).
        self._current = current_function
        self._sqs = sqs
        self._before: list[_Hook] = []
        self._after: list[_Hook] = []
        # service-side Invoke of a function (spec) -> a rejection, or None
        self._invokes: list[tuple[str, Callable[[Any], InvokeRejection | None], Fault]] = []
        self._lock = threading.RLock()
        self._installed: set[int] = set()

    # -- installation (the runtime calls these) -----------------------------------------------

    def install(self, events: Any) -> None:
        """Register the dispatcher on a botocore event emitter (a session's or a client's)."""
        if id(events) in self._installed:
            return
        self._installed.add(id(events))
        events.register("before-call", self._dispatch_before)
        events.register("after-call", self._dispatch_after)

    def _dispatch_before(self, *, model: Any, params: Any, event_name: str, **_: Any) -> Any:
        if not self._before:
            return None
        service = event_name.split(".")[1]
        for hook in list(self._before):
            response = hook(service, model.name, params)
            if response is not None:
                return response
        return None

    def _dispatch_after(self, *, model: Any, event_name: str, **kwargs: Any) -> None:
        if not self._after:
            return
        service = event_name.split(".")[1]
        for hook in list(self._after):
            hook(service, model.name, kwargs)

    def _running(self, function: str | None) -> bool:
        """Whether the call comes from ``function`` (logical id or name; None: any handler)."""
        current = self._current()
        if current is None:
            return False
        if function is None:
            return True
        spec = current.spec
        return function in (spec.logical_id, spec.name, spec.arn)

    @contextlib.contextmanager
    def _active(self, hooks: list[_Hook], hook: _Hook) -> Iterator[None]:
        with self._lock:
            hooks.append(hook)
        try:
            yield
        finally:
            with self._lock:
                hooks.remove(hook)

    # -- faults -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def throttle(
        self,
        service: str,
        operation: str | Collection[str],
        *,
        times: int | None = 1,
        function: str | None = None,
        code: str | None = None,
        target: str | None = None,
        after: int = 0,
    ) -> Iterator[Fault]:
        """The next ``times`` calls of ``service``'s ``operation`` (botocore service name, e.g.
        ``"dynamodb"``; operation name as in the API, e.g. ``"PutItem"``, or several) made by a
        handler (``function``: only that one, by logical id or name) fail with the service's
        throttling error (``code`` overrides it). ``after``: the first ``after`` matching calls
        succeed (e.g. ``after=1``: a handler's second UpdateItem, its idempotency completion
        write after its own update).

        ``target`` (only with ``"lambda"``, ``"Invoke"``): instead, the ``Invoke`` calls that
        services make to deliver to that function (logical id, name or ARN) — EventBridge to a
        rule target, SNS to a subscribed function — fail (``TooManyRequestsException``, or
        ``code``, see :data:`LAMBDA_INVOKE_STATUS`)."""
        operations = {operation} if isinstance(operation, str) else set(operation)
        error_code = code or THROTTLING_CODES.get(service, "ThrottlingException")
        if target is not None:
            if service != "lambda" or operations != {"Invoke"}:
                raise ValueError('target= is for throttle("lambda", "Invoke", target=...)')
            with self._rejecting(target, error_code, times) as fault:
                yield fault
            return
        fault = Fault("throttle", f"{service}:{'/'.join(sorted(operations))} → {error_code}", times)

        matched_service = _EVENT_NAMES.get(service, service)
        passed = [0]  # matching calls seen

        def hook(called_service: str, name: str, _params: Any) -> Any:
            if called_service != matched_service or name not in operations or fault.exhausted:
                return None
            if not self._running(function):
                return None
            passed[0] += 1
            if passed[0] <= after:
                return None
            fault.fired += 1
            fault.calls.append(name)
            return _error_response(service, error_code, f"Rate exceeded (injected: {name})")

        with self._active(self._before, hook):
            yield fault

    @contextlib.contextmanager
    def rendezvous(
        self,
        service: str,
        operation: str,
        *,
        parties: int = 2,
        timeout_s: float = 30.0,
        function: str | None = None,
    ) -> Iterator[Fault]:
        """The next ``parties`` calls of ``service``'s ``operation`` made by handlers
        (``function``: only that one) wait for each other, up to ``timeout_s``, before any is
        sent. ``fired`` counts the calls that met the others; a call left alone (the others
        never came: invocations that do not run at once) goes on after the timeout and is
        recorded in ``calls`` as ``"<operation> (alone)"``."""
        barrier = threading.Barrier(parties, timeout=timeout_s)
        fault = Fault("rendezvous", f"{service}:{operation} x{parties}", parties)
        matched_service = _EVENT_NAMES.get(service, service)

        def hook(called_service: str, name: str, _params: Any) -> Any:
            if (
                called_service != matched_service
                or name != operation
                or not self._running(function)
            ):
                return None
            with self._lock:
                if fault.exhausted or len(fault.calls) >= parties:
                    return None
                fault.calls.append(name)
            try:
                barrier.wait()
            except threading.BrokenBarrierError:
                with self._lock:
                    fault.calls.append(f"{name} (alone)")
                return None
            with self._lock:
                fault.fired += 1
            return None

        with self._active(self._before, hook):
            yield fault

    @contextlib.contextmanager
    def _rejecting(self, target: str, code: str, times: int | None) -> Iterator[Fault]:
        fault = Fault("throttle", f"lambda:Invoke of {target} by a service → {code}", times)
        status = LAMBDA_INVOKE_STATUS.get(code, 400)

        def reject(spec: Any) -> InvokeRejection | None:
            if fault.exhausted or not _names(target, spec):
                return None
            fault.fired += 1
            fault.calls.append("Invoke")
            what = "Rate exceeded" if status == 429 else code
            return InvokeRejection(code, f"{what} (injected: Invoke of {spec.name})", status)

        entry = (target, reject, fault)
        with self._lock:
            self._invokes.append(entry)
        try:
            yield fault
        finally:
            with self._lock:
                self._invokes.remove(entry)

    def service_invoke(self, spec: Any) -> InvokeRejection | None:
        """A service invokes the function ``spec`` (a ``FunctionSpec``): the injected
        rejection of that ``Invoke``, or None (called by the event sources)."""
        for _, reject, _ in list(self._invokes):
            rejection = reject(spec)
            if rejection is not None:
                return rejection
        return None

    def rejections_ahead(self, spec: Any) -> int | None:
        """How many of the next service-side ``Invoke`` s of ``spec`` are sure to be rejected
        (None: all of them), if nothing changes the faults meanwhile."""
        ahead = 0
        for target, _, fault in list(self._invokes):
            if _names(target, spec) and not fault.exhausted:
                if fault.times is None:
                    return None
                ahead += max(0, fault.times - fault.fired)
        return ahead

    @contextlib.contextmanager
    def lose_deletes(
        self, queue: str | None = None, *, times: int | None = 1, sqs: Any | None = None
    ) -> Iterator[Fault]:
        """The next ``times`` deletes of the event source mappings (``DeleteMessageBatch`` /
        ``DeleteMessage`` made by the runtime, not by a handler) on ``queue`` (URL, name or ARN;
        None: any queue) are lost: SQS is not asked, the caller sees every entry failed
        (``InternalError``), and the messages are made visible again at once so that they are
        redelivered with the same message id. ``sqs``: the client to release them with (default:
        the runtime's)."""
        fault = Fault("lose_deletes", f"deletes on {queue or 'any queue'} lost", times)
        client = sqs or self._sqs

        def matches(url: str) -> bool:
            if queue is None:
                return True
            name = url.rsplit("/", 1)[-1]
            return queue in (url, name) or queue.endswith(f":{name}")

        def hook(service: str, name: str, params: Any) -> Any:
            if service != "sqs" or name not in ("DeleteMessageBatch", "DeleteMessage"):
                return None
            if self._current() is not None or fault.exhausted:
                return None  # a handler's own delete is not the mapping's
            request = _request_params(params)
            url = str(request.get("QueueUrl", ""))
            if not matches(url):
                return None
            fault.fired += 1
            fault.calls.append(name)
            if name == "DeleteMessage":
                handles = [request.get("ReceiptHandle")]
                parsed: dict[str, Any] = {}
                response = _error_response("sqs", "InternalError", "delete lost (injected)")
            else:
                entries = request.get("Entries", [])
                handles = [e.get("ReceiptHandle") for e in entries]
                parsed = {
                    "Successful": [],
                    "Failed": [
                        {
                            "Id": e.get("Id"),
                            "SenderFault": False,
                            "Code": "InternalError",
                            "Message": "delete lost (injected)",
                        }
                        for e in entries
                    ],
                    "ResponseMetadata": {"HTTPStatusCode": 200},
                }
                response = (AWSResponse(url, 200, {}, None), parsed)
            _release(client, url, [h for h in handles if h])
            return response

        with self._active(self._before, hook):
            yield fault

    @contextlib.contextmanager
    def crash_after(
        self,
        function: str,
        *,
        calls: int = 1,
        operations: Collection[str] | None = None,
        times: int | None = 1,
    ) -> Iterator[Fault]:
        """The next ``times`` invocations of ``function`` (logical id or name) that make more
        than ``calls - 1`` AWS calls (``operations``: count only these, e.g. ``{"PutItem"}``)
        die right after their ``calls``-th counted call succeeded: its effect stays, the
        invocation fails with :class:`SandboxCrash`."""
        fault = Fault("crash_after", f"{function} dies after {calls} call(s)", times)
        counted: dict[int, int] = {}

        def hook(_service: str, name: str, kwargs: dict[str, Any]) -> None:
            if fault.exhausted or not self._running(function):
                return
            if operations is not None and name not in operations:
                return
            http = kwargs.get("http_response")
            if http is not None and getattr(http, "status_code", 200) >= 300:
                return  # the call failed: no effect to crash after
            key = id(self._current())
            counted[key] = counted.get(key, 0) + 1
            fault.calls.append(name)
            if counted[key] >= calls:
                counted.clear()
                fault.fired += 1
                raise SandboxCrash(f"injected crash after {calls} call(s) ({name})")

        with self._active(self._after, hook):
            yield fault


def _names(target: str, spec: Any) -> bool:
    return target in (spec.logical_id, spec.name, spec.arn)


def _request_params(params: Any) -> dict[str, Any]:
    """The API-level parameters from botocore's serialized request (``before-call``)."""
    if isinstance(params, dict):
        body = params.get("body")
        if isinstance(body, bytes | str) and body:
            with contextlib.suppress(ValueError):
                value = json.loads(body)
                if isinstance(value, dict):
                    return value
        if isinstance(body, dict):
            return body
        query = params.get("query_string")
        if isinstance(query, dict):
            return query
    return {}


def _error_response(service: str, code: str, message: str) -> tuple[AWSResponse, dict[str, Any]]:
    status = _STATUS.get(service, 400)
    parsed = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status, "MaxAttemptsReached": True},
    }
    return AWSResponse("https://sandbox.invalid/", status, {}, None), parsed


def _release(sqs: Any, url: str, handles: list[str]) -> None:
    for start in range(0, len(handles), 10):
        chunk = handles[start : start + 10]
        sqs.change_message_visibility_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(n), "ReceiptHandle": h, "VisibilityTimeout": 0}
                for n, h in enumerate(chunk)
            ],
        )


# -- bad inputs -------------------------------------------------------------------------------

# The poison kinds of DESIGN.md, as message bodies built from a valid JSON body (``valid``).
POISON: dict[str, Callable[[dict[str, Any]], str]] = {
    "not JSON": lambda valid: "{not json",
    "not an object": lambda valid: json.dumps([valid]),
    "missing fields": lambda valid: json.dumps({k: v for k, v in list(valid.items())[:1]}),
    "wrong types": lambda valid: json.dumps({k: [v] for k, v in valid.items()}),
    "unknown type": lambda valid: json.dumps(
        {**valid, "event": "teleported", "type": "Teleported", "detail-type": "Teleported"}
    ),
    "newer version": lambda valid: json.dumps({**valid, "version": "99", "schemaVersion": 99}),
    "oversized": lambda valid: json.dumps({**valid, "padding": "x" * 250_000}),
}


def send_duplicate(sqs: Any, queue_url: str, message: dict[str, Any]) -> str:
    """Send ``message`` (a ``send_message`` request without ``QueueUrl``) again as a new
    message (a producer retry): a new message id, the same body; its message id."""
    request = {**message, "QueueUrl": queue_url}
    return str(sqs.send_message(**request)["MessageId"])
