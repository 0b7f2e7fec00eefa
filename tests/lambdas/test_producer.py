"""The handler kit's Kinesis producer: partition-key strategy and PutRecords retries."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from handler_kit.producer import (
    MAX_RECORDS_PER_CALL,
    Entry,
    PutRecordsProducer,
    partition_key,
)

from tests.support.aws import REGION, fake_aws_env, mocked_aws


def test_a_per_entity_key_is_the_entity_id():
    assert partition_key("device-7") == "device-7"


def test_a_spread_key_takes_one_of_n_suffixes_stable_for_a_salt():
    keys = {partition_key("hot", spread=4, salt=f"reading-{n}") for n in range(200)}
    assert keys == {"hot#0", "hot#1", "hot#2", "hot#3"}
    assert partition_key("hot", spread=4, salt="r-1") == partition_key("hot", spread=4, salt="r-1")


@pytest.mark.parametrize(
    ("entity", "spread", "message"),
    [("", 1, "entity_id must not be empty"), ("d", 0, "spread must be at least 1")],
)
def test_invalid_keys_are_rejected(entity, spread, message):
    with pytest.raises(ValueError, match=message):
        partition_key(entity, spread=spread)


class FlakyKinesis:
    """put_records answering ProvisionedThroughputExceeded for the given data, ``times`` times."""

    def __init__(self, failing: set[bytes], times: int) -> None:
        self.failing, self.times = failing, times
        self.calls: list[list[bytes]] = []
        self.failures: dict[bytes, int] = {}

    def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append([r["Data"] for r in Records])
        answers = []
        for n, record in enumerate(Records):
            data = record["Data"]
            if data in self.failing and self.failures.get(data, 0) < self.times:
                self.failures[data] = self.failures.get(data, 0) + 1
                answers.append({"ErrorCode": "ProvisionedThroughputExceededException"})
            else:
                answers.append({"SequenceNumber": f"{len(self.calls)}{n:04d}", "ShardId": "s"})
        failed = sum(1 for a in answers if "ErrorCode" in a)
        return {"FailedRecordCount": failed, "Records": answers}


def producer(client: Any, sleeps: list[float], **options: Any) -> PutRecordsProducer:
    return PutRecordsProducer(
        lambda: client, "readings", sleep=sleeps.append, jitter=lambda: 1.0, **options
    )


def test_only_the_failed_entries_are_retried_with_exponential_backoff():
    client = FlakyKinesis({b"b", b"d"}, times=2)
    sleeps: list[float] = []
    entries = [Entry("k", d) for d in (b"a", b"b", b"c", b"d")]
    result = producer(client, sleeps, base_delay_s=0.1).put(entries)
    assert client.calls == [[b"a", b"b", b"c", b"d"], [b"b", b"d"], [b"b", b"d"]]
    assert sleeps == [0.1, 0.2]  # jitter 1.0: the cap of each full-jitter interval
    assert sorted(result.sequence_numbers) == [0, 1, 2, 3]
    assert result.failed == []


def test_the_delay_is_jittered_below_a_capped_exponential():
    p = PutRecordsProducer(lambda: None, "s", base_delay_s=0.1, max_delay_s=0.5, jitter=lambda: 0.5)
    assert [p.delay(n) for n in range(5)] == [0.05, 0.1, 0.2, 0.25, 0.25]


def test_entries_that_still_fail_are_returned_with_their_error():
    client = FlakyKinesis({b"x"}, times=99)
    result = producer(client, [], max_attempts=3).put([Entry("k", b"x"), Entry("k", b"y")])
    assert [(i, e.data, code) for i, e, code in result.failed] == [
        (0, b"x", "ProvisionedThroughputExceededException")
    ]
    assert list(result.sequence_numbers) == [1]
    assert result.attempts == 3


def test_large_inputs_are_split_at_the_api_limit():
    client = FlakyKinesis(set(), times=0)
    entries = [Entry("k", str(n).encode()) for n in range(MAX_RECORDS_PER_CALL + 1)]
    producer(client, []).put(entries)
    assert [len(c) for c in client.calls] == [MAX_RECORDS_PER_CALL, 1]


@pytest.fixture
def kinesis(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    fake_aws_env(monkeypatch)
    session = boto3.session.Session()
    with mocked_aws(session):
        client = session.client("kinesis", region_name=REGION)
        client.create_stream(StreamName="readings", ShardCount=2)
        yield client


def test_records_reach_a_moto_stream_with_their_keys(kinesis):
    entries = [Entry(partition_key("d-1"), b"1"), Entry(partition_key("d-2"), b"2")]
    result = PutRecordsProducer(lambda: kinesis, "readings").put(entries)
    assert result.failed == []
    assert len(result.sequence_numbers) == 2
