"""Sandbox benchmarks (run by ``benchmarks.run``; measured, never asserted).

- Soak: 10,000 order events, 1 % of them poison (malformed JSON), through the OrderPipeline
  topology deployed from ``cdk.out`` into moto (``mock_aws``, in-process): the FIFO queue's
  event source mapping delivers them to the real ``order_pipeline`` handler, which writes the
  orders table and dead-letters the poison itself. Idempotency is exercised two ways:
  5 % of the valid events are sent again later as new messages (a producer's retry: a new
  message id and deduplication id, the same event), and 2 % of the delivered messages are
  delivered again with the same message id and ``ApproximateReceiveCount`` 2 (what a lost
  delete or a timed-out invocation gives: ``Runtime.invoke`` with the record as it was
  delivered), poison included. Checked afterwards: every event ended in exactly one way
  (order written or dead-lettered), no order was applied twice (``version`` = 1), every
  duplicate and redelivery of a valid event was ignored (``DuplicatesIgnored``), and the DLQ
  holds each poison message exactly once.
- Throughput: the same handler, the same 1,000 messages, three ways, runs interleaved:
  called directly in a loop with pre-built SQS events (the floor: no delivery), through
  ``Runtime.invoke`` (the sandbox's execution environment, no SQS), and sent to the queue
  then delivered by ``Runtime.pump`` (what the sandbox does).

moto's SQS does work proportional to the queue's depth on every SendMessage and
ReceiveMessage, so messages are sent in chunks and pumped between chunks (the queue never
holds more than a chunk), with :func:`speed_up_moto_sqs` applied (and undone). Each measure
runs in a fresh interpreter (``python -m benchmarks.sandbox soak|throughput``) so that its
peak memory is its own.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CDK = ROOT / "node_modules" / ".bin" / "cdk"
TOPOLOGY = "OrderPipeline"
SOAK_MESSAGES = 10_000
POISON_EVERY = 100  # 1 %
DUPLICATE_EVERY = 20  # 5 % of the events are sent a second time, as a new message ...
DUPLICATE_LAG = 3 * 20  # ... this many messages later (a later chunk)
REDELIVER_EVERY = 50  # 2 % of the delivered messages are delivered again, same message id
CHUNK = 20  # messages sent before each pump: the deepest the queue gets
CUSTOMERS = 100  # message groups (the API's mapping: group = customerId)
THROUGHPUT_MESSAGES = 1_000
THROUGHPUT_RUNS = 3
PROGRESS_EVERY = 2_000

# local-web-services, tried by hand (not run by `make bench`): why it is not measured.
LWS_FINDING = (
    "not measured: local-web-services 0.24.0 (PyPI, tried 2026-11-21 in a throwaway venv, "
    "Python 3.11.7) starts `ldk dev` on this cdk.out (15 functions, 31 queues, 0 tables) but "
    "runs every Lambda in Docker only (its sole compute provider is `DockerCompute`); without "
    'a Docker daemon an invoke returns `{"errorMessage": "Failed to start container: Cannot '
    'connect to Docker daemon. Is Docker or Colima running? ..."}` and a message sent to the '
    "OrderPipeline queue stays there; it also skips `AWS::DynamoDB::GlobalTable` (CDK's "
    "TableV2, every table of this app), so the handlers would have no table even with Docker"
)


# ---------------------------------------------------------------------------------------------
# Parent side: run each measure in a fresh interpreter, format the results


def _child_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SESSION_TOKEN="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    return env


def _run_child(measure: str, assembly: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-") as work:
        out = Path(work) / f"{measure}.json"
        subprocess.run(
            [sys.executable, "-m", "benchmarks.sandbox", measure, str(assembly), str(out)],
            cwd=ROOT,
            env=_child_environment(),
            check=True,
            stdout=subprocess.DEVNULL,  # progress goes to stderr
        )
        return dict(json.loads(out.read_text()))


@contextlib.contextmanager
def _assembly() -> Iterator[Path]:
    """``cdk.out`` if it was synthesized, else a fresh synth in a temporary folder."""
    if (ROOT / "cdk.out" / "manifest.json").is_file():
        yield ROOT / "cdk.out"
        return
    print("sandbox: no cdk.out, synthesizing one ...", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-") as work:
        env = dict(os.environ)
        env["PATH"] = f"{ROOT / 'node_modules' / '.bin'}{os.pathsep}{env.get('PATH', '')}"
        env.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")
        env["CDK_DISABLE_CLI_TELEMETRY"] = "true"
        subprocess.run(
            [str(CDK), "synth", "--quiet", "--no-notices", "-o", str(Path(work) / "cdk.out")],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        yield Path(work) / "cdk.out"


def sections() -> list[str]:
    """Run the sandbox benchmarks; the Markdown sections for ``benchmarks/results.md``."""
    with _assembly() as assembly:
        print(
            f"sandbox soak: {SOAK_MESSAGES:,} messages, chunks of {CHUNK} ...",
            file=sys.stderr,
            flush=True,
        )
        soak = _run_child("soak", assembly)
        print(
            f"sandbox throughput: {THROUGHPUT_MESSAGES:,} messages, "
            f"{THROUGHPUT_RUNS} interleaved runs each ...",
            file=sys.stderr,
            flush=True,
        )
        throughput = _run_child("throughput", assembly)
    return soak_section(soak) + throughput_section(throughput)


def _yes(ok: bool) -> str:
    return "yes" if ok else "**NO**"


def soak_section(r: dict[str, Any]) -> list[str]:
    m = r["metrics"]
    accounted = r["table_items"] + r["dlq_depth"]
    ignored_expected = r["duplicates_sent"] + r["redelivered_valid"]
    rows = [
        (
            "events (poison: malformed JSON) / messages sent, with the events sent twice",
            f"{r['events']:,} ({r['poison_sent']:,}) / {r['sent']:,} ({r['duplicates_sent']:,})",
        ),
        (
            "delivered again with the same message id: valid / poison",
            f"{r['redelivered_valid']:,} / {r['redelivered_poison']:,}",
        ),
        (
            "processed: orders in the table / `OrdersCreated` metric",
            f"{r['table_items']:,} / {m.get('OrdersCreated', 0):,}",
        ),
        (
            "dead-lettered by the handler: DLQ depth / `MessagesDeadLettered`",
            f"{r['dlq_depth']:,} / {m.get('MessagesDeadLettered', 0):,}",
        ),
        (
            "processed + dead-lettered = distinct events",
            f"{_yes(accounted == r['events'])} ({accounted:,})",
        ),
        (
            "DLQ holds exactly the poison messages, once each (`SourceMessageId`)",
            f"{_yes(r['dlq_matches_poison'])} (most copies of one: "
            f"{r['dlq_copies_per_poison_max']})",
        ),
        (
            "duplicates and redeliveries ignored: `DuplicatesIgnored` = sent twice + "
            "redelivered valid",
            f"{_yes(m.get('DuplicatesIgnored', 0) == ignored_expected)} "
            f"({m.get('DuplicatesIgnored', 0):,} of {ignored_expected:,})",
        ),
        (
            "deliveries: records deleted / distinct message ids / delivered twice",
            f"{r['deliveries']:,} / {r['distinct_deliveries']:,} / {r['delivered_twice']:,}",
        ),
        (
            "orders applied more than once (`version` ≠ 1) / missing / unexpected",
            f"{r['version_not_1']:,} / {r['orders_missing']:,} / {r['orders_unexpected']:,}",
        ),
        (
            "failed records / function errors / redrive-policy moves / runtime warnings",
            f"{r['records_failed']:,} / {r['errors']:,} / {r['moved_to_dlq']:,} / "
            f"{r['warnings']:,}",
        ),
        (
            f"invocations (batch size {r['batch_size']})",
            f"{r['invocations']:,}",
        ),
        (
            "queue depth kept: deepest before a pump / left after a pump",
            f"{r['max_depth_before_pump']} / {r['max_depth_after_pump']}",
        ),
        (
            "throughput, send + deliver (events/s)",
            f"{r['events_per_s']:.0f} (median chunk, first 10 %: "
            f"{r['first_decile_per_s']:.0f}, last 10 %: {r['last_decile_per_s']:.0f})",
        ),
        (
            "time: SendMessageBatch / pump (of which in the handler) / wall clock with the "
            "depth checks",
            f"{r['send_s']:.1f} s / {r['pump_s']:.1f} s ({r['handler_s']:.1f} s) / "
            f"{r['wall_s']:.1f} s",
        ),
        (
            "memory: RSS after deploy / peak RSS (`ru_maxrss`) at the end of the soak / "
            "after the checks (table scan)",
            f"{r['rss_after_deploy_mb']:.0f} MB / {r['peak_rss_soak_mb']:.0f} MB / "
            f"{r['peak_rss_mb']:.0f} MB",
        ),
    ]
    return [
        "",
        f"## Sandbox soak ({r['events']:,} events, 1 % poison, 5 % sent twice, 2 % redelivered)",
        "",
        f"Conveyor-sandbox-{TOPOLOGY} deployed from `cdk.out` into moto (`mock_aws`, "
        "in-process); order `created` events sent straight to the FIFO queue (`QueueUrl` "
        f"output; group = customerId, {CUSTOMERS} customers; deduplication id = orderId-event, "
        f"as the API's mapping sets them) in chunks of {r['chunk']}, each chunk delivered by "
        "`Runtime.pump()` to the real handler before the next is sent; `speed_up_moto_sqs()` "
        "on. Every 100th message is malformed JSON, which the handler dead-letters itself. "
        f"Every {DUPLICATE_EVERY}th valid event is sent again {DUPLICATE_LAG} messages later "
        "as a new message (new message and deduplication ids: a producer's retry); every "
        f"{REDELIVER_EVERY}th delivered message is delivered again with the same message id "
        "and `ApproximateReceiveCount` 2 (`Runtime.invoke` with the record as delivered: what "
        "a lost delete or a timed-out invocation gives). Single run, moto state kept throughout.",
        "",
        "| check | observed |",
        "| --- | ---: |",
        *(f"| {name} | {value} |" for name, value in rows),
    ]


def throughput_section(r: dict[str, Any]) -> list[str]:
    direct = r["direct"]
    lines = [
        "",
        "## Sandbox throughput",
        "",
        f"The `order_pipeline` handler, {r['messages']:,} messages per run (1 % poison), "
        f"batches of {r['batch_size']}; median of {r['runs']} runs of each way, interleaved, "
        "after a warm-up; one moto (`mock_aws`) for all, the handler's DynamoDB and DLQ calls "
        "go to it in every way.",
        "",
        "| way | events/s | ms per event | ratio to direct |",
        "| --- | ---: | ---: | ---: |",
    ]
    labels = {
        "direct": "direct: handler called in a loop with pre-built SQS events (floor)",
        "invoke": "`Runtime.invoke` with the same events (execution environment, no SQS)",
        "sandbox": f"sandbox: SendMessageBatch + `Runtime.pump()`, chunks of {r['chunk']}",
    }
    for way, label in labels.items():
        rate = r[way]
        lines.append(f"| {label} | {rate:.0f} | {1000 / rate:.2f} | {direct / rate:.2f} |")
    lines += [
        "",
        f"In the sandbox way, {r['sandbox_send_share'] * 100:.0f} % of the time is moto's "
        "SendMessageBatch (FIFO queue) and "
        f"{r['sandbox_handler_share'] * 100:.0f} % is spent in the handler.",
        "",
        f"local-web-services: {LWS_FINDING}.",
    ]
    return lines


# ---------------------------------------------------------------------------------------------
# Child side: one measure, in this interpreter


class _Discard(io.TextIOBase):
    def write(self, text: str) -> int:
        return len(text)

    def writable(self) -> bool:
        return True


def _progress(text: str) -> None:
    print(f"  {text}", file=sys.stderr, flush=True)


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _stack_name(assembly: Path) -> str:
    from conveyor.sandbox.assembly import read_assembly

    for stack in read_assembly(assembly).stacks:
        if stack.name.endswith(f"-{TOPOLOGY}"):
            return stack.name
    raise SystemExit(f"no *-{TOPOLOGY} stack in {assembly}")


class _Sandbox:
    """The topology deployed in moto, a runtime, and the clients the benchmark uses."""

    def __init__(self, assembly: Path, on_event: Callable[[Any], None] | None = None) -> None:
        import boto3

        from conveyor.sandbox.deployer import deploy
        from conveyor.sandbox.model import REGION
        from conveyor.sandbox.runtime import Runtime
        from conveyor.sandbox.scenarios import stack_for

        self.session = boto3.session.Session(region_name=REGION)
        self.deployment = deploy(
            assembly, session=self.session, stack_names=[_stack_name(assembly)]
        )
        self.stack = stack_for(self.deployment, TOPOLOGY)
        self.runtime = Runtime(self.deployment, session=self.session, on_event=on_event)
        self.sqs = self.session.client("sqs", region_name=REGION)
        self.dynamodb = self.session.client("dynamodb", region_name=REGION)
        self.queue_url = self.stack.outputs["QueueUrl"]
        self.table = self.stack.outputs["OrdersTableName"]
        self.route = next(
            r for r in self.stack.routes if r.kind == "sqs" and r.queue_url == self.queue_url
        )
        self.function = self.stack.functions[self.route.function_logical_id]
        self.dlq_url = self._dead_letter_queue()

    def _dead_letter_queue(self) -> str:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["RedrivePolicy"]
        )["Attributes"]
        arn = json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"]
        return str(self.sqs.get_queue_url(QueueName=arn.rsplit(":", 1)[-1])["QueueUrl"])

    def depth(self, url: str) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(v) for v in attributes.values())

    def redeliver(
        self, batch: list[dict[str, Any]], ids: dict[str, str], offset: int
    ) -> Counter[str]:
        """Deliver every REDELIVER_EVERY-th message of ``batch`` again, as Lambda would after
        a lost delete: the same message id and body, ``ApproximateReceiveCount`` 2."""
        again = [
            (entry, ids[entry["Id"]])
            for n, entry in enumerate(batch, start=offset)
            if n % REDELIVER_EVERY == REDELIVER_EVERY // 3
        ]
        counts: Counter[str] = Counter()
        for entry, message_id in again:
            (event,) = _sqs_events([entry], self.route.queue_arn, 1, message_ids=[message_id])
            event["Records"][0]["attributes"]["ApproximateReceiveCount"] = "2"
            result = self.runtime.invoke(self.function.logical_id, event)
            if result.error is not None or result.response != {"batchItemFailures": []}:
                raise RuntimeError(f"redelivery of {message_id} failed: {result.response}")
            counts["poison" if _is_poison(entry) else "valid"] += 1
        return counts

    def send(self, entries: list[dict[str, Any]]) -> dict[str, str]:
        """SendMessageBatch by 10; entry id -> SQS message id."""
        ids: dict[str, str] = {}
        for start in range(0, len(entries), 10):
            batch = entries[start : start + 10]
            response = self.sqs.send_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{**e, "Id": str(n)} for n, e in enumerate(batch)],
            )
            if response.get("Failed"):
                raise RuntimeError(f"SendMessageBatch failed: {response['Failed']}")
            for item in response["Successful"]:
                ids[batch[int(item["Id"])]["Id"]] = item["MessageId"]
        return ids


def _with_duplicates(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``entries`` plus, DUPLICATE_LAG messages after every DUPLICATE_EVERY-th valid one, the
    same event sent again as a new message (``Id`` ends in ``#dup``; new deduplication id, so
    that SQS accepts it and the handler has to recognise it)."""
    placed: list[tuple[float, dict[str, Any]]] = [(float(i), e) for i, e in enumerate(entries)]
    for i, entry in enumerate(entries):
        if i % DUPLICATE_EVERY == DUPLICATE_EVERY // 2 and not _is_poison(entry):
            duplicate = {
                **entry,
                "Id": f"{entry['Id']}#dup",
                "MessageDeduplicationId": f"{entry['MessageDeduplicationId']}#retry",
            }
            placed.append((i + DUPLICATE_LAG + 0.5, duplicate))
    return [entry for _, entry in sorted(placed, key=lambda item: item[0])]


def _messages(prefix: str, count: int) -> list[dict[str, Any]]:
    """Order ``created`` events as SendMessageBatch entries (``Id`` = order id); every
    POISON_EVERY-th one is malformed JSON."""
    entries = []
    for n in range(1, count + 1):
        order_id = f"{prefix}-{n:05d}"
        customer = f"c-{n % CUSTOMERS:03d}"
        body = json.dumps(
            {
                "orderId": order_id,
                "customerId": customer,
                "event": "created",
                "items": [{"sku": "BOOK", "quantity": 2, "unitPrice": 7.5}],
                "total": 15.0,
                "currency": "EUR",
            }
        )
        if n % POISON_EVERY == 0:
            body = body[: len(body) // 2]  # truncated: not JSON
        entries.append(
            {
                "Id": order_id,
                "MessageBody": body,
                "MessageGroupId": customer,
                "MessageDeduplicationId": f"{order_id}-created",
            }
        )
    return entries


def _is_poison(entry: dict[str, Any]) -> bool:
    try:
        json.loads(entry["MessageBody"])
    except ValueError:
        return True
    return False


class _Tracker:
    """on_event: deliveries per message id, the handler's EMF metrics, warnings."""

    def __init__(self) -> None:
        self.deleted: Counter[str] = Counter()
        self.metrics: Counter[str] = Counter()
        self.warnings: list[str] = []

    def __call__(self, event: Any) -> None:
        if event.kind == "delete":
            self.deleted.update(event.message_ids)
        elif event.kind == "result" and event.invocation is not None:
            for blob in event.invocation.metrics:
                for directive in blob.get("_aws", {}).get("CloudWatchMetrics", []):
                    for metric in directive.get("Metrics", []):
                        value = blob.get(metric["Name"], 0)
                        total = sum(value) if isinstance(value, list) else value
                        self.metrics[metric["Name"]] += int(total)
        elif event.kind == "warning":
            self.warnings.append(str(event.details.get("problem")))


def _mock_aws() -> Any:
    from moto import mock_aws

    return mock_aws()


def soak(assembly: Path, total: int = SOAK_MESSAGES, chunk: int = CHUNK) -> dict[str, Any]:
    from conveyor.sandbox.moto_patches import speed_up_moto_sqs

    undo = speed_up_moto_sqs()
    try:
        with _mock_aws():
            tracker = _Tracker()
            box = _Sandbox(assembly, on_event=tracker)
            rss_after_deploy = _rss_mb()
            events = _messages("soak", total)
            entries = _with_duplicates(events)
            poison_ids: set[str] = set()
            redelivered: Counter[str] = Counter()
            totals: Counter[str] = Counter()
            chunk_times: list[float] = []
            send_s = pump_s = handler_s = 0.0
            max_before = max_after = 0
            started = time.perf_counter()
            for start in range(0, len(entries), chunk):
                batch = entries[start : start + chunk]
                t0 = time.perf_counter()
                ids = box.send(batch)
                t1 = time.perf_counter()
                poison_ids.update(ids[e["Id"]] for e in batch if _is_poison(e))
                max_before = max(max_before, box.depth(box.queue_url))
                t2 = time.perf_counter()
                report = box.runtime.pump()
                t3 = time.perf_counter()
                max_after = max(max_after, box.depth(box.queue_url))
                t4 = time.perf_counter()
                redelivered.update(box.redeliver(batch, ids, start))
                t5 = time.perf_counter()
                send_s += t1 - t0
                pump_s += (t3 - t2) + (t5 - t4)
                chunk_times.append((t1 - t0) + (t3 - t2) + (t5 - t4))  # without depth checks
                for key in ("records_processed", "records_failed", "invocations", "moved_to_dlq"):
                    totals[key] += getattr(report, key)
                for stats in report.functions.values():
                    totals["errors"] += stats.errors
                    handler_s += stats.duration_ms / 1000
                done = start + len(batch)
                if done % PROGRESS_EVERY < chunk or done == len(entries):
                    _progress(
                        f"soak: {done:,}/{len(entries):,} sent and delivered, "
                        f"{done / (send_s + pump_s):.0f} events/s, "
                        f"peak RSS {_peak_rss_mb():.0f} MB"
                    )
            wall = time.perf_counter() - started
            peak_soak = _peak_rss_mb()
            # Drift: the median chunk rate of the first and last tenth (robust to a hiccup).
            rates = [
                len(entries[i * chunk : (i + 1) * chunk]) / seconds
                for i, seconds in enumerate(chunk_times)
            ]
            decile = max(1, len(rates) // 10)
            result: dict[str, Any] = {
                "sent": len(entries),
                "events": total,
                "duplicates_sent": len(entries) - total,
                "redelivered_valid": redelivered["valid"],
                "redelivered_poison": redelivered["poison"],
                "batch_size": box.route.batch_size,
                "poison_sent": len(poison_ids),
                "chunk": chunk,
                "wall_s": wall,
                "send_s": send_s,
                "pump_s": pump_s,
                "handler_s": handler_s,
                "events_per_s": len(entries) / (send_s + pump_s),
                "first_decile_per_s": statistics.median(rates[:decile]),
                "last_decile_per_s": statistics.median(rates[-decile:]),
                "max_depth_before_pump": max_before,
                "max_depth_after_pump": max_after,
                "rss_after_deploy_mb": rss_after_deploy,
                "peak_rss_soak_mb": peak_soak,
                **totals,
                "deliveries": sum(tracker.deleted.values()),
                "distinct_deliveries": len(tracker.deleted),
                "delivered_twice": sum(1 for n in tracker.deleted.values() if n > 1),
                "metrics": dict(tracker.metrics),
                "warnings": len(tracker.warnings),
                "warning_samples": sorted(set(tracker.warnings))[:3],
            }
            _progress("soak: checking the orders table and the dead-letter queue ...")
            result.update(_check_table(box, {e["Id"] for e in events if not _is_poison(e)}))
            result.update(_check_dead_letters(box, poison_ids))
            result["peak_rss_mb"] = _peak_rss_mb()
            return result
    finally:
        undo()


def _check_table(box: _Sandbox, expected: set[str]) -> dict[str, Any]:
    versions: dict[str, str] = {}
    paginator = box.dynamodb.get_paginator("scan")
    for page in paginator.paginate(
        TableName=box.table,
        ProjectionExpression="#o, #v",
        ExpressionAttributeNames={"#o": "orderId", "#v": "version"},
    ):
        for item in page["Items"]:
            versions[item["orderId"]["S"]] = item.get("version", {}).get("N", "?")
    return {
        "table_items": len(versions),
        "version_not_1": sum(1 for v in versions.values() if v != "1"),
        "orders_missing": len(expected - versions.keys()),
        "orders_unexpected": len(versions.keys() - expected),
    }


def _check_dead_letters(box: _Sandbox, poison_ids: set[str]) -> dict[str, Any]:
    depth = box.depth(box.dlq_url)
    sources: list[str] = []
    while True:
        messages = box.sqs.receive_message(
            QueueUrl=box.dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        ).get("Messages", [])
        if not messages:
            break
        sources.extend(
            m.get("MessageAttributes", {}).get("SourceMessageId", {}).get("StringValue", "")
            for m in messages
        )
        box.sqs.delete_message_batch(
            QueueUrl=box.dlq_url,
            Entries=[
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)
            ],
        )
    return {
        "dlq_depth": depth,
        "dlq_copies_per_poison_max": max(Counter(sources).values(), default=0),
        "dlq_matches_poison": len(sources) == len(set(sources)) and set(sources) == poison_ids,
    }


def _sqs_events(
    entries: list[dict[str, Any]],
    queue_arn: str,
    batch: int,
    *,
    message_ids: list[str] | None = None,
) -> list[dict[str, Any]]:
    """What Lambda's event source mapping would pass for these messages (FIFO queue); new
    message ids unless ``message_ids`` gives them (a redelivery)."""
    now = str(int(time.time() * 1000))
    records = []
    for n, entry in enumerate(entries):
        records.append(
            {
                "messageId": message_ids[n] if message_ids else str(uuid.uuid4()),
                "receiptHandle": uuid.uuid4().hex,
                "body": entry["MessageBody"],
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": now,
                    "SequenceNumber": str(18_000_000_000_000_000_000 + n),
                    "MessageGroupId": entry["MessageGroupId"],
                    "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                    "MessageDeduplicationId": entry["MessageDeduplicationId"],
                    "ApproximateFirstReceiveTimestamp": now,
                },
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "us-east-1",
            }
        )
    return [{"Records": records[i : i + batch]} for i in range(0, len(records), batch)]


def throughput(
    assembly: Path,
    messages: int = THROUGHPUT_MESSAGES,
    runs: int = THROUGHPUT_RUNS,
    chunk: int = CHUNK,
) -> dict[str, Any]:
    from conveyor.sandbox.execution import LambdaContext
    from conveyor.sandbox.moto_patches import speed_up_moto_sqs

    undo = speed_up_moto_sqs()
    try:
        with _mock_aws():
            box = _Sandbox(assembly)
            spec, route = box.function, box.route
            sink = _Discard()
            # The direct way: the handler module imported as Lambda would, in this process.
            saved_environ = dict(os.environ)
            os.environ.update(spec.environment)
            sys.path.insert(0, str(spec.code_dir))
            module_name, _, function_name = spec.handler.rpartition(".")
            with contextlib.redirect_stdout(sink):  # Powertools binds its stream at import
                handler = getattr(importlib.import_module(module_name), function_name)
            os.environ.clear()
            os.environ.update(saved_environ)
            shares = {"send": 0.0, "handler": 0.0, "total": 0.0}
            counter = iter(range(1_000_000))

            def direct(count: int) -> float:
                events = _sqs_events(
                    _messages(f"direct{next(counter)}", count), route.queue_arn, route.batch_size
                )
                saved = dict(os.environ)
                os.environ.update(spec.environment)
                try:
                    with contextlib.redirect_stdout(sink):
                        started = time.perf_counter()
                        for event in events:
                            context = LambdaContext(
                                function_name=spec.name,
                                invoked_function_arn=spec.arn,
                                memory_limit_in_mb=256,
                                aws_request_id=str(uuid.uuid4()),
                                log_group_name=f"/aws/lambda/{spec.name}",
                                log_stream_name="bench",
                                timeout_s=spec.timeout_s,
                            )
                            response = handler(event, context)
                            if response.get("batchItemFailures"):
                                raise RuntimeError(f"direct: failures {response}")
                        elapsed = time.perf_counter() - started
                finally:
                    os.environ.clear()
                    os.environ.update(saved)
                return count / elapsed

            def invoke(count: int) -> float:
                events = _sqs_events(
                    _messages(f"invoke{next(counter)}", count), route.queue_arn, route.batch_size
                )
                started = time.perf_counter()
                for event in events:
                    result = box.runtime.invoke(spec.logical_id, event, stack=box.stack.name)
                    if not result.ok or (result.response or {}).get("batchItemFailures"):
                        raise RuntimeError(f"invoke: {result.error} {result.response}")
                return count / (time.perf_counter() - started)

            def sandbox(count: int) -> float:
                entries = _messages(f"sandbox{next(counter)}", count)
                processed = 0
                started = time.perf_counter()
                for start in range(0, count, chunk):
                    t0 = time.perf_counter()
                    box.send(entries[start : start + chunk])
                    shares["send"] += time.perf_counter() - t0
                    report = box.runtime.pump()
                    processed += report.records_processed
                    shares["handler"] += (
                        sum(s.duration_ms for s in report.functions.values()) / 1000
                    )
                elapsed = time.perf_counter() - started
                shares["total"] += elapsed
                if processed != count:
                    raise RuntimeError(f"sandbox: {processed} of {count} processed")
                return count / elapsed

            ways: dict[str, Callable[[int], float]] = {
                "direct": direct,
                "invoke": invoke,
                "sandbox": sandbox,
            }
            for way in ways.values():
                way(100)  # warm-up: imports, clients, moto's first calls
            shares.update(send=0.0, handler=0.0, total=0.0)
            samples: dict[str, list[float]] = {name: [] for name in ways}
            for run in range(runs):
                for name, way in ways.items():
                    samples[name].append(way(messages))
                    _progress(
                        f"throughput run {run + 1}/{runs}: {name} {samples[name][-1]:.0f} events/s"
                    )
            return {
                "messages": messages,
                "runs": runs,
                "chunk": chunk,
                "batch_size": route.batch_size,
                **{name: statistics.median(values) for name, values in samples.items()},
                "samples": samples,
                "sandbox_send_share": shares["send"] / shares["total"],
                "sandbox_handler_share": shares["handler"] / shares["total"],
            }
    finally:
        undo()


def _child_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sandbox")
    parser.add_argument("measure", choices=("soak", "throughput"))
    parser.add_argument("assembly", type=Path, nargs="?", default=ROOT / "cdk.out")
    parser.add_argument("out", type=Path, nargs="?", help="write the JSON result here")
    args = parser.parse_args(argv)
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        del os.environ[name]  # a developer's profile or endpoint must not reach moto
    os.environ.update({k: v for k, v in _child_environment().items() if k.startswith("AWS_")})
    measure = soak if args.measure == "soak" else throughput
    result = measure(args.assembly.resolve())
    text = json.dumps(result, indent=2, sort_keys=True)
    if args.out is not None:
        args.out.write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
