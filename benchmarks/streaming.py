"""Streaming benchmarks (issue 13), ratios in the same run:

- shard balance: 10,000 readings of 10 devices, 70 % from one hot device, put on a 4-shard
  on-demand stream (moto maps keys to shards by MD5, as Kinesis does) with the per-entity key
  vs the spread key (``partition_key(device, spread=8, salt=reading id)``): max/mean records
  per shard for each strategy;
- stream throughput: readings through the sandbox (PutRecords, then the shard poller invokes
  the telemetry handler in-process) vs the same handler called directly with Lambda-shaped
  Kinesis events of the same batch size, both against moto DynamoDB; median of interleaved
  runs, ratio direct / sandbox.

Run as ``python -m benchmarks.streaming [cdk.out]`` (prints JSON) or through ``make bench``.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import statistics
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
READINGS = 10_000
DEVICES = 10
HOT_SHARE = 0.7
SPREAD = 8
THROUGHPUT_READINGS = 1_000
THROUGHPUT_RUNS = 3

sys.path.insert(0, str(ROOT / "lambdas" / "handler_kit"))


def _readings(prefix: str, count: int, devices: int = DEVICES) -> list[tuple[str, str, bytes]]:
    """(device, reading id, data): ``HOT_SHARE`` of them from device 0."""
    out = []
    hot = int(count * HOT_SHARE)
    for n in range(count):
        device = f"{prefix}-0" if n < hot else f"{prefix}-{1 + n % (devices - 1)}"
        data = {"deviceId": device, "value": n % 50, "readAt": "2026-12-02T10:00:00Z"}
        out.append((device, f"{prefix}-r{n}", json.dumps(data).encode()))
    return out


def shard_balance() -> dict[str, Any]:
    import boto3
    from handler_kit.producer import Entry, PutRecordsProducer, partition_key
    from moto import mock_aws

    results: dict[str, Any] = {"readings": READINGS, "devices": DEVICES, "hot_share": HOT_SHARE}
    with mock_aws():
        kinesis = boto3.client("kinesis", region_name="us-east-1")
        for name, spread in (("per-device key", 1), (f"spread key (×{SPREAD})", SPREAD)):
            stream = f"balance-{spread}"
            kinesis.create_stream(StreamName=stream, StreamModeDetails={"StreamMode": "ON_DEMAND"})
            shards = [s["ShardId"] for s in kinesis.list_shards(StreamName=stream)["Shards"]]
            entries = [
                Entry(partition_key(device, spread=spread, salt=reading), data)
                for device, reading, data in _readings("dev", READINGS)
            ]
            result = PutRecordsProducer(lambda: kinesis, stream).put(entries)
            counts: Counter[str] = Counter(dict.fromkeys(shards, 0))
            for shard in shards:
                iterator = kinesis.get_shard_iterator(
                    StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
                while True:
                    page = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
                    counts[shard] += len(page["Records"])
                    if not page["Records"]:
                        break
                    iterator = page["NextShardIterator"]
            per_shard = [counts[s] for s in shards]
            mean = sum(per_shard) / len(per_shard)
            results[name] = {
                "per_shard": per_shard,
                "max": max(per_shard),
                "mean": mean,
                "max_over_mean": max(per_shard) / mean,
                "failed": len(result.failed),
            }
    return results


def throughput(assembly: Path) -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    from conveyor.sandbox import lambda_events
    from conveyor.sandbox.deployer import deploy
    from conveyor.sandbox.execution import LambdaContext
    from conveyor.sandbox.model import REGION
    from conveyor.sandbox.runtime import Runtime
    from conveyor.sandbox.scenarios import stack_for

    sink = open(os.devnull, "w")  # noqa: SIM115 - handler output is discarded
    with mock_aws():
        session = boto3.session.Session(region_name=REGION)
        names = [n for n in _stack_names(assembly) if n.endswith("-Telemetry")]
        deployment = deploy(assembly, session=session, stack_names=names)
        stack = stack_for(deployment, "Telemetry")
        runtime = Runtime(deployment, session=session)
        route = next(r for r in stack.routes if r.kind == "kinesis")
        spec = stack.functions[route.function_logical_id]
        kinesis = session.client("kinesis")
        stream = stack.outputs["StreamName"]
        saved = dict(os.environ)
        os.environ.update(spec.environment)
        sys.path.insert(0, str(spec.code_dir))
        module_name, _, function_name = spec.handler.rpartition(".")
        with contextlib.redirect_stdout(sink):
            handler = getattr(importlib.import_module(module_name), function_name)
        os.environ.clear()
        os.environ.update(saved)
        counter = iter(range(1_000_000))

        def sandbox(count: int) -> float:
            readings = _readings(f"s{next(counter)}", count)
            started = time.perf_counter()
            for start in range(0, count, 500):
                kinesis.put_records(
                    StreamName=stream,
                    Records=[
                        {"PartitionKey": d, "Data": data}
                        for d, _, data in readings[start : start + 500]
                    ],
                )
            report = runtime.pump()
            elapsed = time.perf_counter() - started
            # The stream has two consumers: the function and the Firehose delivery stream, and
            # report.records_processed counts both; the comparison with direct calls is the
            # function's own records.
            stats = report.functions.get(route.function_logical_id)
            handled = stats.records - stats.records_failed if stats else 0
            if handled != count:
                raise RuntimeError(f"sandbox: the function handled {handled} of {count} records")
            return count / elapsed

        def direct(count: int) -> float:
            readings = _readings(f"d{next(counter)}", count)
            now = datetime.now(UTC)
            records = [
                lambda_events.kinesis_record(
                    {
                        "SequenceNumber": str(n + 1),
                        "PartitionKey": device,
                        "Data": data,
                        "ApproximateArrivalTimestamp": now,
                    },
                    shard_id="shardId-000000000000",
                    stream_arn=route.queue_arn,
                    region=REGION,
                    role_arn="arn:aws:iam::123456789012:role/bench",
                )
                for n, (device, _, data) in enumerate(readings)
            ]
            batches = [records[i : i + route.batch_size] for i in range(0, count, route.batch_size)]
            environ = dict(os.environ)
            # As Lambda sets them: the handler's lazily created clients need a region.
            os.environ.update(spec.environment, AWS_REGION=REGION, AWS_DEFAULT_REGION=REGION)
            try:
                with contextlib.redirect_stdout(sink):
                    started = time.perf_counter()
                    for batch in batches:
                        context = LambdaContext(
                            function_name=spec.name,
                            invoked_function_arn=spec.arn,
                            memory_limit_in_mb=256,
                            aws_request_id=str(uuid.uuid4()),
                            log_group_name=f"/aws/lambda/{spec.name}",
                            log_stream_name="bench",
                            timeout_s=spec.timeout_s,
                        )
                        response = handler({"Records": batch}, context)
                        if response.get("batchItemFailures"):
                            raise RuntimeError(f"direct: failures {response}")
                    elapsed = time.perf_counter() - started
            finally:
                os.environ.clear()
                os.environ.update(environ)
            return count / elapsed

        ways = {"direct": direct, "sandbox": sandbox}
        for way in ways.values():
            way(100)  # warm-up
        samples: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(THROUGHPUT_RUNS):
            for name, way in ways.items():
                samples[name].append(way(THROUGHPUT_READINGS))
        runtime.close()
    medians = {name: statistics.median(v) for name, v in samples.items()}
    return {
        "readings": THROUGHPUT_READINGS,
        "runs": THROUGHPUT_RUNS,
        "batch_size": route.batch_size,
        **medians,
        "samples": samples,
        "direct_over_sandbox": medians["direct"] / medians["sandbox"],
    }


def _stack_names(assembly: Path) -> list[str]:
    from conveyor.sandbox.assembly import read_assembly

    return [stack.name for stack in read_assembly(assembly).stacks]


def section(assembly: Path) -> list[str]:
    """The Markdown section for ``benchmarks/results.md``."""
    balance = shard_balance()
    speed = throughput(assembly)
    lines = [
        "",
        "## Streaming: shard balance of the partition-key strategies",
        "",
        f"{balance['readings']:,} readings of {balance['devices']} devices, "
        f"{balance['hot_share']:.0%} from one hot device, on a 4-shard on-demand stream "
        "(moto: shard = MD5 of the key, as Kinesis).",
        "",
        "| strategy | records per shard | max | mean | max / mean |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for name, figures in balance.items():
        if isinstance(figures, dict):
            lines.append(
                f"| {name} | {', '.join(map(str, figures['per_shard']))} | {figures['max']} "
                f"| {figures['mean']:.0f} | {figures['max_over_mean']:.2f} |"
            )
    lines += [
        "",
        "## Streaming: sandbox stream throughput vs the handler called directly",
        "",
        f"{speed['readings']:,} readings a run, batches of {speed['batch_size']}, median of "
        f"{speed['runs']} interleaved runs; both write the aggregates to moto DynamoDB.",
        "",
        "| way | readings/s | ratio to direct |",
        "| --- | ---: | ---: |",
        f"| telemetry handler called directly | {speed['direct']:.0f} | 1.00 |",
        f"| sandbox: PutRecords + shard poller + handler | {speed['sandbox']:.0f} "
        f"| {speed['sandbox'] / speed['direct']:.2f} |",
    ]
    return lines


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "cdk.out"
    print(json.dumps({"balance": shard_balance(), "throughput": throughput(target)}, indent=2))
