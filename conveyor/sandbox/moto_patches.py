"""Every patch of moto internals the sandbox applies, in one place (each opt-in, each undoable).

- :func:`speed_up_moto_sqs`: ReceiveMessage linear again (moto's retention check is O(N²)).
- :func:`route_lambda_invocations`: moto's Lambda ``Invoke`` (what its Step Functions
  interpreter calls for ``lambda:invoke`` tasks) runs the sandbox's in-process handlers.
- :func:`scale_step_functions_retries`: the interpreter's Retry waits, scaled down.

Workarounds that only reshape what moto returns (no patch of its code) live where they are
used: the ``account`` of moto's EventBridge events (:func:`conveyor.sandbox.lambda_events.
eventbridge_event`), FIFO ``SequenceNumber`` s moto omits (:mod:`conveyor.sandbox.sources.sqs`),
the DLQ moves of moto's redrive policy (:mod:`conveyor.sandbox.sources.queues`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = [
    "LambdaInvoker",
    "route_lambda_invocations",
    "scale_step_functions_retries",
    "serialize_lambda_tasks",
    "speed_up_moto_sqs",
]

# (function name or ARN, request payload) -> (response payload, FunctionError or None), or
# None when the function is not one the sandbox runs (moto handles it then).
LambdaInvoker = Callable[[str, bytes], "tuple[bytes, str | None] | None"]


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


def route_lambda_invocations(invoker: LambdaInvoker) -> Callable[[], None]:
    """Send moto's Lambda ``Invoke`` to ``invoker`` first; return a function that undoes it.

    moto runs Lambda code only in Docker (or echoes the payload). Its Step Functions
    interpreter invokes ``lambda:invoke`` tasks through moto's Lambda API, so this is where
    they reach the sandbox's handlers. A function error is answered as Lambda does: the error
    payload (``errorType``, ``errorMessage``, ``stackTrace``) with ``X-Amz-Function-Error:
    Unhandled``, which the interpreter turns into the error name ``ErrorEquals`` matches. The
    last installed invoker wins (one runtime at a time); undo restores the previous one.
    """
    from moto.awslambda import models

    backend = models.LambdaBackend
    original = backend.invoke
    previous = getattr(original, "_conveyor_invoker", None)
    unpatched = getattr(original, "_conveyor_original", original)

    def invoke(
        self: Any,
        function_name: str,
        qualifier: str | None,
        body: Any,
        headers: Any,
        response_headers: Any,
    ) -> Any:
        raw = body if isinstance(body, bytes) else str(body or "").encode()
        answer = invoker(function_name, raw)
        if answer is None:
            return unpatched(self, function_name, qualifier, body, headers, response_headers)
        payload, function_error = answer
        if function_error:
            response_headers["x-amz-function-error"] = function_error
        response_headers["Content-Length"] = str(len(payload))
        return payload

    invoke._conveyor_invoker = invoker  # type: ignore[attr-defined]
    invoke._conveyor_original = unpatched  # type: ignore[attr-defined]
    setattr(backend, "invoke", invoke)  # noqa: B010 - replacing a method of moto's class

    def undo() -> None:
        if getattr(backend.invoke, "_conveyor_invoker", None) is invoker:
            if previous is not None:
                route_lambda_invocations(previous)
            else:
                setattr(backend, "invoke", unpatched)  # noqa: B010

    return undo


def serialize_lambda_tasks() -> Callable[[], None]:
    """Run the Lambda tasks of moto's Step Functions interpreter one at a time; return a
    function that undoes it.

    Parallel branches and Map iterations run in the interpreter's own threads. A handler runs
    with process-wide state swapped in (``os.environ``, the default boto3 session, loggers):
    another branch building and signing its Lambda call meanwhile could read that half-swapped
    state (seen as a bare ``Exception`` task failure under load). One task lock, taken around
    the whole task call, closes the window. It is not the runtime's invocation lock: with a
    moto server the task's Lambda call is served by another thread, which takes that one.
    """
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import (
        lambda_eval_utils,
    )

    module: Any = lambda_eval_utils
    original = module.execute_lambda_function_integration
    lock = threading.Lock()

    def execute(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return original(*args, **kwargs)

    module.execute_lambda_function_integration = execute

    def undo() -> None:
        if module.execute_lambda_function_integration is execute:
            module.execute_lambda_function_integration = original

    return undo


def scale_step_functions_retries(factor: float) -> Callable[[], None]:
    """Scale the waits of moto's Step Functions Retry by ``factor`` (e.g. 0.01: a 1 s
    interval waits 10 ms); return a function that undoes it.

    The interpreter sleeps the real interval (``IntervalSeconds`` × ``BackoffRate``ⁿ, bounded
    by ``MaxDelaySeconds``, jittered): a demo of a retried step would take seconds to minutes.
    The retry decisions (which error, how many attempts) are unchanged; only the sleep is
    shorter. Process-wide (moto in-process and a ``ThreadedMotoServer`` of this process).
    """
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

    module: Any = retrier_decl
    module_time = module.time
    original_sleep = getattr(module_time, "_conveyor_sleep", module_time.sleep)

    class _ScaledTime:
        """``time`` for the retrier module only, with a scaled ``sleep``."""

        _conveyor_sleep = original_sleep

        def __getattr__(self, name: str) -> Any:
            return getattr(__import__("time"), name)

        @staticmethod
        def sleep(seconds: float) -> None:
            original_sleep(max(0.0, float(seconds)) * factor)

    previous = module.time
    module.time = _ScaledTime()

    def undo() -> None:
        module.time = previous

    return undo


# MSK cluster ARN -> the bootstrap broker string of the local broker that stands in for it.
_LOCAL_BOOTSTRAP: dict[str, str] = {}


def serve_bootstrap_brokers(cluster_arn: str, bootstrap_servers: str) -> None:
    """moto's Kafka lacks ``GetBootstrapBrokers``: answer it for ``cluster_arn`` with the
    local broker (``BootstrapBrokerString``, plaintext on loopback: no SASL/IAM string, so a
    client connects without signing). Process-wide (in-process and a ThreadedMotoServer)."""
    from moto.kafka.responses import KafkaResponse

    _LOCAL_BOOTSTRAP[cluster_arn] = bootstrap_servers
    if getattr(KafkaResponse, "_conveyor_bootstrap", False):
        return

    def get_bootstrap_brokers(self: Any) -> str:
        import json
        from urllib.parse import unquote

        path = unquote(self.parsed_url.path)
        arn = path.split("/clusters/", 1)[-1].rsplit("/bootstrap-brokers", 1)[0]
        servers = _LOCAL_BOOTSTRAP.get(arn)
        if servers is None:
            return json.dumps({})
        return json.dumps({"bootstrapBrokerString": servers})

    KafkaResponse.get_bootstrap_brokers = get_bootstrap_brokers  # type: ignore[attr-defined]
    KafkaResponse._conveyor_bootstrap = True  # type: ignore[attr-defined]
