"""The sandbox runtime: runs the Lambda handlers of a :class:`Deployment` in-process.

moto cannot run Lambda code without Docker and ignores ``batchItemFailures``. The deployer
turns every function into a :class:`FunctionSpec` and every trigger into a :class:`Route` (a
queue whose messages are to be delivered to a function); this module does the delivery.

**Layout.** The execution environment of each function (private code, environment, output
capture, Powertools state) is :mod:`conveyor.sandbox.execution`; the delivery of each route
kind is an event source of :mod:`conveyor.sandbox.sources` (``sqs``: the event source
mapping's poller; ``sns`` / ``events``: asynchronous invocation with retries and on-failure
destinations), registered in :data:`~conveyor.sandbox.sources.EVENT_SOURCES`; the event
shapes are :mod:`conveyor.sandbox.lambda_events`; moto patches :mod:`conveyor.sandbox.moto_patches`.
This module holds :class:`Runtime`, which builds them and runs the delivery rounds
(:meth:`Runtime.pump`).

Every step is reported as a :class:`TraceEvent` to ``on_event``.

**Concurrency.** By default one invocation runs at a time, in the caller's thread.
``Runtime(concurrency=N)`` models Lambda's scaling of SQS pollers: up to N batches of one
function run at once, each in its own thread and execution environment (one per slot, with its
own module copies and globals), at most one batch per message group on a FIFO queue, capped by
``ReservedConcurrentExecutions`` and ``ScalingConfig.MaximumConcurrency``; see :class:`Runtime`.
"""

from __future__ import annotations

import contextlib
import gc
import json
import sys
import threading
import time
import types
import uuid
from collections.abc import Callable, Sequence
from typing import Any, cast

import boto3
import botocore.session
from botocore.exceptions import BotoCoreError, ClientError

from conveyor.sandbox.clock import sandbox_clock
from conveyor.sandbox.execution import FAKE_CREDENTIALS, ExecutionEnvironment, Host, LambdaContext
from conveyor.sandbox.execution.isolation import FINDER, install_thread_state
from conveyor.sandbox.faults import Faults
from conveyor.sandbox.logs import InvocationRecord
from conveyor.sandbox.model import DeployedStack, Deployment, Route
from conveyor.sandbox.moto_patches import (
    delete_expired_sqs_messages,
    on_sqs_delivery_failure,
    route_lambda_invocations,
    scale_step_functions_retries,
    serialize_lambda_tasks,
    serialize_moto_requests,
    speed_up_moto_sqs,
)
from conveyor.sandbox.sources import EVENT_SOURCES, Delivery, EventSource, EventSourceFactory
from conveyor.sandbox.sources.async_invoke import DEFAULT_MAX_RETRY_ATTEMPTS
from conveyor.sandbox.traces import (
    TRACE_KINDS,
    FunctionStats,
    InvocationError,
    InvocationResult,
    PumpReport,
    TraceEvent,
)

__all__ = [
    "DEFAULT_MAX_RETRY_ATTEMPTS",
    "TRACE_KINDS",
    "FunctionStats",
    "InvocationError",
    "InvocationResult",
    "LambdaContext",
    "PumpReport",
    "Runtime",
    "TraceEvent",
    "speed_up_moto_sqs",
]

_BATCHES_PER_ROUTE_ROUND = 10
# Step Functions Retry waits in the sandbox: 1/100 of the real interval (said in the README
# and the demo output).
STEP_FUNCTIONS_RETRY_SCALE = 0.01  # fairness between routes within one pump round


class Runtime:
    """Runs the functions of ``deployment`` in-process and delivers its routes' messages.

    :param session: boto3 session for the runtime's own SQS calls (default: a new one with fake
        credentials). Handlers get their own sandbox session (``boto3.DEFAULT_SESSION``).
    :param endpoint_url: the moto server (``http://127.0.0.1:4566``); None with ``mock_aws()``.
        Handlers see it as ``AWS_ENDPOINT_URL``.
    :param on_event: called with every :class:`TraceEvent`.
    :param clock: measures the SQS batching window (default: the sandbox clock,
        :mod:`conveyor.sandbox.clock`; injectable for tests).
    :param fail_unflagged_batch_failures: a handler returning ``batchItemFailures`` while the
        mapping lacks ``ReportBatchItemFailures``: True fails the whole batch (the messages come
        back, are retried and reach the DLQ); False does what AWS does, deletes the batch (the
        "failed" messages are lost). Both emit a warning.
    :param event_sources: the sources that deliver the routes, one per ``Route.kind``
        (default :data:`~conveyor.sandbox.sources.EVENT_SOURCES`); see
        :class:`~conveyor.sandbox.sources.EventSource`.

    :param retry_scale: Step Functions Retry waits are multiplied by this (default 0.01: a
        1 s interval waits 10 ms; None: real waits). Retry decisions are unchanged.
    :param on_invocation: called after every invocation with its
        :class:`~conveyor.sandbox.logs.InvocationRecord` (source, function, records, result):
        e.g. :meth:`conveyor.sandbox.logs.SandboxLog.invocation`.
    :param concurrency: how many invocations of one function may run at once (default 1: one
        at a time, in the caller's thread). With N > 1, an SQS event source mapping runs up to
        N batches at once, as Lambda scales its pollers: each in its own thread and its own
        execution environment (a function gets one environment per slot, with its own module
        copies and globals, as separate Lambda environments are separate processes); on a
        FIFO queue at most one batch per message group is in flight (SQS's ordering), groups
        run in parallel. Capped per function by ``ReservedConcurrentExecutions`` and per
        mapping by ``ScalingConfig.MaximumConcurrency`` when the template sets them. Every
        moto request is then atomic (one at a time, as AWS API calls are:
        :func:`~conveyor.sandbox.moto_patches.serialize_moto_requests`); receives, deletes,
        traces and counters stay in the pump's thread. Other sources (SNS, EventBridge,
        streams) still deliver one invocation at a time.

    moto's Lambda ``Invoke`` (used by its Step Functions interpreter for ``lambda:invoke``
    tasks) runs these functions in-process while the runtime is open.
    Not thread-safe: one pump or invoke at a time (invocations from moto's interpreter
    threads take the runtime's lock; with ``concurrency`` > 1, the pump's own worker threads
    run the concurrent invocations, and a handler's synchronous Lambda ``Invoke`` from one of
    them runs in that thread, in a free environment of the function).
    """

    def __init__(
        self,
        deployment: Deployment,
        *,
        session: Any | None = None,
        endpoint_url: str | None = None,
        on_event: Callable[[TraceEvent], None] | None = None,
        clock: Callable[[], float] | None = None,
        fail_unflagged_batch_failures: bool = True,
        event_sources: Sequence[EventSourceFactory] = EVENT_SOURCES,
        retry_scale: float | None = STEP_FUNCTIONS_RETRY_SCALE,
        on_invocation: Callable[[InvocationRecord], None] | None = None,
        concurrency: int = 1,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        self.deployment = deployment
        self.concurrency = concurrency
        self._region = deployment.region
        sandbox_clock().start()  # the wall clock is the sandbox clock until close()
        self._holds_clock = True
        self._session = session or boto3.session.Session(
            region_name=deployment.region,
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
        )
        sqs = self._session.client("sqs", region_name=deployment.region, endpoint_url=endpoint_url)
        self._handler_session: Any | None = None
        host = Host(deployment.region, endpoint_url, self._sandbox_session)
        self._functions: dict[tuple[str, str], ExecutionEnvironment] = {}
        for stack in deployment.stacks.values():
            for spec in stack.functions.values():
                self._functions[(stack.name, spec.logical_id)] = ExecutionEnvironment(
                    stack, spec, host
                )
        self._delivery = Delivery(
            deployment,
            sqs,
            on_event=on_event,
            clock=clock or sandbox_clock(),
            fail_unflagged_batch_failures=fail_unflagged_batch_failures,
            session=self._session,
            endpoint_url=endpoint_url,
            on_invocation=on_invocation,
            concurrency=concurrency,
        )
        # Fault injection (conveyor.sandbox.faults) on the handlers' clients and on this SQS client.
        self.faults = Faults(lambda: FINDER.current, sqs)
        self.faults.install(sqs.meta.events)
        self._delivery.faults = self.faults
        sources = [make(self._delivery) for make in event_sources]
        self._sources: dict[str, EventSource] = {source.kind: source for source in sources}
        if FINDER not in sys.meta_path:
            sys.meta_path.insert(0, FINDER)
        # One invocation at a time: moto's Step Functions interpreter invokes from its own
        # threads (Parallel branches, Map iterations) while the runtime may be pumping.
        self._lock = threading.RLock()
        self._undo_patches = [
            route_lambda_invocations(self._invoke_for_moto),
            serialize_lambda_tasks(),
            delete_expired_sqs_messages(),  # SQS deletes a message past its retention period
            on_sqs_delivery_failure(self._sqs_delivery_failed),
        ]
        self._uncounted: list[str] = []  # SQS endpoint failures seen outside a pump
        if retry_scale is not None:
            self._undo_patches.append(scale_step_functions_retries(retry_scale))
        self.retry_scale = retry_scale
        if concurrency > 1:
            install_thread_state()  # per-thread os.environ and Powertools metrics state
            self._undo_patches.append(serialize_moto_requests())

    # -- public API ---------------------------------------------------------------------------

    def invoke(self, function: str, event: Any, *, stack: str | None = None) -> InvocationResult:
        """Invoke a function synchronously (RequestResponse) by logical id, name or ARN.

        A function error does not raise: see ``result.error``.
        """
        target = self._find(function, stack)
        with self._lock:
            return self._delivery.invoke(target, event, request_id=str(uuid.uuid4()), attempt=1)

    def pump(self, *, until_idle: bool = True, max_rounds: int = 1000) -> PumpReport:
        """Deliver the pending messages of every route (each by the source of its kind).

        Each round takes up to 10 batches from every route. ``until_idle``: repeat until a
        round moves nothing and no failed record is waiting to become visible again
        (``max_rounds`` bounds it: a message that always fails on a queue without redrive
        policy would loop); False: one round. Failed records are made visible again when the
        pump returns.
        """
        with self._lock:
            return self._pump(until_idle=until_idle, max_rounds=max_rounds)

    def _pump(self, *, until_idle: bool, max_rounds: int) -> PumpReport:
        report = PumpReport()
        self._delivery.report = report
        while self._uncounted:  # what failed since the last pump (a producer outside it)
            self._count_sqs_failure(self._uncounted.pop())
        started = time.perf_counter()
        try:
            while report.rounds < max_rounds:
                report.rounds += 1
                moved = sum(
                    self._pump_route(stack, route)
                    for stack in self.deployment.stacks.values()
                    for route in stack.routes
                )
                if moved == 0 and self._settle() == 0:
                    if not (until_idle and self._advance_clock(report)):
                        report.idle = True
                        break
                    self._settle()  # what the jump made due, before the next receive
                if not until_idle:
                    break
            else:
                self._delivery.emit(
                    "warning",
                    details={
                        "problem": f"still busy after max_rounds={max_rounds} rounds",
                        "hint": "a message failing forever on a queue without redrive policy?",
                    },
                )
        finally:
            self._settle()
            report.elapsed_ms = (time.perf_counter() - started) * 1000
            self._delivery.report = None
        return report

    def source(self, kind: str) -> EventSource | None:
        """The runtime's event source of ``kind`` (e.g. ``"kinesis"``, for a replay)."""
        return self._sources.get(kind)

    def loaded_module(self, function: str, *, stack: str | None = None) -> types.ModuleType | None:
        """The function's private handler module, once it has been invoked (for debugging)."""
        return self._find(function, stack).module

    def close(self) -> None:
        """Close the sources' broker connections, drop every function's private modules;
        moto's Lambda is moto's again."""
        for source in self._sources.values():
            closer = getattr(source, "close", None)
            if callable(closer):
                closer()
        for target in [*self._functions.values(), *self._delivery.environments()]:
            target.discard()
        gc.collect()  # handlers' broker clients (librdkafka threads) go with their modules
        while self._undo_patches:
            self._undo_patches.pop()()
        if self._holds_clock:
            self._holds_clock = False
            sandbox_clock().stop()  # the last open runtime gives the process real time back

    def _sqs_delivery_failed(self, details: dict[str, Any]) -> None:
        """moto could not deliver to an SQS target / subscription (its queue does not exist):
        trace it (``dead-letter`` or ``drop``) and count it in this or the next pump."""
        kind = str(details.get("kind", "drop"))
        ids = tuple(str(details[k]) for k in ("event_id", "message_id") if details.get(k))
        self._delivery.emit(kind, message_ids=ids, details=details)
        if self._delivery.report is None:
            self._uncounted.append(kind)
        else:
            self._count_sqs_failure(kind)

    def _count_sqs_failure(self, kind: str) -> None:
        if kind == "dead-letter":
            self._delivery.count(dead_lettered=1)
        else:
            self._delivery.count(dropped=1)

    def _invoke_for_moto(self, function: str, body: bytes) -> tuple[bytes, str | None] | None:
        """moto's Lambda ``Invoke`` of ``function`` (name, ARN, or ARN with a qualifier):
        run it here and answer as Lambda does; None for a function this runtime does not run."""
        name = function.split(":function:", 1)[-1].split(":", 1)[0]
        candidates = [f for f in self._functions.values() if name == f.spec.name]
        if len(candidates) != 1:
            return None
        try:
            event = json.loads(body.decode() or "{}")
        except ValueError:
            error = InvocationError("Runtime.UnmarshalError", "the payload is not JSON")
            return json.dumps(error.payload(str(uuid.uuid4()))).encode(), "Unhandled"
        # From a concurrent invocation's thread, the pump holds the lock and waits for it.
        lock = contextlib.nullcontext() if self._delivery.in_worker() else self._lock
        with lock:
            result = self._delivery.invoke(
                candidates[0], event, request_id=str(uuid.uuid4()), attempt=1
            )
        if result.error is not None:
            return json.dumps(result.error.payload(result.request_id)).encode(), "Unhandled"
        return json.dumps(result.response).encode(), None

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- delivery -----------------------------------------------------------------------------

    def _find(self, function: str, stack: str | None) -> ExecutionEnvironment:
        candidates = [
            f
            for (stack_name, _), f in self._functions.items()
            if (stack is None or stack_name == stack)
            and function in (f.spec.logical_id, f.spec.name, f.spec.arn)
        ]
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            known = ", ".join(sorted(f"{s}/{lid}" for s, lid in self._functions))
            raise KeyError(f"no function {function!r} in the deployment (known: {known})")
        where = ", ".join(f"{f.stack}/{f.spec.logical_id}" for f in candidates)
        raise KeyError(f"function {function!r} is ambiguous ({where}): pass stack=")

    def _pump_route(self, stack: DeployedStack, route: Route) -> int:
        target = self._functions.get((stack.name, route.function_logical_id))
        source = self._sources.get(route.kind)
        delivery = self._delivery
        needs_function = getattr(source, "needs_function", True)
        if (target is None and needs_function) or source is None:
            key, problem = (
                ("missing", f"route target {route.function_logical_id} is not a deployed function")
                if target is None
                else ("kind", f"unknown route kind {route.kind!r}")
            )
            key = f"{key}:{stack.name}:{route.source}"
            delivery.warn_once(key, stack=stack.name, route=route, problem=problem)
            return 0
        moved = 0
        try:
            for _ in range(_BATCHES_PER_ROUTE_ROUND):
                count = source.pump(stack, route, cast(ExecutionEnvironment, target))
                if count == 0:
                    break
                moved += count
        except (ClientError, BotoCoreError) as exc:
            delivery.warn_once(
                f"aws:{stack.name}:{route.source}:{type(exc).__name__}",
                stack=stack.name,
                route=route,
                problem=f"cannot read {route.queue_url}: {exc}",
            )
        return moved

    def _advance_clock(self, report: PumpReport) -> bool:
        """Nothing can move now: jump the sandbox clock to the earliest moment something
        becomes due (scheduled on the clock, or a source's ``next_due``); False: nothing is
        pending."""
        clock = self._delivery.sandbox_clock
        dues = [clock.next_due()]
        for source in self._sources.values():
            next_due = getattr(source, "next_due", None)
            if callable(next_due):
                dues.append(next_due())
        pending = [due for due in dues if due is not None]
        if not pending:
            return False
        jumped = clock.advance_to(min(pending))
        report.clock_advanced_s += jumped
        return True

    def _settle(self) -> int:
        """Every source makes what it holds back available again; how many."""
        return sum([source.settle() for source in self._sources.values()])

    def _sandbox_session(self) -> Any:
        """The handlers' default boto3 session (created inside an invocation, so that it reads
        the sandbox environment); it shares the runtime session's model loader."""
        if self._handler_session is None:
            core = botocore.session.get_session()
            with contextlib.suppress(Exception):
                core.register_component(
                    "data_loader", self._session._session.get_component("data_loader")
                )
            session = boto3.session.Session(botocore_session=core, region_name=self._region)
            if self.concurrency > 1:
                _serialize_client_creation(session)
            self.faults.install(core.get_component("event_emitter"))
            self._handler_session = session
        return self._handler_session


def _serialize_client_creation(session: Any) -> None:
    """Clients and resources of ``session`` created one at a time: a botocore session is not
    thread-safe while it builds a client (clients themselves are)."""
    lock = threading.RLock()  # resource() builds its client with client()
    for name in ("client", "resource"):
        method = getattr(session, name)

        def locked(*args: Any, _method: Any = method, **kwargs: Any) -> Any:
            with lock:
                return _method(*args, **kwargs)

        setattr(session, name, locked)
