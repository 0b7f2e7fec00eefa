"""Every patch of moto internals the sandbox applies, in one place (each opt-in, each undoable).

- :func:`speed_up_moto_sqs`: ReceiveMessage linear again (moto's retention check is O(N²)).
- :func:`route_lambda_invocations`: moto's Lambda ``Invoke`` (what its Step Functions
  interpreter calls for ``lambda:invoke`` tasks) runs the sandbox's in-process handlers.
- :func:`scale_step_functions_retries`: the interpreter's Retry waits, scaled down.
- :func:`serialize_moto_requests`: one moto request at a time (concurrent invocations), so
  that each API call is atomic, as AWS's are (a DynamoDB conditional write, an SQS receive).
- :func:`use_conveyor_filters`: every EventBridge delivery decision, ``TestEventPattern`` and
  every SNS filter-policy decision by :mod:`conveyor.patterns`; patterns and policies
  validated by :mod:`conveyor.constructs.filters` when a rule or a subscription is created.
- :func:`dead_letter_missing_sqs_endpoints`: a rule's SQS target or an SQS subscription whose
  queue does not exist no longer fails the producer's call: the event / message goes to the
  target's / subscription's dead-letter queue, or is dropped (listeners told).

Workarounds that only reshape what moto returns (no patch of its code) live where they are
used: the ``account`` of moto's EventBridge events (:func:`conveyor.sandbox.lambda_events.
eventbridge_event`), FIFO ``SequenceNumber`` s moto omits (:mod:`conveyor.sandbox.sources.sqs`),
the DLQ moves of moto's redrive policy (:mod:`conveyor.sandbox.sources.queues`).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

__all__ = [
    "LambdaInvoker",
    "RequestLock",
    "dead_letter_missing_sqs_endpoints",
    "delete_expired_sqs_messages",
    "on_sqs_delivery_failure",
    "route_lambda_invocations",
    "scale_step_functions_retries",
    "serialize_lambda_tasks",
    "serialize_moto_requests",
    "speed_up_moto_sqs",
    "use_conveyor_filters",
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


def delete_expired_sqs_messages() -> Callable[[], None]:
    """Make SQS delete a message once it is older than its queue's ``MessageRetentionPeriod``,
    as SQS does; return a function that undoes it.

    moto checks retention only inside ``ReceiveMessage``, after it has marked the message
    received: the expired message is not returned, but it stays in the queue, in flight again
    (its receive count up, its visibility timeout restarted) after every receive, for ever.
    This removes the expired messages of a queue before each ``ReceiveMessage`` of it, on the
    sandbox clock (moto's ``unix_time``). Process-wide, idempotent.
    """
    from moto.core.utils import unix_time
    from moto.sqs import models

    backend = models.SQSBackend
    original = backend.receive_message
    if getattr(original, "_conveyor_expiry", False):
        return lambda: None

    def receive_message(self: Any, queue_name: str, *args: Any, **kwargs: Any) -> Any:
        queue = self.get_queue(queue_name)
        retention = getattr(queue, "message_retention_period", None)
        if isinstance(retention, int):
            now = unix_time()
            expired = [
                m
                for m in queue._messages
                if m.sent_timestamp is not None and retention + m.sent_timestamp / 1000 <= now
            ]
            for message in expired:
                queue._messages.remove(message)
                queue.pending_messages.discard(message)
        return original(self, queue_name, *args, **kwargs)

    receive_message._conveyor_expiry = True  # type: ignore[attr-defined]
    setattr(backend, "receive_message", receive_message)  # noqa: B010 - moto's method

    def undo() -> None:
        setattr(backend, "receive_message", original)  # noqa: B010

    return undo


class RequestLock:
    """A re-entrant lock that a thread can also give up entirely for a while
    (:meth:`suspended`): moto's Lambda ``Invoke`` runs a handler whose own calls may be served
    by other threads (a moto server)."""

    def __init__(self) -> None:
        self._condition = threading.Condition(threading.Lock())
        self._owner: int | None = None
        self._depth = 0

    def acquire(self) -> None:
        me = threading.get_ident()
        with self._condition:
            if self._owner == me:
                self._depth += 1
                return
            while self._owner is not None:
                self._condition.wait()
            self._owner, self._depth = me, 1

    def release(self) -> None:
        with self._condition:
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
                self._condition.notify()

    @contextlib.contextmanager
    def suspended(self) -> Iterator[None]:
        """Release it entirely if this thread holds it; hold it again (as deep) afterwards."""
        me = threading.get_ident()
        with self._condition:
            held = self._depth if self._owner == me else 0
            if held:
                self._owner, self._depth = None, 0
                self._condition.notify()
        try:
            yield
        finally:
            if held:
                with self._condition:
                    while self._owner is not None:
                        self._condition.wait()
                    self._owner, self._depth = me, held


_REQUEST_LOCKS: list[RequestLock] = []  # the installed one, if any (serialize_moto_requests)


def serialize_moto_requests() -> Callable[[], None]:
    """Serve one moto request at a time, process-wide (in-process ``mock_aws`` and a
    ``ThreadedMotoServer`` of this process); return a function that undoes it.

    Each AWS API call is atomic: two concurrent conditional writes of one DynamoDB item, or
    two receives of one SQS queue, never interleave. moto's backends are plain Python objects
    (a condition check and the write it guards are separate steps), so concurrent
    invocations (``Runtime(concurrency=N)``) take this lock around every request. A handler
    run by moto's Lambda ``Invoke`` runs with it released (:func:`route_lambda_invocations`).
    Nested installs share the first lock.
    """
    from moto.core.responses import BaseResponse

    if _REQUEST_LOCKS:
        lock = _REQUEST_LOCKS[-1]
    else:
        lock = RequestLock()
        original = BaseResponse._dispatch

        def _dispatch(self: Any, *args: Any, **kwargs: Any) -> Any:
            lock.acquire()
            try:
                return original(self, *args, **kwargs)
            finally:
                lock.release()

        _dispatch._conveyor_original = original  # type: ignore[attr-defined]
        setattr(BaseResponse, "_dispatch", _dispatch)  # noqa: B010 - replacing moto's method
    _REQUEST_LOCKS.append(lock)

    def undo() -> None:
        if lock in _REQUEST_LOCKS:
            _REQUEST_LOCKS.remove(lock)
        if not _REQUEST_LOCKS:
            patched = BaseResponse._dispatch
            setattr(  # noqa: B010
                BaseResponse, "_dispatch", getattr(patched, "_conveyor_original", patched)
            )

    return undo


def _requests_unlocked() -> contextlib.AbstractContextManager[None]:
    return _REQUEST_LOCKS[-1].suspended() if _REQUEST_LOCKS else contextlib.nullcontext()


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
        with _requests_unlocked():  # the handler's own requests may be served elsewhere
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


_ENVELOPE_REQUIRED = ("id", "account", "source", "time", "region", "detail-type")


def _eventbridge_document(event: Any) -> Any:
    """moto's event as EventBridge matches it: ``time`` as the delivered ISO string (moto holds
    an epoch number until it sends), without moto's own ``ingestion-time``."""
    from conveyor.patterns import iso_time

    if not isinstance(event, dict):
        return event
    document = {key: value for key, value in event.items() if key != "ingestion-time"}
    moment = document.get("time")
    if isinstance(moment, int | float) and not isinstance(moment, bool):
        document["time"] = iso_time(moment)
    elif isinstance(moment, str):
        with contextlib.suppress(ValueError):  # an epoch number in text; else a date already
            document["time"] = iso_time(float(moment))
    return document


def use_conveyor_filters() -> Callable[[], None]:
    """Make Conveyor's pattern model decide moto's filtering; return a function that undoes it.

    - EventBridge: ``EventPattern.matches_event`` (every delivery of ``PutEvents`` to every
      rule's targets, archives included) is :func:`conveyor.patterns.matches_compiled` on the
      event as delivered (``time`` as its ISO string); ``put_rule`` / ``create_archive``
      validate the pattern with :func:`~conveyor.constructs.filters.compile_event_pattern` and
      answer ``InvalidEventPatternException`` as EventBridge does (moto accepts almost any
      pattern); ``TestEventPattern`` answers ``{"Result": true|false}`` (moto answers nothing).
    - SNS: ``FilterPolicyMatcher.matches`` (every publish to every subscription) is the same
      model in the subscription's scope (no crash on ``$or`` with ``MessageBody``); a filter
      policy set at subscribe or later is validated by
      :func:`~conveyor.constructs.filters.compile_sns_filter_policy` (``cidr`` is accepted, a
      misspelt operator is ``InvalidParameter``).

    Process-wide (moto in-process and a ``ThreadedMotoServer`` of this process); idempotent.
    """
    from moto.events import models as events_models
    from moto.events import responses as events_responses
    from moto.events.exceptions import InvalidEventPatternException, ValidationException
    from moto.sns import models as sns_models
    from moto.sns import utils as sns_utils
    from moto.sns.exceptions import SNSInvalidParameter

    from conveyor.constructs.filters import (
        FilterError,
        compile_event_pattern,
        compile_sns_filter_policy,
    )
    from conveyor.patterns import matches_compiled, sns_matches_compiled

    pattern_class: Any = events_models.EventPattern
    parser_class: Any = events_models.EventPatternParser
    handler_class: Any = events_responses.EventsHandler
    matcher_class: Any = sns_utils.FilterPolicyMatcher
    backend_class: Any = sns_models.SNSBackend
    if getattr(pattern_class.matches_event, "_conveyor_filters", False):
        return lambda: None
    originals = {
        (pattern_class, "matches_event"): pattern_class.matches_event,
        (parser_class, "parse"): parser_class.parse,
        (handler_class, "test_event_pattern"): handler_class.test_event_pattern,
        (matcher_class, "matches"): matcher_class.matches,
        (backend_class, "_validate_filter_policy"): backend_class._validate_filter_policy,
    }
    original_parse = parser_class.parse

    def compiled_pattern(pattern: dict[str, Any]) -> Any:
        try:
            return compile_event_pattern(pattern, max_size=1_000_000)
        except FilterError as error:
            raise InvalidEventPatternException(reason=f"{error.path}: {error.reason}") from None

    def parse(self: Any) -> dict[str, Any]:
        pattern = original_parse(self)
        if pattern:
            compiled_pattern(pattern)
        return dict(pattern)

    def matches_event(self: Any, event: Any) -> bool:
        pattern = self._pattern
        if not pattern:
            return True
        compiled = self.__dict__.get("_conveyor_compiled")
        if compiled is None:
            compiled = compiled_pattern(pattern)
            self.__dict__["_conveyor_compiled"] = compiled
        return matches_compiled(compiled, _eventbridge_document(event))

    def test_event_pattern(self: Any) -> str:
        raw_pattern = self._get_param("EventPattern")
        raw_event = self._get_param("Event")
        try:
            pattern = json.loads(raw_pattern)
        except (TypeError, ValueError):
            raise InvalidEventPatternException(reason="Invalid JSON") from None
        if not isinstance(pattern, dict):
            raise InvalidEventPatternException(reason="the pattern must be a JSON object")
        compiled = compiled_pattern(pattern)
        try:
            event = json.loads(raw_event)
        except (TypeError, ValueError):
            raise ValidationException("Parameter Event is not valid.") from None
        missing = [
            key for key in _ENVELOPE_REQUIRED if not isinstance(event, dict) or key not in event
        ]
        if missing:
            raise ValidationException(
                f"Parameter Event is not valid: it lacks {', '.join(missing)}."
            )
        return json.dumps({"Result": matches_compiled(compiled, event)})

    def policy_matches(self: Any, message_attributes: Any, message: str) -> bool:
        if not self.filter_policy:
            return True
        key = (json.dumps(self.filter_policy, sort_keys=True), self.filter_policy_scope)
        cached = self.__dict__.get("_conveyor_compiled")
        if cached is None or cached[0] != key:
            compiled = compile_sns_filter_policy(self.filter_policy, scope=self.filter_policy_scope)
            self.__dict__["_conveyor_compiled"] = (key, compiled)
        else:
            compiled = cached[1]
        return sns_matches_compiled(compiled, attributes=message_attributes, message=message)

    def validate_filter_policy(self: Any, value: Any, scope: str | None) -> None:
        if not isinstance(value, dict):
            raise SNSInvalidParameter("Invalid parameter: FilterPolicy: must be a JSON object")
        try:
            compile_sns_filter_policy(value, scope=scope or "MessageAttributes")
        except FilterError as error:
            raise SNSInvalidParameter(
                f"Invalid parameter: FilterPolicy: {error.path}: {error.reason}"
            ) from None

    matches_event._conveyor_filters = True  # type: ignore[attr-defined]
    replacements = {
        (pattern_class, "matches_event"): matches_event,
        (parser_class, "parse"): parse,
        (handler_class, "test_event_pattern"): test_event_pattern,
        (matcher_class, "matches"): policy_matches,
        (backend_class, "_validate_filter_policy"): validate_filter_policy,
    }
    for (owner, name), replacement in replacements.items():
        replacement._conveyor_original = originals[(owner, name)]  # type: ignore[attr-defined]
        setattr(owner, name, replacement)

    def undo() -> None:
        for (owner, name), original in originals.items():
            setattr(owner, name, original)

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


# -- SQS targets and subscriptions whose queue does not exist ---------------------------------

# Listeners told of each undeliverable SQS target / subscription (the runtime traces and counts).
_SQS_DELIVERY_FAILURES: list[Callable[[dict[str, Any]], None]] = []


def on_sqs_delivery_failure(listener: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
    """Call ``listener`` with the details of each EventBridge SQS target / SNS SQS
    subscription delivery :func:`dead_letter_missing_sqs_endpoints` handled; return the undo."""
    _SQS_DELIVERY_FAILURES.append(listener)
    return lambda: _SQS_DELIVERY_FAILURES.remove(listener)


def _notify(details: dict[str, Any]) -> None:
    for listener in list(_SQS_DELIVERY_FAILURES):
        with contextlib.suppress(Exception):
            listener(details)


def dead_letter_missing_sqs_endpoints() -> Callable[[], None]:
    """moto fails the producer's ``PutEvents`` / ``Publish`` when a rule's SQS target or an SQS
    subscription's queue does not exist (``QueueDoesNotExist``); AWS accepts the call and the
    delivery fails: a client-side error, not retried (EventBridge user guide, "Event retry
    policy and using dead-letter queues"; SNS developer guide, "Amazon SNS dead-letter queues").

    - EventBridge: the event goes to the target's ``DeadLetterConfig`` queue with the attributes
      ``RULE_ARN``, ``TARGET_ARN``, ``ERROR_CODE`` (``NO_RESOURCE``), ``ERROR_MESSAGE``,
      ``RETRY_ATTEMPTS`` (``0``), or is dropped;
    - SNS: the message goes, as the queue would have got it (envelope or raw), to the
      subscription's ``RedrivePolicy`` dead-letter queue, or is dropped.

    Either way the producer's call succeeds and every listener of
    :func:`on_sqs_delivery_failure` is told (``kind``: ``"dead-letter"`` or ``"drop"``).
    Process-wide, idempotent; returns the undo.
    """
    from moto.events import models as events_models
    from moto.sns import models as sns_models
    from moto.sqs.exceptions import QueueDoesNotExist
    from moto.sqs.models import sqs_backends

    rule_class: Any = events_models.Rule
    subscription_class: Any = sns_models.Subscription
    if getattr(rule_class, "_conveyor_missing_queue", False):
        return lambda: None
    send_to_queue = rule_class._send_to_sqs_queue
    publish = subscription_class.publish

    def send_dead_letter(arn: str, body: str, attributes: dict[str, Any]) -> str | None:
        parts = arn.split(":")
        try:
            backend = sqs_backends[parts[4]][parts[3]]
            return str(backend.send_message(parts[5], body, message_attributes=attributes).id)
        except (IndexError, KeyError, QueueDoesNotExist):
            return None

    def rule_send(self: Any, resource_id: str, event: dict[str, Any], group_id: Any = None) -> None:
        try:
            send_to_queue(self, resource_id, event, group_id)
            return
        except QueueDoesNotExist:
            pass
        target: dict[str, Any] = next(
            (
                t
                for t in self.targets
                if str(t.get("Arn", "")).split(":")[2:3] == ["sqs"]
                and str(t.get("Arn", "")).rsplit(":", 1)[-1] == resource_id
            ),
            {},
        )
        dead_letter = (target.get("DeadLetterConfig") or {}).get("Arn")
        values = {
            "RULE_ARN": str(self.arn),
            "TARGET_ARN": str(target.get("Arn", "")),
            "ERROR_CODE": "NO_RESOURCE",
            "ERROR_MESSAGE": "The specified queue does not exist.",
            "RETRY_ATTEMPTS": "0",
        }
        attributes = {k: {"DataType": "String", "StringValue": v} for k, v in values.items()}
        sent = (
            send_dead_letter(str(dead_letter), json.dumps(event), attributes)
            if dead_letter
            else None
        )
        _notify(
            {
                "service": "events",
                "kind": "dead-letter" if sent else "drop",
                "rule": self.name,
                "target": target.get("Id"),
                "endpoint": values["TARGET_ARN"],
                "dead_letter_arn": dead_letter,
                "dead_letter_message_id": sent,
                "error_code": "NO_RESOURCE",
                "event_id": event.get("id"),
            }
        )

    def subscription_publish(
        self: Any, message: str, message_id: str, *args: Any, **kwargs: Any
    ) -> None:
        try:
            publish(self, message, message_id, *args, **kwargs)
            return
        except QueueDoesNotExist:
            pass
        policy = self.attributes.get("RedrivePolicy")
        try:
            dead_letter = json.loads(policy).get("deadLetterTargetArn") if policy else None
        except (ValueError, AttributeError):
            dead_letter = None
        sent = False
        if dead_letter:
            endpoint = self.endpoint
            self.endpoint = str(dead_letter)  # the same delivery, to the dead-letter queue
            try:
                publish(self, message, message_id, *args, **kwargs)
                sent = True
            except QueueDoesNotExist:
                sent = False
            finally:
                self.endpoint = endpoint
        _notify(
            {
                "service": "sns",
                "kind": "dead-letter" if sent else "drop",
                "subscription": self.arn,
                "endpoint": self.endpoint,
                "dead_letter_arn": dead_letter,
                "error_code": "AWS.SimpleQueueService.NonExistentQueue",
                "message_id": message_id,
            }
        )

    rule_class._send_to_sqs_queue = rule_send
    subscription_class.publish = subscription_publish
    rule_class._conveyor_missing_queue = True

    def undo() -> None:
        rule_class._send_to_sqs_queue = send_to_queue
        subscription_class.publish = publish
        rule_class._conveyor_missing_queue = False

    return undo
