"""The Accounts topology through the sandbox: the synthesized stack deployed into moto, the
API's Lambda proxy integration invoked with API Gateway events, the event store's stream
delivered by the DynamoDB Streams poller to the projection and the outbox, the bus to the
subscribers. Expected values come from the course's example and the commands sent here."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import moto
import pytest
from botocore.config import Config

from conveyor.sandbox import lambda_events
from conveyor.sandbox.accounts import AccountsDemo
from conveyor.sandbox.deployer import deploy
from conveyor.sandbox.model import REGION
from conveyor.sandbox.runtime import Runtime
from conveyor.sandbox.scenarios import stack_for
from conveyor.sandbox.traces import TraceEvent

STACK = "Conveyor-test-Accounts"


@pytest.fixture
def accounts(synthesized, monkeypatch) -> Iterator[tuple[AccountsDemo, list[TraceEvent]]]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    with moto.mock_aws():
        session = boto3.session.Session(region_name=REGION)
        deployment = deploy(Path(synthesized["outdir"]), session=session, stack_names=[STACK])
        stack = stack_for(deployment, "Accounts")
        traces: list[TraceEvent] = []
        with Runtime(deployment, session=session, on_event=traces.append) as runtime:

            def client(service: str) -> Any:
                return session.client(service, region_name=REGION)

            yield AccountsDemo(client, stack.outputs.__getitem__, runtime, stack=STACK), traces


def opened(demo: AccountsDemo, owner: str = "Alice") -> str:
    answer = demo.open(owner)
    assert answer.status == 201
    return str(answer.body["accountId"])


def test_the_courses_account_goes_0_100_70_in_the_store_and_the_read_model(accounts):
    demo, _ = accounts
    account = opened(demo)
    assert demo.deposit(account, 100).body["balance"] == 100
    demo.runtime.pump()
    assert demo.balance(account).body["balance"] == 100

    withdrawn = demo.withdraw(account, 30)
    demo.runtime.pump()

    assert (withdrawn.status, withdrawn.body["balance"], withdrawn.body["version"]) == (200, 70, 3)
    assert [(v, t, d.get("amount")) for v, t, d in demo.stored_events(account)] == [
        (1, "CompteCréé", None),
        (2, "DépôtEffectué", 100),
        (3, "RetraitEffectué", 30),
    ]
    assert demo.balance(account).body == {
        "accountId": account,
        "balance": 70,
        "status": "OPEN",
        "version": 3,
    }


def test_insufficient_funds_are_refused_by_the_aggregate_and_nothing_is_appended(accounts):
    demo, _ = accounts
    account = opened(demo)
    demo.deposit(account, 100)

    refused = demo.withdraw(account, 101)

    assert (refused.status, refused.body["error"]) == (422, "InsufficientFunds")
    assert len(demo.stored_events(account)) == 2


def test_a_concurrent_withdrawal_loses_the_optimistic_concurrency_race(accounts):
    """Two clients read the account at version 2 (balance 100) and withdraw 70 and 50: the
    first append wins; the second, on the stale version, is a 409 and appends nothing."""
    demo, _ = accounts
    account = opened(demo)
    demo.deposit(account, 100)

    first = demo.withdraw(account, 70, expectedVersion=2)
    second = demo.withdraw(account, 50, expectedVersion=2)

    assert (first.status, second.status, second.body["error"]) == (200, 409, "ConcurrencyConflict")
    assert [t for _, t, _ in demo.stored_events(account)][-1] == "RetraitEffectué"
    assert len(demo.stored_events(account)) == 3
    demo.runtime.pump()
    assert demo.balance(account).body["balance"] == 30


def test_bad_commands_are_answered_400_or_404_without_an_event(accounts):
    demo, _ = accounts
    account = opened(demo)
    assert demo.deposit(account, 0).status == 400
    assert demo.deposit("no-such-account", 5).status == 404
    malformed = demo.call(
        "CommandsFunctionName",
        "POST",
        f"/accounts/{account}/deposits",
        "/accounts/{accountId}/deposits",
        body="{not json",
        account_id=account,
    )
    assert malformed.status == 400
    assert len(demo.stored_events(account)) == 1


def test_a_rebuild_from_the_store_gives_the_live_projection(accounts):
    demo, _ = accounts
    alice, bob = opened(demo, "Alice"), opened(demo, "Bob")
    for amount in (100, 20):
        demo.deposit(alice, amount)
    demo.withdraw(alice, 30)
    demo.deposit(bob, 5)
    demo.runtime.pump()

    assert demo.rebuild()["accounts"] == 2
    assert demo.read_model("RebuildTableName") == demo.read_model()
    assert demo.read_model() == {alice: (90, 4), bob: (5, 2)}


def test_out_of_order_and_duplicate_stream_records_give_the_same_balance(accounts):
    """The projection invoked with the account's stream records reversed and repeated (what
    a retried or reordered delivery looks like) holds the fold of the events."""
    demo, _ = accounts
    account = opened(demo)
    demo.deposit(account, 100)
    demo.withdraw(account, 30)
    records = _stream_records(demo)
    shuffled = [records[2], records[0], records[2], records[1], records[0]]

    result = _invoke_projection(demo, shuffled)

    assert result == {"batchItemFailures": []}
    assert demo.read_model()[account] == (70, 3)
    demo.runtime.pump()  # the mapping delivers the same records again: all duplicates
    assert demo.read_model()[account] == (70, 3)


def test_a_poison_event_goes_to_the_failure_queues_and_the_stream_moves_on(accounts):
    demo, traces = accounts
    account = opened(demo)
    dynamodb = demo.client("dynamodb")
    dynamodb.put_item(  # an item that is not an event of the store (data is not JSON)
        TableName=demo.output("EventStoreTableName"),
        Item={
            "aggregateId": {"S": "poison"},
            "version": {"N": "1"},
            "type": {"S": "DépôtEffectué"},
            "schemaVersion": {"N": "1"},
            "data": {"S": "{not json"},
            "eventId": {"S": "e-poison"},
            "correlationId": {"S": "c-poison"},
            "recordedAt": {"S": "2026-12-02T00:00:00Z"},
        },
    )
    demo.deposit(account, 40)
    demo.runtime.pump()

    assert demo.read_model()[account] == (40, 2)
    assert demo.queue_depth("ProjectionFailureQueueUrl") == 1
    assert demo.queue_depth("OutboxFailureQueueUrl") == 1
    sqs = demo.client("sqs")
    message = sqs.receive_message(QueueUrl=demo.output("ProjectionFailureQueueUrl"))["Messages"][0]
    info = json.loads(message["Body"])["DDBStreamBatchInfo"]
    # ReportBatchItemFailures: retried from the poison record to the end of its batch (the
    # deposit after it, already applied, is a duplicate on each retry), then given up on.
    assert info["batchSize"] == 2
    poison_sequence = next(
        t.message_ids[0]
        for t in traces
        if t.kind == "on-failure" and t.function and "Balances" in t.function
    )
    assert info["startSequenceNumber"] == poison_sequence
    assert any(t.kind == "on-failure" for t in traces)


def test_subscribers_notify_and_audit_each_event_once_even_when_it_is_published_twice(accounts):
    demo, _ = accounts
    inbox = demo.subscribe_sms()
    account = opened(demo)
    demo.deposit(account, 100)
    demo.runtime.pump()
    stored = demo.client("dynamodb").get_item(
        TableName=demo.output("EventStoreTableName"),
        Key={"aggregateId": {"S": account}, "version": {"N": "2"}},
    )["Item"]
    from conveyor.lambdas.handler_kit.handler_kit import event_store

    again = event_store.from_item(stored).as_json()
    demo.client("events").put_events(  # what an outbox retry republishes
        Entries=[
            {
                "EventBusName": demo.output("EventBusName"),
                "Source": "conveyor.accounts",
                "DetailType": "DépôtEffectué",
                "Detail": json.dumps(again, ensure_ascii=False),
            }
        ]
    )
    demo.runtime.pump()

    assert demo.sms(inbox) == ["Deposit of 100 received.", "Welcome Alice: your account is open."]
    assert demo.audited() == [(account, 1, "CompteCréé"), (account, 2, "DépôtEffectué")]


def _stream_records(demo: AccountsDemo) -> list[dict[str, Any]]:
    streams = demo.client("dynamodb").describe_table(TableName=demo.output("EventStoreTableName"))[
        "Table"
    ]["LatestStreamArn"]
    client = boto3.client(
        "dynamodbstreams", region_name=REGION, config=Config(account_id_endpoint_mode="disabled")
    )
    shard = client.describe_stream(StreamArn=streams)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = client.get_shard_iterator(
        StreamArn=streams, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    return [
        lambda_events.dynamodb_stream_record(r, stream_arn=streams, region=REGION)
        for r in client.get_records(ShardIterator=iterator)["Records"]
    ]


def _invoke_projection(demo: AccountsDemo, records: list[dict[str, Any]]) -> Any:
    stack = demo.runtime.deployment.stacks[STACK]
    (projection,) = [
        spec.logical_id
        for spec in stack.functions.values()
        if spec.handler == "accounts.projection.handler"
    ]
    result = demo.runtime.invoke(projection, {"Records": records}, stack=STACK)
    assert result.error is None, result.error
    return result.response
