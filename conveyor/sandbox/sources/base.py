"""The seam between the runtime and its event sources: the :class:`EventSource` protocol and
the :class:`Delivery` every source of one runtime shares (invocation, traces, statistics)."""

from __future__ import annotations

import contextlib
import json
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import boto3

from conveyor.sandbox.clock import sandbox_clock
from conveyor.sandbox.execution import ExecutionEnvironment
from conveyor.sandbox.execution.environment import error_from
from conveyor.sandbox.execution.isolation import STDERR, STDOUT
from conveyor.sandbox.logs import InvocationRecord
from conveyor.sandbox.model import DeployedStack, Deployment, Route
from conveyor.sandbox.sources.queues import Queues
from conveyor.sandbox.traces import FunctionStats, InvocationResult, PumpReport, TraceEvent


class EventSource(Protocol):
    """Delivers the events of the routes of one ``kind`` to their functions.

    A source is built once per runtime with the runtime's :class:`Delivery`
    (``source = factory(delivery)``) and keeps its own state (messages in flight...).

    Contract:

    - it receives every deployed :class:`Route` whose ``kind`` is its ``kind`` (the deployer
      fills ``Route`` from the template: the queue, the function, batch size, window, FIFO,
      ``ReportBatchItemFailures``), with the route's stack and the target function's
      :class:`ExecutionEnvironment`;
    - ``pump`` delivers *one batch* and returns how many events it took (0: nothing pending);
      the runtime calls it up to 10 times per route and round, and catches botocore errors;
    - it invokes through :meth:`Delivery.invoke` (``invoke``/``result`` traces and function
      statistics), reports every other step as a :class:`TraceEvent` through
      :meth:`Delivery.trace` (``receive``, ``delete``, ``retry``, ``dead-letter``,
      ``on-failure``, ``drop``, ``warning``: see ``TRACE_KINDS``) and counts in the
      :class:`PumpReport` with :meth:`Delivery.count` (``messages_received``,
      ``records_processed``, ``records_failed``, ``moved_to_dlq``...);
    - ``settle`` makes available again what it holds back and whose time has come on the
      sandbox clock (:mod:`conveyor.sandbox.clock`) and returns how many: the runtime calls it
      when a round moved nothing, and when the pump returns;
    - what becomes due later (a retry delay, a visibility timeout, a buffer interval) is
      scheduled on ``delivery.sandbox_clock.schedule(due)``, or answered by an optional
      ``next_due() -> float | None`` method: when nothing can move, the pump advances the
      clock to the earliest due moment, instantly;
    - concurrency (``Runtime(concurrency=N)``): a source that can run several batches of one
      function at once asks :meth:`Delivery.concurrency_for` how many, and runs them with
      :meth:`Delivery.invoke_concurrently` (each in its own thread and execution environment);
      everything else (receives, deletes, traces, counts) stays in the pump's thread.
    """

    kind: str

    def pump(self, stack: DeployedStack, route: Route, target: ExecutionEnvironment) -> int: ...

    def settle(self) -> int: ...


EventSourceFactory = Callable[["Delivery"], EventSource]


@dataclass(frozen=True)
class Call:
    """One of the invocations :meth:`Delivery.invoke_concurrently` runs at once."""

    event: Any
    request_id: str
    message_ids: tuple[str, ...] = ()
    records: int = 1


class Delivery:
    """What the event sources of one runtime share: the SQS client, the queues, the trace
    callback, the pump's report, and the traced invocation of a function."""

    def __init__(
        self,
        deployment: Deployment,
        sqs: Any,
        *,
        on_event: Callable[[TraceEvent], None] | None,
        clock: Callable[[], float],
        fail_unflagged_batch_failures: bool,
        session: Any = None,
        endpoint_url: str | None = None,
        on_invocation: Callable[[InvocationRecord], None] | None = None,
        concurrency: int = 1,
    ) -> None:
        self.deployment = deployment
        # Concurrent invocations: at most this many of one function at once (1: one at a
        # time, in the pump's thread); the execution environments of each function's slots.
        self.concurrency = concurrency
        self._slots: dict[int, list[ExecutionEnvironment]] = {}
        self._busy: set[int] = set()
        self._slots_lock = threading.Lock()
        self._worker = threading.local()
        self._lock = threading.RLock()  # traces and counters, from any thread
        self._on_invocation = on_invocation
        self._session = session
        self._endpoint_url = endpoint_url
        self._clients: dict[str, Any] = {}
        self.region = deployment.region
        self.sqs = sqs
        self.clock = clock
        # The sandbox wall clock: sources schedule what becomes due with
        # ``sandbox_clock.schedule(due)``; the pump advances it when idle.
        self.sandbox_clock = sandbox_clock()
        self.fail_unflagged_batch_failures = fail_unflagged_batch_failures
        self.report: PumpReport | None = None  # set while a pump runs
        self._on_event = on_event
        self._warned: set[str] = set()
        self.queues = Queues(self)
        # The runtime's fault injector (conveyor.sandbox.faults.Faults), set by the runtime:
        # sources ask it whether a service-side Invoke of a function is rejected.
        self.faults: Any = None

    def client(self, service: str) -> Any:
        """A client of the sandbox's session (Kinesis, S3...), created once."""
        if service not in self._clients:
            assert self._session is not None, "Delivery was built without a session"
            config = None
            if service == "dynamodbstreams":
                from botocore.config import Config

                # botocore ≥ 1.35 sends ARN-bearing Streams calls to an account-scoped host
                # that moto does not route in-process (404 on DescribeStream).
                config = Config(account_id_endpoint_mode="disabled")
            self._clients[service] = self._session.client(
                service, region_name=self.region, endpoint_url=self._endpoint_url, config=config
            )
        return self._clients[service]

    # -- traces -------------------------------------------------------------------------------

    def emit(
        self,
        kind: str,
        *,
        stack: str | None = None,
        route: Route | None = None,
        function: str | None = None,
        message_ids: tuple[str, ...] = (),
        duration_ms: float | None = None,
        details: dict[str, Any] | None = None,
        invocation: InvocationResult | None = None,
    ) -> None:
        if self._on_event is None:
            return
        event = TraceEvent(
            timestamp=time.time(),
            kind=kind,
            stack=stack,
            route=route.source if route is not None else None,
            function=function or (route.function_logical_id if route is not None else None),
            message_ids=message_ids,
            duration_ms=duration_ms,
            details=details or {},
            invocation=invocation,
        )
        with self._lock:  # one trace at a time, from any thread
            self._on_event(event)

    def trace(
        self,
        kind: str,
        stack: DeployedStack,
        route: Route,
        target: ExecutionEnvironment | None,
        message_ids: tuple[str, ...] = (),
        *,
        duration_ms: float | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """A step of ``route`` delivering to ``target``."""
        self.emit(
            kind,
            stack=stack.name,
            route=route,
            function=target.spec.logical_id if target is not None else None,
            message_ids=message_ids,
            duration_ms=duration_ms,
            details=details,
        )

    def warn(
        self,
        stack: DeployedStack,
        route: Route,
        target: ExecutionEnvironment,
        problem: str,
        *,
        message_ids: tuple[str, ...] = (),
        **details: Any,
    ) -> None:
        self.trace(
            "warning", stack, route, target, message_ids, details={"problem": problem, **details}
        )

    def warn_once(self, key: str, *, stack: str, route: Route, problem: str) -> None:
        with self._lock:
            if key in self._warned:
                return
            self._warned.add(key)
        self.emit("warning", stack=stack, route=route, details={"problem": problem})

    # -- statistics ---------------------------------------------------------------------------

    def count(self, **increments: int) -> None:
        """Add to the :class:`PumpReport` counters (nothing outside a pump)."""
        with self._lock:
            if self.report is not None:
                for name, value in increments.items():
                    setattr(self.report, name, getattr(self.report, name) + value)

    def count_failed(self, target: ExecutionEnvironment, records: int) -> None:
        """Failed deliveries, in the report and the function's statistics."""
        with self._lock:
            if self.report is not None:
                self.report.records_failed += records
                self.stats(target).records_failed += records

    def stats(self, target: ExecutionEnvironment) -> FunctionStats:
        assert self.report is not None
        functions = self.report.functions
        key = target.spec.logical_id
        existing = functions.get(key)
        if existing is not None and existing.stack != target.stack:
            key = f"{target.stack}/{key}"
            existing = functions.get(key)
        if existing is None:
            existing = functions[key] = FunctionStats(
                logical_id=target.spec.logical_id, name=target.spec.name, stack=target.stack
            )
        return existing

    # -- invocation ---------------------------------------------------------------------------

    def invoke(
        self,
        target: ExecutionEnvironment,
        event: Any,
        *,
        request_id: str,
        attempt: int,
        route: Route | None = None,
        message_ids: tuple[str, ...] = (),
        records: int = 1,
    ) -> InvocationResult:
        """Invoke ``target`` with a private JSON copy of ``event``; trace and count it.

        Called from a concurrent invocation's thread (a handler's synchronous Lambda
        ``Invoke``), it runs in that thread in a free environment of ``target``'s function."""
        payload = json.loads(json.dumps(event))  # the handler gets its own copy, JSON only
        concurrent = self.in_worker()
        environment = self._acquire(target) if concurrent else target
        try:
            details = {
                "request_id": request_id,
                "attempt": attempt,
                "records": records,
                "cold_start": environment.handler is None,
            }
            self._emit_invocation("invoke", target, route, message_ids, details)
            result = environment.invoke(
                payload, request_id=request_id, attempt=attempt, concurrent=concurrent
            )
        finally:
            if concurrent:
                self._release(environment)
        self._finish_invocation(target, result, route, message_ids, records)
        return result

    def _finish_invocation(
        self,
        target: ExecutionEnvironment,
        result: InvocationResult,
        route: Route | None,
        message_ids: tuple[str, ...],
        records: int,
    ) -> None:
        self._result(target, result, route, message_ids, records)
        if self._on_invocation is not None:  # the one place every invocation is logged
            source = f"{route.kind} {route.source}" if route is not None else "direct"
            with self._lock:
                self._on_invocation(
                    InvocationRecord(
                        source=source,
                        function_name=target.spec.name,
                        function=target.spec.logical_id,
                        stack=target.stack,
                        records=records,
                        result=result,
                        log_group=target.spec.log_group,
                    )
                )

    # -- concurrency --------------------------------------------------------------------------

    def concurrency_for(self, route: Route, target: ExecutionEnvironment) -> int:
        """How many batches of ``route`` may run at once: the runtime's ``concurrency``,
        capped by the function's ``ReservedConcurrentExecutions`` and the mapping's
        ``ScalingConfig.MaximumConcurrency`` when the template sets them."""
        limit = self.concurrency
        if target.spec.reserved_concurrency is not None:
            limit = min(limit, target.spec.reserved_concurrency)
        if route.maximum_concurrency is not None:
            limit = min(limit, route.maximum_concurrency)
        return max(1, limit)

    def in_worker(self) -> bool:
        """Whether this thread runs a concurrent invocation."""
        return bool(getattr(self._worker, "active", False))

    def environments(self) -> list[ExecutionEnvironment]:
        """Every extra execution environment the concurrent invocations created."""
        with self._slots_lock:
            return [env for slots in self._slots.values() for env in slots[1:]]

    def _acquire(self, target: ExecutionEnvironment) -> ExecutionEnvironment:
        """A free execution environment of ``target``'s function (``target`` itself first,
        then the other slots; a new one, a cold start, when every one is busy)."""
        with self._slots_lock:
            slots = self._slots.setdefault(id(target), [target])
            for environment in slots:
                if id(environment) not in self._busy:
                    break
            else:
                environment = ExecutionEnvironment(
                    self.deployment.stacks[target.stack], target.spec, target.host
                )
                slots.append(environment)
            self._busy.add(id(environment))
            return environment

    def _release(self, environment: ExecutionEnvironment) -> None:
        with self._slots_lock:
            self._busy.discard(id(environment))

    def invoke_concurrently(
        self, target: ExecutionEnvironment, calls: Sequence[Call], *, route: Route | None
    ) -> list[tuple[int, InvocationResult]]:
        """Run ``calls`` at once, each in its own thread and execution environment of
        ``target``'s function (AWS: one environment per concurrent invocation); return
        ``(index in calls, result)`` in the order they finished. ``invoke`` traces are
        emitted before any starts, ``result`` traces as each finishes (in this thread)."""
        if not calls:
            return []
        environments = [self._acquire(target) for _ in calls]
        finished: queue.Queue[tuple[int, InvocationResult]] = queue.Queue()
        try:
            payloads = [json.loads(json.dumps(call.event)) for call in calls]
            for environment, call in zip(environments, calls, strict=True):
                details = {
                    "request_id": call.request_id,
                    "attempt": 1,
                    "records": call.records,
                    "cold_start": environment.handler is None,
                    "concurrent": len(calls),
                }
                self._emit_invocation("invoke", target, route, call.message_ids, details)
            with self._concurrent_phase(target):
                threads = [
                    threading.Thread(
                        target=self._work,
                        args=(index, environment, payload, call.request_id, finished),
                        name=f"conveyor-{target.spec.logical_id}-{index}",
                        daemon=True,
                    )
                    for index, (environment, payload, call) in enumerate(
                        zip(environments, payloads, calls, strict=True)
                    )
                ]
                for thread in threads:
                    thread.start()
                results = []
                for _ in calls:
                    index, result = finished.get()
                    call = calls[index]
                    self._finish_invocation(target, result, route, call.message_ids, call.records)
                    results.append((index, result))
                for thread in threads:
                    thread.join()
            return results
        finally:
            for environment in environments:
                self._release(environment)

    def _work(
        self,
        index: int,
        environment: ExecutionEnvironment,
        payload: Any,
        request_id: str,
        finished: queue.Queue[tuple[int, InvocationResult]],
    ) -> None:
        self._worker.active = True
        try:
            result = environment.invoke(payload, request_id=request_id, attempt=1, concurrent=True)
        except BaseException as exc:  # the sandbox's own failure: answered as one
            result = InvocationResult(
                function=environment.spec.logical_id,
                function_name=environment.spec.name,
                stack=environment.stack,
                request_id=request_id,
                response=None,
                error=error_from(exc, "Sandbox.InternalError"),
                stdout="",
                stderr="",
                duration_ms=0.0,
                cold_start=False,
                attempt=1,
            )
        finally:
            self._worker.active = False
        finished.put((index, result))

    @contextlib.contextmanager
    def _concurrent_phase(self, target: ExecutionEnvironment) -> Iterator[None]:
        """What every concurrent invocation shares, set process-wide while they run: the
        output routers as ``sys.stdout`` / ``sys.stderr``, the handlers' boto3 session."""
        saved_streams = sys.stdout, sys.stderr
        saved_session = boto3.DEFAULT_SESSION
        try:
            boto3.DEFAULT_SESSION = target.host.handler_session()
            sys.stdout, sys.stderr = STDOUT, STDERR
            yield
        finally:
            sys.stdout, sys.stderr = saved_streams
            boto3.DEFAULT_SESSION = saved_session

    def _emit_invocation(
        self,
        kind: str,
        target: ExecutionEnvironment,
        route: Route | None,
        message_ids: tuple[str, ...],
        details: dict[str, Any],
        result: InvocationResult | None = None,
    ) -> None:
        """An ``invoke`` or ``result`` trace (a direct invocation has no route)."""
        self.emit(
            kind,
            stack=target.stack,
            route=route,
            function=target.spec.logical_id,
            message_ids=message_ids,
            duration_ms=result.duration_ms if result is not None else None,
            details=details,
            invocation=result,
        )

    def _result(
        self,
        target: ExecutionEnvironment,
        result: InvocationResult,
        route: Route | None,
        message_ids: tuple[str, ...],
        records: int,
    ) -> None:
        details: dict[str, Any] = {
            "request_id": result.request_id,
            "status": "ok" if result.ok else "error",
        }
        if result.error is not None:
            details["error_type"] = result.error.type
            details["error_message"] = result.error.message[:300]
        self._emit_invocation("result", target, route, message_ids, details, result)
        with self._lock:
            self._count_invocation(target, result, records)

    def _count_invocation(
        self, target: ExecutionEnvironment, result: InvocationResult, records: int
    ) -> None:
        if self.report is not None:
            stats = self.stats(target)
            stats.invocations += 1
            stats.errors += 0 if result.ok else 1
            stats.records += records
            stats.duration_ms += result.duration_ms
            stats.max_duration_ms = max(stats.max_duration_ms, result.duration_ms)
            stats.cold_starts += 1 if result.cold_start else 0
            self.report.invocations += 1
