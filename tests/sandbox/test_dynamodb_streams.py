"""The sandbox's DynamoDB Streams poller, against Lambda's documented DynamoDB Streams mapping
semantics (the shard-poller seam it shares with Kinesis): FilterCriteria, bisect on error,
ReportBatchItemFailures checkpointing, bounded retries and record age, the on-failure
destination's ``DDBStreamBatchInfo``. A moto table with a stream, and a tiny handler written
to ``tmp_path`` that logs every record it is given."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

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
from conveyor.sandbox.sources.dynamodb_streams import DynamoDBStreamPoller

STACK = "Sandbox"
TABLE = "events"

HANDLERS_PY = """
import json
import os


def _log(event, context):
    with open(os.environ["PROBE_LOG"], "a") as log:
        for r in event["Records"]:
            log.write(json.dumps({
                "request": context.aws_request_id,
                "sequence": r["dynamodb"]["SequenceNumber"],
                "name": r["dynamodb"]["NewImage"]["name"]["S"],
                "source": r["eventSource"],
                "arn": r["eventSourceARN"],
                "created": r["dynamodb"]["ApproximateCreationDateTime"],
            }) + "\\n")


def raising(event, context):
    _log(event, context)
    if any(r["dynamodb"]["NewImage"]["name"]["S"] == "poison" for r in event["Records"]):
        raise RuntimeError("poison in the batch")


def partial(event, context):
    _log(event, context)
    return {"batchItemFailures": [
        {"itemIdentifier": r["dynamodb"]["SequenceNumber"]}
        for r in event["Records"] if r["dynamodb"]["NewImage"]["name"]["S"] == "poison"
    ]}
"""


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
def probe(tmp_path: Path) -> Path:
    package = tmp_path / "asset" / "ddb_probe"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "handler.py").write_text(textwrap.dedent(HANDLERS_PY))
    return tmp_path / "probe.jsonl"


def entries(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def table(session: boto3.session.Session) -> tuple[Any, str]:
    dynamodb = session.client("dynamodb")
    description = dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )["TableDescription"]
    return dynamodb, description["LatestStreamArn"]


def write(dynamodb: Any, *names: str, kind: str = "Event") -> None:
    for index, name in enumerate(names):
        dynamodb.put_item(
            TableName=TABLE,
            Item={"id": {"S": f"{name}-{index}"}, "name": {"S": name}, "kind": {"S": kind}},
        )


def deployment(log: Path, stream_arn: str, handler: str, **route: Any) -> Deployment:
    spec = FunctionSpec(
        logical_id="Projector",
        name="sandbox-Projector",
        arn=f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:sandbox-Projector",
        handler=f"ddb_probe.handler.{handler}",
        code_dir=log.parent / "asset",
        environment={"PROBE_LOG": str(log)},
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
        kind="dynamodb-streams",
        source="ProjectorMapping",
        queue_url=f"dynamodb:{TABLE}",
        queue_arn=stream_arn,
        function_logical_id="Projector",
        **options,
    )
    stack = DeployedStack(name=STACK, template={}, functions={"Projector": spec}, routes=[mapping])
    return Deployment(stacks={STACK: stack})


def runtime(
    deployed: Deployment, session: boto3.session.Session, traces: list[TraceEvent], **poller: Any
) -> Runtime:
    def source(delivery: Delivery) -> EventSource:
        return DynamoDBStreamPoller(delivery, **poller)

    return Runtime(deployed, session=session, on_event=traces.append, event_sources=(source,))


def failure_queue(session: boto3.session.Session) -> tuple[str, str]:
    url = session.client("sqs").create_queue(QueueName="stream-failures")["QueueUrl"]
    return url, f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:stream-failures"


def drain(session: boto3.session.Session, url: str) -> list[dict[str, Any]]:
    sqs = session.client("sqs")
    bodies = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def test_records_arrive_in_lambdas_dynamodb_event_shape_in_stream_order(session, probe):
    dynamodb, arn = table(session)
    write(dynamodb, "a", "b", "c")
    with runtime(deployment(probe, arn, "raising"), session, []) as rt:
        rt.pump()

    seen = entries(probe)
    assert [e["name"] for e in seen] == ["a", "b", "c"]
    assert {(e["source"], e["arn"]) for e in seen} == {("aws:dynamodb", arn)}
    assert all(isinstance(e["created"], float) for e in seen)  # epoch seconds, as Lambda sends
    assert [int(e["sequence"]) for e in seen] == sorted(int(e["sequence"]) for e in seen)


def test_a_poison_record_is_bisected_out_retried_then_sent_alone_to_the_on_failure_queue(
    session, probe
):
    dynamodb, arn = table(session)
    write(dynamodb, "r0", "r1", "poison", "r3", "r4")
    url, queue_arn = failure_queue(session)
    deployed = deployment(
        probe,
        arn,
        "raising",
        bisect_batch_on_error=True,
        max_retry_attempts=2,
        on_failure_arn=queue_arn,
    )
    traces: list[TraceEvent] = []
    with runtime(deployed, session, traces) as rt:
        rt.pump()
        rt.pump()  # nothing left: the checkpoint moved past the poison record
    (failure,) = drain(session, url)

    info = failure["DDBStreamBatchInfo"]
    poison_sequence = next(e["sequence"] for e in entries(probe) if e["name"] == "poison")
    assert (info["startSequenceNumber"], info["endSequenceNumber"]) == (
        poison_sequence,
        poison_sequence,
    )
    assert (info["batchSize"], info["streamArn"]) == (1, arn)
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert failure["requestContext"]["approximateInvokeCount"] == 3  # 1 + 2 retries
    good = {e["name"] for e in entries(probe) if e["name"] != "poison"}
    assert good == {"r0", "r1", "r3", "r4"}
    assert any(t.kind == "retry" and t.details.get("bisected") for t in traces)


def test_batch_item_failures_retry_from_the_lowest_failed_sequence(session, probe):
    dynamodb, arn = table(session)
    write(dynamodb, "r0", "poison", "r2")
    url, queue_arn = failure_queue(session)
    deployed = deployment(probe, arn, "partial", max_retry_attempts=1, on_failure_arn=queue_arn)
    with runtime(deployed, session, []) as rt:
        rt.pump()

    names = [e["name"] for e in entries(probe)]
    # first batch: all three; the retry starts at the poison record (r0 checkpointed)
    assert names == ["r0", "poison", "r2", "poison", "r2"]
    (failure,) = drain(session, url)
    assert failure["DDBStreamBatchInfo"]["batchSize"] == 2  # poison and what followed it


def test_filter_criteria_drop_records_before_the_function_is_invoked(session, probe):
    dynamodb, arn = table(session)
    write(dynamodb, "kept-1", kind="Wanted")
    write(dynamodb, "other", kind="Other")
    write(dynamodb, "kept-2", kind="Wanted")
    pattern = json.dumps(
        {"eventName": ["INSERT"], "dynamodb": {"NewImage": {"kind": {"S": ["Wanted"]}}}}
    )
    traces: list[TraceEvent] = []
    with runtime(deployment(probe, arn, "raising", filters=(pattern,)), session, traces) as rt:
        rt.pump()
        dynamodb.update_item(  # a MODIFY of a wanted item: not an INSERT, filtered out
            TableName=TABLE,
            Key={"id": {"S": "kept-1-0"}},
            UpdateExpression="SET #n = :n",
            ExpressionAttributeNames={"#n": "name"},
            ExpressionAttributeValues={":n": {"S": "modified"}},
        )
        rt.pump()

    assert [e["name"] for e in entries(probe)] == ["kept-1", "kept-2"]
    filtered = [t for t in traces if t.kind == "filter"]
    assert sum(t.details["records"] for t in filtered) == 2  # "other" and the MODIFY


def test_records_older_than_the_maximum_age_skip_to_the_on_failure_queue(session, probe):
    dynamodb, arn = table(session)
    write(dynamodb, "old")
    url, queue_arn = failure_queue(session)
    deployed = deployment(probe, arn, "raising", max_record_age_s=60, on_failure_arn=queue_arn)
    later = __import__("time").time() + 3600
    with runtime(deployed, session, [], now=lambda: later) as rt:
        rt.pump()

    assert entries(probe) == []
    (failure,) = drain(session, url)
    assert failure["requestContext"]["condition"] == "RecordAgeExceeded"


def test_a_mapping_starting_at_latest_skips_what_the_stream_already_held(session, probe):
    dynamodb, arn = table(session)
    write(dynamodb, "before")
    with runtime(deployment(probe, arn, "raising", starting_position="LATEST"), session, []) as rt:
        rt.pump()
        write(dynamodb, "after")
        rt.pump()

    assert [e["name"] for e in entries(probe)] == ["after"]
