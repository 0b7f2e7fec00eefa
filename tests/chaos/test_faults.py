"""The public fault-injection API (conveyor.sandbox.faults) on a real topology: each fault
really fires on the calls it names, and only on those. Expected outcomes come from SQS/Lambda
semantics: a throttled write fails its record, which SQS delivers again; a lost delete brings
the message back with the same message id; a crash fails the whole batch."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import moto
import pytest

from conveyor.sandbox.deployer import deploy
from conveyor.sandbox.faults import POISON, SandboxCrash
from conveyor.sandbox.model import REGION
from conveyor.sandbox.runtime import Runtime
from conveyor.sandbox.scenarios import stack_for
from conveyor.sandbox.traces import TraceEvent
from tests.support.aws import fake_aws_env


class Pipeline:
    def __init__(self, outdir: Path) -> None:
        self.session = boto3.session.Session(region_name=REGION)
        self.deployment = deploy(
            outdir, session=self.session, stack_names=["Conveyor-test-OrderPipeline"]
        )
        self.events: list[TraceEvent] = []
        self.runtime = Runtime(self.deployment, session=self.session, on_event=self.events.append)
        self.stack = stack_for(self.deployment, "OrderPipeline")
        self.sqs = self.session.client("sqs")
        self.dynamodb = self.session.client("dynamodb")
        self.queue = self.stack.outputs["QueueUrl"]
        route = next(r for r in self.stack.routes if r.queue_url == self.queue)
        self.function = route.function_logical_id

    def send(self, order: str, customer: str = "c-1") -> str:
        body = {
            "orderId": order,
            "customerId": customer,
            "event": "created",
            "items": [{"sku": "A", "quantity": 1, "unitPrice": 5}],
            "total": 5,
            "currency": "EUR",
        }
        return str(
            self.sqs.send_message(
                QueueUrl=self.queue,
                MessageBody=json.dumps(body),
                MessageGroupId=customer,
                MessageDeduplicationId=f"{order}-created",
            )["MessageId"]
        )

    def version(self, order: str) -> int | None:
        item = self.dynamodb.get_item(
            TableName=self.stack.outputs["OrdersTableName"], Key={"orderId": {"S": order}}
        ).get("Item")
        return int(item["version"]["N"]) if item else None

    def kinds(self, kind: str) -> list[TraceEvent]:
        return [e for e in self.events if e.kind == kind]


@pytest.fixture
def pipeline(synthesized, monkeypatch) -> Iterator[Pipeline]:
    fake_aws_env(monkeypatch)
    with moto.mock_aws():
        box = Pipeline(Path(synthesized["outdir"]))
        yield box
        box.runtime.close()


def test_a_throttled_write_fails_its_record_once_and_the_redelivery_applies_it(pipeline):
    pipeline.send("o-1")
    with pipeline.runtime.faults.throttle(
        "dynamodb", "PutItem", times=1, function=pipeline.function
    ) as fault:
        report = pipeline.runtime.pump()
    assert fault.fired == 1
    assert fault.calls == ["PutItem"]
    assert report.records_failed == 1  # the handler saw the throttling error
    assert pipeline.version("o-1") == 1  # SQS delivered it again; applied once
    logs = " ".join(r.invocation.stdout for r in pipeline.kinds("result") if r.invocation)
    assert "ProvisionedThroughputExceededException" in logs


def test_a_throttle_on_another_function_or_operation_does_not_fire(pipeline):
    pipeline.send("o-2")
    with (
        pipeline.runtime.faults.throttle("dynamodb", "PutItem", function="SomeOtherFn") as other,
        pipeline.runtime.faults.throttle("dynamodb", "DeleteTable") as unused,
    ):
        report = pipeline.runtime.pump()
    assert (other.fired, unused.fired) == (0, 0)
    assert report.records_failed == 0
    assert pipeline.version("o-2") == 1


def test_the_fault_is_gone_after_its_block(pipeline):
    with pipeline.runtime.faults.throttle("dynamodb", "PutItem", times=None) as fault:
        pass
    pipeline.send("o-3")
    pipeline.runtime.pump()
    assert fault.fired == 0
    assert pipeline.version("o-3") == 1


def test_a_lost_delete_brings_the_message_back_with_the_same_message_id(pipeline):
    message_id = pipeline.send("o-4")
    with pipeline.runtime.faults.lose_deletes(pipeline.queue, times=1) as fault:
        pipeline.runtime.pump()
    assert fault.fired == 1
    received = [e for e in pipeline.kinds("receive") if message_id in e.message_ids]
    assert len(received) == 2  # delivered, delete lost, delivered again
    assert pipeline.version("o-4") == 1  # the redelivery is a duplicate, not a second write
    depth = pipeline.sqs.get_queue_attributes(
        QueueUrl=pipeline.queue,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert sum(int(v) for v in depth.values()) == 0  # the second delete went through


def test_a_lost_delete_on_another_queue_does_not_fire(pipeline):
    pipeline.send("o-5")
    with pipeline.runtime.faults.lose_deletes("no-such-queue") as fault:
        pipeline.runtime.pump()
    assert fault.fired == 0
    assert len(pipeline.kinds("receive")) == 1


def test_a_crash_after_the_first_write_fails_the_whole_batch(pipeline):
    for n in range(3):
        pipeline.send(f"o-6{n}")  # one message group: one batch, in order
    with pipeline.runtime.faults.crash_after(
        pipeline.function, calls=1, operations={"PutItem"}
    ) as fault:
        pipeline.runtime.pump()
    assert fault.fired == 1
    crashed = [r for r in pipeline.kinds("result") if r.invocation and r.invocation.error]
    assert [r.invocation.error.type for r in crashed if r.invocation and r.invocation.error] == [
        SandboxCrash.__name__
    ]
    # the batch came back; the first order's effect stayed and was not applied twice
    assert [pipeline.version(f"o-6{n}") for n in range(3)] == [1, 1, 1]


def test_the_poison_catalogue_is_sendable_to_sqs():
    valid = {"orderId": "o-1", "event": "created"}
    bodies = {kind: make(valid) for kind, make in POISON.items()}
    assert set(bodies) >= {"not JSON", "wrong types", "unknown type", "oversized", "missing fields"}
    assert all(0 < len(body.encode()) <= 262_144 for body in bodies.values())  # SQS limit
    assert len(bodies["oversized"].encode()) > 200_000
    with pytest.raises(json.JSONDecodeError):
        json.loads(bodies["not JSON"])


class _Running:
    """What Faults asks of the function running now: its spec's names."""

    class spec:
        logical_id = name = arn = "Fn"


def _faults_on(client):
    from conveyor.sandbox.faults import Faults

    faults = Faults(lambda: _Running(), sqs=None)
    faults.install(client.meta.events)
    return faults


@pytest.mark.parametrize(
    ("service", "operation", "call", "code"),
    [
        # botocore names these clients' call events eventbridge.* and sfn.*
        (
            "events",
            "PutEvents",
            lambda c: c.put_events(Entries=[{"Source": "s", "DetailType": "d", "Detail": "{}"}]),
            "ThrottlingException",
        ),
        (
            "stepfunctions",
            "ListStateMachines",
            lambda c: c.list_state_machines(),
            "ThrottlingException",
        ),
    ],
)
def test_a_throttle_named_by_client_name_fires_on_that_clients_calls(
    monkeypatch, service, operation, call, code
):
    from botocore.exceptions import ClientError

    fake_aws_env(monkeypatch)
    with moto.mock_aws():
        client = boto3.client(service, region_name=REGION)
        faults = _faults_on(client)
        with faults.throttle(service, operation) as fault, pytest.raises(ClientError) as error:
            call(client)
    assert error.value.response["Error"]["Code"] == code
    assert fault.fired == 1


def test_a_throttle_after_n_calls_lets_the_first_n_through(monkeypatch):
    from botocore.exceptions import ClientError

    fake_aws_env(monkeypatch)
    with moto.mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        faults = _faults_on(client)
        with faults.throttle("dynamodb", "ListTables", after=2) as fault:
            client.list_tables()
            client.list_tables()
            with pytest.raises(ClientError) as error:
                client.list_tables()
            client.list_tables()  # times=1: spent
    assert error.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    assert (fault.fired, fault.calls) == (1, ["ListTables"])
