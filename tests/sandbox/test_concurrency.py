"""Concurrent invocations in the sandbox runtime (``Runtime(concurrency=N)``).

AWS: an SQS event source mapping scales its pollers and runs several batches of one function
at once, each in its own execution environment; on a FIFO queue at most one batch per message
group is in flight (the order within a group), different groups run in parallel; the
function's ``ReservedConcurrentExecutions`` and the mapping's
``ScalingConfig.MaximumConcurrency`` cap it.

Synchronisation is by barriers and conditions with timeouts (a timeout is a failure to meet,
never a measured duration): the handlers meet through a host module the test provides,
``conveyor_test_sync``, the one thing the environments share (their own code and globals are
private per environment).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import textwrap
import threading
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.server import ThreadedMotoServer

from conveyor.sandbox.model import REGION
from conveyor.sandbox.runtime import Runtime, TraceEvent
from tests.sandbox.test_runtime import (
    ROOT,
    Aws,
    _metric_total,
    deployment,
    function,
    kinds,
    sqs_route,
)
from tests.support.aws import FAKE_CREDENTIALS, fake_aws_env

SYNC_MODULE = "conveyor_test_sync"
MEET_TIMEOUT_S = 10.0

HANDLER_PY = '''
"""Test handlers: each record meets the others through the test's sync module."""

import json
import threading

import conveyor_test_sync as sync

ENVIRONMENT = {"invocations": 0}  # module state: one per execution environment


def meet(event, context):
    ENVIRONMENT["invocations"] += 1
    for record in event["Records"]:
        sync.POINT.meet(record["body"], id(ENVIRONMENT), threading.get_ident())
    return None


def by_group(event, context):
    for record in event["Records"]:
        sync.POINT.visit(record["attributes"]["MessageGroupId"], record["body"])
    return None


def plain(event, context):
    return None


def calls_other(event, context):
    """Meets the other invocation, then invokes the Echo function synchronously."""
    import boto3

    for record in event["Records"]:
        sync.POINT.meet(record["body"], id(ENVIRONMENT), threading.get_ident())
        response = boto3.client("lambda").invoke(
            FunctionName="sandbox-Echo", Payload=json.dumps({"body": record["body"]})
        )
        sync.POINT.log.append(("echo", json.loads(response["Payload"].read())))
    return None


def echo(event, context):
    return {"echo": event["body"]}
'''


class Meeting:
    """Every visitor waits at a barrier for the others (``parties`` of them)."""

    def __init__(self, parties: int) -> None:
        self._barrier = threading.Barrier(parties, timeout=MEET_TIMEOUT_S)
        self._lock = threading.Lock()
        self.log: list[tuple[Any, ...]] = []

    def meet(self, body: str, environment: int, thread: int) -> None:
        with self._lock:
            self.log.append(("enter", body, environment, thread))
        try:
            self._barrier.wait()
            met = True
        except threading.BrokenBarrierError:
            met = False
        with self._lock:
            self.log.append(("exit", body, environment, met))


class GroupWatch:
    """Records which visits (one per record, by message group) were in the handler at the
    same time. A visit waits (up to a timeout) for a visit of another group to overlap it."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._active: dict[int, str] = {}  # visit number -> group
        self.order: list[tuple[str, str]] = []
        self.overlapped: set[int] = set()
        self.same_group_overlaps: list[tuple[str, str]] = []

    def visit(self, group: str, body: str) -> None:
        with self._condition:
            number = len(self.order)
            self.order.append((group, body))
            for other, other_group in self._active.items():
                if other_group == group:
                    self.same_group_overlaps.append((group, body))
                else:
                    self.overlapped.update({number, other})
            self._active[number] = group
            self._condition.notify_all()
            self._condition.wait_for(lambda: number in self.overlapped, timeout=MEET_TIMEOUT_S)
            del self._active[number]


@pytest.fixture(scope="module")
def boto_session() -> boto3.session.Session:
    return boto3.session.Session(
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
        region_name=REGION,
    )


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, boto_session: boto3.session.Session) -> Iterator[Aws]:
    fake_aws_env(monkeypatch, REGION)
    with mock_aws():
        yield Aws(boto_session)


@pytest.fixture
def traces() -> list[TraceEvent]:
    return []


@pytest.fixture
def make_runtime(
    traces: list[TraceEvent], boto_session: boto3.session.Session
) -> Iterator[Callable[..., Runtime]]:
    created: list[Runtime] = []

    def make(deployed: Any, **options: Any) -> Runtime:
        runtime = Runtime(deployed, session=boto_session, on_event=traces.append, **options)
        created.append(runtime)
        return runtime

    yield make
    for runtime in created:
        runtime.close()


@pytest.fixture
def sync_point(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType(SYNC_MODULE)
    monkeypatch.setitem(sys.modules, SYNC_MODULE, module)
    return module


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    root = tmp_path / "asset"
    (root / "race_pkg").mkdir(parents=True)
    (root / "race_pkg" / "__init__.py").write_text("")
    (root / "race_pkg" / "handler.py").write_text(textwrap.dedent(HANDLER_PY))
    return root


def in_flight(traces: list[TraceEvent], function: str) -> int:
    """The most invocations of ``function`` between their ``invoke`` and ``result`` traces."""
    current = peak = 0
    for trace in traces:
        if trace.function != function:
            continue
        if trace.kind == "invoke":
            current += 1
            peak = max(peak, current)
        elif trace.kind == "result":
            current -= 1
    return peak


def test_two_batches_of_one_function_run_at_once_in_separate_environments(
    aws: Aws,
    code_dir: Path,
    sync_point: types.ModuleType,
    make_runtime: Callable[..., Runtime],
    traces: list[TraceEvent],
) -> None:
    sync_point.POINT = meeting = Meeting(parties=2)
    queue = aws.queue("orders")
    fn = function(code_dir, "Worker", "race_pkg.handler.meet")
    runtime = make_runtime(
        deployment([fn], [sqs_route(queue, "Worker", batch_size=1)]), concurrency=2
    )
    # Two deliveries of the same order (standard queues deliver at least once).
    body = json.dumps({"orderId": "o-1", "event": "created"})
    aws.send(queue[0], body, body)

    report = runtime.pump()

    # Both were in the handler before either left it: they met at the barrier.
    assert [entry[0] for entry in meeting.log] == ["enter", "enter", "exit", "exit"]
    assert [entry[3] for entry in meeting.log if entry[0] == "exit"] == [True, True]
    environments = {entry[2] for entry in meeting.log if entry[0] == "enter"}
    threads = {entry[3] for entry in meeting.log if entry[0] == "enter"}
    assert len(environments) == 2  # module globals are not shared between the two
    assert len(threads) == 2
    assert in_flight(traces, "Worker") == 2
    results = [t.invocation for t in kinds(traces, "result") if t.invocation is not None]
    assert [r.ok for r in results] == [True, True]
    assert [r.cold_start for r in results] == [True, True]  # one new environment each
    assert (report.invocations, report.records_processed, report.records_failed) == (2, 2, 0)
    assert report.functions["Worker"].invocations == 2
    assert aws.depth(queue[0]) == 0
    assert not kinds(traces, "warning", "retry")


def test_fifo_groups_run_in_parallel_but_a_group_never_overlaps_itself(
    aws: Aws,
    code_dir: Path,
    sync_point: types.ModuleType,
    make_runtime: Callable[..., Runtime],
    traces: list[TraceEvent],
) -> None:
    sync_point.POINT = watch = GroupWatch()
    queue = aws.queue("orders.fifo", fifo=True)
    fn = function(code_dir, "Worker", "race_pkg.handler.by_group")
    route = sqs_route(queue, "Worker", batch_size=1, fifo=True)
    # More slots than groups: only the message groups limit what runs at once.
    runtime = make_runtime(deployment([fn], [route]), concurrency=3)
    for body, group in [("a1", "A"), ("a2", "A"), ("a3", "A"), ("b1", "B"), ("b2", "B")]:
        aws.send(queue[0], body, group=group)
    aws.send(queue[0], "b3", group="B")

    report = runtime.pump()

    assert watch.same_group_overlaps == []
    assert [body for group, body in watch.order if group == "A"] == ["a1", "a2", "a3"]
    assert [body for group, body in watch.order if group == "B"] == ["b1", "b2", "b3"]
    # Every visit overlapped one of the other group: A and B ran side by side.
    assert watch.overlapped == set(range(6))
    assert in_flight(traces, "Worker") == 2
    assert report.records_processed == 6
    assert aws.depth(queue[0]) == 0
    assert not kinds(traces, "warning", "retry")


def test_a_concurrent_invocation_can_invoke_a_function_synchronously(
    aws: Aws,
    code_dir: Path,
    sync_point: types.ModuleType,
    make_runtime: Callable[..., Runtime],
    traces: list[TraceEvent],
) -> None:
    """Lambda ``Invoke`` from a handler of a concurrent batch runs the other function in that
    invocation's thread (the pump, waiting for the batches, does not block it)."""
    sync_point.POINT = meeting = Meeting(parties=2)
    queue = aws.queue("orders")
    caller = function(code_dir, "Caller", "race_pkg.handler.calls_other")
    echo = function(code_dir, "Echo", "race_pkg.handler.echo")
    route = sqs_route(queue, "Caller", batch_size=1)
    runtime = make_runtime(deployment([caller, echo], [route]), concurrency=2)
    aws.send(queue[0], "m1", "m2")

    report = runtime.pump()

    assert [entry[3] for entry in meeting.log if entry[0] == "exit"] == [True, True]
    echoes = sorted(entry[1]["echo"] for entry in meeting.log if entry[0] == "echo")
    assert echoes == ["m1", "m2"]
    assert report.functions["Caller"].invocations == 2
    assert report.functions["Echo"].invocations == 2
    assert aws.depth(queue[0]) == 0


@pytest.mark.parametrize(
    ("reserved", "maximum", "expected"),
    [(None, None, 3), (1, None, 1), (None, 2, 2), (2, 3, 2)],
    ids=["uncapped", "reserved-1", "scaling-max-2", "reserved-2-of-max-3"],
)
def test_reserved_concurrency_and_maximum_concurrency_cap_the_batches_at_once(
    aws: Aws,
    code_dir: Path,
    sync_point: types.ModuleType,
    make_runtime: Callable[..., Runtime],
    traces: list[TraceEvent],
    reserved: int | None,
    maximum: int | None,
    expected: int,
) -> None:
    queue = aws.queue("orders")
    fn = function(code_dir, "Worker", "race_pkg.handler.plain", reserved_concurrency=reserved)
    route = sqs_route(queue, "Worker", batch_size=1, maximum_concurrency=maximum)
    runtime = make_runtime(deployment([fn], [route]), concurrency=3)
    aws.send(queue[0], *[f"m{n}" for n in range(6)])

    report = runtime.pump()

    assert in_flight(traces, "Worker") == expected
    assert report.records_processed == 6
    assert aws.depth(queue[0]) == 0


def test_reserved_concurrency_zero_throttles_the_function(
    aws: Aws,
    code_dir: Path,
    sync_point: types.ModuleType,
    make_runtime: Callable[..., Runtime],
    traces: list[TraceEvent],
) -> None:
    queue = aws.queue("orders")
    fn = function(code_dir, "Worker", "race_pkg.handler.plain", reserved_concurrency=0)
    runtime = make_runtime(deployment([fn], [sqs_route(queue, "Worker")]))
    aws.send(queue[0], "m1")

    report = runtime.pump()

    assert report.invocations == 0
    assert aws.depth(queue[0]) == 1
    [warning] = kinds(traces, "warning")
    assert "ReservedConcurrentExecutions 0" in warning.details["problem"]


def test_default_concurrency_runs_one_invocation_at_a_time(
    aws: Aws,
    code_dir: Path,
    sync_point: types.ModuleType,
    make_runtime: Callable[..., Runtime],
    traces: list[TraceEvent],
) -> None:
    queue = aws.queue("orders")
    fn = function(code_dir, "Worker", "race_pkg.handler.plain")
    runtime = make_runtime(deployment([fn], [sqs_route(queue, "Worker", batch_size=1)]))
    aws.send(queue[0], "m1", "m2", "m3")

    runtime.pump()

    assert in_flight(traces, "Worker") == 1
    assert len(kinds(traces, "result")) == 3


def test_concurrency_below_one_is_refused(
    aws: Aws, code_dir: Path, make_runtime: Callable[..., Runtime]
) -> None:
    fn = function(code_dir, "Worker", "race_pkg.handler.plain")
    with pytest.raises(ValueError, match="concurrency"):
        make_runtime(deployment([fn]), concurrency=0)


# ---------------------------------------------------------------------------------------------
# The real order pipeline handler


def _order_pipeline_asset(tmp_path: Path) -> Path:
    """lambdas/order_pipeline staged as CDK bundles it: the handler package with its own
    copy of the handler kit next to it (so each environment has a private kit)."""
    asset = tmp_path / "order_pipeline_asset"
    shutil.copytree(
        ROOT / "lambdas" / "order_pipeline" / "order_pipeline", asset / "order_pipeline"
    )
    shutil.copytree(ROOT / "lambdas" / "handler_kit" / "handler_kit", asset / "handler_kit")
    return asset


def test_order_pipeline_applies_an_order_once_when_two_copies_race(
    aws: Aws, tmp_path: Path, make_runtime: Callable[..., Runtime], traces: list[TraceEvent]
) -> None:
    _race_two_copies_of_an_order(aws, tmp_path, make_runtime, traces)


def test_order_pipeline_race_against_a_moto_server(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    boto_session: boto3.session.Session,
    traces: list[TraceEvent],
) -> None:
    """The same race with the handlers' calls served by a moto server's threads."""
    fake_aws_env(monkeypatch, REGION)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    created: list[Runtime] = []

    def make(deployed: Any, **options: Any) -> Runtime:
        runtime = Runtime(
            deployed,
            session=boto_session,
            endpoint_url=endpoint,
            on_event=traces.append,
            **options,
        )
        created.append(runtime)
        return runtime

    try:
        _race_two_copies_of_an_order(
            Aws(boto_session, endpoint_url=endpoint), tmp_path, make, traces
        )
    finally:
        for runtime in created:
            runtime.close()
        server.stop()


def _race_two_copies_of_an_order(
    aws: Aws, tmp_path: Path, make_runtime: Callable[..., Runtime], traces: list[TraceEvent]
) -> None:
    aws.dynamodb.create_table(
        TableName="orders",
        KeySchema=[{"AttributeName": "orderId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "orderId", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    queue = aws.queue("orders.fifo", fifo=True)
    fn = function(
        _order_pipeline_asset(tmp_path),
        "OrderPipeline",
        "order_pipeline.handler.handler",
        {
            "ORDERS_TABLE": "orders",
            "POWERTOOLS_SERVICE_NAME": "order-pipeline",
            "POWERTOOLS_METRICS_NAMESPACE": "Conveyor",
        },
    )
    route = sqs_route(
        queue, "OrderPipeline", batch_size=1, fifo=True, report_batch_item_failures=True
    )
    runtime = make_runtime(deployment([fn], [route]), concurrency=2)
    order = {
        "orderId": "o-1",
        "customerId": "c-1",
        "event": "created",
        "items": [{"sku": "A", "quantity": 2, "unitPrice": 9.5}],
        "total": 19.0,
        "currency": "EUR",
    }
    # Two copies of one order in two message groups (a producer that resent it with another
    # group): SQS FIFO does not keep them apart, two environments process them at once.
    ids = [
        aws.sqs.send_message(
            QueueUrl=queue[0],
            MessageBody=json.dumps(order),
            MessageGroupId=group,
            MessageDeduplicationId=f"copy-{n}",
        )["MessageId"]
        for n, group in enumerate(["c-1", "c-1-resent"])
    ]

    # Both conditional writes reach DynamoDB at the same moment.
    with runtime.faults.rendezvous("dynamodb", "PutItem", parties=2) as race:
        report = runtime.pump()

    assert race.fired == 2, race.calls
    items = aws.dynamodb.scan(TableName="orders")["Items"]
    assert len(items) == 1
    assert items[0]["status"] == {"S": "created"}
    assert items[0]["version"] == {"N": "1"}
    assert items[0]["lastMessageId"]["S"] in ids
    results = [t.invocation for t in kinds(traces, "result") if t.invocation is not None]
    assert [r.ok for r in results] == [True, True]
    metrics = [m for r in results for m in r.metrics]
    assert _metric_total(metrics, "OrdersCreated") == 1
    assert _metric_total(metrics, "DuplicatesIgnored") == 1
    # Each invocation flushed its own metrics (Powertools' metric set is per environment).
    assert sorted(len(r.metrics) for r in results) == [1, 1]
    assert report.records_processed == 2
    assert aws.depth(queue[0]) == 0
    assert not kinds(traces, "retry", "dead-letter")
    # The functions' environments stayed in their threads.
    assert "ORDERS_TABLE" not in os.environ
    assert "AWS_ENDPOINT_URL" not in os.environ
