"""The sandbox's Kinesis shard poller, against Lambda's documented Kinesis mapping semantics
(bisect on error, ReportBatchItemFailures checkpointing, bounded retries and record age,
on-failure destinations, order per shard). Deployments are built by hand: a moto stream,
and tiny handlers written to ``tmp_path`` that log every record they are given."""

from __future__ import annotations

import base64
import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from conveyor.constructs.stream_consumer import fetch_failed_records
from conveyor.sandbox.model import (
    ACCOUNT_ID,
    REGION,
    DeployedStack,
    Deployment,
    FunctionSpec,
    Route,
)
from conveyor.sandbox.runtime import Runtime, TraceEvent
from conveyor.sandbox.sources import Delivery, EventSource
from conveyor.sandbox.sources.eventbridge import EventBridgeTargetSource
from conveyor.sandbox.sources.kinesis import KinesisShardPoller
from conveyor.sandbox.sources.sns import SnsSubscriptionSource
from conveyor.sandbox.sources.sqs import SqsPoller

STACK = "Sandbox"
STREAM = "readings"
STREAM_ARN = f"arn:aws:kinesis:{REGION}:{ACCOUNT_ID}:stream/{STREAM}"

HANDLERS_PY = '''
import base64
import json
import os


def _log(event, context, failed):
    with open(os.environ["PROBE_LOG"], "a") as log:
        for r in event["Records"]:
            data = base64.b64decode(r["kinesis"]["data"]).decode()
            log.write(json.dumps({
                "request": context.aws_request_id,
                "shard": r["eventID"].split(":")[0],
                "sequence": r["kinesis"]["sequenceNumber"],
                "data": data,
                "batch": len(event["Records"]),
                "ok": data not in failed,
            }) + "\\n")


def _poison(event):
    return [
        r for r in event["Records"]
        if base64.b64decode(r["kinesis"]["data"]).decode().startswith("poison")
    ]


def raising(event, context):
    """Fails the whole invocation when the batch holds a poison record."""
    poison = _poison(event)
    _log(event, context, {base64.b64decode(r["kinesis"]["data"]).decode() for r in poison})
    if poison:
        raise RuntimeError("poison in the batch")


def partial(event, context):
    """Reports the poison records in batchItemFailures."""
    poison = _poison(event)
    _log(event, context, {base64.b64decode(r["kinesis"]["data"]).decode() for r in poison})
    failures = [{"itemIdentifier": r["kinesis"]["sequenceNumber"]} for r in poison]
    return {"batchItemFailures": failures}
'''


class Probe:
    def __init__(self, log: Path) -> None:
        self.log = log

    def entries(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.session.Session]:
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield boto3.session.Session(region_name=REGION)


@pytest.fixture
def probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Probe:
    package = tmp_path / "asset" / "kinesis_probe"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "handler.py").write_text(textwrap.dedent(HANDLERS_PY))
    return Probe(tmp_path / "probe.jsonl")


def stream(session: boto3.session.Session, shards: int = 1) -> Any:
    kinesis = session.client("kinesis")
    kinesis.create_stream(StreamName=STREAM, ShardCount=shards)
    return kinesis


def put(kinesis: Any, *data: str, key: str = "device-1") -> list[str]:
    return [
        kinesis.put_record(StreamName=STREAM, PartitionKey=key, Data=d.encode())["SequenceNumber"]
        for d in data
    ]


def deployment(probe: Probe, handler: str, **route: Any) -> Deployment:
    spec = FunctionSpec(
        logical_id="Consumer",
        name="sandbox-Consumer",
        arn=f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:sandbox-Consumer",
        handler=f"kinesis_probe.handler.{handler}",
        code_dir=probe.log.parent / "asset",
        environment={"PROBE_LOG": str(probe.log)},
        timeout_s=30,
        runtime="python3.14",
    )
    options: dict[str, Any] = {
        "batch_size": 10,
        "report_batch_item_failures": True,
        "starting_position": "TRIM_HORIZON",
        "mapping_id": "mapping-1",
    }
    options.update(route)
    mapping = Route(
        kind="kinesis",
        source="ConsumerMapping",
        queue_url=f"kinesis:stream/{STREAM}",
        queue_arn=STREAM_ARN,
        function_logical_id="Consumer",
        **options,
    )
    stack = DeployedStack(name=STACK, template={}, functions={"Consumer": spec}, routes=[mapping])
    return Deployment(stacks={STACK: stack})


def runtime(
    deployed: Deployment, session: boto3.session.Session, traces: list[TraceEvent], **poller: Any
) -> Runtime:
    def kinesis_source(delivery: Delivery) -> EventSource:
        return KinesisShardPoller(delivery, **poller)

    return Runtime(
        deployed,
        session=session,
        on_event=traces.append,
        event_sources=(SqsPoller, SnsSubscriptionSource, EventBridgeTargetSource, kinesis_source),
    )


def failure_queue(session: boto3.session.Session) -> tuple[str, str]:
    sqs = session.client("sqs")
    url = sqs.create_queue(QueueName="stream-failures")["QueueUrl"]
    return url, f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:stream-failures"


def drain(session: boto3.session.Session, url: str) -> list[dict[str, Any]]:
    sqs = session.client("sqs")
    bodies = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def test_bisect_isolates_a_poison_record_mid_batch_and_the_rest_is_processed_in_order(
    session, probe
):
    """GIVEN 8 records with a poison one 4th, a handler that fails the whole invocation, bisect
    on and 2 retries WHEN delivered THEN every good record succeeds, first successes in shard
    order, the poison record alone is retried and then sent alone to the failure queue."""
    kinesis = stream(session)
    data = ["r0", "r1", "r2", "poison", "r4", "r5", "r6", "r7"]
    sequences = put(kinesis, *data)
    url, arn = failure_queue(session)
    deployed = deployment(
        probe, "raising", bisect_batch_on_error=True, max_retry_attempts=2, on_failure_arn=arn
    )
    traces: list[TraceEvent] = []
    with runtime(deployed, session, traces) as rt:
        rt.pump()
    entries = probe.entries()
    first_success: list[str] = []
    for entry in entries:
        if entry["ok"] and entry["data"] != "poison" and entry["data"] not in first_success:
            first_success.append(entry["data"])
    assert first_success == [d for d in data if d != "poison"]
    alone = [e for e in entries if e["data"] == "poison" and e["batch"] == 1]
    assert len(alone) == 1 + 2  # the first try alone, then 2 retries
    (failure,) = drain(session, url)
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert failure["requestContext"]["approximateInvokeCount"] == 3
    info = failure["KinesisBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == (
        sequences[3],
        sequences[3],
        1,
    )
    assert info["streamArn"] == STREAM_ARN
    assert failure["responseContext"]["functionError"] == "Unhandled"
    # The records a queue destination leaves out are fetched back from the stream.
    (fetched,) = fetch_failed_records(kinesis, failure)
    assert (fetched["sequenceNumber"], fetched["data"]) == (sequences[3], "poison")


def test_batch_item_failures_checkpoint_before_the_lowest_failed_record(session, probe):
    """GIVEN 5 records, the 3rd reported failed, no retries WHEN delivered THEN the first
    invocation has all 5, nothing before the failed one is delivered again, and the failed
    record and those after it go to the destination."""
    kinesis = stream(session)
    sequences = put(kinesis, "r0", "r1", "poison", "r3", "r4")
    url, arn = failure_queue(session)
    deployed = deployment(probe, "partial", max_retry_attempts=0, on_failure_arn=arn)
    with runtime(deployed, session, []) as rt:
        rt.pump()
    entries = probe.entries()
    assert [e["data"] for e in entries] == ["r0", "r1", "poison", "r3", "r4"]
    (failure,) = drain(session, url)
    info = failure["KinesisBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"]) == (sequences[2], sequences[4])
    assert "responseContext" not in failure  # the invocation succeeded: a partial failure


def test_retries_exhausted_write_the_records_to_an_s3_destination(session, probe):
    """GIVEN a poison record and an S3 on-failure destination WHEN retries are exhausted THEN
    one object under aws/lambda/<mapping>/<shard>/ holds the invocation record and the event
    with the records themselves; the shard moves on to the next record."""
    kinesis = stream(session)
    s3 = session.client("s3")
    s3.create_bucket(Bucket="failures")
    put(kinesis, "poison-1")
    deployed = deployment(
        probe, "partial", max_retry_attempts=1, on_failure_arn="arn:aws:s3:::failures"
    )
    with runtime(deployed, session, []) as rt:
        rt.pump()
        put(kinesis, "after")
        rt.pump()
    (obj,) = s3.list_objects_v2(Bucket="failures")["Contents"]
    assert obj["Key"].startswith("aws/lambda/mapping-1/shardId-000000000000/")
    body = json.loads(s3.get_object(Bucket="failures", Key=obj["Key"])["Body"].read())
    assert body["requestContext"]["condition"] == "RetryAttemptsExhausted"
    records = json.loads(body["payload"])["Records"]
    assert [base64.b64decode(r["kinesis"]["data"]) for r in records] == [b"poison-1"]
    assert [e["data"] for e in probe.entries()] == ["poison-1", "poison-1", "after"]


def test_records_older_than_the_maximum_age_skip_to_the_destination_uninvoked(session, probe):
    """GIVEN a mapping with a 60 s maximum record age and a clock 2 minutes later WHEN
    delivered THEN the records go to the destination (RecordAgeExceeded), never invoked."""
    import time

    kinesis = stream(session)
    put(kinesis, "old-1", "old-2")
    url, arn = failure_queue(session)
    deployed = deployment(probe, "partial", max_record_age_s=60, on_failure_arn=arn)
    with runtime(deployed, session, [], now=lambda: time.time() + 120) as rt:
        rt.pump()
    assert probe.entries() == []
    (failure,) = drain(session, url)
    assert failure["requestContext"]["condition"] == "RecordAgeExceeded"
    assert failure["KinesisBatchInfo"]["batchSize"] == 2


def test_order_holds_per_shard_and_traces_name_the_shard(session, probe):
    """GIVEN two shards and interleaved records of many keys WHEN delivered THEN each shard's
    records arrive in sequence order, and each receive trace names its shard."""
    kinesis = stream(session, shards=2)
    sent: dict[str, list[str]] = {}
    for n in range(20):
        response = kinesis.put_record(
            StreamName=STREAM, PartitionKey=f"k{n}", Data=f"r{n}".encode()
        )
        sent.setdefault(response["ShardId"], []).append(response["SequenceNumber"])
    assert len(sent) == 2  # the keys spread over both shards
    traces: list[TraceEvent] = []
    with runtime(deployment(probe, "partial"), session, traces) as rt:
        rt.pump()
    delivered: dict[str, list[str]] = {}
    for entry in probe.entries():
        delivered.setdefault(entry["shard"], []).append(entry["sequence"])
    assert delivered == sent
    shards = {t.details["shard"] for t in traces if t.kind == "receive"}
    assert shards == set(sent)


def test_replay_from_a_timestamp_redelivers_the_records_put_since(session, probe):
    """GIVEN records delivered WHEN the mapping is replayed from a time between two puts THEN
    only the records put after that time are delivered again."""
    import time

    kinesis = stream(session)
    put(kinesis, "before")
    time.sleep(0.05)
    middle = time.time()
    time.sleep(0.05)
    put(kinesis, "after-1", "after-2")
    with runtime(deployment(probe, "partial"), session, []) as rt:
        rt.pump()
        source = rt.source("kinesis")
        assert isinstance(source, KinesisShardPoller)
        source.replay(STACK, "ConsumerMapping", middle)
        rt.pump()
    assert [e["data"] for e in probe.entries()] == [
        "before",
        "after-1",
        "after-2",
        "after-1",
        "after-2",
    ]


def test_firehose_objects_decompress_to_the_records_sent_in_shard_order(session):
    """GIVEN a delivery stream reading the stream into S3 with GZIP and a date prefix WHEN
    records are put and the round is idle THEN one object per buffer, under the evaluated
    prefix, decompresses to the records' data as sent."""
    import gzip
    from datetime import UTC, datetime

    from conveyor.sandbox.sources.firehose import FirehoseDelivery

    kinesis = stream(session)
    s3 = session.client("s3")
    s3.create_bucket(Bucket="archive")
    sent = [f'{{"n": {n}}}\n'.encode() for n in range(25)]
    for data in sent:
        kinesis.put_record(StreamName=STREAM, PartitionKey="k", Data=data)
    route = Route(
        kind="firehose",
        source="Archive",
        queue_url="firehose:archive",
        queue_arn=STREAM_ARN,
        function_logical_id="",
        options={
            "name": "archive",
            "bucket": "archive",
            "prefix": "readings/!{timestamp:yyyy/MM/dd}/",
            "error_prefix": "errors/",
            "compression": "GZIP",
            "size_mib": 5,
            "interval_s": 60,
            "kms_key": None,
        },
    )
    deployed = Deployment(stacks={STACK: DeployedStack(name=STACK, template={}, routes=[route])})
    rt = Runtime(deployed, session=session, event_sources=(FirehoseDelivery,))
    with rt:
        rt.pump()
        kinesis.put_record(StreamName=STREAM, PartitionKey="k", Data=b"later\n")
        rt.pump()
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="archive")["Contents"])
    assert len(keys) == 2  # one object per buffer: the first 25 records, then the later one
    today = datetime.now(UTC).strftime("%Y/%m/%d")
    assert all(k.startswith(f"readings/{today}/archive-1-") and k.endswith(".gz") for k in keys)
    bodies = [gzip.decompress(s3.get_object(Bucket="archive", Key=k)["Body"].read()) for k in keys]
    assert sorted(bodies) == sorted([b"".join(sent), b"later\n"])


def test_firehose_writes_a_buffer_when_its_interval_has_elapsed(session):
    """GIVEN a delivery stream with IntervalInSeconds 120 and a buffer far below SizeInMBs WHEN
    a record is put THEN the object is written 120 s (sandbox time) after the record was
    buffered, not when the round goes idle."""
    import time

    from conveyor.sandbox.sources.firehose import FirehoseDelivery

    kinesis = stream(session)
    s3 = session.client("s3")
    s3.create_bucket(Bucket="archive")
    interval = 120
    route = Route(
        kind="firehose",
        source="Archive",
        queue_url="firehose:archive",
        queue_arn=STREAM_ARN,
        function_logical_id="",
        options={
            "name": "archive",
            "bucket": "archive",
            "prefix": "readings/",
            "error_prefix": "errors/",
            "compression": "UNCOMPRESSED",
            "size_mib": 5,
            "interval_s": interval,
            "kms_key": None,
        },
    )
    deployed = Deployment(stacks={STACK: DeployedStack(name=STACK, template={}, routes=[route])})
    events = []
    with Runtime(
        deployed, session=session, event_sources=(FirehoseDelivery,), on_event=events.append
    ) as rt:
        put = time.time()
        kinesis.put_record(StreamName=STREAM, PartitionKey="k", Data=b"one\n")
        rt.pump()
    (deliver,) = [e for e in events if e.kind == "deliver"]
    assert deliver.timestamp - put >= interval
    assert deliver.details["reason"] == "buffering interval elapsed"
    (only,) = s3.list_objects_v2(Bucket="archive")["Contents"]
    assert s3.get_object(Bucket="archive", Key=only["Key"])["Body"].read() == b"one\n"
