"""``conveyor cost``: a monthly cost estimate of a topology for a traffic profile.

The traffic model follows the diagram's graph (:mod:`conveyor.diagrams`): ``events`` enter at
each entry point (what producers write: a bucket's PUTs, a topic's publishes, a bus's
PutEvents, an API's requests) and flow along the data edges. Each edge carries the messages of
its source times a factor — 1 by default for subscriptions, rule targets, mappings and writes
(every filter matches: an upper bound), 0 for API reads and alarm paths, ``failure_rate`` for
dead-letter and failure edges — overridable per target with ``per_event``. Each resource then
gets the charges its service bills for that volume, every line naming the resource (construct
path), the quantity, the unit price and the assumption behind it.

Prices come from the dated table shipped with the package (``conveyor/data/prices.json``: its
source, date and region are printed with every report). Free tiers are ignored unless
``free_tier=True``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor.diagrams import (
    ALARM,
    ALARM_GROUP,
    DEAD_LETTER,
    FAILURE,
    PLUMBING,
    Edge,
    Graph,
    build_graph,
)
from conveyor.templates import StackTemplate, references

# Shipped as package data (pyproject: [tool.setuptools.package-data]).
PRICE_TABLE = Path(__file__).resolve().parent / "data" / "prices.json"
HOURS_PER_MONTH = 730
SECONDS_PER_MONTH = 30 * 24 * 3600
# Lambda's SQS event source polls with long polling (20 s waits) from 5 connections when idle.
LAMBDA_POLLERS = 5
LONG_POLL_SECONDS = 20
KMS_DATA_KEY_REUSE_SECONDS = 300
READ_METHODS = {"GET", "HEAD", "OPTIONS"}
_READ_ACTIONS = {
    "s3": {"GetObject"},
    "dynamodb": {"GetItem", "Query", "BatchGetItem", "Scan"},
}
_GB = 1024 * 1024  # KB per GB


@dataclass
class Prices:
    source: str
    retrieved: str
    currency: str
    regions: dict[str, dict[str, Any]]
    free_tier: dict[str, float]

    def region(self, name: str) -> dict[str, Any]:
        if name not in self.regions:
            raise KeyError(
                f"no prices for region {name!r} in the table (regions: {', '.join(self.regions)})"
            )
        return self.regions[name]


def load_prices(path: Path | None = None) -> Prices:
    """The shipped price table, or another file of the same shape."""
    text = PRICE_TABLE.read_text() if path is None else path.read_text()
    data = json.loads(text)
    free = {k: v for k, v in data.get("free_tier", {}).items() if isinstance(v, int | float)}
    return Prices(data["source"], data["retrieved"], data["currency"], data["regions"], free)


@dataclass
class Assumptions:
    events: int = 1_000_000
    payload_kb: float = 1.0
    duration_ms: float = 100.0
    durations: dict[str, float] = field(default_factory=dict)
    batch_size: int | None = None
    per_event: dict[str, float] = field(default_factory=dict)
    failure_rate: float = 0.0
    log_kb_per_invocation: float = 1.0
    transitions: int | None = None
    replay_fraction: float = 0.0
    free_tier: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Assumptions:
        return cls(
            events=args.events,
            payload_kb=args.payload_kb,
            duration_ms=args.duration_ms,
            durations=_pairs(args.duration, "--duration"),
            batch_size=args.batch_size,
            per_event=_pairs(args.per_event, "--per-event"),
            failure_rate=args.failure_rate,
            log_kb_per_invocation=args.log_kb,
            transitions=args.transitions,
            replay_fraction=args.replay_fraction,
            free_tier=args.free_tier,
        )


def _pairs(items: list[str] | None, option: str) -> dict[str, float]:
    result: dict[str, float] = {}
    for item in items or []:
        name, sep, value = item.rpartition("=")
        if not sep or not name:
            raise SystemExit(f"{option} takes RESOURCE=NUMBER, not {item!r}")
        result[name] = float(value)
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=1_000_000, help="events per month")
    parser.add_argument("--payload-kb", type=float, default=1.0, help="size of one event")
    parser.add_argument("--region", default="eu-west-3")
    parser.add_argument(
        "--duration-ms", type=float, default=100.0, help="duration of one invocation"
    )
    parser.add_argument(
        "--duration",
        action="append",
        metavar="FUNCTION=MS",
        help="a measured duration for one function (construct path or its end)",
    )
    parser.add_argument(
        "--batch-size", type=int, help="override every SQS mapping's batch size (template's)"
    )
    parser.add_argument(
        "--per-event",
        action="append",
        metavar="RESOURCE=FACTOR",
        help="messages an edge into RESOURCE carries per message of its source: a filter's "
        "matching fraction, writes per processed message, API reads per event (default 1; "
        "API GETs 0)",
    )
    parser.add_argument(
        "--failure-rate", type=float, default=0.0, help="fraction sent to DLQs/failure paths"
    )
    parser.add_argument("--log-kb", type=float, default=1.0, help="log KB per invocation")
    parser.add_argument("--transitions", type=int, help="state transitions per execution")
    parser.add_argument(
        "--replay-fraction",
        type=float,
        default=0.0,
        help="share of the archived events replayed in the month (billed as custom events)",
    )
    parser.add_argument("--free-tier", action="store_true", help="apply the always-free tiers")
    parser.add_argument("--prices", help="another price table (same shape as the shipped one)")
    parser.add_argument(
        "--refresh-prices",
        metavar="OUT.json",
        help="write a price table refreshed from the AWS Price List API (needs AWS credentials "
        "and boto3), then use it with --prices OUT.json",
    )
    parser.add_argument("--format", choices=["text", "markdown", "json"], default="text")


@dataclass(frozen=True)
class Line:
    resource: str
    item: str
    quantity: float
    unit: str
    unit_price: float
    price_unit: float  # the quantity the unit price is for (1, 1,000, 1,000,000)
    assumption: str
    service: str = ""

    @property
    def cost(self) -> float:
        return self.quantity / self.price_unit * self.unit_price


@dataclass
class Report:
    stack: str
    region: str
    prices: Prices
    assumptions: Assumptions
    lines: list[Line]
    unverified: list[str]

    @property
    def total(self) -> float:
        return sum(line.cost for line in self.lines)


def _factor_override(assumptions: Assumptions, label: str) -> float | None:
    for name, value in assumptions.per_event.items():
        if label == name or label.endswith("/" + name) or label.endswith(name):
            return value
    return None


def _chunks(payload_kb: float, size_kb: float) -> int:
    return max(1, math.ceil(payload_kb / size_kb))


class _Estimator:
    def __init__(
        self, stack: StackTemplate, prices: Prices, region: str, assumptions: Assumptions
    ) -> None:
        self.stack = stack
        self.resources = stack.resources
        self.table = prices.region(region)
        self.prices = prices
        self.a = assumptions
        self.graph: Graph = build_graph(stack)
        self.lines: list[Line] = []
        self.used: set[str] = set()
        self.volume: dict[str, float] = defaultdict(float)
        self.edge_volume: dict[Edge, float] = {}
        self.volume_reads: dict[str, float] = defaultdict(float)
        self.read_reasons: dict[str, list[str]] = defaultdict(list)

    def price(self, key: str, sub: str | None = None) -> float:
        self.used.add(key)
        value = self.table[key]
        return float(value[sub] if sub is not None else value)

    def add(
        self,
        resource: str,
        item: str,
        quantity: float,
        unit: str,
        key: str,
        price_unit: float,
        assumption: str,
        service: str,
        sub: str | None = None,
    ) -> None:
        self.lines.append(
            Line(
                resource,
                item,
                quantity,
                unit,
                self.price(key, sub),
                price_unit,
                assumption,
                service,
            )
        )

    # ---------------------------------------------------------------- traffic
    def factor(self, edge: Edge) -> tuple[float, str]:
        target = self.graph.nodes[edge.target]
        source = self.graph.nodes[edge.source]
        if edge.kind == ALARM or source.group == ALARM_GROUP:
            return 0.0, "alarm path: not traffic"
        override = _factor_override(self.a, target.label)
        if override is not None:
            return override, f"--per-event {target.label}={override:g}"
        if edge.kind in (DEAD_LETTER, FAILURE):
            return self.a.failure_rate, f"failure rate {self.a.failure_rate:g}"
        if source.kind == "api" and edge.label.split(" ")[0].upper() in READ_METHODS:
            return 0.0, "API reads not counted (--per-event to add them)"
        if source.kind == "external" and source.label == "schedule":
            return 1.0, f"{source.detail}: {schedule_runs(source.detail):,.0f} runs a month"
        if source.kind == "external":
            return 1.0, "every event enters here"
        if edge.label and source.kind in ("topic", "bus"):
            return 1.0, "every event matches the filter (upper bound)"
        return 1.0, "one per message"

    def propagate(self) -> None:
        edges = [e for e in self.graph.edges if e.kind != PLUMBING]
        for edge in edges:
            if (
                self.graph.nodes[edge.source].kind == "external"
                and edge.label
                in (
                    "PutObject",
                    "Publish",
                    "PutEvents",
                    "HTTPS",
                    "PutRecords",
                    "PutRecordBatch",
                    "SendMessage",
                    "StartExecution",
                    "AMQP/MQTT",
                    "Kafka",
                )
            ) or edge.label.startswith("HTTPS"):
                self.volume[edge.source] = float(self.a.events)
            source = self.graph.nodes[edge.source]
            if source.kind == "external" and source.label == "schedule":
                self.volume[edge.source] = schedule_runs(source.detail)
        # Kahn's order over the data edges; a cycle's remaining edges are taken as they come.
        indegree: dict[str, int] = defaultdict(int)
        for edge in edges:
            indegree[edge.target] += 1
        ready = sorted(n for n in self.graph.nodes if indegree[n] == 0)
        done: set[Edge] = set()
        while len(done) < len(edges):
            if not ready:
                pending = sorted(e for e in edges if e not in done)
                ready = [pending[0].source]
            node = ready.pop(0)
            for edge in sorted(e for e in edges if e.source == node and e not in done):
                factor, _ = self.factor(edge)
                self.edge_volume[edge] = self.volume[node] * factor
                self.volume[edge.target] += self.edge_volume[edge]
                done.add(edge)
                indegree[edge.target] -= 1
                if indegree[edge.target] == 0:
                    ready.append(edge.target)

    def why(self, node_id: str) -> str:
        """Where a resource's messages come from, and the assumption of each edge."""
        parts = []
        for edge in sorted(self.incoming(node_id)):
            if self.edge_volume[edge] > 0:
                source = self.graph.nodes[edge.source].label
                volume = self.edge_volume[edge]
                parts.append(f"{volume:,.0f} from {source} ({self.factor(edge)[1]})")
        return "; ".join(parts)

    def incoming(self, node_id: str) -> list[Edge]:
        return [e for e in self.edge_volume if e.target == node_id]

    def outgoing(self, node_id: str) -> list[Edge]:
        return [e for e in self.edge_volume if e.source == node_id]

    # ---------------------------------------------------------------- charges
    def estimate(self) -> list[Line]:
        self.propagate()
        for node in sorted(self.graph.nodes.values(), key=lambda n: n.label):
            handler = getattr(self, f"charge_{node.kind}", None)
            if handler is not None and node.logical_ids:
                handler(node)
        self.charge_keys()
        self.charge_monitoring()
        self.lines = [line for line in self.lines if line.quantity > 0]
        self.lines.sort(key=lambda line: (line.resource.startswith("("), line.resource))
        if self.a.free_tier:
            self.apply_free_tier()
        return self.lines

    def _props(self, node: Any) -> dict[str, Any]:
        props: dict[str, Any] = self.resources[node.logical_ids[0]].get("Properties", {})
        return props

    def charge_queue(self, node: Any) -> None:
        volume = self.volume[node.id]
        fifo = bool(self._props(node).get("FifoQueue"))
        key = "sqs_fifo_per_million" if fifo else "sqs_standard_per_million"
        kind = "FIFO" if fifo else "standard"
        chunks = _chunks(self.a.payload_kb, 64)
        self.add(
            node.label,
            f"SendMessage ({kind})",
            volume * chunks,
            "requests",
            key,
            1e6,
            f"{chunks} request(s) per 64 KB chunk; {self.why(node.id)}",
            "SQS",
        )
        for edge in self.outgoing(node.id):
            consumer = self.graph.nodes[edge.target]
            if consumer.kind != "function" or edge.kind != "data":
                continue
            batch = self.batch_size(edge)
            batches = self.edge_volume[edge] / batch
            receive_chunks = _chunks(batch * self.a.payload_kb, 64)
            self.add(
                node.label,
                f"ReceiveMessage by {consumer.label}",
                batches * receive_chunks,
                "requests",
                key,
                1e6,
                f"one receive per batch of {batch}, {receive_chunks} request(s) per 64 KB",
                "SQS",
            )
            self.add(
                node.label,
                "DeleteMessageBatch",
                batches,
                "requests",
                key,
                1e6,
                f"one delete per batch of {batch}",
                "SQS",
            )
            empty = LAMBDA_POLLERS * SECONDS_PER_MONTH / LONG_POLL_SECONDS
            self.add(
                node.label,
                "empty receives (Lambda pollers)",
                empty,
                "requests",
                key,
                1e6,
                f"{LAMBDA_POLLERS} long-polling connections, one {LONG_POLL_SECONDS} s poll each "
                "while the queue is empty (upper bound)",
                "SQS",
            )

    def batch_size(self, edge: Edge) -> int:
        if self.a.batch_size:
            return self.a.batch_size
        mapping = self.resources.get(edge.origin, {}).get("Properties", {})
        return int(mapping.get("BatchSize", 10))

    def charge_topic(self, node: Any) -> None:
        volume = self.volume[node.id]
        if volume == 0:
            return
        fifo = bool(self._props(node).get("FifoTopic"))
        chunks = _chunks(self.a.payload_kb, 64)
        if fifo:
            self.add(
                node.label,
                "Publish (FIFO)",
                volume,
                "requests",
                "sns_fifo_publish_per_million",
                1e6,
                f"{volume:,.0f} publishes",
                "SNS",
            )
            self.add(
                node.label,
                "FIFO payload",
                volume * self.a.payload_kb / _GB,
                "GB",
                "sns_fifo_payload_per_gb",
                1,
                f"{self.a.payload_kb:g} KB per publish",
                "SNS",
            )
        else:
            self.add(
                node.label,
                "Publish",
                volume * chunks,
                "requests",
                "sns_publish_per_million",
                1e6,
                f"{volume:,.0f} publishes × {chunks} per 64 KB chunk",
                "SNS",
            )
        for edge in self.outgoing(node.id):
            if edge.kind != "data":
                continue
            protocol = str(
                self.resources.get(edge.origin, {}).get("Properties", {}).get("Protocol", "")
            )
            key = {
                "email": "sns_email_per_million",
                "email-json": "sns_email_per_million",
                "http": "sns_http_per_million",
                "https": "sns_http_per_million",
            }.get(protocol, "sns_sqs_lambda_per_million")
            _, why = self.factor(edge)
            target = self.graph.nodes[edge.target].label
            self.add(
                node.label,
                f"deliveries ({protocol}) to {target}",
                self.edge_volume[edge],
                "deliveries",
                key,
                1e6,
                why,
                "SNS",
            )

    def charge_bus(self, node: Any) -> None:
        volume = self.volume[node.id]
        chunks = _chunks(self.a.payload_kb, 64)
        self.add(
            node.label,
            "custom events",
            volume * chunks,
            "events",
            "events_custom_per_million",
            1e6,
            f"{volume:,.0f} PutEvents entries × {chunks} per 64 KB chunk; rule deliveries "
            "to AWS targets are free",
            "EventBridge",
        )

    def charge_archive(self, node: Any) -> None:
        volume = self.volume[node.id]
        gb = volume * self.a.payload_kb / _GB
        self.add(
            node.label,
            "events archived",
            gb,
            "GB",
            "events_archive_per_gb",
            1,
            f"{volume:,.0f} matching events × {self.a.payload_kb:g} KB",
            "EventBridge",
        )
        self.add(
            node.label,
            "archive storage",
            gb,
            "GB-month",
            "events_archive_storage_gb_month",
            1,
            "one month of events kept (grows each month until the retention)",
            "EventBridge",
        )
        if self.a.replay_fraction:
            chunks = _chunks(self.a.payload_kb, 64)
            self.add(
                node.label,
                "replayed events",
                volume * self.a.replay_fraction * chunks,
                "events",
                "events_custom_per_million",
                1e6,
                f"--replay-fraction {self.a.replay_fraction:g}: replays are custom events",
                "EventBridge",
            )

    def function_duration(self, node: Any) -> tuple[float, str]:
        for name, value in self.a.durations.items():
            if node.label == name or node.label.endswith(name):
                return value, f"--duration {name}={value:g}"
        return self.a.duration_ms, f"{self.a.duration_ms:g} ms per invocation (--duration-ms)"

    def charge_function(self, node: Any) -> None:
        invocations = 0.0
        how: list[str] = []
        for edge in self.incoming(node.id):
            source = self.graph.nodes[edge.source]
            if (
                source.kind in ("queue", "stream", "table", "broker", "cluster")
                and edge.kind == "data"
            ):
                batch = self.batch_size(edge)
                invocations += self.edge_volume[edge] / batch
                how.append(f"batches of {batch} from {source.label}")
            else:
                invocations += self.edge_volume[edge]
                how.append(f"one per message from {source.label}")
        if invocations == 0:
            return
        props = self._props(node)
        memory = int(props.get("MemorySize", 128))
        arch = (props.get("Architectures") or ["x86_64"])[0]
        duration, why = self.function_duration(node)
        self.add(
            node.label,
            "invocations",
            invocations,
            "requests",
            "lambda_requests_per_million",
            1e6,
            "; ".join(how),
            "Lambda",
        )
        gb_seconds = invocations * duration / 1000 * memory / 1024
        self.add(
            node.label,
            f"duration ({arch}, {memory} MB)",
            gb_seconds,
            "GB-s",
            f"lambda_gb_second_{arch}",
            1,
            why,
            "Lambda",
        )
        logs = invocations * self.a.log_kb_per_invocation / _GB
        self.add(
            node.label,
            "log ingestion",
            logs,
            "GB",
            "cw_logs_ingest_gb",
            1,
            f"{self.a.log_kb_per_invocation:g} KB of logs per invocation (--log-kb)",
            "CloudWatch",
        )
        for target, verb in self.reads(node):
            self.volume_reads[target] += self.volume[node.id]
            self.read_reasons[target].append(f"{verb} by {node.label}, one per message")

    def reads(self, node: Any) -> list[tuple[str, str]]:
        role_ids = references(self._props(node).get("Role"))
        found: list[tuple[str, str]] = []
        for resource in self.resources.values():
            if resource.get("Type") != "AWS::IAM::Policy":
                continue
            props = resource.get("Properties", {})
            if not set(references(props.get("Roles"))) & set(role_ids):
                continue
            for statement in props.get("PolicyDocument", {}).get("Statement", []):
                actions = statement.get("Action", [])
                actions = [actions] if isinstance(actions, str) else actions
                verbs = [
                    str(a).split(":", 1)[1]
                    for a in actions
                    if ":" in str(a)
                    and str(a).split(":", 1)[1] in _READ_ACTIONS.get(str(a).split(":", 1)[0], set())
                ]
                if not verbs:
                    continue
                for ref in references(statement.get("Resource")):
                    target = self.graph.node_for(ref)
                    if target and target.kind in ("bucket", "table"):
                        # Idempotency records are read by the same request that writes them.
                        pair = (target.id, sorted(verbs)[0])
                        if pair not in found and not self.graph.has_edge(node.id, target.id):
                            found.append(pair)
        return found

    def charge_bucket(self, node: Any) -> None:
        volume = self.volume[node.id]
        if volume:
            self.add(
                node.label,
                "PUT requests",
                volume,
                "requests",
                "s3_put_per_1000",
                1000,
                f"one PUT per object; {self.why(node.id)}",
                "S3",
            )
            self.add(
                node.label,
                "storage",
                volume * self.a.payload_kb / _GB,
                "GB-month",
                "s3_storage_gb_month",
                1,
                f"one month of objects of {self.a.payload_kb:g} KB kept all month (upper bound)",
                "S3",
            )

    def charge_table(self, node: Any) -> None:
        writes = self.volume[node.id]
        api_reads = sum(
            self.edge_volume[e]
            for e in self.incoming(node.id)
            if self.graph.nodes[e.source].kind == "api"
        )
        writes -= api_reads
        if writes:
            units = _chunks(self.a.payload_kb, 1)
            self.add(
                node.label,
                "write request units (on-demand)",
                writes * units,
                "WRU",
                "dynamodb_write_per_million",
                1e6,
                f"{units} WRU per 1 KB item; {self.why(node.id)}",
                "DynamoDB",
            )
            self.add(
                node.label,
                "storage",
                writes * self.a.payload_kb / _GB,
                "GB-month",
                "dynamodb_storage_gb_month",
                1,
                "every write a new item kept (upper bound)",
                "DynamoDB",
            )
        if api_reads:
            units = _chunks(self.a.payload_kb, 4)
            self.add(
                node.label,
                "read request units (API)",
                api_reads * units,
                "RRU",
                "dynamodb_read_per_million",
                1e6,
                "strongly consistent, 4 KB units",
                "DynamoDB",
            )

    def charge_api(self, node: Any) -> None:
        requests = sum(self.edge_volume[e] for e in self.outgoing(node.id))
        http = self.resources[node.logical_ids[0]].get("Type") == "AWS::ApiGatewayV2::Api"
        self.add(
            node.label,
            "HTTP API requests" if http else "REST API requests",
            requests,
            "requests",
            "apigw_http_per_million" if http else "apigw_rest_per_million",
            1e6,
            "one request per event; "
            + ", ".join(f"{e.label}: {self.factor(e)[1]}" for e in self.outgoing(node.id)),
            "API Gateway",
        )

    def charge_stream(self, node: Any) -> None:
        props = self._props(node)
        volume = self.volume[node.id]
        if props.get("StreamModeDetails", {}).get("StreamMode") == "ON_DEMAND":
            self.add(
                node.label,
                "on-demand stream-hours",
                HOURS_PER_MONTH,
                "hours",
                "kinesis_on_demand_stream_hour",
                1,
                f"{HOURS_PER_MONTH} h per month",
                "Kinesis",
            )
            gb = volume * self.a.payload_kb / _GB
            self.add(
                node.label,
                "data written",
                gb,
                "GB",
                "kinesis_on_demand_in_gb",
                1,
                f"{volume:,.0f} records × {self.a.payload_kb:g} KB",
                "Kinesis",
            )
            consumers = max(1, len(self.outgoing(node.id)))
            self.add(
                node.label,
                "data read",
                gb * consumers,
                "GB",
                "kinesis_on_demand_out_gb",
                1,
                f"read by {consumers} consumer(s)",
                "Kinesis",
            )
            return
        shards = int(props.get("ShardCount", 1))
        self.add(
            node.label,
            "shard-hours",
            shards * HOURS_PER_MONTH,
            "shard-hours",
            "kinesis_shard_hour",
            1,
            f"{shards} provisioned shard(s) × {HOURS_PER_MONTH} h",
            "Kinesis",
        )
        units = _chunks(self.a.payload_kb, 25)
        self.add(
            node.label,
            "PUT payload units",
            volume * units,
            "units",
            "kinesis_put_units_per_million",
            1e6,
            f"{units} unit(s) of 25 KB per record",
            "Kinesis",
        )

    def charge_firehose(self, node: Any) -> None:
        volume = self.volume[node.id]
        rounded = math.ceil(self.a.payload_kb / 5) * 5
        self.add(
            node.label,
            "data ingested",
            volume * rounded / _GB,
            "GB",
            "firehose_per_gb",
            1,
            f"each record rounded up to {rounded} KB",
            "Firehose",
        )

    def charge_statemachine(self, node: Any) -> None:
        props = self._props(node)
        volume = self.volume[node.id]
        if str(props.get("StateMachineType", "STANDARD")).upper() == "EXPRESS":
            self.add(
                node.label,
                "Express executions",
                volume,
                "requests",
                "sfn_express_per_million",
                1e6,
                "one execution per event",
                "Step Functions",
            )
            duration, why = self.function_duration(node)
            self.add(
                node.label,
                "Express duration",
                volume * duration / 1000 * 64 / 1024,
                "GB-s",
                "sfn_express_gb_second",
                1,
                f"{why}, 64 MB memory step",
                "Step Functions",
            )
            return
        states = self.a.transitions or _count_states(props) or 1
        self.add(
            node.label,
            "state transitions (Standard)",
            volume * states,
            "transitions",
            "sfn_standard_per_1000_transitions",
            1000,
            f"{states} transitions per execution"
            + (" (--transitions)" if self.a.transitions else " (states in the definition)"),
            "Step Functions",
        )

    def charge_broker(self, node: Any) -> None:
        props = self._props(node)
        instance = str(props.get("HostInstanceType", "mq.m5.large"))
        count = {"SINGLE_INSTANCE": 1, "ACTIVE_STANDBY_MULTI_AZ": 2, "CLUSTER_MULTI_AZ": 3}.get(
            str(props.get("DeploymentMode", "SINGLE_INSTANCE")), 1
        )
        self.add(
            node.label,
            f"broker hours ({instance})",
            count * HOURS_PER_MONTH,
            "hours",
            "mq_broker_hour",
            1,
            f"{count} instance(s) always on",
            "Amazon MQ",
            sub=instance,
        )

    def charge_cluster(self, node: Any) -> None:
        resource = self.resources[node.logical_ids[0]]
        props = self._props(node)
        if resource.get("Type") == "AWS::MSK::ServerlessCluster":
            self.add(
                node.label,
                "serverless cluster-hours",
                HOURS_PER_MONTH,
                "hours",
                "msk_serverless_cluster_hour",
                1,
                "always on; partitions and data not counted",
                "MSK",
            )
            return
        info = props.get("BrokerNodeGroupInfo", {})
        instance = str(info.get("InstanceType", "kafka.m5.large"))
        brokers = int(props.get("NumberOfBrokerNodes", 3))
        self.add(
            node.label,
            f"broker hours ({instance})",
            brokers * HOURS_PER_MONTH,
            "hours",
            "msk_broker_hour",
            1,
            f"{brokers} brokers always on; storage not counted",
            "MSK",
            sub=instance,
        )

    def charge_keys(self) -> None:
        encrypted: dict[str, list[str]] = defaultdict(list)
        for node in self.graph.nodes.values():
            if node.kind in ("queue", "topic") and node.logical_ids:
                key = self._props(node).get("KmsMasterKeyId")
                for ref in references(key):
                    if self.volume[node.id] > 0:
                        encrypted[ref].append(node.label)
        for logical_id, resource in sorted(self.resources.items()):
            if resource.get("Type") != "AWS::KMS::Key":
                continue
            label = self.stack.short_path(logical_id)
            self.add(
                label, "customer-managed key", 1, "keys", "kms_key_month", 1, "one month", "KMS"
            )
            users = encrypted.get(logical_id, [])
            if users:
                per = 2 * SECONDS_PER_MONTH / KMS_DATA_KEY_REUSE_SECONDS
                self.add(
                    label,
                    "requests",
                    per * len(users),
                    "requests",
                    "kms_per_10000",
                    10000,
                    f"{len(users)} encrypted queue(s)/topic(s) with traffic × 2 principals × one "
                    f"data key per {KMS_DATA_KEY_REUSE_SECONDS} s",
                    "KMS",
                )

    def charge_monitoring(self) -> None:
        alarms = [
            lid for lid, r in self.resources.items() if r.get("Type") == "AWS::CloudWatch::Alarm"
        ]
        if alarms:
            self.add(
                "(alarms)",
                "alarms",
                len(alarms),
                "alarms",
                "cw_alarm_month",
                1,
                "standard resolution, one metric each",
                "CloudWatch",
            )
        dashboards = [
            lid
            for lid, r in self.resources.items()
            if r.get("Type") == "AWS::CloudWatch::Dashboard"
        ]
        if dashboards:
            self.add(
                "(dashboards)",
                "dashboards",
                len(dashboards),
                "dashboards",
                "cw_dashboard_month",
                1,
                "one month",
                "CloudWatch",
            )
        for target, count in sorted(self.volume_reads.items()):
            node = self.graph.nodes[target]
            if node.kind == "bucket":
                self.add(
                    node.label,
                    "GET requests",
                    count,
                    "requests",
                    "s3_get_per_1000",
                    1000,
                    "; ".join(self.read_reasons[target]),
                    "S3",
                )
            elif node.kind == "table":
                units = _chunks(self.a.payload_kb, 4)
                self.add(
                    node.label,
                    "read request units",
                    count * units,
                    "RRU",
                    "dynamodb_read_per_million",
                    1e6,
                    "; ".join(self.read_reasons[target]),
                    "DynamoDB",
                )

    def apply_free_tier(self) -> None:
        free = self.prices.free_tier
        allowances = [
            ("Lambda", "invocations", "lambda_requests", "lambda_requests_per_million", 1e6),
            ("Lambda", "duration", "lambda_gb_seconds", None, 1),
            ("SQS", "", "sqs_requests", None, 1e6),
            ("SNS", "Publish", "sns_publishes", "sns_publish_per_million", 1e6),
            ("KMS", "requests", "kms_requests", "kms_per_10000", 10000),
            ("CloudWatch", "alarms", "cw_alarms", "cw_alarm_month", 1),
            ("CloudWatch", "dashboards", "cw_dashboards", "cw_dashboard_month", 1),
            ("CloudWatch", "log ingestion", "cw_logs_gb", "cw_logs_ingest_gb", 1),
        ]
        for service, item, allowance, _, _ in allowances:
            matching = [
                line
                for line in self.lines
                if line.service == service and line.item.startswith(item)
            ]
            if not matching or allowance not in free:
                continue
            remaining = float(free[allowance])
            for line in sorted(matching, key=lambda line: -line.unit_price / line.price_unit):
                take = min(remaining, line.quantity)
                if take <= 0:
                    break
                remaining -= take
                self.lines.append(
                    Line(
                        line.resource,
                        f"free tier: {line.item}",
                        -take,
                        line.unit,
                        line.unit_price,
                        line.price_unit,
                        f"always-free {allowance.replace('_', ' ')} (per account)",
                        service,
                    )
                )


_RATE = re.compile(r"rate\((\d+)\s+(minute|hour|day)s?\)")


def schedule_runs(expression: str) -> float:
    """Runs a month of ``rate(5 minutes)``; a ``cron(...)`` is counted as one run a day."""
    match = _RATE.fullmatch(expression.strip())
    if match is None:
        return 30.0 if expression.startswith("cron(") else 0.0
    seconds = {"minute": 60, "hour": 3600, "day": 86400}[match.group(2)] * int(match.group(1))
    return SECONDS_PER_MONTH / seconds


def _count_states(props: dict[str, Any]) -> int:
    definition = props.get("DefinitionString") or props.get("Definition")
    text = json.dumps(definition)
    return text.count('\\"Type\\"') or text.count('"Type"')


def estimate(stack: StackTemplate, prices: Prices, region: str, assumptions: Assumptions) -> Report:
    """The cost lines of one stack's template for the traffic profile ``assumptions``."""
    estimator = _Estimator(stack, prices, region, assumptions)
    lines = estimator.estimate()
    unverified = sorted(set(estimator.table.get("unverified", [])) & estimator.used)
    return Report(stack.name, region, prices, assumptions, lines, unverified)


# ---------------------------------------------------------------------------- output


def _number(value: float) -> str:
    if value == int(value) and abs(value) >= 1:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:,.1f}"
    return f"{value:.4g}"


def _quantity(value: float, unit: str) -> str:
    if value == 1 and unit.endswith("s") and not unit.endswith("-s"):
        unit = unit[:-1]
    return f"{_number(value)} {unit}"


def _money(value: float) -> str:
    return f"{value:,.2f}" if abs(value) >= 0.005 or value == 0 else f"{value:.4f}"


def _unit_price(line: Line) -> str:
    per = {1: "", 1000: " per 1K", 10000: " per 10K", 1e6: " per 1M"}.get(line.price_unit, "")
    price = f"{line.unit_price:.10f}".rstrip("0").rstrip(".") if line.unit_price else "0"
    return f"${price}{per}"


def format_report(report: Report, output_format: str = "text") -> str:
    a = report.assumptions
    header = (
        f"{report.stack} — {a.events:,} events/month of {a.payload_kb:g} KB, {report.region}; "
        f"prices: {report.prices.retrieved} ({report.prices.currency}), free tiers "
        + ("applied" if a.free_tier else "ignored")
    )
    rows = [
        (
            line.resource,
            line.item,
            _quantity(line.quantity, line.unit),
            _unit_price(line),
            _money(line.cost),
            line.assumption,
        )
        for line in report.lines
    ]
    notes = [f"Price source: {report.prices.source}"]
    if report.unverified:
        notes.append(
            f"Unverified for {report.region} (closest known figure used): "
            + ", ".join(report.unverified)
        )
    if output_format == "json":
        return json.dumps(
            {
                "stack": report.stack,
                "region": report.region,
                "retrieved": report.prices.retrieved,
                "currency": report.prices.currency,
                "total": round(report.total, 6),
                "lines": [
                    {
                        "resource": line.resource,
                        "item": line.item,
                        "quantity": line.quantity,
                        "unit": line.unit,
                        "unit_price": line.unit_price,
                        "per": line.price_unit,
                        "cost": round(line.cost, 6),
                        "assumption": line.assumption,
                    }
                    for line in report.lines
                ],
                "unverified": report.unverified,
            },
            indent=2,
        )
    titles = ("resource", "line item", "quantity", "unit price", "monthly $", "assumption")
    if output_format == "markdown":
        out = [header, "", "| " + " | ".join(titles) + " |", "|" + " --- |" * len(titles)]
        out.extend("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows)
        out.append(f"| **total** | | | | **{_money(report.total)}** | |")
        return "\n".join([*out, "", *notes]) + "\n"
    widths = [
        max(len(t), *(len(r[i]) for r in rows)) if rows else len(t) for i, t in enumerate(titles)
    ]
    widths[5] = len(titles[5])
    out = [header, "  ".join(t.ljust(w) for t, w in zip(titles, widths, strict=True)).rstrip()]
    for row in rows:
        out.append(
            "  ".join(
                c.ljust(w) if i != 4 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
    out.append(f"{'TOTAL'.ljust(sum(widths[:4]) + 6)}  {_money(report.total).rjust(widths[4])}")
    return "\n".join([*out, *notes]) + "\n"


# ---------------------------------------------------------------------------- Price List API

# Entries the refresh knows how to find (ServiceCode, attribute filters, price multiplier to the
# table's unit). Every other entry keeps the shipped figure and stays listed as not refreshed.
PRICE_LIST_QUERIES: dict[str, tuple[str, dict[str, str], float]] = {
    "lambda_requests_per_million": ("AWSLambda", {"group": "AWS-Lambda-Requests"}, 1e6),
    "lambda_gb_second_x86_64": ("AWSLambda", {"group": "AWS-Lambda-Duration"}, 1),
    "lambda_gb_second_arm64": ("AWSLambda", {"group": "AWS-Lambda-Duration-ARM"}, 1),
    "sqs_standard_per_million": ("AWSQueueService", {"queueType": "Standard"}, 1e6),
    "sqs_fifo_per_million": ("AWSQueueService", {"queueType": "FIFO (first-in, first-out)"}, 1e6),
    "s3_put_per_1000": ("AmazonS3", {"group": "S3-API-Tier1"}, 1000),
    "s3_get_per_1000": ("AmazonS3", {"group": "S3-API-Tier2"}, 1000),
    "s3_storage_gb_month": (
        "AmazonS3",
        {"storageClass": "General Purpose", "volumeType": "Standard"},
        1,
    ),
}


def _first_tier_usd(price_list: list[str]) -> float | None:
    """The on-demand USD price of the first volume tier (``beginRange`` 0) of the first product."""
    for item in price_list:
        product = json.loads(item)
        for term in product.get("terms", {}).get("OnDemand", {}).values():
            for dimension in term.get("priceDimensions", {}).values():
                if str(dimension.get("beginRange", "0")) in ("0", "0.0"):
                    usd = dimension.get("pricePerUnit", {}).get("USD")
                    if usd is not None:
                        return float(usd)
    return None


def refresh_prices(prices: Prices, regions: list[str], client: Any, today: str) -> dict[str, Any]:
    """A price table like the shipped one, with what the AWS Price List API answers.

    ``client`` is a boto3 ``pricing`` client (its endpoints are in us-east-1 and ap-south-1).
    Entries outside :data:`PRICE_LIST_QUERIES`, or that the API did not answer, keep the shipped
    figure and are listed in the region's ``unverified``.
    """
    table: dict[str, Any] = {
        "source": f"AWS Price List API (pricing:GetProducts) on {today} for "
        + ", ".join(sorted(PRICE_LIST_QUERIES))
        + f"; other entries from the shipped table of {prices.retrieved} ({prices.source})",
        "retrieved": today,
        "currency": "USD",
        "regions": {},
        "free_tier": prices.free_tier,
    }
    for region in regions:
        values = dict(prices.region(region))
        refreshed: set[str] = set()
        for key, (service, attributes, scale) in PRICE_LIST_QUERIES.items():
            filters = [{"Type": "TERM_MATCH", "Field": "regionCode", "Value": region}] + [
                {"Type": "TERM_MATCH", "Field": name, "Value": value}
                for name, value in attributes.items()
            ]
            answer = client.get_products(ServiceCode=service, Filters=filters, MaxResults=10)
            price = _first_tier_usd(answer.get("PriceList", []))
            if price is not None:
                values[key] = round(price * scale, 10)
                refreshed.add(key)
        values["unverified"] = sorted(k for k in values if k != "unverified" and k not in refreshed)
        table["regions"][region] = values
    return table
