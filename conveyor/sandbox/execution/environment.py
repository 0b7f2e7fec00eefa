"""A function's Lambda execution environment, in-process.

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

**Concurrent invocations** (``invoke(..., concurrent=True)``, ``Runtime(concurrency=N)``): each
runs in its own thread, in an environment of its own (one :class:`ExecutionEnvironment` per
concurrency slot of a function: separate module copies, as separate Lambda environments are
separate processes). Its ``os.environ``, output capture, current function and Powertools
Metrics state are bound to its thread (:mod:`.isolation`), not swapped process-wide; a cold
start imports the handler under a process-wide lock with the sys.modules and logger swaps of
a sequential invocation. Not per thread: the logger namespace of ``logging.getLogger`` calls
made while the handler runs (after its import) and Powertools' cold-start flags.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

import boto3

from conveyor.sandbox.execution.context import LambdaContext
from conveyor.sandbox.execution.isolation import (
    ENVIRON,
    FINDER,
    METRICS,
    STDERR,
    STDOUT,
    PrivateLoggerManager,
    hide_modules,
    replace_environ,
    restore_modules,
    set_cold_start,
    swap_metrics_state,
)
from conveyor.sandbox.model import DeployedStack, FunctionSpec
from conveyor.sandbox.traces import InvocationError, InvocationResult

DEFAULT_MEMORY_MB = 128
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
# Host variables that must not leak into a function's environment (a developer's profile,
# endpoint or Powertools dev mode would change what the handler does).
_HOST_PREFIXES_REMOVED = ("AWS_", "POWERTOOLS_", "LAMBDA_", "_X_AMZN_", "_AWS_XRAY")
_HOST_NAMES_REMOVED = frozenset({"_HANDLER"})
_MODULE_COUNTER = itertools.count(1)
# Imports of concurrent invocations, one at a time: loading a handler hides the host's copies
# of the function's top-level names from sys.modules and swaps the logger namespace.
_LOAD_LOCK = threading.RLock()


@dataclass(frozen=True)
class Host:
    """What the environments of one runtime share: the region, the moto server (None:
    ``mock_aws()``), and the handlers' default boto3 session (created on first use, inside an
    invocation, so that it reads the sandbox environment)."""

    region: str
    endpoint_url: str | None
    handler_session: Callable[[], Any]


class InitError(Exception):
    def __init__(self, error: InvocationError) -> None:
        super().__init__(error.message)
        self.error = error


class ExecutionEnvironment:
    """One function of the deployment and its execution environment (see the module docstring)."""

    def __init__(self, stack: DeployedStack, spec: FunctionSpec, host: Host) -> None:
        self.stack = stack.name
        self.host = host
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
        self.logger_manager: PrivateLoggerManager | None = None
        self.handler: Callable[[Any, Any], Any] | None = None
        self.module: types.ModuleType | None = None
        self.metrics_state: dict[str, dict[str, Any]] = {}
        self.log_stream = f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"

    def load(self) -> Callable[[Any, Any], Any]:
        """Import the handler into this environment (call inside its activation)."""
        if self.handler is not None:
            return self.handler
        if not self.module_path or not self.attribute:
            raise InitError(
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
            raise InitError(
                error_from(
                    exc,
                    "Runtime.UserCodeSyntaxError",
                    f"Syntax error in module '{self.module_path}': {exc}",
                )
            ) from exc
        except ImportError as exc:
            self.discard()
            message = str(exc).replace(self.root + ".", "")
            raise InitError(
                error_from(
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
                raise InitError(
                    error_from(exc, "Runtime.ExitError", f"exited with {exc.code!r}")
                ) from exc
            raise InitError(error_from(exc)) from exc
        handler: Callable[[Any, Any], Any] | None = getattr(module, self.attribute, None)
        if not callable(handler):
            self.discard()
            raise InitError(
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

    def invoke(
        self, payload: Any, *, request_id: str, attempt: int, concurrent: bool = False
    ) -> InvocationResult:
        """Run the handler once with ``payload`` (already a private JSON copy).

        ``concurrent``: other invocations may be running in other threads meanwhile (see the
        module docstring); this one must be the only one of this environment."""
        stdout, stderr = io.StringIO(), io.StringIO()
        response: Any = None
        error: InvocationError | None = None
        cold = self.handler is None
        started = time.perf_counter()
        activation = self.activated_in_thread if concurrent else self.activated
        with activation(stdout, stderr):
            try:
                if concurrent and cold:
                    with _LOAD_LOCK, self._loading():
                        handler = self.load()
                else:
                    handler = self.load()
            except InitError as exc:
                error = exc.error
            else:
                set_cold_start(cold)
                response, error = self._run(handler, payload, request_id)
            if error is not None:
                stderr.write(f"[ERROR] {error.type}: {error.message}\n")
                stderr.writelines(error.stack_trace)
        duration_ms = (time.perf_counter() - started) * 1000
        if error is None and duration_ms > self.spec.timeout_s * 1000:
            response = None
            error = InvocationError(
                "Sandbox.Timedout", f"Task timed out after {self.spec.timeout_s:.2f} seconds"
            )
        if error is not None and error.type in ("Sandbox.Timedout", "Runtime.ExitError"):
            self.discard()  # Lambda replaces an environment that timed out or exited
        return InvocationResult(
            function=self.spec.logical_id,
            function_name=self.spec.name,
            stack=self.stack,
            request_id=request_id,
            response=response,
            error=error,
            stdout=stdout.getvalue(),
            stderr=stderr.getvalue(),
            duration_ms=duration_ms,
            cold_start=cold,
            attempt=attempt,
        )

    def lambda_environment(self) -> dict[str, str]:
        """``os.environ`` as Lambda would set it for this function."""
        spec = self.spec
        environment = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(_HOST_PREFIXES_REMOVED) and name not in _HOST_NAMES_REMOVED
        }
        environment.update({str(k): str(v) for k, v in spec.environment.items()})
        version = spec.runtime if spec.runtime.startswith("python") else "python3"
        environment.update(
            {
                "AWS_REGION": self.host.region,
                "AWS_DEFAULT_REGION": self.host.region,
                **FAKE_CREDENTIALS,
                # No ~/.aws: a developer's profile or endpoint must not reach the handler.
                "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "AWS_EXECUTION_ENV": f"AWS_Lambda_{version}",
                "AWS_LAMBDA_FUNCTION_NAME": spec.name,
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb),
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
                "AWS_LAMBDA_LOG_STREAM_NAME": self.log_stream,
                "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
                "LAMBDA_TASK_ROOT": str(spec.code_dir),
                "_HANDLER": spec.handler,
            }
        )
        if self.host.endpoint_url:
            environment["AWS_ENDPOINT_URL"] = self.host.endpoint_url
        return environment

    @contextlib.contextmanager
    def activated(self, stdout: TextIO, stderr: TextIO) -> Iterator[None]:
        """The function's execution environment, for the duration of one invocation."""
        saved_environ = dict(os.environ)
        replace_environ(self.lambda_environment())
        hidden = hide_modules(self.private_names)
        saved_manager = logging.Logger.manager
        if self.logger_manager is None:
            self.logger_manager = PrivateLoggerManager(saved_manager, self.private_names)
        logging.Logger.manager = self.logger_manager
        host_metrics = swap_metrics_state(self.metrics_state)
        saved_session = boto3.DEFAULT_SESSION
        saved_streams = sys.stdout, sys.stderr
        out_token, err_token = STDOUT.capture(stdout), STDERR.capture(stderr)
        finder_token = FINDER.activate(self)
        saved_bytecode = sys.dont_write_bytecode
        try:
            boto3.DEFAULT_SESSION = self.host.handler_session()
            sys.stdout, sys.stderr = STDOUT, STDERR
            sys.dont_write_bytecode = True  # never write __pycache__ into cdk.out
            yield
        finally:
            sys.dont_write_bytecode = saved_bytecode
            FINDER.deactivate(finder_token)
            with contextlib.suppress(Exception):
                sys.stdout.flush()
            sys.stdout, sys.stderr = saved_streams
            STDOUT.restore(out_token)
            STDERR.restore(err_token)
            boto3.DEFAULT_SESSION = saved_session
            self.metrics_state = swap_metrics_state(host_metrics)
            logging.Logger.manager = saved_manager
            restore_modules(self.private_names, hidden)
            replace_environ(saved_environ)

    @contextlib.contextmanager
    def activated_in_thread(self, stdout: TextIO, stderr: TextIO) -> Iterator[None]:
        """The function's execution environment for one invocation in this thread only,
        while others may run in other threads (:func:`~.isolation.install_thread_state`
        installed; ``sys.stdout`` / ``sys.stderr`` and ``boto3.DEFAULT_SESSION`` set by the
        caller for the duration of the concurrent invocations)."""
        environ_token = ENVIRON.bind(self.lambda_environment())
        out_token, err_token = STDOUT.bind(stdout), STDERR.bind(stderr)
        finder_token = FINDER.bind(self)
        metrics_token = METRICS.bind(self.metrics_state)
        try:
            yield
        finally:
            METRICS.rebind(metrics_token)
            FINDER.unbind(finder_token)
            STDOUT.bind(out_token)
            STDERR.bind(err_token)
            ENVIRON.rebind(environ_token)

    @contextlib.contextmanager
    def _loading(self) -> Iterator[None]:
        """What importing the handler needs process-wide (under ``_LOAD_LOCK``): the host's
        copies of the function's top-level names hidden, its logger namespace, no bytecode."""
        hidden = hide_modules(self.private_names)
        saved_manager = logging.Logger.manager
        if self.logger_manager is None:
            self.logger_manager = PrivateLoggerManager(saved_manager, self.private_names)
        logging.Logger.manager = self.logger_manager
        saved_bytecode = sys.dont_write_bytecode
        try:
            sys.dont_write_bytecode = True
            yield
        finally:
            sys.dont_write_bytecode = saved_bytecode
            logging.Logger.manager = saved_manager
            restore_modules(self.private_names, hidden)

    def _run(
        self, handler: Callable[[Any, Any], Any], payload: Any, request_id: str
    ) -> tuple[Any, InvocationError | None]:
        """Call the handler (inside the activation): its JSON response, or the error."""
        context = LambdaContext(
            function_name=self.spec.name,
            invoked_function_arn=self.spec.arn,
            memory_limit_in_mb=self.memory_mb,
            aws_request_id=request_id,
            log_group_name=f"/aws/lambda/{self.spec.name}",
            log_stream_name=self.log_stream,
            timeout_s=self.spec.timeout_s,
        )
        try:
            response = handler(payload, context)
        except KeyboardInterrupt:
            raise
        except SystemExit as exc:
            return None, error_from(exc, "Runtime.ExitError", f"exited with {exc.code!r}")
        except BaseException as exc:
            return None, error_from(exc)
        try:
            return json.loads(json.dumps(response, default=_json_default)), None
        except (TypeError, ValueError) as exc:
            return None, InvocationError(
                "Runtime.MarshalError", f"Unable to marshal response: {exc}"
            )


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


def error_from(
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
