"""Tests of the sandbox runtime: in-process handlers fed from moto queues, as Lambda would.

Deployments are built by hand (the deployer is not involved): moto queues, topics and rules,
and tiny handler packages written to ``tmp_path``. One test runs the real ``order_events`` code
as two consumers; one runs against a moto server on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import boto3
import pytest
from moto import mock_aws
from moto.server import ThreadedMotoServer

from conveyor.sandbox.clock import sandbox_clock
from conveyor.sandbox.execution import ExecutionEnvironment
from conveyor.sandbox.model import (
    ACCOUNT_ID,
    REGION,
    DeployedResource,
    DeployedStack,
    Deployment,
    FunctionSpec,
    Route,
)
from conveyor.sandbox.moto_patches import speed_up_moto_sqs
from conveyor.sandbox.runtime import Runtime, TraceEvent
from conveyor.sandbox.sources import EVENT_SOURCES, Delivery
from tests.support.aws import FAKE_CREDENTIALS, fake_aws_env

ROOT = Path(__file__).resolve().parents[2]
STACK = "Sandbox"

# ---------------------------------------------------------------------------------------------
# Handler packages written to tmp_path

PROBE_LOG_PY = """
import json
import os


def record(entry):
    with open(os.environ["PROBE_LOG"], "a") as log:
        log.write(json.dumps(entry) + "\\n")
"""

PROBE_HANDLER_PY = '''
"""Test handlers. Bodies: "poison" always fails, "fail:N" fails while received <= N times."""

import functools
import os
import sys
import time

from .log import record

CALLS = {"count": 0}  # module state: survives between invocations of one environment


@functools.cache
def settings():
    return {"name": os.environ.get("PROBE_NAME")}


def _fails(body, count):
    if body == "poison":
        return True
    if body.startswith("fail:"):
        return count <= int(body.split(":")[1])
    return False


def _log(context, r, ok, **extra):
    record(
        {
            "fn": context.function_name,
            "id": r["messageId"],
            "body": r["body"],
            "count": int(r["attributes"]["ApproximateReceiveCount"]),
            "group": r["attributes"].get("MessageGroupId"),
            "ok": ok,
            "request": context.aws_request_id,
            "at": time.time(),  # sandbox time
            "first_receive_ms": int(r["attributes"]["ApproximateFirstReceiveTimestamp"]),
            **extra,
        }
    )


def partial(event, context):
    failures = []
    for r in event["Records"]:
        ok = not _fails(r["body"], int(r["attributes"]["ApproximateReceiveCount"]))
        _log(context, r, ok, batch=len(event["Records"]))
        if not ok:
            failures.append({"itemIdentifier": r["messageId"]})
    return {"batchItemFailures": failures}


def raising(event, context):
    failed = False
    for r in event["Records"]:
        ok = not _fails(r["body"], int(r["attributes"]["ApproximateReceiveCount"]))
        _log(context, r, ok)
        failed = failed or not ok
    if failed:
        raise RuntimeError("boom")


def capture(event, context):
    record({"event": event})


def invalid(event, context):
    for r in event["Records"]:
        _log(context, r, True)
    first = int(event["Records"][0]["attributes"]["ApproximateReceiveCount"]) == 1
    return {"batchItemFailures": [{"itemIdentifier": "not-in-this-batch"}]} if first else None


def fifo(event, context):
    """FIFO-aware: after a failure, the later records of its group are failed unprocessed."""
    failures, blocked = [], set()
    for r in event["Records"]:
        group = r["attributes"]["MessageGroupId"]
        if group in blocked:
            failures.append({"itemIdentifier": r["messageId"]})
            _log(context, r, False, skipped=True)
            continue
        ok = not _fails(r["body"], int(r["attributes"]["ApproximateReceiveCount"]))
        _log(context, r, ok, skipped=False)
        if not ok:
            blocked.add(group)
            failures.append({"itemIdentifier": r["messageId"]})
    return {"batchItemFailures": failures}


def asynchronous(event, context):
    CALLS["count"] += 1
    if "Records" in event:
        payload = event["Records"][0]["Sns"]["Message"]
    else:
        payload = event["detail"]["kind"]
    record(
        {
            "fn": context.function_name,
            "event": event,
            "request_id": context.aws_request_id,
            "at": time.time(),
        }
    )
    if payload == "bad":
        raise ValueError(f"cannot handle {payload!r}")
    return {"ok": True}


def env_probe(event, context):
    CALLS["count"] += 1
    print("hello from", context.function_name)
    print("to stderr", file=sys.stderr)
    return {
        "env": {name: os.environ.get(name) for name in event.get("keys", [])},
        "remaining": context.get_remaining_time_in_millis(),
        "memory": context.memory_limit_in_mb,
        "request_id": context.aws_request_id,
        "settings": settings(),
        "calls": CALLS["count"],
    }


def sender(event, context):
    """Server mode: forwards every body, upper-cased, with a plain boto3 client."""
    import boto3

    assert os.environ["AWS_ENDPOINT_URL"] == os.environ["EXPECTED_ENDPOINT"]
    sqs = boto3.client("sqs")
    for r in event["Records"]:
        sqs.send_message(QueueUrl=os.environ["OUTPUT_QUEUE_URL"], MessageBody=r["body"].upper())
    return {"batchItemFailures": []}
'''

IDEMPOTENT_HANDLER_PY = '''
"""Powertools idempotency on the records of an SQS batch; the first completion write fails
(a throttled save_success), which leaves the record INPROGRESS until its in-progress expiry
(the invocation's remaining time)."""

import os
import time

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

from .log import record as log

FAILURES = {"left": 1}


class FlakyLayer(DynamoDBPersistenceLayer):
    def save_success(self, data, result):
        if FAILURES["left"]:
            FAILURES["left"] -= 1
            raise RuntimeError("ProvisionedThroughputExceededException (simulated)")
        return super().save_success(data, result)


LAYER = FlakyLayer(table_name=os.environ["IDEMPOTENCY_TABLE"])
CONFIG = IdempotencyConfig(event_key_jmespath="id")
PROCESSOR = BatchProcessor(event_type=EventType.SQS)


@idempotent_function(data_keyword_argument="work", persistence_store=LAYER, config=CONFIG)
def do_work(work):
    log({"work": work["id"], "at": time.time()})
    return {"done": work["id"]}


def _record(record):
    r = record
    log({"received": int(r.attributes.approximate_first_receive_timestamp), "at": time.time()})
    try:
        do_work(work={"id": r.body})
    except Exception as exc:
        log({"error": type(exc).__name__, "at": time.time()})
        raise


def handler(event, context):
    CONFIG.register_lambda_context(context)
    return process_partial_response(event, _record, PROCESSOR, context)
'''

ABSOLUTE_SETTINGS_PY = """
import functools
import os


@functools.cache
def name():
    return os.environ["PROBE_NAME"]
"""

ABSOLUTE_HANDLER_PY = """
import abs_pkg.settings
from abs_pkg.settings import name


def handler(event, context):
    import abs_pkg.settings as lazily  # an absolute import at invocation time

    return {"name": name(), "same": lazily is abs_pkg.settings, "module": __name__}
"""


@dataclass
class Probe:
    code_dir: Path
    log: Path

    def entries(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture
def probe(tmp_path: Path) -> Probe:
    """The probe_pkg asset (handlers above) plus abs_pkg (absolute self-imports) and an
    ``index.py`` top-level module importing its sibling ``helper.py``."""
    code_dir = tmp_path / "asset"
    files = {
        "probe_pkg/__init__.py": "",
        "probe_pkg/log.py": PROBE_LOG_PY,
        "probe_pkg/handler.py": PROBE_HANDLER_PY,
        "probe_pkg/idem.py": IDEMPOTENT_HANDLER_PY,
        "abs_pkg/__init__.py": "",
        "abs_pkg/settings.py": ABSOLUTE_SETTINGS_PY,
        "abs_pkg/handler.py": ABSOLUTE_HANDLER_PY,
        "helper.py": "VALUE = 'from helper'\n",
        "exiting.py": "raise SystemExit(3)\n\n\ndef handler(event, context):\n    return 1\n",
        "index.py": "import helper\n\n\ndef handler(event, context):\n    return helper.VALUE\n",
    }
    for name, text in files.items():
        path = code_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return Probe(code_dir=code_dir, log=tmp_path / "probe.jsonl")


# ---------------------------------------------------------------------------------------------
# AWS (moto) and deployments


@pytest.fixture(scope="module")
def boto_session() -> boto3.session.Session:
    """One session for the module: botocore parses each service model once."""
    return boto3.session.Session(
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
        region_name=REGION,
    )


@pytest.fixture
def fake_env(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_aws_env(monkeypatch, REGION)


@pytest.fixture
def aws(fake_env: None, boto_session: boto3.session.Session) -> Iterator[Aws]:
    with mock_aws():
        yield Aws(boto_session)


class Aws:
    def __init__(self, session: boto3.session.Session, endpoint_url: str | None = None) -> None:
        self.session = session
        self.sqs = session.client("sqs", endpoint_url=endpoint_url)
        self.sns = session.client("sns", endpoint_url=endpoint_url)
        self.events = session.client("events", endpoint_url=endpoint_url)
        self.dynamodb = session.client("dynamodb", endpoint_url=endpoint_url)

    def queue(
        self,
        name: str,
        *,
        dead_letter: tuple[str, str] | None = None,
        max_receive_count: int = 3,
        fifo: bool = False,
        visibility_timeout: int = 30,
    ) -> tuple[str, str]:
        """(url, arn) of a new queue; ``dead_letter`` = the DLQ's (url, arn)."""
        attributes: dict[str, str] = {"VisibilityTimeout": str(visibility_timeout)}
        if fifo:
            attributes |= {"FifoQueue": "true", "ContentBasedDeduplication": "true"}
        if dead_letter is not None:
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": dead_letter[1], "maxReceiveCount": max_receive_count}
            )
        url = self.sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        return url, arn

    def send(self, url: str, *bodies: str, group: str | None = None) -> list[str]:
        ids = []
        for body in bodies:
            extra = {"MessageGroupId": group} if group else {}
            ids.append(self.sqs.send_message(QueueUrl=url, MessageBody=body, **extra)["MessageId"])
        return ids

    def drain(self, url: str) -> list[dict[str, Any]]:
        """Every message of a queue (received and deleted)."""
        messages: list[dict[str, Any]] = []
        while True:
            batch = self.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
            ).get("Messages", [])
            if not batch:
                return messages
            messages.extend(batch)
            for message in batch:
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    def depth(self, url: str) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(v) for v in attributes.values())


def function(
    code_dir: Path,
    logical_id: str,
    handler: str,
    environment: dict[str, str] | None = None,
    **options: Any,
) -> FunctionSpec:
    name = f"sandbox-{logical_id}"
    return FunctionSpec(
        logical_id=logical_id,
        name=name,
        arn=f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}",
        handler=handler,
        code_dir=code_dir,
        environment=environment or {},
        timeout_s=options.pop("timeout_s", 30),
        runtime="python3.14",
        **options,
    )


def sqs_route(queue: tuple[str, str], function_logical_id: str, **options: Any) -> Route:
    return Route(
        kind="sqs",
        source=f"{function_logical_id}Mapping",
        queue_url=queue[0],
        queue_arn=queue[1],
        function_logical_id=function_logical_id,
        **options,
    )


def deployment(
    functions: list[FunctionSpec],
    routes: Sequence[Route] = (),
    resources: dict[str, DeployedResource] | None = None,
) -> Deployment:
    stack = DeployedStack(
        name=STACK,
        template={},
        resources=resources or {},
        functions={f.logical_id: f for f in functions},
        routes=list(routes),
    )
    return Deployment(stacks={STACK: stack})


@pytest.fixture
def traces() -> list[TraceEvent]:
    return []


@pytest.fixture
def make_runtime(
    traces: list[TraceEvent], boto_session: boto3.session.Session
) -> Iterator[Callable[..., Runtime]]:
    created: list[Runtime] = []

    def make(deployed: Deployment, **options: Any) -> Runtime:
        options.setdefault("session", boto_session)
        runtime = Runtime(deployed, on_event=traces.append, **options)
        created.append(runtime)
        return runtime

    yield make
    for runtime in created:
        runtime.close()


def kinds(traces: list[TraceEvent], *wanted: str) -> list[TraceEvent]:
    return [t for t in traces if t.kind in wanted]


# ---------------------------------------------------------------------------------------------
# SQS event source mappings


def test_batch_size_is_honoured_and_processed_messages_are_deleted(
    aws: Aws, probe: Probe, make_runtime: Callable[..., Runtime]
) -> None:
    queue = aws.queue("orders")
    env = {"PROBE_LOG": str(probe.log)}
    fn = function(probe.code_dir, "Worker", "probe_pkg.handler.partial", env)
    runtime = make_runtime(deployment([fn], [sqs_route(queue, "Worker", batch_size=3)]))
    sent = aws.send(queue[0], *(f"m{n}" for n in range(7)))

    report = runtime.pump()

    assert [e["batch"] for e in probe.entries()] == [3, 3, 3, 3, 3, 3, 1]
    assert sorted(e["id"] for e in probe.entries()) == sorted(sent)
    assert aws.depth(queue[0]) == 0
    assert report.idle
    assert (report.invocations, report.records_processed, report.records_failed) == (3, 7, 0)
    stats = report.functions["Worker"]
    assert (stats.invocations, stats.records, stats.errors, stats.cold_starts) == (3, 7, 0, 1)


def test_sqs_event_has_lambdas_shape(
    aws: Aws, probe: Probe, make_runtime: Callable[..., Runtime]
) -> None:
    queue = aws.queue("shape")
    fn = function(
        probe.code_dir, "Worker", "probe_pkg.handler.capture", {"PROBE_LOG": str(probe.log)}
    )
    runtime = make_runtime(deployment([fn], [sqs_route(queue, "Worker")]))
    aws.sqs.send_message(
        QueueUrl=queue[0],
        MessageBody="hello",
        MessageAttributes={
            "eventType": {"DataType": "String", "StringValue": "OrderPlaced"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
    )

    runtime.pump()

    ((record,),) = [entry["event"]["Records"] for entry in probe.entries()]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == queue[1]
    assert record["awsRegion"] == REGION
    assert record["body"] == "hello"
    assert record["md5OfBody"] == "5d41402abc4b2a76b9719d911017c592"
    assert record["md5OfMessageAttributes"]
    assert record["receiptHandle"]
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert {"SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"} <= set(
        record["attributes"]
    )
    assert record["messageAttributes"] == {
        "eventType": {
            "stringValue": "OrderPlaced",
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "String",
        },
        "blob": {
            "binaryValue": "AAE=",
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "Binary",
        },
    }


def test_fifo_records_carry_group_deduplication_and_sequence_number(
    aws: Aws, probe: Probe, make_runtime: Callable[..., Runtime]
) -> None:
    queue = aws.queue("shape.fifo", fifo=True)
    fn = function(
        probe.code_dir, "Worker", "probe_pkg.handler.capture", {"PROBE_LOG": str(probe.log)}
    )
    runtime = make_runtime(deployment([fn], [sqs_route(queue, "Worker", fifo=True)]))
    aws.send(queue[0], "one", "two", group="G")

    runtime.pump()

    ((first, second),) = [entry["event"]["Records"] for entry in probe.entries()]
    for record in (first, second):
        assert record["attributes"]["MessageGroupId"] == "G"
        assert record["attributes"]["MessageDeduplicationId"]
        assert len(record["attributes"]["SequenceNumber"]) == 20
    assert first["attributes"]["SequenceNumber"] < second["attributes"]["SequenceNumber"]


def test_partial_batch_failure_only_failed_records_come_back(
    aws: Aws, probe: Probe, make_runtime: Callable[..., Runtime], traces: list[TraceEvent]
) -> None:
    queue = aws.queue("partial")
    fn = function(
        probe.code_dir, "Worker", "probe_pkg.handler.partial", {"PROBE_LOG": str(probe.log)}
    )
    route = sqs_route(queue, "Worker", report_batch_item_failures=True)
    runtime = make_runtime(deployment([fn], [route]))
    aws.send(queue[0], "ok-1", "fail:1", "ok-2", "fail:2")

    report = runtime.pump()

    deliveries = [(e["body"], e["count"], e["ok"]) for e in probe.entries()]
    first, rest = deliveries[:4], deliveries[4:]
    assert sorted(first) == [
        ("fail:1", 1, False),
        ("fail:2", 1, False),
        ("ok-1", 1, True),
        ("ok-2", 1, True),
    ]
    # Only the failed records come back, once per failure, with their receive count.
    assert sorted(rest) == [("fail:1", 2, True), ("fail:2", 2, False), ("fail:2", 3, True)]
    assert aws.depth(queue[0]) == 0
    assert (report.records_processed, report.records_failed) == (4, 3)
    retry = kinds(traces, "retry")[0]
    assert retry.details["reason"] == "batch item failure"
    assert set(retry.details["receive_counts"].values()) == {1}
    assert kinds(traces, "release")


def test_poison_message_reaches_the_dlq_after_max_receive_count(
    aws: Aws, probe: Probe, make_runtime: Callable[..., Runtime], traces: list[TraceEvent]
) -> None:
    dlq = aws.queue("work-dlq")
    queue = aws.queue("work", dead_letter=dlq, max_receive_count=3)
    fn = function(
        probe.code_dir, "Worker", "probe_pkg.handler.partial", {"PROBE_LOG": str(probe.log)}
    )
    runtime = make_runtime(
        deployment([fn], [sqs_route(queue, "Worker", report_batch_item_failures=True)])
    )
    good, poison = aws.send(queue[0], "good", "poison")

    report = runtime.pump()

    receives = [e["count"] for e in probe.entries() if e["id"] == poison]
    assert receives == [1, 2, 3]  # delivered maxReceiveCount times, then redriven
    assert [e["count"] for e in probe.entries() if e["id"] == good] == [1]
    (dead,) = aws.drain(dlq[0])
    assert dead["MessageId"] == poison
    assert dead["Body"] == "poison"
    assert aws.depth(queue[0]) == 0
    assert report.moved_to_dlq == 1
    (moved,) = kinds(traces, "dead-letter")
    assert moved.message_ids == (poison,)
    assert moved.details["receive_count"] == 3
    assert moved.details["dead_letter_queue"] == "work-dlq"


def test_raising_handler_fails_the_whole_batch(
    aws: Aws, probe: Probe, make_runtime: Callable[..., Runtime], traces: list[TraceEvent]
) -> None:
    queue = aws.queue("raising")
    fn = function(
        probe.code_dir, "Worker", "probe_pkg.handler.raising", {"PROBE_LOG": str(probe.log)}
    )
    runtime = make_runtime(
        deployment([fn], [sqs_route(queue, "Worker", report_batch_item_failures=True)])
    )
    aws.send(queue[0], "a", "fail:1", "c")

    report = runtime.pump()

    # Every record, even the ones that went well, is delivered again.
    assert sorted((e["body"], e["count"]) for e in probe.entries()) == [
        ("a", 1),
        ("a", 2),
        ("c", 1),
        ("c", 2),
        ("fail:1", 1),
        ("fail:1", 2),
    ]
    assert aws.depth(queue[0]) == 0
    assert report.functions["Worker"].errors == 1
    assert report.records_failed == 3
    failed = [t for t in kinds(traces, "result") if t.details["status"] == "error"]
    assert failed[0].details["error_type"] == "RuntimeError"
    assert "Traceback" not in failed[0].details["error_message"]
    assert failed[0].invocation is not None
    assert "[ERROR] RuntimeError: boom" in failed[0].invocation.stderr


def test_invalid_batch_item_failure_fails_the_whole_batch(
    aws: Aws, probe: Probe, make_runtime: Callable[..., Runtime], traces: list[TraceEvent]
) -> None:
    queue = aws.queue("invalid")
    fn = function(
        probe.code_dir, "Worker", "probe_pkg.handler.invalid", {"PROBE_LOG": str(probe.log)}
    )
    runtime = make_runtime(
        deployment([fn], [sqs_route(queue, "Worker", report_batch_item_failures=True)])
    )
    aws.send(queue[0], "a", "b")

    report = runtime.pump()

    assert sorted((e["body"], e["count"]) for e in probe.entries()) == [
        ("a", 1),
        ("a", 2),
        ("b", 1),
        ("b", 2),
    ]
    assert report.functions["Worker"].errors == 0  # not a function error, a batch failure
    (warning,) = kinds(traces, "warning")
    assert "not-in-this-batch" in warning.details["problem"]


def test_failures_returned_without_report_batch_item_failures(
    aws: Aws, probe: Probe, make_runtime: Callable[..., Runtime], traces: list[TraceEvent]
) -> None:
    queue = aws.queue("unflagged")
    fn = function(
        probe.code_dir, "Worker", "probe_pkg.handler.partial", {"PROBE_LOG": str(probe.log)}
    )
    runtime = make_runtime(deployment([fn], [sqs_route(queue, "Worker")]))
    aws.send(queue[0], "ok", "fail:1")

    runtime.pump()

    # The whole batch failed (default): both come back.
    assert sorted((e["body"], e["count"]) for e in probe.entries()) == [
        ("fail:1", 1),
        ("fail:1", 2),
        ("ok", 1),
        ("ok", 2),
    ]
    assert "lacks ReportBatchItemFailures" in kinds(traces, "warning")[0].details["problem"]

    # As AWS does: the response is ignored, the batch deleted.
    aws.send(queue[0], "fail:5")
    make_runtime(runtime.deployment, fail_unflagged_batch_failures=False).pump()
    assert [e["count"] for e in probe.entries() if e["body"] == "fail:5"] == [1]
    assert aws.depth(queue[0]) == 0


def test_batching_window_uses_the_injected_clock(
    aws: Aws, probe: Probe, make_runtime: Callable[..., Runtime]
) -> None:
    queue = aws.queue("window")
    fn = function(
        probe.code_dir, "Worker", "probe_pkg.handler.partial", {"PROBE_LOG": str(probe.log)}
    )
    route = sqs_route(queue, "Worker", batch_size=25, batching_window_s=5)
    ticks = iter(range(0, 10_000, 10))  # 10 s per reading: the window elapses after 1 receive
    aws.send(queue[0], *(f"n{n}" for n in range(30)))
    make_runtime(deployment([fn], [route]), clock=lambda: float(next(ticks))).pump()
    assert _batch_sizes(probe) == [10, 10, 10]


# -- sandbox time (conveyor.sandbox.clock): AWS's waits, advanced instantly when idle ----------


def test_a_batch_that_is_not_full_waits_for_its_batching_window(
    aws: Aws, probe: Probe, make_runtime: Callable[..., Runtime]
) -> None:
    queue = aws.queue("window-wait")
    fn = function(
        probe.code_dir, "Worker", "probe_pkg.handler.partial", {"PROBE_LOG": str(probe.log)}
    )
    window = 20
    route = sqs_route(queue, "Worker", batch_size=25, batching_window_s=window)
    aws.send(queue[0], *(f"m{n}" for n in range(30)))
    sent = time.time()

    make_runtime(deployment([fn], [route])).pump()

    # A full batch goes at once; the 5 left wait for MaximumBatchingWindowInSeconds.
    assert _batch_sizes(probe) == [25, 5]
    entries = probe.entries()
    assert entries[0]["at"] - sent < window
    assert entries[-1]["at"] - sent >= window


def test_a_failed_record_comes_back_after_the_visibility_timeout(
    aws: Aws, probe: Probe, make_runtime: Callable[..., Runtime], traces: list[TraceEvent]
) -> None:
    queue = aws.queue("visibility", visibility_timeout=180)
    fn = function(
        probe.code_dir, "Worker", "probe_pkg.handler.partial", {"PROBE_LOG": str(probe.log)}
    )
    runtime = make_runtime(
        deployment([fn], [sqs_route(queue, "Worker", report_batch_item_failures=True)])
    )
    (flaky,) = aws.send(queue[0], "fail:1")
    timeout = int(
        aws.sqs.get_queue_attributes(QueueUrl=queue[0], AttributeNames=["VisibilityTimeout"])[
            "Attributes"
        ]["VisibilityTimeout"]
    )

    report = runtime.pump()

    first, second = probe.entries()
    assert (first["count"], first["ok"], second["count"], second["ok"]) == (1, False, 2, True)
    # Not before the queue's visibility timeout, counted from the first receive.
    assert second["at"] - first["first_receive_ms"] / 1000 >= timeout
    assert report.records_processed == 1
    assert report.clock_advanced_s > 0
    (release,) = kinds(traces, "release")
    assert release.message_ids == (flaky,)


def test_a_message_that_keeps_failing_is_deleted_when_its_retention_period_ends(
    aws: Aws, probe: Probe, make_runtime: Callable[..., Runtime]
) -> None:
    """No redrive policy, a record that always fails: SQS deletes the message once it is older
    than the queue's MessageRetentionPeriod (300 s), so with a 180 s visibility timeout it is
    received at 0 s and 180 s, and is gone before 360 s."""
    queue = aws.queue("retention", visibility_timeout=180)
    aws.sqs.set_queue_attributes(QueueUrl=queue[0], Attributes={"MessageRetentionPeriod": "300"})
    fn = function(
        probe.code_dir, "Worker", "probe_pkg.handler.partial", {"PROBE_LOG": str(probe.log)}
    )
    runtime = make_runtime(
        deployment([fn], [sqs_route(queue, "Worker", report_batch_item_failures=True)])
    )
    aws.send(queue[0], "poison")

    report = runtime.pump()

    assert [(e["count"], e["ok"]) for e in probe.entries()] == [(1, False), (2, False)]
    assert report.idle
    attributes = aws.sqs.get_queue_attributes(QueueUrl=queue[0], AttributeNames=["All"])
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "0"
    assert attributes["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "0"


def _real_epoch_s() -> int:
    """The real wall clock, read outside this process (``date``)."""
    return int(subprocess.check_output(["date", "+%s"], text=True))


def test_the_wall_clock_is_real_again_when_the_last_open_runtime_closes(
    aws: Aws, probe: Probe
) -> None:
    """A jump lasts as long as the sandbox: once every runtime is closed, a client in the same
    process (``conveyor logs``, a test) reads the same time as the brokers and other processes."""
    queue = aws.queue("clock-scope")
    fn = function(probe.code_dir, "Worker", "probe_pkg.handler.partial", {})
    first = Runtime(deployment([fn], [sqs_route(queue, "Worker")]))
    second = Runtime(deployment([fn], [sqs_route(queue, "Worker")]))
    clock = sandbox_clock()
    clock.advance_to(time.time() + 3600)
    assert time.time() - _real_epoch_s() >= 3590
    first.close()
    first.close()  # closing twice does not give the other runtime's clock back
    assert time.time() - _real_epoch_s() >= 3590
    second.close()
    assert abs(time.time() - _real_epoch_s()) < 5


def test_a_delayed_message_is_delivered_when_its_delay_ends(
    aws: Aws, probe: Probe, make_runtime: Callable[..., Runtime]
) -> None:
    queue = aws.queue("delayed")
    fn = function(
        probe.code_dir, "Worker", "probe_pkg.handler.partial", {"PROBE_LOG": str(probe.log)}
    )
    runtime = make_runtime(deployment([fn], [sqs_route(queue, "Worker")]))
    aws.sqs.send_message(QueueUrl=queue[0], MessageBody="later", DelaySeconds=120)
    sent = time.time()

    runtime.pump()

    (entry,) = probe.entries()
    assert entry["body"] == "later"
    assert entry["at"] - sent >= 120


def test_an_idempotency_record_left_in_progress_has_expired_when_the_record_comes_back(
    aws: Aws, probe: Probe, make_runtime: Callable[..., Runtime], traces: list[TraceEvent]
) -> None:
    """The first completion write fails: the record stays INPROGRESS until the invocation's
    remaining time has passed (Powertools' in-progress expiry). SQS brings the record back
    after the 180 s visibility timeout, long after that: the retry runs and the record is
    processed, not dead-lettered."""
    aws.dynamodb.create_table(
        TableName="idempotency",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dlq = aws.queue("idem-dlq")
    queue = aws.queue("idem", dead_letter=dlq, max_receive_count=2, visibility_timeout=180)
    fn = function(
        probe.code_dir,
        "Worker",
        "probe_pkg.idem.handler",
        {"PROBE_LOG": str(probe.log), "IDEMPOTENCY_TABLE": "idempotency"},
        timeout_s=30,
    )
    runtime = make_runtime(
        deployment([fn], [sqs_route(queue, "Worker", report_batch_item_failures=True)])
    )
    aws.send(queue[0], "order-1")

    report = runtime.pump()

    entries = probe.entries()
    assert [e.get("work") or e.get("error") or "receive" for e in entries] == [
        "receive",
        "order-1",  # the work ran, its completion write failed
        "IdempotencyPersistenceLayerError",
        "receive",
        "order-1",  # the redelivery found the in-progress record expired
    ]
    assert entries[3]["at"] - entries[0]["received"] / 1000 >= 180
    assert aws.drain(dlq[0]) == []
    assert report.moved_to_dlq == 0
    assert aws.depth(queue[0]) == 0
    (item,) = aws.dynamodb.scan(TableName="idempotency")["Items"]
    assert item["status"]["S"] == "COMPLETED"


def _batch_sizes(probe: Probe) -> list[int]:
    sizes: list[int] = []
    seen = 0
    for entry in probe.entries():
        if seen == 0:
            sizes.append(entry["batch"])
            seen = entry["batch"]
        seen -= 1
    return sizes


def test_fifo_group_order_kept_when_a_record_fails(
    aws: Aws, probe: Probe, make_runtime: Callable[..., Runtime], traces: list[TraceEvent]
) -> None:
    queue = aws.queue("orders.fifo", fifo=True)
    fn = function(probe.code_dir, "Worker", "probe_pkg.handler.fifo", {"PROBE_LOG": str(probe.log)})
    route = sqs_route(queue, "Worker", batch_size=2, report_batch_item_failures=True, fifo=True)
    runtime = make_runtime(deployment([fn], [route]))
    # Interleaved groups; a1 fails on its first two deliveries.
    for body, group in [
        ("fail:2", "A"),
        ("b1", "B"),
        ("a2", "A"),
        ("b2", "B"),
        ("a3", "A"),
        ("b3", "B"),
    ]:
        aws.send(queue[0], body, group=group)

    runtime.pump()

    processed = [e for e in probe.entries() if e["ok"]]
    group_a = [e["body"] for e in processed if e["group"] == "A"]
    group_b = [e["body"] for e in processed if e["group"] == "B"]
    assert group_a == ["fail:2", "a2", "a3"]
    assert group_b == ["b1", "b2", "b3"]
    # Group B went on while a1 was failing: it was done before a1's success.
    first_a1_success = next(
        n for n, e in enumerate(probe.entries()) if e["body"] == "fail:2" and e["ok"]
    )
    last_b = max(n for n, e in enumerate(probe.entries()) if e["group"] == "B")
    assert last_b < first_a1_success
    # Until a1 succeeded, no batch handed a later record of group A to the handler ahead of
    # it (moto keeps the group blocked while a1 is in flight; a1 comes back first).
    batches: dict[str, list[dict[str, Any]]] = {}
    for entry in probe.entries():
        batches.setdefault(entry["request"], []).append(entry)
    a1_done = False
    for batch in batches.values():
        group_a_bodies = [e["body"] for e in batch if e["group"] == "A"]
        if not a1_done:
            assert group_a_bodies[:1] in ([], ["fail:2"]), batch
        a1_done = a1_done or any(e["body"] == "fail:2" and e["ok"] for e in batch)
    assert [e["count"] for e in probe.entries() if e["body"] == "fail:2"] == [1, 2, 3]
    assert aws.depth(queue[0]) == 0
    assert not kinds(traces, "warning")


def test_fifo_handler_breaking_group_order_is_reported(
    aws: Aws, probe: Probe, make_runtime: Callable[..., Runtime], traces: list[TraceEvent]
) -> None:
    queue = aws.queue("naive.fifo", fifo=True)
    # "partial" is not FIFO-aware: a2 succeeds after a1 failed in the same batch.
    fn = function(
        probe.code_dir, "Worker", "probe_pkg.handler.partial", {"PROBE_LOG": str(probe.log)}
    )
    route = sqs_route(queue, "Worker", report_batch_item_failures=True, fifo=True)
    runtime = make_runtime(deployment([fn], [route]))
    _, a2 = aws.send(queue[0], "fail:1", "a2", group="A")

    runtime.pump()

    (warning,) = kinds(traces, "warning")
    assert "FIFO order broken" in warning.details["problem"]
    assert warning.message_ids == (a2,)


# ---------------------------------------------------------------------------------------------
# Asynchronous invocations: SNS subscriptions and EventBridge targets


def test_sns_route_retries_then_sends_to_the_on_failure_queue(
    aws: Aws, probe: Probe, make_runtime: Callable[..., Runtime], traces: list[TraceEvent]
) -> None:
    topic = aws.sns.create_topic(Name="orders")["TopicArn"]
    internal = aws.queue("sbx-internal-sub")
    subscription = aws.sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=internal[1])
    failures = aws.queue("on-failure")
    fn = function(
        probe.code_dir,
        "Subscriber",
        "probe_pkg.handler.asynchronous",
        {"PROBE_LOG": str(probe.log)},
        max_retry_attempts=1,
        on_failure_queue_url=failures[0],
    )
    route = Route(
        kind="sns",
        source="OrdersSubscription",
        queue_url=internal[0],
        queue_arn=internal[1],
        function_logical_id="Subscriber",
        batch_size=1,
    )
    resources = {
        "OrdersSubscription": DeployedResource(
            "OrdersSubscription", "AWS::SNS::Subscription", subscription["SubscriptionArn"]
        )
    }
    runtime = make_runtime(deployment([fn], [route], resources))
    good = aws.sns.publish(
        TopicArn=topic,
        Message="good",
        Subject="greeting",
        MessageAttributes={"eventType": {"DataType": "String", "StringValue": "X"}},
    )["MessageId"]
    bad = aws.sns.publish(TopicArn=topic, Message="bad")["MessageId"]

    report = runtime.pump()

    calls = probe.entries()
    good_calls = [c for c in calls if c["event"]["Records"][0]["Sns"]["MessageId"] == good]
    bad_calls = [c for c in calls if c["event"]["Records"][0]["Sns"]["MessageId"] == bad]
    assert len(good_calls) == 1
    assert len(bad_calls) == 2  # one retry
    assert bad_calls[0]["request_id"] == bad_calls[1]["request_id"]  # Lambda keeps it
    record = good_calls[0]["event"]["Records"][0]
    assert record["EventSource"] == "aws:sns"
    assert record["EventVersion"] == "1.0"
    assert record["EventSubscriptionArn"] == subscription["SubscriptionArn"]
    sns = record["Sns"]
    assert (sns["Type"], sns["TopicArn"], sns["Message"], sns["Subject"]) == (
        "Notification",
        topic,
        "good",
        "greeting",
    )
    assert sns["MessageAttributes"] == {"eventType": {"Type": "String", "Value": "X"}}
    assert {
        "Timestamp",
        "SignatureVersion",
        "Signature",
        "SigningCertUrl",
        "UnsubscribeUrl",
    } <= set(sns)

    (destination,) = aws.drain(failures[0])
    failure = json.loads(destination["Body"])
    assert failure["version"] == "1.0"
    assert failure["timestamp"].endswith("Z")
    assert failure["requestContext"] == {
        "requestId": bad_calls[0]["request_id"],
        "functionArn": f"{fn.arn}:$LATEST",
        "condition": "RetriesExhausted",
        "approximateInvokeCount": 2,
    }
    assert failure["requestPayload"] == bad_calls[0]["event"]
    assert failure["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    assert failure["responsePayload"]["errorType"] == "ValueError"
    assert failure["responsePayload"]["errorMessage"] == "cannot handle 'bad'"
    assert aws.depth(internal[0]) == 0
    assert (report.invocations, report.retries, report.on_failure) == (3, 1, 1)
    (on_failure,) = kinds(traces, "on-failure")
    assert on_failure.message_ids == (bad,)
    assert [t.details["attempt"] for t in kinds(traces, "retry")] == [2]
    # The internal queue's delete names the SNS message ids, as the receives did.
    (delete,) = kinds(traces, "delete")
    assert set(delete.message_ids) == {good, bad}
    assert [t.message_ids for t in kinds(traces, "receive")] == [(good,), (bad,)]


def test_events_route_invokes_with_the_event_and_drops_after_default_retries(
    aws: Aws, probe: Probe, make_runtime: Callable[..., Runtime], traces: list[TraceEvent]
) -> None:
    internal = aws.queue("sbx-internal-rule")
    aws.events.put_rule(Name="kinds", EventPattern=json.dumps({"source": ["app.test"]}))
    aws.events.put_targets(Rule="kinds", Targets=[{"Id": "fn", "Arn": internal[1]}])
    fn = function(
        probe.code_dir, "Target", "probe_pkg.handler.asynchronous", {"PROBE_LOG": str(probe.log)}
    )
    route = Route(
        kind="events",
        source="KindsRule",
        queue_url=internal[0],
        queue_arn=internal[1],
        function_logical_id="Target",
        batch_size=1,
    )
    runtime = make_runtime(deployment([fn], [route]))
    for kind in ("good", "bad"):
        aws.events.put_events(
            Entries=[
                {"Source": "app.test", "DetailType": "thing", "Detail": json.dumps({"kind": kind})}
            ]
        )

    report = runtime.pump()

    events = [c["event"] for c in probe.entries()]
    assert [e["detail"]["kind"] for e in events] == ["good", "bad", "bad", "bad"]  # 2 retries
    event = events[0]
    assert (event["source"], event["detail-type"], event["account"], event["region"]) == (
        "app.test",
        "thing",
        ACCOUNT_ID,
        REGION,
    )
    assert {"version", "id", "time", "resources"} <= set(event)
    (drop,) = kinds(traces, "drop")
    assert drop.message_ids == (events[1]["id"],)
    assert drop.details["attempts"] == 3
    assert (report.dropped, report.retries, report.functions["Target"].errors) == (1, 2, 3)
    assert aws.depth(internal[0]) == 0


def test_async_retries_wait_one_then_two_minutes(
    aws: Aws, probe: Probe, make_runtime: Callable[..., Runtime], traces: list[TraceEvent]
) -> None:
    """Lambda "waits one minute before the second attempt and two minutes before the third"
    (asynchronous invocation, default MaximumRetryAttempts 2)."""
    internal = aws.queue("sbx-internal-retry")
    aws.events.put_rule(Name="retry", EventPattern=json.dumps({"source": ["app.retry"]}))
    aws.events.put_targets(Rule="retry", Targets=[{"Id": "fn", "Arn": internal[1]}])
    fn = function(
        probe.code_dir, "Target", "probe_pkg.handler.asynchronous", {"PROBE_LOG": str(probe.log)}
    )
    route = Route(
        kind="events",
        source="RetryRule",
        queue_url=internal[0],
        queue_arn=internal[1],
        function_logical_id="Target",
        batch_size=1,
    )
    runtime = make_runtime(deployment([fn], [route]))
    aws.events.put_events(
        Entries=[{"Source": "app.retry", "DetailType": "t", "Detail": json.dumps({"kind": "bad"})}]
    )

    report = runtime.pump()

    first, second, third = (c["at"] for c in probe.entries())
    assert 60 <= second - first < 120
    assert 120 <= third - second < 180
    assert [t.details["delay_s"] for t in kinds(traces, "retry")] == [60, 120]
    assert report.dropped == 1


# ---------------------------------------------------------------------------------------------
# Execution environments


def test_environment_is_the_functions_and_restored_afterwards(
    aws: Aws,
    probe: Probe,
    make_runtime: Callable[..., Runtime],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fn = function(
        probe.code_dir, "Probe", "probe_pkg.handler.env_probe", {"PROBE_NAME": "one"}, timeout_s=7
    )
    resources = {
        "Probe": DeployedResource(
            "Probe", "AWS::Lambda::Function", fn.name, properties={"MemorySize": 256}
        )
    }
    runtime = make_runtime(deployment([fn], resources=resources))
    # A developer's shell: none of it may reach the handler (the runtime's own clients exist).
    monkeypatch.setenv("AWS_PROFILE", "someone")
    monkeypatch.setenv("POWERTOOLS_DEV", "true")
    monkeypatch.setenv("HOST_ONLY", "kept")
    before, stdout, stderr = dict(os.environ), sys.stdout, sys.stderr
    keys = [
        "PROBE_NAME",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_PROFILE",
        "POWERTOOLS_DEV",
        "AWS_ENDPOINT_URL",
        "HOST_ONLY",
    ]

    first = runtime.invoke("Probe", {"keys": keys})
    second = runtime.invoke(fn.name, {"keys": []})

    assert first.ok, first.error
    env = first.response["env"]
    assert env == {
        "PROBE_NAME": "one",
        "AWS_LAMBDA_FUNCTION_NAME": fn.name,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_PROFILE": None,
        "POWERTOOLS_DEV": None,
        "AWS_ENDPOINT_URL": None,  # in-process moto: no endpoint
        "HOST_ONLY": "kept",
    }
    assert 0 < first.response["remaining"] <= 7000
    assert first.response["memory"] == 256
    assert first.response["request_id"] == first.request_id
    assert "hello from sandbox-Probe" in first.stdout
    assert "to stderr" in first.stderr
    assert (first.cold_start, second.cold_start) == (True, False)
    assert second.response["calls"] == 2  # module state lives on between invocations
    assert dict(os.environ) == before
    assert (sys.stdout, sys.stderr) == (stdout, stderr)
    assert not any(name.startswith("probe_pkg") for name in sys.modules)


def test_functions_sharing_code_get_their_own_modules(
    aws: Aws, probe: Probe, make_runtime: Callable[..., Runtime]
) -> None:
    one = function(probe.code_dir, "One", "probe_pkg.handler.env_probe", {"PROBE_NAME": "one"})
    two = function(probe.code_dir, "Two", "probe_pkg.handler.env_probe", {"PROBE_NAME": "two"})
    abs_one = function(probe.code_dir, "AbsOne", "abs_pkg.handler.handler", {"PROBE_NAME": "a1"})
    abs_two = function(probe.code_dir, "AbsTwo", "abs_pkg.handler.handler", {"PROBE_NAME": "a2"})
    index = function(probe.code_dir, "Index", "index.handler")
    runtime = make_runtime(deployment([one, two, abs_one, abs_two, index]))

    results = {lid: runtime.invoke(lid, {}) for lid in ("One", "Two", "One", "AbsOne", "AbsTwo")}

    assert runtime.invoke("One", {}).response["settings"] == {"name": "one"}
    assert results["Two"].response["settings"] == {"name": "two"}  # its own functools.cache
    assert runtime.invoke("One", {}).response["calls"] == 4
    assert runtime.invoke("Two", {}).response["calls"] == 2
    assert runtime.loaded_module("One") is not runtime.loaded_module("Two")
    # Absolute self-imports resolve to the function's own copy, even at invocation time.
    assert results["AbsOne"].response["name"] == "a1"
    assert results["AbsTwo"].response["name"] == "a2"
    assert results["AbsOne"].response["same"] is True
    assert results["AbsOne"].response["module"].startswith("_conveyor_sandbox_")
    assert runtime.invoke("Index", {}).response == "from helper"
    assert not {"abs_pkg", "index", "helper"} & set(sys.modules)


def test_init_errors_and_timeouts_are_function_errors(
    aws: Aws, probe: Probe, make_runtime: Callable[..., Runtime]
) -> None:
    missing = function(probe.code_dir, "Missing", "probe_pkg.nothing.handler")
    no_handler = function(probe.code_dir, "NoHandler", "probe_pkg.handler.absent")
    slow = function(probe.code_dir, "Slow", "probe_pkg.handler.env_probe", timeout_s=0)
    exiting = function(probe.code_dir, "Exiting", "exiting.handler")
    runtime = make_runtime(deployment([missing, no_handler, slow, exiting]))

    import_error = runtime.invoke("Missing", {}).error
    handler_error = runtime.invoke("NoHandler", {}).error
    timed_out = runtime.invoke("Slow", {})

    assert import_error is not None
    assert import_error.type == "Runtime.ImportModuleError"
    assert "probe_pkg.nothing" in import_error.message
    assert "_conveyor_sandbox" not in import_error.message
    assert handler_error is not None
    assert handler_error.type == "Runtime.HandlerNotFound"
    assert timed_out.timed_out
    assert timed_out.response is None
    assert runtime.invoke("Slow", {}).cold_start  # a timed out environment is replaced
    exited = runtime.invoke("Exiting", {})
    assert exited.error is not None
    assert (exited.error.type, exited.error.message) == ("Runtime.ExitError", "exited with 3")
    with pytest.raises(KeyError, match="no function"):
        runtime.invoke("Unknown", {})


def test_trace_events_follow_the_path_with_timings(
    aws: Aws, probe: Probe, make_runtime: Callable[..., Runtime], traces: list[TraceEvent]
) -> None:
    queue = aws.queue("traced")
    fn = function(
        probe.code_dir, "Worker", "probe_pkg.handler.partial", {"PROBE_LOG": str(probe.log)}
    )
    runtime = make_runtime(
        deployment([fn], [sqs_route(queue, "Worker", report_batch_item_failures=True)])
    )
    ids = tuple(aws.send(queue[0], "one", "two"))

    runtime.pump()

    assert [t.kind for t in traces] == ["receive", "invoke", "result", "delete"]
    receive, invoke, result, delete = traces
    assert all(t.stack == STACK and t.route == "WorkerMapping" for t in traces)
    assert all(t.function == "Worker" for t in traces)
    assert receive.message_ids == invoke.message_ids == result.message_ids == ids
    assert delete.message_ids == ids
    assert receive.details["queue"] == "traced"
    assert invoke.details["cold_start"] is True
    for event in (receive, result, delete):
        assert event.duration_ms is not None
        assert event.duration_ms >= 0
    assert result.details["status"] == "ok"
    assert result.invocation is not None
    assert result.invocation.duration_ms == result.duration_ms
    assert receive.timestamp <= invoke.timestamp <= result.timestamp <= delete.timestamp
    assert "receive" in receive.describe()
    assert "Sandbox/WorkerMapping/Worker" in receive.describe()


def test_pumping_hundreds_of_messages_takes_seconds(
    aws: Aws, probe: Probe, make_runtime: Callable[..., Runtime]
) -> None:
    undo = speed_up_moto_sqs()  # moto's receive is otherwise O(queue depth) per message
    try:
        queue = aws.queue("bulk")
        env = {"PROBE_LOG": str(probe.log)}
        fn = function(probe.code_dir, "Worker", "probe_pkg.handler.partial", env)
        route = sqs_route(queue, "Worker", report_batch_item_failures=True)
        runtime = make_runtime(deployment([fn], [route]))
        for start in range(0, 500, 10):
            aws.sqs.send_message_batch(
                QueueUrl=queue[0],
                Entries=[{"Id": str(n), "MessageBody": f"m{start + n}"} for n in range(10)],
            )

        report = runtime.pump()
    finally:
        undo()

    assert report.records_processed == 500
    assert report.invocations == 50
    assert len({e["id"] for e in probe.entries()}) == 500
    assert report.elapsed_ms < 10_000
    print(f"\n500 messages in {report.elapsed_ms:.0f} ms: {report.messages_per_second:.0f}/s")


# ---------------------------------------------------------------------------------------------
# The real order_events code, as two consumers


def test_order_events_consumers_keep_separate_settings(
    aws: Aws, make_runtime: Callable[..., Runtime], traces: list[TraceEvent]
) -> None:
    aws.dynamodb.create_table(
        TableName="idempotency",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    topic = aws.sns.create_topic(Name="order-placed")["TopicArn"]
    code_dir = ROOT / "lambdas" / "order_events"
    functions, routes = [], []
    for consumer in ("payment", "shipping"):
        queue = aws.queue(f"{consumer}-queue")
        aws.sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue[1])
        logical_id = f"{consumer.title()}Consumer"
        functions.append(
            function(
                code_dir,
                logical_id,
                "order_events.handler.handler",
                {
                    "CONSUMER_NAME": consumer,
                    "IDEMPOTENCY_TABLE": "idempotency",
                    "POWERTOOLS_SERVICE_NAME": f"order-{consumer}",
                    "POWERTOOLS_METRICS_NAMESPACE": "Conveyor",
                },
            )
        )
        routes.append(sqs_route(queue, logical_id, report_batch_item_failures=True))
    runtime = make_runtime(deployment(functions, routes))
    order = {
        "eventType": "OrderPlaced",
        "version": "1.0",
        "eventId": "evt-1",
        "order": {
            "orderId": "o-1",
            "customerId": "c-1",
            "total": 125.5,
            "currency": "EUR",
            "items": [{"sku": "BOOK-1", "quantity": 2, "unitPrice": 62.75}],
        },
    }
    attributes = {
        "eventType": {"DataType": "String", "StringValue": "OrderPlaced"},
        "version": {"DataType": "String", "StringValue": "1.0"},
    }
    for _ in range(2):  # the second publication is a duplicate for both consumers
        aws.sns.publish(TopicArn=topic, Message=json.dumps(order), MessageAttributes=attributes)

    report = runtime.pump()

    for logical_id in ("PaymentConsumer", "ShippingConsumer"):
        stats = report.functions[logical_id]
        assert (stats.records, stats.records_failed, stats.errors) == (2, 0, 0)
    payment, shipping = (
        runtime.loaded_module("PaymentConsumer"),
        runtime.loaded_module("ShippingConsumer"),
    )
    assert payment is not None
    assert shipping is not None
    assert payment is not shipping
    assert payment._settings().consumer_name == "payment"
    assert shipping._settings().consumer_name == "shipping"
    assert payment._settings() is not shipping._settings()
    items = aws.dynamodb.scan(TableName="idempotency")["Items"]
    assert sorted(item["id"]["S"].split("#")[0] for item in items) == [
        "order_events.payment.OrderPlaced",
        "order_events.shipping.OrderPlaced",
    ]
    results = [t.invocation for t in kinds(traces, "result") if t.invocation is not None]
    for result in results:
        consumer = "payment" if result.function == "PaymentConsumer" else "shipping"
        assert result.ok
        assert {log["service"] for log in result.logs} == {f"order-{consumer}"}
        assert {log.get("consumer") for log in result.logs if "consumer" in log} == {consumer}
        assert {m["service"] for m in result.metrics} == {f"order-{consumer}"}
    metrics = [m for r in results for m in r.metrics]
    assert _metric_total(metrics, "OrdersProcessed") == 2
    assert _metric_total(metrics, "DuplicatesSkipped") == 2
    # Outside invocations, "order_events" is not one of the private copies.
    global_copy = sys.modules.get("order_events")
    assert global_copy is None or not global_copy.__name__.startswith("_conveyor")


def _metric_total(blobs: list[dict[str, Any]], name: str) -> float:
    """The sum of an EMF metric over blobs (a value or a list of values per blob)."""
    total = 0.0
    for blob in blobs:
        value = blob.get(name, 0)
        total += sum(value) if isinstance(value, list) else value
    return total


# ---------------------------------------------------------------------------------------------
# A moto server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_against_a_moto_server(
    fake_env: None, probe: Probe, boto_session: boto3.session.Session, traces: list[TraceEvent]
) -> None:
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    runtime: Runtime | None = None
    try:
        aws = Aws(boto_session, endpoint_url=endpoint)
        source, output = aws.queue("server-in"), aws.queue("server-out")
        fn = function(
            probe.code_dir,
            "Forwarder",
            "probe_pkg.handler.sender",
            {"OUTPUT_QUEUE_URL": output[0], "EXPECTED_ENDPOINT": endpoint},
        )
        route = sqs_route(source, "Forwarder", report_batch_item_failures=True)
        runtime = Runtime(
            deployment([fn], [route]),
            session=boto_session,
            endpoint_url=endpoint,
            on_event=traces.append,
        )
        aws.send(source[0], "hello", "world")

        report = runtime.pump()

        assert report.records_processed == 2, [t.details for t in kinds(traces, "result")]
        assert sorted(m["Body"] for m in aws.drain(output[0])) == ["HELLO", "WORLD"]
        assert aws.depth(source[0]) == 0
        assert "AWS_ENDPOINT_URL" not in os.environ
        # The server thread's output never lands in a handler's capture.
        for result in kinds(traces, "result"):
            assert result.invocation is not None
            assert "HTTP/1.1" not in result.invocation.stderr + result.invocation.stdout
    finally:
        if runtime is not None:
            runtime.close()
        server.stop()


# ---------------------------------------------------------------------------------------------
# The event-source seam


class StreamSource:
    """A minimal event source (a stand-in for Kinesis or DynamoDB Streams): its "shard" is a
    list of records; one batch per pump."""

    kind = "stream"
    shard: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery
        self.settled = 0

    def pump(self, stack: DeployedStack, route: Route, target: ExecutionEnvironment) -> int:
        batch = self.shard[: route.batch_size]
        if not batch:
            return 0
        del self.shard[: len(batch)]
        ids = tuple(str(r["sequenceNumber"]) for r in batch)
        self.delivery.trace("receive", stack, route, target, ids, details={"records": len(batch)})
        self.delivery.count(messages_received=len(batch))
        result = self.delivery.invoke(
            target,
            {"Records": batch},
            request_id="r-1",
            attempt=1,
            route=route,
            message_ids=ids,
            records=len(batch),
        )
        self.delivery.count(records_processed=len(batch) if result.ok else 0)
        return len(batch)

    def settle(self) -> int:
        self.settled += 1
        return 0


def test_an_event_source_plugs_in_through_the_registry(
    probe: Probe, make_runtime: Callable[..., Runtime], traces: list[TraceEvent]
) -> None:
    fn = function(
        probe.code_dir, "Reader", "probe_pkg.handler.capture", {"PROBE_LOG": str(probe.log)}
    )
    route = Route(
        kind="stream",
        source="ReaderStreamMapping",
        queue_url="",
        queue_arn="arn:aws:kinesis:us-east-1:123456789012:stream/s",
        function_logical_id="Reader",
        batch_size=2,
    )
    StreamSource.shard = [{"sequenceNumber": n, "data": f"d{n}"} for n in range(3)]
    runtime = make_runtime(deployment([fn], [route]), event_sources=(*EVENT_SOURCES, StreamSource))

    report = runtime.pump()

    assert [len(e["event"]["Records"]) for e in probe.entries()] == [2, 1]
    assert (report.messages_received, report.records_processed, report.invocations) == (3, 3, 2)
    assert report.idle
    assert report.functions["Reader"].records == 3
    receives = kinds(traces, "receive")
    assert [(t.route, t.function, t.message_ids) for t in receives] == [
        ("ReaderStreamMapping", "Reader", ("0", "1")),
        ("ReaderStreamMapping", "Reader", ("2",)),
    ]
    assert [t.kind for t in traces if t.kind in ("invoke", "result")] == ["invoke", "result"] * 2


def test_a_route_kind_without_a_source_is_a_warning(
    probe: Probe, make_runtime: Callable[..., Runtime], traces: list[TraceEvent]
) -> None:
    fn = function(probe.code_dir, "Reader", "probe_pkg.handler.capture", {})
    route = Route("stream", "ReaderStreamMapping", "", "", "Reader")

    make_runtime(deployment([fn], [route])).pump()

    (warning,) = kinds(traces, "warning")
    assert warning.details == {"problem": "unknown route kind 'stream'"}
