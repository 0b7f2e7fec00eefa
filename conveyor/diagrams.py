"""``conveyor diagram``: a topology drawn from its synthesized template.

One graph model is built from a template (:func:`build_graph`) and rendered to Mermaid
(:func:`to_mermaid`, what GitHub shows in the README) or to Graphviz DOT (:func:`to_dot`,
rendered to SVG/PNG by Graphviz's ``dot``).

Nodes are the resources that carry data — buckets, queues, topics, buses, streams, state
machines, functions, tables, APIs, brokers — labelled with their construct path (without the
stack's name, so the drawing does not depend on the environment) and one line of facts read
from the template. Edges say how data moves and come from the template only:

- ``AWS::SNS::Subscription``: topic → endpoint, the filter policy and raw delivery as label,
  its ``RedrivePolicy`` as a dashed dead-letter edge;
- ``AWS::Events::Rule``: bus → each target, the event pattern summarised, the target's
  ``DeadLetterConfig`` dashed; ``AWS::Events::Archive``: bus → archive;
- ``AWS::Lambda::EventSourceMapping``: source → function (batch size, window, partial failures);
- ``Custom::S3BucketNotifications`` (or a bucket's ``NotificationConfiguration``): bucket →
  destination with its events and prefix/suffix filters;
- SQS ``RedrivePolicy``: queue → DLQ (dashed, ``maxReceiveCount``);
- ``AWS::Lambda::EventInvokeConfig`` and mapping destinations: dashed failure edges;
- API Gateway methods whose integration targets SQS, DynamoDB, Kinesis, Step Functions, SNS,
  EventBridge or Lambda; Firehose sources and destinations; Pipes;
- the writes a function or state machine's role allows (``sqs:SendMessage``,
  ``dynamodb:PutItem``, ``s3:PutObject``…) on a resource of the template.

Alarms are counted per set of actions and drawn with what their topic reaches (the
remediation path) in a separate group. IAM, KMS, logs, policies, layers, CDK's own provider
functions and the like are left out unless ``plumbing=True``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor.templates import StackTemplate, references

KINDS: dict[str, str] = {
    "AWS::S3::Bucket": "bucket",
    "AWS::SQS::Queue": "queue",
    "AWS::SNS::Topic": "topic",
    "AWS::Events::EventBus": "bus",
    "AWS::Lambda::Function": "function",
    "AWS::DynamoDB::Table": "table",
    "AWS::DynamoDB::GlobalTable": "table",
    "AWS::ApiGateway::RestApi": "api",
    "AWS::ApiGatewayV2::Api": "api",
    "AWS::Kinesis::Stream": "stream",
    "AWS::KinesisFirehose::DeliveryStream": "firehose",
    "AWS::StepFunctions::StateMachine": "statemachine",
    "AWS::Events::Archive": "archive",
    "AWS::Pipes::Pipe": "pipe",
    "AWS::AmazonMQ::Broker": "broker",
    "AWS::MSK::Cluster": "cluster",
    "AWS::MSK::ServerlessCluster": "cluster",
}
# Resources that are edges, not nodes (they are drawn as the edges they make).
EDGE_TYPES = {
    "AWS::SNS::Subscription",
    "AWS::Events::Rule",
    "AWS::Lambda::EventSourceMapping",
    "AWS::Lambda::EventInvokeConfig",
    "Custom::S3BucketNotifications",
    "AWS::ApiGateway::Method",
    "AWS::ApiGatewayV2::Integration",
    "AWS::ApiGatewayV2::Route",
    "AWS::CloudWatch::Alarm",
    "AWS::Lambda::Url",
    "AWS::Scheduler::Schedule",
}
_KIND_ORDER = [
    "external",
    "api",
    "bucket",
    "topic",
    "bus",
    "stream",
    "firehose",
    "pipe",
    "broker",
    "cluster",
    "queue",
    "statemachine",
    "function",
    "table",
    "archive",
    "alarm",
    "plumbing",
]
_WRITE_ACTIONS = {
    "sqs": {"SendMessage", "SendMessageBatch", "StartMessageMoveTask"},
    "sns": {"Publish"},
    "events": {"PutEvents"},
    "dynamodb": {
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "BatchWriteItem",
        "TransactWriteItems",
        "PartiQLInsert",
        "PartiQLUpdate",
        "PartiQLDelete",
    },
    "s3": {"PutObject", "DeleteObject"},
    "kinesis": {"PutRecord", "PutRecords"},
    "firehose": {"PutRecord", "PutRecordBatch"},
    "states": {"StartExecution", "StartSyncExecution"},
    "lambda": {"InvokeFunction"},
}
_PRODUCER = {
    "bucket": ("uploaders", "PutObject"),
    "topic": ("publishers", "Publish"),
    "bus": ("producers", "PutEvents"),
    "api": ("clients", "HTTPS"),
    "stream": ("producers", "PutRecords"),
    "firehose": ("producers", "PutRecordBatch"),
    "queue": ("senders", "SendMessage"),
    "statemachine": ("callers", "StartExecution"),
    "broker": ("publishers", "AMQP/MQTT"),
    "cluster": ("producers", "Kafka"),
}
_PROTOCOLS = {
    "email": "e-mail",
    "email-json": "e-mail (JSON)",
    "sms": "SMS",
    "http": "HTTP endpoint",
    "https": "HTTPS endpoint",
    "application": "mobile push",
}
DATA, DEAD_LETTER, FAILURE, ARCHIVE, ALARM, PLUMBING = (
    "data",
    "dead-letter",
    "failure",
    "archive",
    "alarm",
    "plumbing",
)
DASHED = {DEAD_LETTER, FAILURE, ARCHIVE}
ALARM_GROUP = "alarms and remediation"


@dataclass
class Node:
    id: str
    kind: str
    label: str
    detail: str = ""
    logical_ids: list[str] = field(default_factory=list)
    group: str = ""


@dataclass(frozen=True, order=True)
class Edge:
    source: str
    target: str
    kind: str
    label: str = ""
    origin: str = ""  # the logical id of the resource (or property) the edge comes from


@dataclass
class Graph:
    stack: str
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)

    def node_for(self, logical_id: str) -> Node | None:
        return next((n for n in self.nodes.values() if logical_id in n.logical_ids), None)

    def has_edge(self, source: str, target: str, kind: str | None = None) -> bool:
        return any(
            e.source == source and e.target == target and (kind is None or e.kind == kind)
            for e in self.edges
        )


# ---------------------------------------------------------------------------- summaries


def _value(value: Any) -> str:
    if isinstance(value, dict):
        (operator, operand), *_rest = value.items() if value else [("?", "")]
        if operator == "numeric" and isinstance(operand, list):
            pairs = [operand[i : i + 2] for i in range(0, len(operand), 2)]
            signs = {">=": "≥", "<=": "≤", "=": "="}
            return " ".join(f"{signs.get(str(p[0]), p[0])} {_scalar(p[1])}" for p in pairs)
        if operator == "anything-but":
            items = operand if isinstance(operand, list) else [operand]
            return "≠ " + "|".join(_value(i) for i in items)
        if operator == "exists":
            return "exists" if operand else "absent"
        if operator in ("prefix", "suffix", "wildcard", "equals-ignore-case"):
            return f"{operator} {_value(operand)}"
        return f"{operator} {_scalar(operand)}"
    return _scalar(value)


def _scalar(value: Any) -> str:
    if isinstance(value, dict):
        return _value(value)
    if isinstance(value, list):
        return "|".join(_scalar(v) for v in value)
    if value is None:
        return "null"
    return str(value)


def summarise_pattern(pattern: Any, prefix: str = "") -> list[str]:
    """``{"a": {"b": [1, {"numeric": [">", 5]}]}}`` → ``["a.b = 1 or > 5"]``, deterministic."""
    parts: list[str] = []
    if not isinstance(pattern, dict):
        return parts
    for key in pattern:
        value = pattern[key]
        name = f"{prefix}{key}"
        if key == "$or" and isinstance(value, list):
            parts.append(
                " or ".join("(" + ", ".join(summarise_pattern(v, prefix)) + ")" for v in value)
            )
        elif isinstance(value, dict):
            parts.extend(summarise_pattern(value, f"{name}."))
        elif isinstance(value, list):
            values = [_value(v) for v in value]
            plain = all(not isinstance(v, dict) for v in value)
            sep = "=" if plain else " "
            parts.append(f"{name}{sep}{('|' if plain else ' or ').join(values)}")
        else:
            parts.append(f"{name}={_scalar(value)}")
    return parts


def _shorten(items: list[str], limit: int = 4) -> str:
    if len(items) <= limit:
        return ", ".join(items)
    return ", ".join(items[:limit]) + f" +{len(items) - limit}"


# ---------------------------------------------------------------------------- the model


def _detail(kind: str, resource: dict[str, Any]) -> str:
    props = resource.get("Properties", {})
    if kind == "queue":
        return "SQS FIFO" if props.get("FifoQueue") else "SQS"
    if kind == "topic":
        return "SNS FIFO" if props.get("FifoTopic") else "SNS"
    if kind == "bus":
        return "EventBridge bus"
    if kind == "function":
        arch = (props.get("Architectures") or ["x86_64"])[0]
        return f"λ {arch} {props.get('MemorySize', 128)} MB"
    if kind == "table":
        return "DynamoDB"
    if kind == "bucket":
        return "S3"
    if kind == "api":
        return "API Gateway"
    if kind == "stream":
        mode = props.get("StreamModeDetails", {}).get("StreamMode", "PROVISIONED")
        return (
            "Kinesis on-demand"
            if mode == "ON_DEMAND"
            else f"Kinesis {props.get('ShardCount', 1)} shard(s)"
        )
    if kind == "firehose":
        return "Firehose"
    if kind == "statemachine":
        return f"Step Functions {str(props.get('StateMachineType', 'STANDARD')).title()}"
    if kind == "archive":
        days = props.get("RetentionDays")
        return f"archive, {days} days" if days else "archive, indefinite"
    if kind == "pipe":
        return "EventBridge Pipe"
    if kind == "broker":
        return f"Amazon MQ {props.get('EngineType', '')}".strip()
    if kind == "cluster":
        return "MSK"
    return str(resource.get("Type", "")).replace("AWS::", "")


_ID_PREFIX = {
    "bucket": "s3",
    "queue": "q",
    "topic": "sns",
    "bus": "bus",
    "function": "fn",
    "table": "ddb",
    "api": "api",
    "stream": "kds",
    "firehose": "fh",
    "statemachine": "sfn",
    "archive": "arch",
    "pipe": "pipe",
    "broker": "mq",
    "cluster": "msk",
    "plumbing": "res",
}


def _node_id(kind: str, label: str) -> str:
    return _ID_PREFIX[kind] + "_" + re.sub(r"[^A-Za-z0-9]+", "_", label).strip("_")


def _is_cdk_internal_function(stack: StackTemplate, logical_id: str) -> bool:
    """CDK's provider functions (custom resources, bucket notifications, log retention)."""
    for resource in stack.resources.values():
        rtype = str(resource.get("Type", ""))
        if rtype.startswith("Custom::") or rtype == "AWS::CloudFormation::CustomResource":
            token = resource.get("Properties", {}).get("ServiceToken")
            if logical_id in references(token):
                return True
    return False


def _log_buckets(stack: StackTemplate) -> set[str]:
    found: set[str] = set()
    for resource in stack.resources.values():
        logging = resource.get("Properties", {}).get("LoggingConfiguration")
        if resource.get("Type") == "AWS::S3::Bucket" and isinstance(logging, dict):
            found.update(references(logging.get("DestinationBucketName")))
    return found


class _Builder:
    def __init__(self, stack: StackTemplate, plumbing: bool) -> None:
        self.stack = stack
        self.resources = stack.resources
        self.plumbing = plumbing
        self.graph = Graph(stack.name)
        self._ids: dict[str, str] = {}
        hidden = _log_buckets(stack) | {
            lid
            for lid, r in self.resources.items()
            if r.get("Type") == "AWS::Lambda::Function" and _is_cdk_internal_function(stack, lid)
        }
        for logical_id in sorted(self.resources, key=lambda lid: stack.short_path(lid)):
            resource = self.resources[logical_id]
            rtype = str(resource.get("Type", ""))
            kind = KINDS.get(rtype)
            if rtype in EDGE_TYPES:
                continue
            if kind is None or logical_id in hidden:
                if not plumbing:
                    continue
                kind = "plumbing"
            label = stack.short_path(logical_id)
            node_id = _node_id(kind, label)
            while node_id in self.graph.nodes:
                node_id += "_"
            self.graph.nodes[node_id] = Node(
                node_id, kind, label, _detail(kind, resource), [logical_id]
            )
            self._ids[logical_id] = node_id

    # helpers ---------------------------------------------------------------------------
    def ref(self, value: Any) -> str | None:
        """The node of the first resource ``value`` references (that is drawn)."""
        for logical_id in references(value):
            if logical_id in self._ids:
                return self._ids[logical_id]
        return None

    def external(self, key: str, label: str, detail: str = "") -> str:
        node_id = "ex_" + re.sub(r"[^A-Za-z0-9]+", "_", key).strip("_")
        if node_id not in self.graph.nodes:
            self.graph.nodes[node_id] = Node(node_id, "external", label, detail)
        return node_id

    def edge(
        self, source: str | None, target: str | None, kind: str, label: str, origin: str
    ) -> None:
        if source is None or target is None:
            return
        new = Edge(source, target, kind, label, origin)
        if not any(
            (e.source, e.target, e.kind, e.label) == (source, target, kind, label)
            for e in self.graph.edges
        ):
            self.graph.edges.append(new)

    def of_type(self, *types: str) -> list[tuple[str, dict[str, Any]]]:
        return [(lid, r) for lid, r in sorted(self.resources.items()) if r.get("Type") in types]

    # edges -----------------------------------------------------------------------------
    def build(self) -> Graph:
        self.redrive()
        self.subscriptions()
        self.rules()
        self.archives()
        self.mappings()
        self.notifications()
        self.invoke_configs()
        self.function_extras()
        self.api_methods()
        self.http_api_integrations()
        self.firehoses()
        self.pipes()
        self.alarms()
        self.role_writes()
        if self.plumbing:
            self.plumbing_references()
        self.producers()
        self.groups()
        return self.graph

    def redrive(self) -> None:
        for logical_id, resource in self.of_type("AWS::SQS::Queue"):
            policy = resource.get("Properties", {}).get("RedrivePolicy")
            if isinstance(policy, dict):
                count = policy.get("maxReceiveCount")
                label = f"after {count} receives" if count else "redrive"
                self.edge(
                    self._ids.get(logical_id),
                    self.ref(policy.get("deadLetterTargetArn")),
                    DEAD_LETTER,
                    label,
                    logical_id,
                )

    def subscriptions(self) -> None:
        for logical_id, resource in self.of_type("AWS::SNS::Subscription"):
            props = resource.get("Properties", {})
            topic = self.ref(props.get("TopicArn"))
            protocol = str(props.get("Protocol", ""))
            if protocol in ("sqs", "lambda", "firehose"):
                endpoint = self.ref(props.get("Endpoint"))
            else:
                endpoint = self.external(
                    f"{topic}_{protocol}", _PROTOCOLS.get(protocol, protocol), "subscriber"
                )
            parts = summarise_pattern(props.get("FilterPolicy"))
            label = ", ".join(parts)
            if parts and props.get("FilterPolicyScope") == "MessageBody":
                label = "body: " + label
            if props.get("RawMessageDelivery") in (True, "true"):
                label = f"{label}, raw" if label else "raw"
            self.edge(topic, endpoint, DATA, label, logical_id)
            redrive = props.get("RedrivePolicy")
            if isinstance(redrive, dict):
                self.edge(
                    topic,
                    self.ref(redrive.get("deadLetterTargetArn")),
                    DEAD_LETTER,
                    "undeliverable",
                    logical_id,
                )

    def rules(self) -> None:
        for logical_id, resource in self.of_type("AWS::Events::Rule"):
            props = resource.get("Properties", {})
            if props.get("ScheduleExpression"):
                source = self.external(
                    f"schedule_{logical_id}", "schedule", str(props["ScheduleExpression"])
                )
                label = ""
            else:
                source = self.ref(props.get("EventBusName")) or self.external(
                    "default_bus", "default event bus"
                )
                label = _shorten(summarise_pattern(props.get("EventPattern")), 3)
            for target in props.get("Targets", []):
                destination = self.ref(target.get("Arn")) or self.external(
                    f"target_{logical_id}_{target.get('Id')}", "external target"
                )
                self.edge(source, destination, DATA, label, logical_id)
                dlq = target.get("DeadLetterConfig", {}).get("Arn")
                if dlq is not None:
                    self.edge(source, self.ref(dlq), DEAD_LETTER, "undeliverable", logical_id)

    def archives(self) -> None:
        for logical_id, resource in self.of_type("AWS::Events::Archive"):
            props = resource.get("Properties", {})
            label = _shorten(summarise_pattern(props.get("EventPattern")), 3) or "every event"
            self.edge(
                self.ref(props.get("SourceArn")),
                self._ids.get(logical_id),
                ARCHIVE,
                label,
                logical_id,
            )

    def mappings(self) -> None:
        for logical_id, resource in self.of_type("AWS::Lambda::EventSourceMapping"):
            props = resource.get("Properties", {})
            function = self.ref(props.get("FunctionName"))
            source = self.ref(props.get("EventSourceArn"))
            if source is None:
                source = self.external(f"esm_{logical_id}", "event source", "self-managed")
            parts = [f"batch {props.get('BatchSize', 'default')}"]
            if props.get("MaximumBatchingWindowInSeconds"):
                parts.append(f"window {props['MaximumBatchingWindowInSeconds']} s")
            if "ReportBatchItemFailures" in props.get("FunctionResponseTypes", []):
                parts.append("partial failures")
            if props.get("FilterCriteria"):
                parts.append("filtered")
            if props.get("StartingPosition"):
                parts.append(str(props["StartingPosition"]))
            self.edge(source, function, DATA, ", ".join(parts), logical_id)
            on_failure = props.get("DestinationConfig", {}).get("OnFailure", {})
            if on_failure.get("Destination") is not None:
                self.edge(
                    function,
                    self.ref(on_failure["Destination"]),
                    FAILURE,
                    "mapping on failure",
                    logical_id,
                )

    def notifications(self) -> None:
        configs: list[tuple[str, str | None, Any]] = []
        for logical_id, resource in self.of_type("Custom::S3BucketNotifications"):
            props = resource.get("Properties", {})
            configs.append(
                (
                    logical_id,
                    self.ref(props.get("BucketName")),
                    props.get("NotificationConfiguration"),
                )
            )
        for logical_id, resource in self.of_type("AWS::S3::Bucket"):
            config = resource.get("Properties", {}).get("NotificationConfiguration")
            if config:
                configs.append((logical_id, self._ids.get(logical_id), config))
        for origin, bucket, config in configs:
            if not isinstance(config, dict):
                continue
            grouped: dict[tuple[str | None, str], list[str]] = defaultdict(list)
            for key, arn_key in (
                ("QueueConfigurations", "QueueArn"),
                ("LambdaFunctionConfigurations", "LambdaFunctionArn"),
                ("TopicConfigurations", "TopicArn"),
            ):
                for item in config.get(key, []):
                    target = self.ref(
                        item.get(arn_key)
                        or item.get("Function")
                        or item.get("Queue")
                        or item.get("Topic")
                    )
                    event = item.get("Events") or [item.get("Event", "")]
                    events = ", ".join(str(e).removeprefix("s3:") for e in event)
                    rules = item.get("Filter", {}).get(
                        "Key", item.get("Filter", {}).get("S3Key", {})
                    )
                    rule_list: list[dict[str, Any]] = (
                        list(rules.get("FilterRules", rules.get("Rules", [])) or [])
                        if isinstance(rules, dict)
                        else []
                    )
                    text = "".join(
                        f"{r.get('Value')}*"
                        if str(r.get("Name")).lower() == "prefix"
                        else f"*{r.get('Value')}"
                        for r in sorted(
                            rule_list, key=lambda r: str(r.get("Name")).lower() != "prefix"
                        )
                    )
                    grouped[(target, events)].append(text)
            for (target, events), filters in grouped.items():
                shown = [f for f in filters if f]
                label = events + (" " + _shorten(shown) if shown else "")
                self.edge(bucket, target, DATA, label, origin)
            if "EventBridgeConfiguration" in config:
                self.edge(
                    bucket,
                    self.external("default_bus", "default event bus"),
                    DATA,
                    "all events",
                    origin,
                )

    def function_extras(self) -> None:
        """A function's own async DLQ, its function URL, and EventBridge Scheduler targets."""
        for logical_id, resource in self.of_type("AWS::Lambda::Function"):
            dlq = resource.get("Properties", {}).get("DeadLetterConfig", {}).get("TargetArn")
            if dlq is not None:
                self.edge(
                    self._ids.get(logical_id), self.ref(dlq), FAILURE, "async DLQ", logical_id
                )
        for logical_id, resource in self.of_type("AWS::Lambda::Url"):
            props = resource.get("Properties", {})
            clients = self.external(f"url_{logical_id}", "clients", "function URL")
            auth = str(props.get("AuthType", ""))
            self.edge(
                clients,
                self.ref(props.get("TargetFunctionArn")),
                DATA,
                f"HTTPS {auth}".strip(),
                logical_id,
            )
        for logical_id, resource in self.of_type("AWS::Scheduler::Schedule"):
            props = resource.get("Properties", {})
            target = props.get("Target", {})
            schedule = self.external(
                f"schedule_{logical_id}", "schedule", str(props.get("ScheduleExpression", ""))
            )
            self.edge(schedule, self.ref(target.get("Arn")), DATA, "", logical_id)
            dlq = target.get("DeadLetterConfig", {}).get("Arn")
            if dlq is not None:
                self.edge(schedule, self.ref(dlq), DEAD_LETTER, "undeliverable", logical_id)

    def invoke_configs(self) -> None:
        for logical_id, resource in self.of_type("AWS::Lambda::EventInvokeConfig"):
            props = resource.get("Properties", {})
            function = self.ref(props.get("FunctionName"))
            destinations = props.get("DestinationConfig", {})
            retries = props.get("MaximumRetryAttempts")
            failure = destinations.get("OnFailure", {}).get("Destination")
            if failure is not None:
                label = (
                    f"on failure after {retries} retries" if retries is not None else "on failure"
                )
                self.edge(function, self.ref(failure), FAILURE, label, logical_id)
            success = destinations.get("OnSuccess", {}).get("Destination")
            if success is not None:
                self.edge(function, self.ref(success), DATA, "on success", logical_id)

    def _api_path(self, resource_ref: Any) -> str:
        parts: list[str] = []
        current = resource_ref
        for _ in range(50):
            refs = references(current)
            if not refs or refs[0] not in self.resources:
                break
            resource = self.resources[refs[0]]
            if resource.get("Type") != "AWS::ApiGateway::Resource":
                break
            props = resource.get("Properties", {})
            parts.append(str(props.get("PathPart", "")))
            current = props.get("ParentId")
        return "/" + "/".join(reversed(parts))

    def api_methods(self) -> None:
        for logical_id, resource in self.of_type("AWS::ApiGateway::Method"):
            props = resource.get("Properties", {})
            integration = props.get("Integration", {})
            api = self.ref(props.get("RestApiId"))
            target_value = {k: v for k, v in integration.items() if k != "Credentials"}
            target = self.ref(target_value)
            if target is None or target == api:
                continue
            uri = json.dumps(integration.get("Uri", ""))
            match = re.search(r"(?:action|path)/([A-Za-z]+)", uri)
            action = match.group(1) if match and "action/" in uri else ""
            service = re.search(r":(sqs|dynamodb|kinesis|states|sns|events|lambda|firehose):", uri)
            if not action and service and service.group(1) == "sqs":
                action = "SendMessage"
            if service and service.group(1) == "lambda":
                action = "invoke"
            label = f"{props.get('HttpMethod', '')} {self._api_path(props.get('ResourceId'))}"
            self.edge(api, target, DATA, f"{label} → {action}" if action else label, logical_id)

    def http_api_integrations(self) -> None:
        """HTTP APIs (``AWS::ApiGatewayV2``): route → integration → SQS, Lambda, Step Functions…"""
        routes: dict[str, list[str]] = defaultdict(list)
        for _, resource in self.of_type("AWS::ApiGatewayV2::Route"):
            props = resource.get("Properties", {})
            for integration in references(props.get("Target")):
                routes[integration].append(str(props.get("RouteKey", "")))
        for logical_id, resource in self.of_type("AWS::ApiGatewayV2::Integration"):
            props = resource.get("Properties", {})
            api = self.ref(props.get("ApiId"))
            target = self.ref(
                {"uri": props.get("IntegrationUri"), "params": props.get("RequestParameters")}
            )
            if target is None or target == api:
                continue
            action = str(props.get("IntegrationSubtype", "")).split("-", 1)[-1]
            for route in sorted(routes.get(logical_id, [])) or [""]:
                label = " → ".join(part for part in (route, action) if part)
                self.edge(api, target, DATA, label, logical_id)

    def firehoses(self) -> None:
        for logical_id, resource in self.of_type("AWS::KinesisFirehose::DeliveryStream"):
            props = resource.get("Properties", {})
            node = self._ids.get(logical_id)
            source = props.get("KinesisStreamSourceConfiguration", {}).get("KinesisStreamARN")
            if source is not None:
                self.edge(self.ref(source), node, DATA, "source", logical_id)
            for key in (
                "ExtendedS3DestinationConfiguration",
                "S3DestinationConfiguration",
                "RedshiftDestinationConfiguration",
                "AmazonopensearchserviceDestinationConfiguration",
            ):
                config = props.get(key)
                if isinstance(config, dict):
                    self.edge(node, self.ref(config.get("BucketARN")), DATA, "delivers", logical_id)
                    processing = config.get("ProcessingConfiguration")
                    if processing:
                        self.edge(node, self.ref(processing), DATA, "transform", logical_id)
                    backup = config.get("S3BackupConfiguration")
                    if isinstance(backup, dict):
                        self.edge(
                            node, self.ref(backup.get("BucketARN")), FAILURE, "backup", logical_id
                        )

    def pipes(self) -> None:
        for logical_id, resource in self.of_type("AWS::Pipes::Pipe"):
            props = resource.get("Properties", {})
            node = self._ids.get(logical_id)
            self.edge(self.ref(props.get("Source")), node, DATA, "source", logical_id)
            if props.get("Enrichment") is not None:
                self.edge(node, self.ref(props.get("Enrichment")), DATA, "enrichment", logical_id)
            self.edge(node, self.ref(props.get("Target")), DATA, "target", logical_id)

    def alarms(self) -> None:
        by_actions: dict[tuple[tuple[str, ...], tuple[str, ...]], list[str]] = defaultdict(list)
        for logical_id, resource in self.of_type("AWS::CloudWatch::Alarm"):
            props = resource.get("Properties", {})
            states = tuple(
                state
                for state, key in (
                    ("ALARM", "AlarmActions"),
                    ("OK", "OKActions"),
                    ("INSUFFICIENT_DATA", "InsufficientDataActions"),
                )
                if props.get(key)
            )
            targets = tuple(
                sorted(
                    {
                        t
                        for key in ("AlarmActions", "OKActions", "InsufficientDataActions")
                        for t in [self.ref(props.get(key))]
                        if t
                    }
                )
            )
            by_actions[(targets, states)].append(logical_id)
        for index, ((targets, states), alarms) in enumerate(sorted(by_actions.items())):
            node_id = "al_alarms" + (f"_{index}" if index else "")
            label = f"{len(alarms)} alarm{'s' if len(alarms) > 1 else ''}"
            self.graph.nodes[node_id] = Node(node_id, "alarm", label, "CloudWatch", sorted(alarms))
            for target in targets:
                self.edge(node_id, target, ALARM, ", ".join(states), ",".join(sorted(alarms)))

    def role_writes(self) -> None:
        principals: dict[str, list[str]] = defaultdict(list)  # role → function/state machine nodes
        for logical_id, resource in self.of_type(
            "AWS::Lambda::Function", "AWS::StepFunctions::StateMachine"
        ):
            props = resource.get("Properties", {})
            node = self._ids.get(logical_id)
            for role in references(props.get("Role") or props.get("RoleArn")):
                if node:
                    principals[role].append(node)
        statements: list[tuple[str, str, dict[str, Any]]] = []
        for logical_id, resource in self.of_type("AWS::IAM::Policy"):
            props = resource.get("Properties", {})
            for role in references(props.get("Roles")):
                for statement in props.get("PolicyDocument", {}).get("Statement", []):
                    statements.append((logical_id, role, statement))
        for logical_id, resource in self.of_type("AWS::IAM::Role"):
            for policy in resource.get("Properties", {}).get("Policies", []) or []:
                for statement in policy.get("PolicyDocument", {}).get("Statement", []):
                    statements.append((logical_id, logical_id, statement))
        writes: dict[tuple[str, str], list[str]] = defaultdict(list)
        origins: dict[tuple[str, str], str] = {}
        dlqs = {e.target for e in self.graph.edges if e.kind == DEAD_LETTER}
        for origin, role, statement in statements:
            if statement.get("Effect") != "Allow" or role not in principals:
                continue
            actions = statement.get("Action", [])
            actions = [actions] if isinstance(actions, str) else actions
            allowed = [a for a in actions if _is_write(str(a))]
            if not allowed:
                continue
            resources = statement.get("Resource", [])
            for target_id in references(resources):
                target = self._ids.get(target_id)
                if target is None or self.graph.nodes[target].kind == "plumbing":
                    continue
                for principal in principals[role]:
                    key = (principal, target)
                    for action in allowed:
                        short = str(action).split(":", 1)[-1]
                        if short not in writes[key]:
                            writes[key].append(short)
                    origins.setdefault(key, origin)
        for (principal, target), actions in sorted(writes.items()):
            if principal == target or self.graph.has_edge(principal, target):
                continue
            kind = DEAD_LETTER if target in dlqs and actions == ["SendMessage"] else DATA
            self.edge(
                principal, target, kind, _shorten(sorted(actions), 3), origins[(principal, target)]
            )

    def plumbing_references(self) -> None:
        for logical_id, resource in sorted(self.resources.items()):
            source = self._ids.get(logical_id)
            if source is None:
                continue
            for ref in references(resource.get("Properties", {})):
                target = self._ids.get(ref)
                if target and target != source and not self.graph.has_edge(source, target):
                    self.edge(source, target, PLUMBING, "", logical_id)

    def producers(self) -> None:
        incoming = {e.target for e in self.graph.edges if e.kind != PLUMBING}
        outgoing = {e.source for e in self.graph.edges if e.kind != PLUMBING}
        for node in sorted(self.graph.nodes.values(), key=lambda n: n.id):
            if node.kind in _PRODUCER and node.id not in incoming and node.id in outgoing:
                label, action = _PRODUCER[node.kind]
                producer = self.external(f"producers_{node.id}", label)
                self.edge(producer, node.id, DATA, action, "")

    def groups(self) -> None:
        """Alarms, and what only they reach, are drawn apart from the data path."""
        adjacency: dict[str, list[str]] = defaultdict(list)
        for edge in self.graph.edges:
            if edge.kind != PLUMBING:
                adjacency[edge.source].append(edge.target)

        def reach(starts: list[str]) -> set[str]:
            seen: set[str] = set()
            todo = list(starts)
            while todo:
                current = todo.pop()
                if current in seen:
                    continue
                seen.add(current)
                todo.extend(adjacency[current])
            return seen

        incoming = {e.target for e in self.graph.edges if e.kind != PLUMBING}
        sources = [
            n.id for n in self.graph.nodes.values() if n.kind != "alarm" and n.id not in incoming
        ]
        data = reach(sources)
        alarms = [n.id for n in self.graph.nodes.values() if n.kind == "alarm"]
        for node_id in reach(alarms) - data:
            self.graph.nodes[node_id].group = ALARM_GROUP


def _is_write(action: str) -> bool:
    if action == "*":
        return False
    service, _, name = action.partition(":")
    names = _WRITE_ACTIONS.get(service.lower())
    if names is None:
        return False
    if name.endswith("*"):
        return any(n.startswith(name[:-1]) for n in names) and name != "*"
    return name in names


def build_graph(stack: StackTemplate, *, plumbing: bool = False) -> Graph:
    """The graph of one stack's template (see the module docstring for what becomes an edge)."""
    return _Builder(stack, plumbing).build()


# ---------------------------------------------------------------------------- rendering


def _ordered(graph: Graph) -> tuple[list[Node], list[Edge]]:
    nodes = sorted(
        graph.nodes.values(),
        key=lambda n: (n.group, _KIND_ORDER.index(n.kind), n.label, n.id),
    )
    labels = {n.id: n.label for n in nodes}
    edges = sorted(
        graph.edges,
        key=lambda e: (
            graph.nodes[e.source].group,
            e.kind == ALARM,
            labels[e.source],
            e.kind,
            labels[e.target],
            e.label,
        ),
    )
    return nodes, edges


_MERMAID_ESCAPES = {
    "#": "#35;",
    '"': "#quot;",
    "<": "#lt;",
    ">": "#gt;",
    "&": "#amp;",
    "|": "#124;",
    "`": "#96;",
    "\n": " ",
}
_MERMAID_SHAPES = {
    "external": ('>"', '"]'),
    "api": ('[["', '"]]'),
    "bucket": ('[/"', '"/]'),
    "topic": ('{{"', '"}}'),
    "bus": ('{{"', '"}}'),
    "stream": ('[["', '"]]'),
    "firehose": ('[\\"', '"\\]'),
    "pipe": ('[\\"', '"\\]'),
    "broker": ('{{"', '"}}'),
    "cluster": ('{{"', '"}}'),
    "queue": ('[("', '")]'),
    "statemachine": ('(["', '"])'),
    "function": ('("', '")'),
    "table": ('[("', '")]'),
    "archive": ('[("', '")]'),
    "alarm": ('[/"', '"\\]'),
    "plumbing": ('["', '"]'),
}


def mermaid_escape(text: str) -> str:
    """Text safe inside a Mermaid quoted label (entity codes for the special characters)."""
    return "".join(_MERMAID_ESCAPES.get(char, char) for char in text)


def _mermaid_node(node: Node) -> str:
    start, end = _MERMAID_SHAPES[node.kind]
    text = mermaid_escape(node.label)
    if node.detail:
        text += "<br/>" + mermaid_escape(node.detail)
    return f"{node.id}{start}{text}{end}"


def to_mermaid(graph: Graph) -> str:
    """A ``flowchart LR``; dashed arrows are dead-letter, failure and archive paths."""
    nodes, edges = _ordered(graph)
    lines = ["flowchart LR"]
    for node in nodes:
        if not node.group:
            lines.append(f"  {_mermaid_node(node)}")
    grouped = [n for n in nodes if n.group]
    if grouped:
        lines.append(f'  subgraph alarms_and_remediation ["{ALARM_GROUP}"]')
        lines.extend(f"    {_mermaid_node(n)}" for n in grouped)
        lines.append("  end")
    for edge in edges:
        if edge.kind in DASHED or edge.kind == PLUMBING:
            arrow = "-.->" if edge.kind != PLUMBING else "-.-"
        else:
            arrow = "-->"
        label = f'|"{mermaid_escape(edge.label)}"|' if edge.label else ""
        lines.append(f"  {edge.source} {arrow}{label} {edge.target}")
    return "\n".join(lines) + "\n"


_DOT_SHAPES = {
    "external": "cds",
    "api": "component",
    "bucket": "folder",
    "topic": "hexagon",
    "bus": "hexagon",
    "stream": "box3d",
    "firehose": "trapezium",
    "pipe": "trapezium",
    "broker": "hexagon",
    "cluster": "hexagon",
    "queue": "cylinder",
    "statemachine": "octagon",
    "function": "box",
    "table": "cylinder",
    "archive": "cylinder",
    "alarm": "invtrapezium",
    "plumbing": "note",
}


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(graph: Graph) -> str:
    """The same graph in Graphviz DOT (dashed: dead-letter/failure/archive, dotted: plumbing)."""
    nodes, edges = _ordered(graph)

    def line(node: Node) -> str:
        label = node.label + (f"\n{node.detail}" if node.detail else "")
        style = ', style="rounded"' if node.kind == "function" else ""
        shape = _DOT_SHAPES[node.kind]
        return f"{_dot_quote(node.id)} [label={_dot_quote(label)}, shape={shape}{style}];"

    lines = [
        f"digraph {_dot_quote(graph.stack)} {{",
        "  rankdir=LR;",
        '  node [fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    lines.extend(f"  {line(n)}" for n in nodes if not n.group)
    grouped = [n for n in nodes if n.group]
    if grouped:
        lines.append("  subgraph cluster_alarms {")
        lines.append(f"    label={_dot_quote(ALARM_GROUP)}; style=dashed;")
        lines.extend(f"    {line(n)}" for n in grouped)
        lines.append("  }")
    for edge in edges:
        attributes = []
        if edge.label:
            attributes.append(f"label={_dot_quote(edge.label)}")
        if edge.kind in DASHED:
            attributes.append("style=dashed")
        elif edge.kind == PLUMBING:
            attributes.append("style=dotted, arrowhead=none")
        suffix = f" [{', '.join(attributes)}]" if attributes else ""
        lines.append(f"  {_dot_quote(edge.source)} -> {_dot_quote(edge.target)}{suffix};")
    lines.append("}")
    return "\n".join(lines) + "\n"


class GraphvizMissing(RuntimeError):
    pass


def render(dot_source: str, output_format: str) -> bytes:
    """SVG or PNG bytes, rendered by Graphviz's ``dot`` (Debian package ``graphviz``)."""
    dot = shutil.which("dot")
    if dot is None:
        raise GraphvizMissing(
            "Graphviz's `dot` is not installed (Debian/Ubuntu: apt-get install graphviz); "
            "--format mermaid needs nothing"
        )
    result = subprocess.run(  # noqa: S603 - a fixed executable, the source on stdin
        [dot, f"-T{output_format}"], input=dot_source.encode(), capture_output=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"dot failed: {result.stderr.decode(errors='replace')}")
    return result.stdout


# ---------------------------------------------------------------------------- README blocks

GENERATED = re.compile(
    r"(<!-- generated: conveyor diagram (?P<stack>[^\s>]+) -->\n```(?:mermaid|text)\n)"
    r"(?P<body>.*?)(```)",
    re.DOTALL,
)


def readme_blocks(text: str) -> list[tuple[str, str]]:
    """``(stack name, mermaid text)`` of every generated block of a README."""
    return [(m.group("stack"), m.group("body")) for m in GENERATED.finditer(text)]


def update_readme(text: str, diagram_for: Any) -> str:
    """The README with each generated block replaced by ``diagram_for(stack name)``."""

    def replace(match: re.Match[str]) -> str:
        return match.group(1) + str(diagram_for(match.group("stack"))) + match.group(4)

    return GENERATED.sub(replace, text)


def write_outputs(
    graphs: list[Graph], output_format: str, output: Path | None
) -> list[tuple[str, bytes]]:
    """Rendered ``(file name, bytes)`` per graph for ``--format svg|png|dot|mermaid``."""
    rendered: list[tuple[str, bytes]] = []
    for graph in graphs:
        if output_format == "mermaid":
            data = to_mermaid(graph).encode()
            suffix = "mmd"
        elif output_format == "dot":
            data = to_dot(graph).encode()
            suffix = "dot"
        else:
            data = render(to_dot(graph), output_format)
            suffix = output_format
        rendered.append((f"{graph.stack}.{suffix}", data))
    if output is not None:
        if len(rendered) == 1 and output.suffix:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_bytes(rendered[0][1])
        else:
            output.mkdir(parents=True, exist_ok=True)
            for name, data in rendered:
                (output / name).write_bytes(data)
    return rendered
