"""The sandbox runtime: runs the Lambda handlers of a :class:`Deployment` in-process.

moto cannot run Lambda code without Docker and ignores ``batchItemFailures``. The deployer
turns every function into a :class:`FunctionSpec` and every trigger into a :class:`Route` (a
queue whose messages are to be delivered to a function); this module does the delivery.

**Execution environments.** Each function gets a private copy of its code, as a separate Lambda
execution environment would: its ``code_dir`` is mounted as a synthetic package
``_conveyor_sandbox_<n>_<logical id>`` and the handler module is imported under it, so two
functions sharing the same asset (the four order consumers) have their own module objects,
``functools.cache``'d settings and clients, Powertools ``Logger`` (a private stdlib logger per
function, even with the same service name) and Powertools ``Metrics`` state. While a function
runs, its top-level names (``order_events``...) resolve to its own copy, so absolute
self-imports work too. The Python dependencies are those of the sandbox's own environment.

During an invocation ``os.environ`` holds what Lambda would set (the function's environment,
``AWS_REGION``, fake credentials, ``AWS_LAMBDA_FUNCTION_NAME``..., ``AWS_ENDPOINT_URL`` when a
moto server is used; the host's ``AWS_*`` and ``POWERTOOLS_*`` variables are removed), stdout
and stderr are captured into the :class:`InvocationResult` (Powertools JSON logs, EMF
metrics), and ``boto3.DEFAULT_SESSION`` is a session of the sandbox; all of it is restored
afterwards. A handler cannot be interrupted in-process: an invocation longer than the
function's timeout is turned into a timeout error afterwards (and its environment discarded).

**Delivery** (:meth:`Runtime.pump`), per route kind:

* ``sqs`` (event source mapping): batches of up to ``batch_size`` records (the batching
  window is measured with the injectable clock; an empty receive closes the window, since
  nothing else can add messages while the sandbox is single-threaded), the SQS event in
  Lambda's shape, then ``ReportBatchItemFailures`` as Lambda applies it. Failed records stay
  in flight (their message group stays blocked on a FIFO queue, as in SQS) until nothing
  else can move, then become visible again: the visibility timeout elapses in sandbox time.
  moto's own redrive policy moves a message to the DLQ on the receive after its
  ``maxReceiveCount``-th; the runtime checks the DLQ depth around that receive and reports
  the move.
* ``sns`` / ``events``: each internal-queue message becomes one asynchronous invocation with
  the SNS / EventBridge event; errors are retried ``max_retry_attempts`` times (default 2),
  immediately, then the event goes to the on-failure queue, or is dropped.

Every step is reported as a :class:`TraceEvent` to ``on_event``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import io
import itertools
import json
import logging
import os
import re
import sys
import threading
import time
import traceback
import types
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

import boto3
import botocore.session
from botocore.exceptions import BotoCoreError, ClientError

from conveyor.sandbox.model import DeployedStack, Deployment, FunctionSpec, Route

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

# Lambda's asynchronous invocation retries a failed event twice by default.
DEFAULT_MAX_RETRY_ATTEMPTS = 2
DEFAULT_MEMORY_MB = 128

TRACE_KINDS = (
    "receive",  # messages received from a route's queue (or an async event taken from it)
    "invoke",  # a handler invocation starts
    "result",  # it ended: status, error, duration
    "delete",  # messages deleted from a queue (processed)
    "retry",  # SQS: failed records returned to the queue; async: the event is retried
    "release",  # failed records visible again (their visibility timeout elapsed, sandbox time)
    "dead-letter",  # the queue's redrive policy moved a message to its dead-letter queue
    "on-failure",  # an async event sent to the function's on-failure destination
    "drop",  # an async event discarded after its retries (no on-failure destination)
    "warning",  # a configuration or handler problem worth seeing (details["problem"])
)

_FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
# Host variables that must not leak into a function's environment (a developer's profile,
# endpoint or Powertools dev mode would change what the handler does).
_HOST_PREFIXES_REMOVED = ("AWS_", "POWERTOOLS_", "LAMBDA_", "_X_AMZN_", "_AWS_XRAY")
_HOST_NAMES_REMOVED = frozenset({"_HANDLER"})
_SQS_BATCH = 10  # ReceiveMessage / DeleteMessageBatch / ChangeMessageVisibilityBatch maximum
_BATCHES_PER_ROUTE_ROUND = 10  # fairness between routes within one pump round
_FALLBACK_VISIBILITY_TIMEOUT = 30
_MODULE_COUNTER = itertools.count(1)


# ---------------------------------------------------------------------------------------------
# Public data


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
        return [line for line in _json_lines(self.stdout) if "_aws" not in line]

    @property
    def metrics(self) -> list[dict[str, Any]]:
        """The EMF blobs printed on stdout (Powertools metrics)."""
        return [line for line in _json_lines(self.stdout) if "_aws" in line]


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
    released: int = 0  # failed SQS records made visible again
    idle: bool = False  # True: the pump stopped because nothing moved any more
    elapsed_ms: float = 0.0
    functions: dict[str, FunctionStats] = field(default_factory=dict)  # by logical id

    @property
    def messages_per_second(self) -> float:
        return self.messages_received / (self.elapsed_ms / 1000) if self.elapsed_ms else 0.0


class LambdaContext:
    """What the Lambda Python runtime passes as ``context``."""

    def __init__(
        self,
        *,
        function_name: str,
        invoked_function_arn: str,
        memory_limit_in_mb: int,
        aws_request_id: str,
        log_group_name: str,
        log_stream_name: str,
        timeout_s: float,
    ) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = invoked_function_arn
        self.memory_limit_in_mb = memory_limit_in_mb
        self.aws_request_id = aws_request_id
        self.log_group_name = log_group_name
        self.log_stream_name = log_stream_name
        self.identity: Any = None
        self.client_context: Any = None
        self.tenant_id: str | None = None
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))

    def __repr__(self) -> str:
        return f"LambdaContext({self.function_name!r}, request {self.aws_request_id})"


# ---------------------------------------------------------------------------------------------
# Process-wide plumbing: output capture, private imports, private loggers


class _StreamRouter(io.TextIOBase):
    """Installed as sys.stdout / sys.stderr during invocations. A handler created at import
    (Powertools' StreamHandler keeps the stream of that moment) therefore keeps writing into the
    capture of whichever invocation runs; writes from other threads (a moto server) pass by."""

    encoding = "utf-8"
    errors = "strict"

    def __init__(self, name: str) -> None:
        super().__init__()
        self._name = name
        self._target: TextIO | None = None
        self._thread: int | None = None

    def capture(self, target: TextIO) -> tuple[TextIO | None, int | None]:
        previous = (self._target, self._thread)
        self._target, self._thread = target, threading.get_ident()
        return previous

    def restore(self, previous: tuple[TextIO | None, int | None]) -> None:
        self._target, self._thread = previous

    def _destination(self) -> TextIO | None:
        if self._target is not None and threading.get_ident() == self._thread:
            return self._target
        current = getattr(sys, self._name)
        if current is not self:
            return current  # type: ignore[no-any-return]
        return getattr(sys, f"__{self._name}__")  # type: ignore[no-any-return]

    def write(self, text: str) -> int:
        destination = self._destination()
        if destination is not None:
            destination.write(text)
        return len(text)

    def flush(self) -> None:
        destination = self._destination()
        if destination is not None:
            destination.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False


_STDOUT = _StreamRouter("stdout")
_STDERR = _StreamRouter("stderr")


class _AliasLoader(importlib.abc.Loader):
    """Makes ``order_events.x`` the already imported private ``<root>.order_events.x``."""

    def __init__(self, module: types.ModuleType) -> None:
        self._module = module
        self._spec = module.__spec__

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return self._module

    def exec_module(self, module: types.ModuleType) -> None:
        module.__spec__ = self._spec  # importlib set the alias spec; keep the real one


class _AliasFinder(importlib.abc.MetaPathFinder):
    """While a function runs, its top-level names resolve to its private copy of its code."""

    def __init__(self) -> None:
        self.current: _Function | None = None

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        function = self.current
        if function is None or fullname.partition(".")[0] not in function.private_names:
            return None
        try:
            module = importlib.import_module(f"{function.root}.{fullname}")
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith(function.root + "."):
                raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname) from None
            raise
        return importlib.util.spec_from_loader(
            fullname, _AliasLoader(module), is_package=hasattr(module, "__path__")
        )


_FINDER = _AliasFinder()


class _PrivateLoggerManager(logging.Manager):
    """A function's own logger namespace: Powertools' ``Logger(service=...)`` is a stdlib logger
    named after the service, which would otherwise be shared (handler, formatter, appended keys)
    by every function of that service. Loggers of importable modules (``botocore``,
    ``aws_lambda_powertools``...) stay shared."""

    def __init__(self, shared: logging.Manager, private_names: frozenset[str]) -> None:
        super().__init__(shared.root)
        self._shared = shared
        self._private_names = private_names
        self.disable = shared.disable
        self.loggerClass = shared.loggerClass
        self.logRecordFactory = shared.logRecordFactory

    def getLogger(self, name: str) -> logging.Logger:
        top = name.partition(".")[0]
        if top in sys.modules and top not in self._private_names:
            return self._shared.getLogger(name)
        return super().getLogger(name)


# Powertools keeps these at class level, shared by every Metrics instance of the process.
_METRICS_STATE = ("_metrics", "_dimensions", "_metadata", "_default_dimensions")
# Module-level cold start flags of Powertools (logger, metrics, tracer).
_COLD_START_MODULES = (
    "aws_lambda_powertools.logging.logger",
    "aws_lambda_powertools.metrics.provider.cold_start",
    "aws_lambda_powertools.metrics.base",
    "aws_lambda_powertools.tracing.tracer",
)


def _swap_metrics_state(state: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Put ``state`` into Powertools' shared Metrics dicts (in place); return what was there."""
    module = sys.modules.get("aws_lambda_powertools.metrics.metrics")
    metrics_class = getattr(module, "Metrics", None)
    previous: dict[str, dict[str, Any]] = {}
    for name in _METRICS_STATE:
        shared = getattr(metrics_class, name, None)
        if isinstance(shared, dict):
            previous[name] = dict(shared)
            shared.clear()
            shared.update(state.get(name, {}))
    return previous


def _set_cold_start(cold: bool) -> None:
    for name in _COLD_START_MODULES:
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "is_cold_start"):
            setattr(module, "is_cold_start", cold)  # noqa: B010 - not declared for mypy


def _replace_environ(target: Mapping[str, str]) -> None:
    for name in [n for n in os.environ if n not in target]:
        del os.environ[name]
    for name, value in target.items():
        if os.environ.get(name) != value:
            os.environ[name] = value


def _hide_modules(names: frozenset[str]) -> dict[str, types.ModuleType]:
    """Take ``names`` and their submodules out of sys.modules (fast path: none imported)."""
    if not any(name in sys.modules for name in names):
        return {}
    return {
        key: sys.modules.pop(key)
        for key in [k for k in sys.modules if k.partition(".")[0] in names]
    }


def _restore_modules(names: frozenset[str], hidden: Mapping[str, types.ModuleType]) -> None:
    if any(name in sys.modules for name in names):
        for key in [k for k in sys.modules if k.partition(".")[0] in names]:
            del sys.modules[key]
    sys.modules.update(hidden)


# ---------------------------------------------------------------------------------------------
# Functions


class _InitError(Exception):
    def __init__(self, error: InvocationError) -> None:
        super().__init__(error.message)
        self.error = error


class _Function:
    """One function of the deployment and its execution environment."""

    def __init__(self, stack: DeployedStack, spec: FunctionSpec) -> None:
        self.stack = stack.name
        self.spec = spec
        resource = stack.resources.get(spec.logical_id)
        memory = str(resource.properties.get("MemorySize", "")) if resource is not None else ""
        self.memory_mb = int(memory) if memory.isdigit() else DEFAULT_MEMORY_MB
        module_path, _, attribute = spec.handler.rpartition(".")
        self.module_path = module_path
        self.attribute = attribute
        self.top = module_path.partition(".")[0]
        self.root = f"_conveyor_sandbox_{next(_MODULE_COUNTER)}_{_identifier(spec.logical_id)}"
        self.private_names = _private_names(Path(spec.code_dir), self.top)
        self.logger_manager: _PrivateLoggerManager | None = None
        self.handler: Callable[[Any, Any], Any] | None = None
        self.module: types.ModuleType | None = None
        self.metrics_state: dict[str, dict[str, Any]] = {}
        self.log_stream = f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"

    def load(self) -> Callable[[Any, Any], Any]:
        """Import the handler into this environment (call inside its activation)."""
        if self.handler is not None:
            return self.handler
        if not self.module_path or not self.attribute:
            raise _InitError(
                InvocationError(
                    "Runtime.MalformedHandlerName",
                    f"Bad handler '{self.spec.handler}': not enough values to unpack",
                )
            )
        code_dir = str(Path(self.spec.code_dir))
        root = types.ModuleType(self.root, f"Private copy of {code_dir} for {self.spec.name}")
        spec = importlib.machinery.ModuleSpec(self.root, None, is_package=True)
        spec.submodule_search_locations = [code_dir]
        root.__spec__ = spec
        root.__path__ = [code_dir]
        root.__package__ = self.root
        sys.modules[self.root] = root
        importlib.invalidate_caches()
        try:
            module = importlib.import_module(f"{self.root}.{self.module_path}")
        except SyntaxError as exc:
            self.discard()
            raise _InitError(
                _error_from(
                    exc,
                    "Runtime.UserCodeSyntaxError",
                    f"Syntax error in module '{self.module_path}': {exc}",
                )
            ) from exc
        except ImportError as exc:
            self.discard()
            message = str(exc).replace(self.root + ".", "")
            raise _InitError(
                _error_from(
                    exc,
                    "Runtime.ImportModuleError",
                    f"Unable to import module '{self.module_path}': {message}",
                )
            ) from exc
        except KeyboardInterrupt:
            self.discard()
            raise
        except BaseException as exc:
            self.discard()
            if isinstance(exc, SystemExit):
                raise _InitError(
                    _error_from(exc, "Runtime.ExitError", f"exited with {exc.code!r}")
                ) from exc
            raise _InitError(_error_from(exc)) from exc
        handler: Callable[[Any, Any], Any] | None = getattr(module, self.attribute, None)
        if not callable(handler):
            self.discard()
            raise _InitError(
                InvocationError(
                    "Runtime.HandlerNotFound",
                    f"Handler '{self.attribute}' missing on module '{self.module_path}'",
                )
            )
        self.module, self.handler = module, handler
        return handler

    def discard(self) -> None:
        """Forget the execution environment: the next invocation is a cold start."""
        prefix = self.root + "."
        for key in [k for k in sys.modules if k == self.root or k.startswith(prefix)]:
            del sys.modules[key]
        self.handler = None
        self.module = None
        self.metrics_state = {}
        self.logger_manager = None


def _identifier(text: str) -> str:
    return re.sub(r"\W", "_", text)[:60] or "function"


# Packages every asset carries its own copy of: private even when the host process imported
# them (Conveyor's handler kit holds per-function state, e.g. its cached boto3 clients).
_ALWAYS_PRIVATE_NAMES = frozenset({"handler_kit"})


def _private_names(code_dir: Path, top: str) -> frozenset[str]:
    """Top-level names the function's code owns: its handler package, and (unless the asset
    vendors installed distributions) the other modules and packages of the asset root."""
    names = {top} if top else set()
    try:
        entries = list(code_dir.iterdir())
    except OSError:
        return frozenset(names)
    if any(entry.name.endswith((".dist-info", ".egg-info")) for entry in entries):
        return frozenset(names)
    for entry in entries:
        if entry.is_dir():
            name = entry.name
        elif entry.suffix == ".py":
            name = entry.stem
        else:
            continue
        if (
            name.isidentifier()
            and name != "__pycache__"
            and name not in sys.stdlib_module_names
            and (name not in sys.modules or name in _ALWAYS_PRIVATE_NAMES)
        ):
            names.add(name)
    return frozenset(names)


def _error_from(
    exc: BaseException, error_type: str | None = None, message: str | None = None
) -> InvocationError:
    return InvocationError(
        type=error_type or type(exc).__name__,
        message=message if message is not None else str(exc),
        stack_trace=tuple(traceback.format_list(traceback.extract_tb(exc.__traceback__))),
    )


def _json_default(value: object) -> Any:
    # Lambda's Python runtime marshals Decimal as a number.
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _json_lines(text: str) -> list[dict[str, Any]]:
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


def _iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ---------------------------------------------------------------------------------------------
# Queues


@dataclass
class _Queue:
    url: str
    arn: str
    name: str
    fifo: bool
    visibility_timeout: int
    dlq_url: str | None = None
    dlq_name: str | None = None
    max_receive_count: int | None = None


@dataclass
class _Parked:
    message_id: str
    receipt_handle: str
    stack: str
    route: Route


@dataclass
class _Batch:
    messages: list[dict[str, Any]]
    receives: int
    duration_ms: float


# ---------------------------------------------------------------------------------------------
# The runtime


class Runtime:
    """Runs the functions of ``deployment`` in-process and delivers its routes' messages.

    :param session: boto3 session for the runtime's own SQS calls (default: a new one with fake
        credentials). Handlers get their own sandbox session (``boto3.DEFAULT_SESSION``).
    :param endpoint_url: the moto server (``http://127.0.0.1:4566``); None with ``mock_aws()``.
        Handlers see it as ``AWS_ENDPOINT_URL``.
    :param on_event: called with every :class:`TraceEvent`.
    :param clock: measures the SQS batching window (injectable for tests).
    :param fail_unflagged_batch_failures: a handler returning ``batchItemFailures`` while the
        mapping lacks ``ReportBatchItemFailures``: True fails the whole batch (the messages come
        back, are retried and reach the DLQ); False does what AWS does, deletes the batch (the
        "failed" messages are lost). Both emit a warning.

    Not thread-safe: one pump or invoke at a time.
    """

    def __init__(
        self,
        deployment: Deployment,
        *,
        session: Any | None = None,
        endpoint_url: str | None = None,
        on_event: Callable[[TraceEvent], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        fail_unflagged_batch_failures: bool = True,
    ) -> None:
        self.deployment = deployment
        self._region = deployment.region
        self._session = session or boto3.session.Session(
            region_name=deployment.region,
            aws_access_key_id=_FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=_FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=_FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
        )
        self._endpoint_url = endpoint_url
        self._on_event = on_event
        self._clock = clock
        self._fail_unflagged = fail_unflagged_batch_failures
        self._sqs = self._session.client(
            "sqs", region_name=deployment.region, endpoint_url=endpoint_url
        )
        self._handler_session: Any | None = None
        self._functions: dict[tuple[str, str], _Function] = {}
        for stack in deployment.stacks.values():
            for spec in stack.functions.values():
                self._functions[(stack.name, spec.logical_id)] = _Function(stack, spec)
        self._queues: dict[str, _Queue] = {}
        self._parked: dict[str, list[_Parked]] = {}
        # queue url -> {message id: receive count}: failed at maxReceiveCount, so moto's
        # redrive policy moves them to the DLQ on the next receive.
        self._at_risk: dict[str, dict[str, int]] = {}
        self._sequence_numbers: dict[str, str] = {}
        self._warned: set[str] = set()
        self._report: PumpReport | None = None
        if _FINDER not in sys.meta_path:
            sys.meta_path.insert(0, _FINDER)

    # -- public API ---------------------------------------------------------------------------

    def invoke(self, function: str, event: Any, *, stack: str | None = None) -> InvocationResult:
        """Invoke a function synchronously (RequestResponse) by logical id, name or ARN.

        A function error does not raise: see ``result.error``.
        """
        target = self._find(function, stack)
        return self._invoke(target, event, request_id=str(uuid.uuid4()), attempt=1)

    def pump(self, *, until_idle: bool = True, max_rounds: int = 1000) -> PumpReport:
        """Deliver the pending messages of every route; see the module docstring.

        Each round takes up to 10 batches from every route. ``until_idle``: repeat until a
        round moves nothing and no failed record is waiting to become visible again
        (``max_rounds`` bounds it: a message that always fails on a queue without redrive
        policy would loop); False: one round. Failed records are made visible again when the
        pump returns.
        """
        report = PumpReport()
        self._report = report
        started = time.perf_counter()
        try:
            while report.rounds < max_rounds:
                report.rounds += 1
                moved = sum(
                    self._pump_route(stack, route)
                    for stack in self.deployment.stacks.values()
                    for route in stack.routes
                )
                if moved == 0 and self._release_parked() == 0:
                    report.idle = True
                    break
                if not until_idle:
                    break
            else:
                self._emit(
                    "warning",
                    details={
                        "problem": f"still busy after max_rounds={max_rounds} rounds",
                        "hint": "a message failing forever on a queue without redrive policy?",
                    },
                )
        finally:
            self._release_parked()
            report.elapsed_ms = (time.perf_counter() - started) * 1000
            self._report = None
        return report

    def loaded_module(self, function: str, *, stack: str | None = None) -> types.ModuleType | None:
        """The function's private handler module, once it has been invoked (for debugging)."""
        return self._find(function, stack).module

    def close(self) -> None:
        """Drop every function's private modules."""
        for target in self._functions.values():
            target.discard()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- invocation ---------------------------------------------------------------------------

    def _find(self, function: str, stack: str | None) -> _Function:
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

    def _invoke(
        self,
        target: _Function,
        event: Any,
        *,
        request_id: str,
        attempt: int,
        route: Route | None = None,
        message_ids: tuple[str, ...] = (),
        records: int = 1,
    ) -> InvocationResult:
        payload = json.loads(json.dumps(event))  # the handler gets its own copy, JSON only
        self._emit(
            "invoke",
            stack=target.stack,
            route=route,
            function=target.spec.logical_id,
            message_ids=message_ids,
            details={
                "request_id": request_id,
                "attempt": attempt,
                "records": records,
                "cold_start": target.handler is None,
            },
        )
        result = self._call(target, payload, request_id=request_id, attempt=attempt)
        details: dict[str, Any] = {
            "request_id": request_id,
            "status": "ok" if result.ok else "error",
        }
        if result.error is not None:
            details["error_type"] = result.error.type
            details["error_message"] = result.error.message[:300]
        self._emit(
            "result",
            stack=target.stack,
            route=route,
            function=target.spec.logical_id,
            message_ids=message_ids,
            duration_ms=result.duration_ms,
            details=details,
            invocation=result,
        )
        if self._report is not None:
            stats = self._stats(target)
            stats.invocations += 1
            stats.errors += 0 if result.ok else 1
            stats.records += records
            stats.duration_ms += result.duration_ms
            stats.max_duration_ms = max(stats.max_duration_ms, result.duration_ms)
            stats.cold_starts += 1 if result.cold_start else 0
            self._report.invocations += 1
        return result

    def _call(
        self, target: _Function, payload: Any, *, request_id: str, attempt: int
    ) -> InvocationResult:
        stdout, stderr = io.StringIO(), io.StringIO()
        response: Any = None
        error: InvocationError | None = None
        cold = target.handler is None
        started = time.perf_counter()
        with self._activated(target, stdout, stderr):
            try:
                handler = target.load()
            except _InitError as exc:
                error = exc.error
            else:
                _set_cold_start(cold)
                context = LambdaContext(
                    function_name=target.spec.name,
                    invoked_function_arn=target.spec.arn,
                    memory_limit_in_mb=target.memory_mb,
                    aws_request_id=request_id,
                    log_group_name=f"/aws/lambda/{target.spec.name}",
                    log_stream_name=target.log_stream,
                    timeout_s=target.spec.timeout_s,
                )
                try:
                    response = handler(payload, context)
                except KeyboardInterrupt:
                    raise
                except SystemExit as exc:
                    error = _error_from(exc, "Runtime.ExitError", f"exited with {exc.code!r}")
                except BaseException as exc:
                    error = _error_from(exc)
                else:
                    try:
                        response = json.loads(json.dumps(response, default=_json_default))
                    except (TypeError, ValueError) as exc:
                        response = None
                        error = InvocationError(
                            "Runtime.MarshalError", f"Unable to marshal response: {exc}"
                        )
            if error is not None:
                stderr.write(f"[ERROR] {error.type}: {error.message}\n")
                stderr.writelines(error.stack_trace)
        duration_ms = (time.perf_counter() - started) * 1000
        if error is None and duration_ms > target.spec.timeout_s * 1000:
            response = None
            error = InvocationError(
                "Sandbox.Timedout", f"Task timed out after {target.spec.timeout_s:.2f} seconds"
            )
        if error is not None and error.type in ("Sandbox.Timedout", "Runtime.ExitError"):
            target.discard()  # Lambda replaces an environment that timed out or exited
        return InvocationResult(
            function=target.spec.logical_id,
            function_name=target.spec.name,
            stack=target.stack,
            request_id=request_id,
            response=response,
            error=error,
            stdout=stdout.getvalue(),
            stderr=stderr.getvalue(),
            duration_ms=duration_ms,
            cold_start=cold,
            attempt=attempt,
        )

    def _lambda_environment(self, target: _Function) -> dict[str, str]:
        spec = target.spec
        environment = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(_HOST_PREFIXES_REMOVED) and name not in _HOST_NAMES_REMOVED
        }
        environment.update({str(k): str(v) for k, v in spec.environment.items()})
        version = spec.runtime if spec.runtime.startswith("python") else "python3"
        environment.update(
            {
                "AWS_REGION": self._region,
                "AWS_DEFAULT_REGION": self._region,
                **_FAKE_CREDENTIALS,
                # No ~/.aws: a developer's profile or endpoint must not reach the handler.
                "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "AWS_EXECUTION_ENV": f"AWS_Lambda_{version}",
                "AWS_LAMBDA_FUNCTION_NAME": spec.name,
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(target.memory_mb),
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
                "AWS_LAMBDA_LOG_STREAM_NAME": target.log_stream,
                "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
                "LAMBDA_TASK_ROOT": str(spec.code_dir),
                "_HANDLER": spec.handler,
            }
        )
        if self._endpoint_url:
            environment["AWS_ENDPOINT_URL"] = self._endpoint_url
        return environment

    @contextlib.contextmanager
    def _activated(self, target: _Function, stdout: TextIO, stderr: TextIO) -> Iterator[None]:
        """The function's execution environment, for the duration of one invocation."""
        saved_environ = dict(os.environ)
        _replace_environ(self._lambda_environment(target))
        hidden = _hide_modules(target.private_names)
        saved_manager = logging.Logger.manager
        if target.logger_manager is None:
            target.logger_manager = _PrivateLoggerManager(saved_manager, target.private_names)
        logging.Logger.manager = target.logger_manager
        host_metrics = _swap_metrics_state(target.metrics_state)
        saved_session = boto3.DEFAULT_SESSION
        saved_streams = sys.stdout, sys.stderr
        out_token, err_token = _STDOUT.capture(stdout), _STDERR.capture(stderr)
        saved_current = _FINDER.current
        saved_bytecode = sys.dont_write_bytecode
        try:
            boto3.DEFAULT_SESSION = self._sandbox_session()
            sys.stdout, sys.stderr = _STDOUT, _STDERR
            _FINDER.current = target
            sys.dont_write_bytecode = True  # never write __pycache__ into cdk.out
            yield
        finally:
            sys.dont_write_bytecode = saved_bytecode
            _FINDER.current = saved_current
            with contextlib.suppress(Exception):
                sys.stdout.flush()
            sys.stdout, sys.stderr = saved_streams
            _STDOUT.restore(out_token)
            _STDERR.restore(err_token)
            boto3.DEFAULT_SESSION = saved_session
            target.metrics_state = _swap_metrics_state(host_metrics)
            logging.Logger.manager = saved_manager
            _restore_modules(target.private_names, hidden)
            _replace_environ(saved_environ)

    def _sandbox_session(self) -> Any:
        """The handlers' default boto3 session (created inside an invocation, so that it reads
        the sandbox environment); it shares the runtime session's model loader."""
        if self._handler_session is None:
            core = botocore.session.get_session()
            with contextlib.suppress(Exception):
                core.register_component(
                    "data_loader", self._session._session.get_component("data_loader")
                )
            self._handler_session = boto3.session.Session(
                botocore_session=core, region_name=self._region
            )
        return self._handler_session

    def _stats(self, target: _Function) -> FunctionStats:
        assert self._report is not None
        functions = self._report.functions
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

    # -- routes -------------------------------------------------------------------------------

    def _pump_route(self, stack: DeployedStack, route: Route) -> int:
        target = self._functions.get((stack.name, route.function_logical_id))
        if target is None:
            self._warn_once(
                f"missing:{stack.name}:{route.source}",
                stack=stack.name,
                route=route,
                problem=f"route target {route.function_logical_id} is not a deployed function",
            )
            return 0
        if route.kind not in ("sqs", "sns", "events"):
            self._warn_once(
                f"kind:{stack.name}:{route.source}",
                stack=stack.name,
                route=route,
                problem=f"unknown route kind {route.kind!r}",
            )
            return 0
        moved = 0
        try:
            queue = self._queue(route.queue_url)
            for _ in range(_BATCHES_PER_ROUTE_ROUND):
                if route.kind == "sqs":
                    count = self._pump_sqs(stack, route, queue, target)
                else:
                    count = self._pump_async(stack, route, queue, target)
                if count == 0:
                    break
                moved += count
        except (ClientError, BotoCoreError) as exc:
            self._warn_once(
                f"aws:{stack.name}:{route.source}:{type(exc).__name__}",
                stack=stack.name,
                route=route,
                problem=f"cannot read {route.queue_url}: {exc}",
            )
        return moved

    def _queue(self, url: str) -> _Queue:
        queue = self._queues.get(url)
        if queue is not None:
            return queue
        attributes = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])[
            "Attributes"
        ]
        arn = attributes.get("QueueArn", "")
        queue = _Queue(
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
        self._queues[url] = queue
        return queue

    def _depth(self, url: str) -> int:
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return sum(int(value) for value in attributes.values())

    def _receive(
        self, stack: DeployedStack, route: Route, queue: _Queue, count: int
    ) -> list[dict[str, Any]]:
        at_risk = self._at_risk.get(queue.url)
        depth_before = self._depth(queue.dlq_url) if at_risk and queue.dlq_url else None
        request: dict[str, Any] = {
            "QueueUrl": queue.url,
            "MaxNumberOfMessages": max(1, min(_SQS_BATCH, count)),
            "MessageSystemAttributeNames": ["All"],
            "MessageAttributeNames": ["All"],
            "WaitTimeSeconds": 0,
        }
        if queue.visibility_timeout <= 0:  # keep received messages in flight
            request["VisibilityTimeout"] = _FALLBACK_VISIBILITY_TIMEOUT
        messages: list[dict[str, Any]] = self._sqs.receive_message(**request).get("Messages", [])
        if at_risk and depth_before is not None and queue.dlq_url:
            self._account_redrive(stack, route, queue, at_risk, messages, depth_before)
        return messages

    def _account_redrive(
        self,
        stack: DeployedStack,
        route: Route,
        queue: _Queue,
        at_risk: dict[str, int],
        received: list[dict[str, Any]],
        depth_before: int,
    ) -> None:
        """moto moves a message to the DLQ when a receive finds it at maxReceiveCount: compare
        the DLQ depth around that receive and report the moves."""
        assert queue.dlq_url is not None
        moved = self._depth(queue.dlq_url) - depth_before
        received_ids = {m["MessageId"] for m in received}
        for message_id in received_ids & at_risk.keys():
            del at_risk[message_id]  # delivered again instead (redrive policy changed?)
        candidates = [mid for mid in at_risk if mid not in received_ids][: max(moved, 0)]
        for message_id in candidates:
            receive_count = at_risk.pop(message_id)
            self._emit(
                "dead-letter",
                stack=stack.name,
                route=route,
                message_ids=(message_id,),
                details={
                    "queue": queue.name,
                    "dead_letter_queue": queue.dlq_name,
                    "receive_count": receive_count,
                    "max_receive_count": queue.max_receive_count,
                },
            )
        unknown = moved - len(candidates)
        if unknown > 0:
            self._emit(
                "dead-letter",
                stack=stack.name,
                route=route,
                details={
                    "queue": queue.name,
                    "dead_letter_queue": queue.dlq_name,
                    "count": unknown,
                    "note": "moved by the redrive policy without a failure seen by this runtime",
                },
            )
        if self._report is not None:
            self._report.moved_to_dlq += max(moved, 0)
        if not at_risk:
            self._at_risk.pop(queue.url, None)

    def _collect(self, stack: DeployedStack, route: Route, queue: _Queue) -> _Batch:
        """Receive up to batch_size messages within the batching window."""
        started = time.perf_counter()
        window_start = self._clock()
        target = max(1, route.batch_size)
        window = max(0, route.batching_window_s)
        messages: list[dict[str, Any]] = []
        receives = 0
        while len(messages) < target:
            received = self._receive(stack, route, queue, target - len(messages))
            receives += 1
            messages.extend(received)
            if not received or window == 0 or self._clock() - window_start >= window:
                break
        return _Batch(messages, receives, (time.perf_counter() - started) * 1000)

    def _pump_sqs(
        self, stack: DeployedStack, route: Route, queue: _Queue, target: _Function
    ) -> int:
        batch = self._collect(stack, route, queue)
        messages = batch.messages
        if not messages:
            return 0
        ids = tuple(m["MessageId"] for m in messages)
        fifo = route.fifo or queue.fifo
        receive_details: dict[str, Any] = {
            "route_kind": "sqs",
            "queue": queue.name,
            "records": len(messages),
            "batch_size": route.batch_size,
            "receives": batch.receives,
        }
        if fifo:
            receive_details["groups"] = sorted(
                {str(m.get("Attributes", {}).get("MessageGroupId")) for m in messages}
            )
        self._emit(
            "receive",
            stack=stack.name,
            route=route,
            function=target.spec.logical_id,
            message_ids=ids,
            duration_ms=batch.duration_ms,
            details=receive_details,
        )
        if self._report is not None:
            self._report.messages_received += len(messages)
        records = [self._sqs_record(m, route, queue) for m in messages]
        result = self._invoke(
            target,
            {"Records": records},
            request_id=str(uuid.uuid4()),
            attempt=1,
            route=route,
            message_ids=ids,
            records=len(records),
        )
        failed, reason = self._batch_failures(stack, route, target, result, records)
        if fifo and failed:
            self._check_fifo_order(stack, route, target, records, failed)
        succeeded = [m for m in messages if m["MessageId"] not in failed]
        returned = [m for m in messages if m["MessageId"] in failed]
        if succeeded:
            self._delete(stack, route, queue, target, succeeded)
        if returned:
            self._return_to_queue(stack, route, queue, target, returned, reason)
        if self._report is not None:
            self._report.records_processed += len(succeeded)
            self._report.records_failed += len(returned)
            self._stats(target).records_failed += len(returned)
        return len(messages)

    def _sqs_record(self, message: dict[str, Any], route: Route, queue: _Queue) -> dict[str, Any]:
        attributes = {str(k): str(v) for k, v in message.get("Attributes", {}).items()}
        if (route.fifo or queue.fifo) and "SequenceNumber" not in attributes:
            # moto only numbers messages sent with an explicit deduplication id.
            attributes["SequenceNumber"] = self._sequence_numbers.setdefault(
                message["MessageId"], f"{18_000_000_000_000_000_000 + len(self._sequence_numbers)}"
            )
        body = message.get("Body", "")
        record: dict[str, Any] = {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": body,
            "attributes": attributes,
            "messageAttributes": {
                name: _lambda_message_attribute(value)
                for name, value in message.get("MessageAttributes", {}).items()
            },
        }
        if message.get("MD5OfMessageAttributes"):
            record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
        record["md5OfBody"] = (
            message.get("MD5OfBody")
            or hashlib.md5(  # noqa: S324 - SQS's
                body.encode()
            ).hexdigest()
        )
        record["eventSource"] = "aws:sqs"
        record["eventSourceARN"] = route.queue_arn or queue.arn
        record["awsRegion"] = self._region
        return record

    def _batch_failures(
        self,
        stack: DeployedStack,
        route: Route,
        target: _Function,
        result: InvocationResult,
        records: list[dict[str, Any]],
    ) -> tuple[set[str], str]:
        """The ids of the records that go back to the queue, and why (Lambda's rules)."""
        every = {str(r["messageId"]) for r in records}
        if result.error is not None:
            return every, f"function error {result.error.type}"
        response = result.response
        entries = response.get("batchItemFailures") if isinstance(response, dict) else None
        if not route.report_batch_item_failures:
            if isinstance(entries, list) and entries:
                problem = (
                    "the handler returned batchItemFailures but the event source mapping lacks "
                    "ReportBatchItemFailures: AWS ignores them and deletes the whole batch"
                )
                self._warn(stack, route, target, problem, records=len(records))
                if self._fail_unflagged:
                    return every, "batchItemFailures without ReportBatchItemFailures"
            return set(), ""
        if response is None:
            return set(), ""  # a null response: complete success
        if not isinstance(response, dict):
            return self._invalid(stack, route, target, every, response)
        if entries is None or entries == []:
            return set(), ""  # no, null or empty batchItemFailures: complete success
        if not isinstance(entries, list):
            return self._invalid(stack, route, target, every, response)
        failed: set[str] = set()
        for entry in entries:
            identifier = entry.get("itemIdentifier") if isinstance(entry, dict) else None
            if not isinstance(identifier, str) or identifier not in every:
                return self._invalid(stack, route, target, every, entry)
            failed.add(identifier)
        return failed, "batch item failure"

    def _invalid(
        self, stack: DeployedStack, route: Route, target: _Function, every: set[str], what: Any
    ) -> tuple[set[str], str]:
        problem = (
            f"invalid batch response {json.dumps(what)[:200]}: Lambda fails the whole batch "
            "(itemIdentifier must be the messageId of a record of the batch)"
        )
        self._warn(stack, route, target, problem)
        return every, "invalid batchItemFailures"

    def _check_fifo_order(
        self,
        stack: DeployedStack,
        route: Route,
        target: _Function,
        records: list[dict[str, Any]],
        failed: set[str],
    ) -> None:
        """A record reported successful after a failed one of its group breaks the group's
        order: Lambda deletes it all the same. Say so."""
        blocked: dict[str, str] = {}
        out_of_order: list[str] = []
        for record in records:
            group = str(record["attributes"].get("MessageGroupId"))
            if record["messageId"] in failed:
                blocked.setdefault(group, record["messageId"])
            elif group in blocked:
                out_of_order.append(record["messageId"])
        if out_of_order:
            self._warn(
                stack,
                route,
                target,
                "FIFO order broken by the handler: records processed after a failed record of "
                "their message group are deleted (report them in batchItemFailures too, e.g. "
                "Powertools' SqsFifoPartialProcessor)",
                message_ids=tuple(out_of_order),
            )

    def _delete(
        self,
        stack: DeployedStack,
        route: Route,
        queue: _Queue,
        target: _Function | None,
        messages: list[dict[str, Any]],
        *,
        event_ids: tuple[str, ...] | None = None,
    ) -> None:
        """Delete processed messages. ``event_ids``: an async route's internal queue; the trace
        then names the SNS message / EventBridge event ids, as its receive did."""
        started = time.perf_counter()
        problems: list[Any] = []
        for chunk in _chunks(messages, _SQS_BATCH):
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
        self._emit(
            "delete",
            stack=stack.name,
            route=route,
            function=target.spec.logical_id if target else None,
            message_ids=message_ids,
            duration_ms=(time.perf_counter() - started) * 1000,
            details=details,
        )

    def _return_to_queue(
        self,
        stack: DeployedStack,
        route: Route,
        queue: _Queue,
        target: _Function,
        messages: list[dict[str, Any]],
        reason: str,
    ) -> None:
        """Failed records stay in flight until the pump has nothing else to do (sandbox
        visibility timeout); then _release_parked makes them visible again."""
        counts = {
            m["MessageId"]: int(m.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
            for m in messages
        }
        parked = self._parked.setdefault(queue.url, [])
        parked.extend(
            _Parked(m["MessageId"], m["ReceiptHandle"], stack.name, route) for m in messages
        )
        details: dict[str, Any] = {"queue": queue.name, "reason": reason, "receive_counts": counts}
        if queue.max_receive_count is not None:
            details["max_receive_count"] = queue.max_receive_count
            details["dead_letter_queue"] = queue.dlq_name
            exhausted = {mid: n for mid, n in counts.items() if n >= queue.max_receive_count}
            if exhausted and queue.dlq_url:
                self._at_risk.setdefault(queue.url, {}).update(exhausted)
                details["next"] = f"dead-letter {sorted(exhausted)}"
        else:
            details["note"] = "no redrive policy: the message is retried until it succeeds"
        self._emit(
            "retry",
            stack=stack.name,
            route=route,
            function=target.spec.logical_id,
            message_ids=tuple(counts),
            details=details,
        )

    def _release_parked(self) -> int:
        released = 0
        for url, parked in list(self._parked.items()):
            queue = self._queues.get(url)
            started = time.perf_counter()
            problems: list[Any] = []
            for chunk in _chunks(parked, _SQS_BATCH):
                try:
                    response = self._sqs.change_message_visibility_batch(
                        QueueUrl=url,
                        Entries=[
                            {
                                "Id": str(n),
                                "ReceiptHandle": p.receipt_handle,
                                "VisibilityTimeout": 0,
                            }
                            for n, p in enumerate(chunk)
                        ],
                    )
                except (ClientError, BotoCoreError) as exc:
                    problems.append(str(exc))
                    continue
                # Already deleted (a late redelivery succeeded): nothing to release.
                problems.extend(response.get("Failed", []))
            details: dict[str, Any] = {
                "queue": queue.name if queue else url,
                "reason": "visibility timeout elapsed (sandbox time)",
            }
            if problems:
                details["failed"] = problems
            self._emit(
                "release",
                stack=parked[0].stack,
                route=parked[0].route,
                message_ids=tuple(p.message_id for p in parked),
                duration_ms=(time.perf_counter() - started) * 1000,
                details=details,
            )
            released += len(parked)
        self._parked.clear()
        if self._report is not None:
            self._report.released += released
        return released

    # -- asynchronous invocations (SNS subscriptions, EventBridge targets) --------------------

    def _pump_async(
        self, stack: DeployedStack, route: Route, queue: _Queue, target: _Function
    ) -> int:
        started = time.perf_counter()
        messages = self._receive(stack, route, queue, _SQS_BATCH)
        if not messages:
            return 0
        receive_ms = (time.perf_counter() - started) * 1000
        event_ids: list[str] = []
        for message in messages:
            if route.kind == "sns":
                event, event_id = self._sns_event(stack, route, target, message)
            else:
                event, event_id = self._eventbridge_event(message)
            self._emit(
                "receive",
                stack=stack.name,
                route=route,
                function=target.spec.logical_id,
                message_ids=(event_id,),
                duration_ms=receive_ms,
                details={
                    "route_kind": route.kind,
                    "queue": queue.name,
                    "internal_message_id": message["MessageId"],
                },
            )
            if self._report is not None:
                self._report.messages_received += 1
            self._invoke_async(stack, route, target, event, event_id)
            event_ids.append(event_id)
        self._delete(stack, route, queue, target, messages, event_ids=tuple(event_ids))
        return len(messages)

    def _invoke_async(
        self, stack: DeployedStack, route: Route, target: _Function, event: Any, event_id: str
    ) -> None:
        spec = target.spec
        retries = (
            DEFAULT_MAX_RETRY_ATTEMPTS
            if spec.max_retry_attempts is None
            else spec.max_retry_attempts
        )
        request_id = str(uuid.uuid4())  # the same for every attempt, as in Lambda
        ids = (event_id,)
        result: InvocationResult | None = None
        for attempt in range(1, retries + 2):
            result = self._invoke(
                target, event, request_id=request_id, attempt=attempt, route=route, message_ids=ids
            )
            if result.ok:
                if self._report is not None:
                    self._report.records_processed += 1
                return
            if self._report is not None:
                self._report.records_failed += 1
                self._stats(target).records_failed += 1
            if attempt <= retries:
                self._emit(
                    "retry",
                    stack=stack.name,
                    route=route,
                    function=spec.logical_id,
                    message_ids=ids,
                    details={
                        "request_id": request_id,
                        "attempt": attempt + 1,
                        "max_retry_attempts": retries,
                        "error_type": result.error.type if result.error else None,
                    },
                )
                if self._report is not None:
                    self._report.retries += 1
        assert result is not None
        assert result.error is not None
        record = {
            "version": "1.0",
            "timestamp": _iso_now(),
            "requestContext": {
                "requestId": request_id,
                "functionArn": f"{spec.arn}:$LATEST",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": retries + 1,
            },
            "requestPayload": event,
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled",
            },
            "responsePayload": result.error.payload(request_id),
        }
        destination = spec.on_failure_queue_url
        if destination:
            try:
                sent = self._sqs.send_message(QueueUrl=destination, MessageBody=json.dumps(record))
            except (ClientError, BotoCoreError) as exc:
                self._warn(stack, route, target, f"on-failure destination failed: {exc}")
            else:
                self._emit(
                    "on-failure",
                    stack=stack.name,
                    route=route,
                    function=spec.logical_id,
                    message_ids=ids,
                    details={
                        "destination": destination.rsplit("/", 1)[-1],
                        "destination_message_id": sent.get("MessageId"),
                        "attempts": retries + 1,
                        "error_type": result.error.type,
                    },
                )
                if self._report is not None:
                    self._report.on_failure += 1
                return
        self._emit(
            "drop",
            stack=stack.name,
            route=route,
            function=spec.logical_id,
            message_ids=ids,
            details={
                "request_id": request_id,
                "attempts": retries + 1,
                "error_type": result.error.type,
                "reason": "retries exhausted and no on-failure destination",
            },
        )
        if self._report is not None:
            self._report.dropped += 1

    def _sns_event(
        self, stack: DeployedStack, route: Route, target: _Function, message: dict[str, Any]
    ) -> tuple[dict[str, Any], str]:
        body = message.get("Body", "")
        try:
            envelope = json.loads(body)
        except ValueError:
            envelope = None
        if isinstance(envelope, dict) and envelope.get("Type") == "Notification":
            topic_arn = str(envelope.get("TopicArn", ""))
            sns = {
                "Type": "Notification",
                "MessageId": envelope.get("MessageId"),
                "TopicArn": topic_arn,
                "Subject": envelope.get("Subject"),
                "Message": envelope.get("Message"),
                "Timestamp": envelope.get("Timestamp") or _iso_now(),
                "SignatureVersion": envelope.get("SignatureVersion", "1"),
                "Signature": envelope.get("Signature", "EXAMPLE"),
                "SigningCertUrl": envelope.get("SigningCertURL", envelope.get("SigningCertUrl")),
                "UnsubscribeUrl": envelope.get("UnsubscribeURL", envelope.get("UnsubscribeUrl")),
                "MessageAttributes": envelope.get("MessageAttributes") or {},
            }
        else:
            self._warn_once(
                f"raw:{stack.name}:{route.source}",
                stack=stack.name,
                route=route,
                problem="SNS route message is not an SNS envelope (raw message delivery on the "
                "internal subscription?): built the SNS record from the SQS message",
            )
            topic_arn = ""
            sns = {
                "Type": "Notification",
                "MessageId": message["MessageId"],
                "TopicArn": topic_arn,
                "Subject": None,
                "Message": body,
                "Timestamp": _iso_now(),
                "SignatureVersion": "1",
                "Signature": "EXAMPLE",
                "SigningCertUrl": None,
                "UnsubscribeUrl": None,
                "MessageAttributes": {
                    name: {
                        "Type": value.get("DataType", "String"),
                        "Value": value.get("StringValue")
                        or base64.b64encode(value.get("BinaryValue", b"")).decode(),
                    }
                    for name, value in message.get("MessageAttributes", {}).items()
                },
            }
        resource = stack.resources.get(route.source)
        subscription_arn = resource.physical_id if resource is not None else ""
        if not subscription_arn.startswith("arn:"):
            suffix = uuid.uuid5(uuid.NAMESPACE_URL, f"{stack.name}/{route.source}")
            subscription_arn = f"{topic_arn}:{suffix}"
        event = {
            "Records": [
                {
                    "EventSource": "aws:sns",
                    "EventVersion": "1.0",
                    "EventSubscriptionArn": subscription_arn,
                    "Sns": sns,
                }
            ]
        }
        return event, str(sns["MessageId"])

    def _eventbridge_event(self, message: dict[str, Any]) -> tuple[Any, str]:
        body = message.get("Body", "")
        try:
            event: Any = json.loads(body)
        except ValueError:
            return body, message["MessageId"]  # a constant, non-JSON target input
        if isinstance(event, dict) and "detail-type" in event and "account" not in event:
            # moto's events lack "account"; put it where EventBridge does.
            ordered = ("version", "id", "detail-type", "source")
            event = {
                **{k: event[k] for k in ordered if k in event},
                "account": self.deployment.account_id,
                **{k: v for k, v in event.items() if k not in ordered},
            }
        event_id = event.get("id") if isinstance(event, dict) else None
        return event, str(event_id or message["MessageId"])

    # -- traces -------------------------------------------------------------------------------

    def _emit(
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
        self._on_event(
            TraceEvent(
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
        )

    def _warn(
        self,
        stack: DeployedStack,
        route: Route,
        target: _Function,
        problem: str,
        *,
        message_ids: tuple[str, ...] = (),
        **details: Any,
    ) -> None:
        self._emit(
            "warning",
            stack=stack.name,
            route=route,
            function=target.spec.logical_id,
            message_ids=message_ids,
            details={"problem": problem, **details},
        )

    def _warn_once(self, key: str, *, stack: str, route: Route, problem: str) -> None:
        if key in self._warned:
            return
        self._warned.add(key)
        self._emit("warning", stack=stack, route=route, details={"problem": problem})


def speed_up_moto_sqs() -> Callable[[], None]:
    """Make moto's SQS ReceiveMessage linear again; return a function that undoes it.

    For every message it returns, moto checks the retention period by computing every queue
    attribute four times, each a scan of the whole queue: receiving N messages costs O(N²)
    (500 messages in one queue: ~7 s in-process instead of ~0.6 s). This replaces that one
    check, process-wide (in-process ``mock_aws`` and a ``ThreadedMotoServer`` of this process),
    by the same comparison reading ``MessageRetentionPeriod`` directly. Idempotent; opt-in.
    """
    from moto.core.utils import unix_time
    from moto.sqs import models

    backend = models.SQSBackend
    original = backend.is_message_valid_based_on_retention_period
    if getattr(original, "_conveyor_fast", False):
        return lambda: None

    def is_message_valid_based_on_retention_period(
        self: Any, queue_name: str, message: Any
    ) -> bool:
        retention = getattr(self.get_queue(queue_name), "message_retention_period", None)
        if not isinstance(retention, int) or message.sent_timestamp is None:
            return bool(original(self, queue_name, message))
        return bool(retention + message.sent_timestamp / 1000 > unix_time())

    is_message_valid_based_on_retention_period._conveyor_fast = True  # type: ignore[attr-defined]
    setattr(  # noqa: B010 - replacing a method of moto's class
        backend,
        "is_message_valid_based_on_retention_period",
        is_message_valid_based_on_retention_period,
    )

    def undo() -> None:
        setattr(backend, "is_message_valid_based_on_retention_period", original)  # noqa: B010

    return undo


def _lambda_message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    """boto3's SQS message attribute -> the shape of Lambda's SQS event."""
    attribute: dict[str, Any] = {}
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        attribute["binaryValue"] = _b64(value["BinaryValue"])
    attribute["stringListValues"] = list(value.get("StringListValues", []))
    attribute["binaryListValues"] = [_b64(v) for v in value.get("BinaryListValues", [])]
    attribute["dataType"] = value.get("DataType", "String")
    return attribute


def _b64(value: bytes | str) -> str:
    return base64.b64encode(value if isinstance(value, bytes) else value.encode()).decode()


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
