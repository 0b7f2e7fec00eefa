"""The broker topologies deployed by the sandbox against the real local brokers (Debian's
RabbitMQ and tansu, started once per session): the course's routing table, a poison message
redelivered then dead-lettered by the broker, order per key across partitions, a duplicate
booking notified once, Lambda's event shapes, correlation ids in the consumers' logs."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import moto
import pytest

from conveyor.lambdas.tours.tours import contract
from conveyor.sandbox.clock import sandbox_clock
from conveyor.sandbox.deployer import deploy
from conveyor.sandbox.model import Deployment
from conveyor.sandbox.runtime import Runtime, TraceEvent
from conveyor.sandbox.scenarios import ToursKafka, ToursRabbitMq, tour_booking
from conveyor.sandbox.sources.base import Delivery
from tests.conftest import require_broker
from tests.support.aws import fake_aws_env

RABBIT = "Conveyor-test-ToursRabbitMQ"
KAFKA = "Conveyor-test-ToursKafka"

# The course (exercise 1 and its bonus): notification_queue is bound with tour.booked and
# tour.booked.*; tour.cancelled has no queue.
ROUTING_TABLE = {
    "tour.booked": True,
    "tour.booked.premium": True,
    "tour.booked.standard": True,
    "tour.cancelled": False,
}


class World:
    def __init__(self, deployment: Deployment, runtime: Runtime, events: list[TraceEvent]):
        self.deployment = deployment
        self.runtime = runtime
        self.events = events
        self.session = boto3.session.Session()
        self.rabbit = ToursRabbitMq(deployment, runtime, self.session)
        self.kafka = ToursKafka(deployment, runtime, self.session)
        self.invocations: list[tuple[str, Any]] = []  # (function logical id, event)

    def queue_depth(self, queue: str) -> int:
        channel = self.rabbit._channel()
        try:
            return int(channel.queue_declare(queue, passive=True).method.message_count)
        finally:
            channel.connection.close()

    def results(self, stack: str) -> list[Any]:
        return [
            e.invocation
            for e in self.events
            if e.kind == "result" and e.stack == stack and e.invocation is not None
        ]


@pytest.fixture(scope="module")
def world(synthesized: dict[str, Any], local_brokers: Any) -> Iterator[World]:
    require_broker(local_brokers, "rabbitmq", "kafka")
    events: list[TraceEvent] = []
    with pytest.MonkeyPatch.context() as patch:
        fake_aws_env(patch)
        invocations: list[tuple[str, Any]] = []
        original = Delivery.invoke

        def recording(self: Delivery, target: Any, event: Any, **kwargs: Any) -> Any:
            invocations.append((target.spec.logical_id, json.loads(json.dumps(event))))
            return original(self, target, event, **kwargs)

        patch.setattr(Delivery, "invoke", recording)
        with moto.mock_aws():
            deployment = deploy(
                Path(synthesized["outdir"]), stack_names=[RABBIT, KAFKA], brokers=local_brokers
            )
            with Runtime(deployment, on_event=events.append) as runtime:
                world = World(deployment, runtime, events)
                world.invocations = invocations
                yield world


def test_the_course_routing_table_on_the_real_broker(world: World) -> None:
    observed = {}
    for number, key in enumerate(ROUTING_TABLE):
        before = world.queue_depth(contract.NOTIFICATION_QUEUE)
        answer = world.rabbit.post(tour_booking(f"route-{number}", eventType=key), f"c-{number}")
        after = world.queue_depth(contract.NOTIFICATION_QUEUE)
        observed[key] = (answer.get("routed"), after - before)
        world.runtime.pump()
    assert observed == {key: (bound, int(bound)) for key, bound in ROUTING_TABLE.items()}


def test_the_wildcard_matches_one_word_only(world: World) -> None:
    before = world.queue_depth(contract.NOTIFICATION_QUEUE)
    world.rabbit.publish_raw(b"{}", routing_key="tour.booked.premium.vip")  # * is one word
    assert world.queue_depth(contract.NOTIFICATION_QUEUE) == before


def test_a_poison_message_is_redelivered_then_dead_lettered_by_the_broker(world: World) -> None:
    before = world.queue_depth(contract.DEAD_LETTER_QUEUE)
    world.invocations.clear()
    world.rabbit.publish_raw(b"not json at all", routing_key="tour.booked")
    report = world.runtime.pump()

    deliveries = [
        event["rmqMessagesByQueue"][f"{contract.NOTIFICATION_QUEUE}::/"][0]
        for function, event in world.invocations
        if "rmqMessagesByQueue" in event
    ]
    assert [base64.b64decode(d["data"]) for d in deliveries] == [b"not json at all"] * (
        contract.DELIVERY_LIMIT + 1
    )
    assert [d["redelivered"] for d in deliveries] == [False] + [True] * contract.DELIVERY_LIMIT
    assert report.records_failed == contract.DELIVERY_LIMIT + 1
    assert world.queue_depth(contract.DEAD_LETTER_QUEUE) == before + 1
    assert world.queue_depth(contract.NOTIFICATION_QUEUE) == 0


def test_the_rabbitmq_event_has_lambdas_shape(world: World) -> None:
    world.invocations.clear()
    world.rabbit.post(tour_booking("shape-1"), "corr-shape")
    world.runtime.pump()
    (event,) = [e for _, e in world.invocations if "rmqMessagesByQueue" in e]
    assert event["eventSource"] == "aws:rmq"
    assert event["eventSourceArn"] == world.rabbit.output("BrokerArn")
    (message,) = event["rmqMessagesByQueue"]["notification_queue::/"]
    properties = message["basicProperties"]
    assert properties["deliveryMode"] == 2
    assert properties["correlationId"] == "corr-shape"
    assert properties["headers"]["eventType"] == {"bytes": list(b"tour.booked")}
    assert json.loads(base64.b64decode(message["data"]))["bookingId"] == "shape-1"


def test_a_duplicate_booking_is_notified_once_on_both_brokers(world: World) -> None:
    for scenario in (world.rabbit, world.kafka):
        for attempt in range(3):
            scenario.post(tour_booking("dup-1"), f"corr-dup-{attempt}")
            world.runtime.pump()
        assert scenario.sends("dup-1") == 1, scenario.topology


def test_order_per_booking_holds_across_the_three_partitions(world: World) -> None:
    bookings = [f"order-{n}" for n in range(8)]
    steps = ("tour.booked", "tour.booked.premium", "tour.cancelled")
    partitions: dict[str, set[int]] = {b: set() for b in bookings}
    for step in steps:  # interleaved: every booking's first event, then every second...
        for booking in bookings:
            answer = world.kafka.post(tour_booking(booking, eventType=step), f"c-{booking}")
            partitions[booking].add(int(answer["partition"]))
    world.invocations.clear()
    world.runtime.pump()

    assert all(len(p) == 1 for p in partitions.values())
    assert len(set().union(*partitions.values())) == contract.PARTITIONS
    assert {b: world.kafka.history(b) for b in bookings} == {b: list(steps) for b in bookings}
    records = [
        record
        for _, event in world.invocations
        if event.get("eventSource") == "aws:kafka"
        for key, batch in event["records"].items()
        for record in batch
    ]
    for key, batch in (
        (k, b) for _, e in world.invocations if "records" in e for k, b in e["records"].items()
    ):
        offsets = [r["offset"] for r in batch]
        assert offsets == sorted(offsets), key
        assert key == f"{contract.TOPIC}-{batch[0]['partition']}"
    first = records[0]
    assert base64.b64decode(first["key"]).decode().startswith("order-")
    headers = {k: bytes(v).decode() for h in first["headers"] for k, v in h.items()}
    assert headers["eventType"] == "tour.booked"
    assert headers["correlationId"].startswith("c-order-")


def test_a_poison_record_goes_to_the_on_failure_queue_after_the_retries(world: World) -> None:
    world.kafka.produce_raw(b"{broken", key=b"poison-1")
    report = world.runtime.pump()
    assert report.on_failure == 1
    messages = (
        world.kafka.client("sqs")
        .receive_message(QueueUrl=world.kafka.output("FailureQueueUrl"), MaxNumberOfMessages=10)
        .get("Messages", [])
    )
    bodies = [json.loads(m["Body"]) for m in messages]
    failure = next(
        b for b in bodies if b["requestContext"]["condition"] == "RetryAttemptsExhausted"
    )
    assert failure["requestContext"]["approximateInvokeCount"] == 4  # 1 + 3 retries
    (info,) = failure["KafkaBatchInfo"]["recordsInfo"].values()
    assert info["firstRecordOffset"] == info["lastRecordOffset"]


def _failure_conditions(world: World) -> list[str]:
    messages = (
        world.kafka.client("sqs")
        .receive_message(QueueUrl=world.kafka.output("FailureQueueUrl"), MaxNumberOfMessages=10)
        .get("Messages", [])
    )
    return [json.loads(m["Body"])["requestContext"]["condition"] for m in messages]


def test_a_kafka_record_produced_after_the_sandbox_clock_jumped_hours_is_delivered(
    world: World,
) -> None:
    """librdkafka stamps records on the real clock; the sandbox clock runs hours ahead after a
    jump. A fresh record is still fresh: the mapping's MaximumRecordAgeInSeconds (1 h, the
    construct's default) must not send it to the on-failure queue."""
    clock = sandbox_clock()
    clock.advance_to(clock.now() + 2 * 3600)
    world.kafka.post(tour_booking("after-jump"), "corr-after-jump")
    report = world.runtime.pump()
    assert world.kafka.sends("after-jump") == 1
    assert report.on_failure == 0
    assert "RecordAgeExceeded" not in _failure_conditions(world)


def test_a_kafka_record_left_waiting_past_its_maximum_age_goes_to_the_on_failure_queue(
    world: World,
) -> None:
    """A record that waits longer than MaximumRecordAgeInSeconds before a poll (here: the
    sandbox clock jumps 2 h between the produce and the pump) is skipped, unprocessed, to the
    on-failure destination with condition RecordAgeExceeded, as Lambda documents it."""
    world.kafka.post(tour_booking("too-old"), "corr-too-old")
    clock = sandbox_clock()
    clock.advance_to(clock.now() + 2 * 3600)
    report = world.runtime.pump()
    assert world.kafka.sends("too-old") == 0
    assert report.on_failure == 1
    assert "RecordAgeExceeded" in _failure_conditions(world)


def test_the_consumers_log_every_line_with_the_producers_correlation_id(world: World) -> None:
    world.events.clear()
    world.rabbit.post(tour_booking("corr-r"), "corr-rabbit-1")
    world.kafka.post(tour_booking("corr-k"), "corr-kafka-1")
    world.runtime.pump()
    for stack, expected in ((RABBIT, "corr-rabbit-1"), (KAFKA, "corr-kafka-1")):
        lines = [line for result in world.results(stack) for line in result.logs]
        assert lines, stack
        assert {line.get("correlation_id") for line in lines} == {expected}, stack


def test_a_broker_user_whose_password_starts_with_a_dash_is_created(local_brokers: Any) -> None:
    """Generated secrets may start with "-": rabbitmqctl must not read it as an option."""
    from conveyor.sandbox.brokers import RABBITMQ

    require_broker(local_brokers, RABBITMQ)
    server = local_brokers.rabbitmq
    server.ctl("add_user", "--", "dash-user", "-h20v|g5xrkk")
    server.ctl("change_password", "--", "dash-user", "-other|pw")
    assert "dash-user" in server.ctl("list_users")
