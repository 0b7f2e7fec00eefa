"""``conveyor diagram``: every edge of the templates is drawn, and drawn the same way each time."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from conveyor.diagrams import (
    ALARM_GROUP,
    DEAD_LETTER,
    FAILURE,
    Graph,
    build_graph,
    mermaid_escape,
    summarise_pattern,
    to_dot,
    to_mermaid,
    write_outputs,
)
from conveyor.templates import StackTemplate, load_stacks, references

TOPOLOGIES = [
    "ImagePipeline",
    "OrderEvents",
    "PaymentsRouting",
    "OrderPipeline",
    "OrderFulfillment",
    "Telemetry",
    "Accounts",
    "OrderChoreography",
    "ToursRabbitMQ",
    "ToursKafka",
]


@pytest.fixture(scope="module")
def stacks(synthesized) -> dict[str, StackTemplate]:
    return {s.name.rsplit("-", 1)[-1]: s for s in load_stacks(Path(synthesized["outdir"]))}


@pytest.fixture(scope="module")
def graphs(stacks) -> dict[str, Graph]:
    return {name: build_graph(stack) for name, stack in stacks.items()}


def of_type(stack: StackTemplate, rtype: str) -> list[tuple[str, dict[str, Any]]]:
    return [(lid, r) for lid, r in stack.resources.items() if r["Type"] == rtype]


def node(graph: Graph, value: Any) -> str:
    """The node drawn for the first resource ``value`` references (fails if none is)."""
    for ref in references(value):
        found = graph.node_for(ref)
        if found is not None:
            return found.id
    raise AssertionError(f"no node for {value!r}")


def has_edge(graph: Graph, source: str, target: str, kind: str | None = None) -> bool:
    return graph.has_edge(source, target, kind)


def test_all_four_topologies_are_in_the_synthesized_assembly(stacks):
    assert sorted(stacks) == sorted(TOPOLOGIES)


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_every_sns_subscription_is_an_edge_with_its_filter_and_dlq(stacks, graphs, topology):
    stack, graph = stacks[topology], graphs[topology]
    for logical_id, resource in of_type(stack, "AWS::SNS::Subscription"):
        props = resource["Properties"]
        topic = node(graph, props["TopicArn"])
        edges = [e for e in graph.edges if e.origin == logical_id and e.source == topic]
        data = [e for e in edges if e.kind == "data"]
        assert len(data) == 1, logical_id
        if props["Protocol"] in ("sqs", "lambda"):
            assert data[0].target == node(graph, props["Endpoint"])
        else:
            assert graph.nodes[data[0].target].kind == "external"
        for key in props.get("FilterPolicy", {}):
            assert key in data[0].label
        if props.get("RawMessageDelivery") is True:
            assert data[0].label.endswith("raw")
        if "RedrivePolicy" in props:
            dlq = node(graph, props["RedrivePolicy"]["deadLetterTargetArn"])
            assert has_edge(graph, topic, dlq, DEAD_LETTER), logical_id


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_every_rule_target_and_its_dlq_is_an_edge(stacks, graphs, topology):
    stack, graph = stacks[topology], graphs[topology]
    for _, resource in of_type(stack, "AWS::Events::Rule"):
        props = resource["Properties"]
        bus = node(graph, props["EventBusName"])
        for target in props["Targets"]:
            edge = next(
                e
                for e in graph.edges
                if e.source == bus and e.target == node(graph, target["Arn"]) and e.kind == "data"
            )
            assert "source=" in edge.label
            if "DeadLetterConfig" in target:
                dlq = node(graph, target["DeadLetterConfig"]["Arn"])
                assert has_edge(graph, bus, dlq, DEAD_LETTER)


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_every_event_source_mapping_is_an_edge_with_its_batch_size(stacks, graphs, topology):
    stack, graph = stacks[topology], graphs[topology]
    mappings = of_type(stack, "AWS::Lambda::EventSourceMapping")
    for logical_id, resource in mappings:
        props = resource["Properties"]
        source, function = node(graph, props["EventSourceArn"]), node(graph, props["FunctionName"])
        edge = next(e for e in graph.edges if e.origin == logical_id)
        assert (edge.source, edge.target) == (source, function)
        assert f"batch {props['BatchSize']}" in edge.label


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_every_redrive_policy_and_failure_destination_is_dashed(stacks, graphs, topology):
    stack, graph = stacks[topology], graphs[topology]
    for logical_id, resource in of_type(stack, "AWS::SQS::Queue"):
        redrive = resource["Properties"].get("RedrivePolicy")
        if redrive:
            queue, dlq = graph.node_for(logical_id), node(graph, redrive["deadLetterTargetArn"])
            assert queue is not None
            edge = next(e for e in graph.edges if e.source == queue.id and e.target == dlq)
            assert edge.kind == DEAD_LETTER
            assert f"after {redrive['maxReceiveCount']} receives" == edge.label
    for _, resource in of_type(stack, "AWS::Lambda::EventInvokeConfig"):
        props = resource["Properties"]
        destination = props["DestinationConfig"]["OnFailure"]["Destination"]
        assert has_edge(
            graph, node(graph, props["FunctionName"]), node(graph, destination), FAILURE
        )
    mermaid = to_mermaid(graph)
    dashed = sum(1 for e in graph.edges if e.kind in (DEAD_LETTER, FAILURE, "archive"))
    assert mermaid.count("-.->") == dashed


def test_bucket_notifications_are_edges_with_their_suffix_filters(stacks, graphs):
    stack, graph = stacks["ImagePipeline"], graphs["ImagePipeline"]
    ((_, notifications),) = of_type(stack, "Custom::S3BucketNotifications")
    props = notifications["Properties"]
    bucket = node(graph, props["BucketName"])
    for config in props["NotificationConfiguration"]["QueueConfigurations"]:
        queue = node(graph, config["QueueArn"])
        edge = next(e for e in graph.edges if e.source == bucket and e.target == queue)
        assert edge.label.startswith("ObjectCreated:*")
    suffixes = [
        rule["Value"]
        for config in props["NotificationConfiguration"]["QueueConfigurations"]
        for rule in config["Filter"]["Key"]["FilterRules"]
    ]
    assert f"+{len(suffixes) - 4}" in edge.label  # the suffixes are summarised, none dropped


def test_api_methods_reach_the_queue_and_the_table(graphs):
    graph = graphs["OrderPipeline"]
    labels = {
        e.label: (graph.nodes[e.source].kind, graph.nodes[e.target].kind)
        for e in graph.edges
        if graph.nodes[e.source].kind == "api" and graph.nodes[e.target].kind != "external"
    }
    assert labels == {
        "POST /orders → SendMessage": ("api", "queue"),
        "GET /orders/{id} → GetItem": ("api", "table"),
    }


def test_function_writes_come_from_the_role_policy(graphs):
    graph = graphs["ImagePipeline"]
    resize = next(n for n in graph.nodes.values() if n.label == "Resize/Function")
    processed = next(n for n in graph.nodes.values() if n.label == "Processed")
    edge = next(e for e in graph.edges if e.source == resize.id and e.target == processed.id)
    assert edge.label == "PutObject"
    # the uploads bucket is only read: no write edge to it
    uploads = next(n for n in graph.nodes.values() if n.label == "Uploads/Bucket")
    assert not graph.has_edge(resize.id, uploads.id)


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_alarms_and_the_remediation_path_are_grouped_apart(graphs, topology):
    graph = graphs[topology]
    grouped = {n.label for n in graph.nodes.values() if n.group == ALARM_GROUP}
    expected = {"Alarms/Topic"}
    # A stream or broker topology has no queue to remediate (README).
    if topology not in ("Telemetry", "ToursRabbitMQ", "ToursKafka"):
        expected |= {"Remediation/Function/Function", "Remediation/AuditTable"}
    assert expected <= grouped
    alarms = [n for n in graph.nodes.values() if n.kind == "alarm"]
    assert alarms
    assert all(n.group == ALARM_GROUP for n in alarms)
    # the data path stays out of the group even though the remediation writes to its queues
    assert not any(label.endswith("/Queue") and "Remediation" not in label for label in grouped)
    mermaid = to_mermaid(graph)
    assert f'subgraph alarms_and_remediation ["{ALARM_GROUP}"]' in mermaid


def test_alarm_recipients_from_the_context_are_drawn(graphs):
    graph = graphs["ImagePipeline"]  # the test settings subscribe an e-mail and an SMS number
    recipients = {
        graph.nodes[e.target].label
        for e in graph.edges
        if graph.nodes[e.source].label == "Alarms/Topic"
    }
    assert {"e-mail", "SMS", "Remediation/Function/Function"} <= recipients


def test_iam_kms_and_logs_are_left_out_unless_asked(stacks):
    stack = stacks["ImagePipeline"]
    default, plumbing = build_graph(stack), build_graph(stack, plumbing=True)
    kinds = {stack.resources[lid]["Type"] for n in default.nodes.values() for lid in n.logical_ids}
    assert not kinds & {"AWS::IAM::Role", "AWS::KMS::Key", "AWS::Logs::LogGroup"}
    assert "BucketNotificationsHandler" not in to_mermaid(default)  # CDK's provider function
    shown = {stack.resources[lid]["Type"] for n in plumbing.nodes.values() for lid in n.logical_ids}
    assert {"AWS::IAM::Role", "AWS::KMS::Key", "AWS::Logs::LogGroup"} <= shown
    assert any(e.kind == "plumbing" for e in plumbing.edges)


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_output_is_deterministic_and_names_neither_the_environment_nor_assets(stacks, topology):
    first, second = (
        to_mermaid(build_graph(stacks[topology])),
        to_mermaid(build_graph(stacks[topology])),
    )
    assert first == second
    assert "Conveyor-test" not in first
    assert "Conveyortest" not in first
    assert not any(len(word) >= 32 and word.isalnum() for word in first.split())  # no asset hash


def test_mermaid_special_characters_are_escaped():
    assert mermaid_escape('a "b" <c> | #d & `e`') == (
        "a #quot;b#quot; #lt;c#gt; #124; #35;d #amp; #96;e#96;"
    )


def test_patterns_are_summarised_with_their_operators():
    pattern = {
        "source": ["app.paiement"],
        "detail": {
            "montant": [{"numeric": [">", 5000, "<=", 10000]}],
            "devise": [{"anything-but": ["USD"]}],
            "client": [{"prefix": "vip-"}],
        },
    }
    assert summarise_pattern(pattern) == [
        "source=app.paiement",
        "detail.montant > 5000 ≤ 10000",
        "detail.devise ≠ USD",
        "detail.client prefix vip-",
    ]


def test_dot_has_the_same_nodes_and_edges(graphs):
    graph = graphs["PaymentsRouting"]
    dot = to_dot(graph)
    assert dot.startswith('digraph "')
    assert dot.count(" -> ") == len(graph.edges)
    assert all(f'"{n}" [label=' in dot for n in graph.nodes)
    assert "subgraph cluster_alarms" in dot


def _require_dot() -> None:
    if shutil.which("dot") is None:
        if os.environ.get("CI"):
            pytest.fail("Graphviz's `dot` is missing in CI: .ci/run installs the graphviz package")
        pytest.skip("Graphviz's `dot` is not installed (apt-get install graphviz); CI installs it")


@pytest.mark.parametrize("output_format", ["svg", "png"])
def test_svg_and_png_are_rendered_by_graphviz(graphs, tmp_path, output_format):
    _require_dot()
    target = tmp_path / f"payments.{output_format}"
    ((_name, data),) = write_outputs([graphs["PaymentsRouting"]], output_format, target)
    assert target.read_bytes() == data
    if output_format == "svg":
        assert b"<svg" in data
        assert b"Payments/Bus" in data
    else:
        assert data.startswith(b"\x89PNG")


def _template(**resources: dict[str, Any]) -> StackTemplate:
    return StackTemplate("Mine", {"Resources": resources})


def _r(rtype: str, **properties: Any) -> dict[str, Any]:
    return {"Type": rtype, "Properties": properties}


def test_streams_firehose_pipes_and_state_machines_are_drawn():
    graph = build_graph(
        _template(
            Stream=_r("AWS::Kinesis::Stream", StreamModeDetails={"StreamMode": "ON_DEMAND"}),
            Bucket=_r("AWS::S3::Bucket"),
            Fn=_r("AWS::Lambda::Function", Role={"Fn::GetAtt": ["Role", "Arn"]}),
            Role=_r("AWS::IAM::Role"),
            Hose=_r(
                "AWS::KinesisFirehose::DeliveryStream",
                KinesisStreamSourceConfiguration={
                    "KinesisStreamARN": {"Fn::GetAtt": ["Stream", "Arn"]}
                },
                ExtendedS3DestinationConfiguration={"BucketARN": {"Fn::GetAtt": ["Bucket", "Arn"]}},
            ),
            Queue=_r("AWS::SQS::Queue"),
            Pipe=_r(
                "AWS::Pipes::Pipe",
                Source={"Fn::GetAtt": ["Queue", "Arn"]},
                Target={"Ref": "Machine"},
            ),
            Machine=_r(
                "AWS::StepFunctions::StateMachine",
                StateMachineType="EXPRESS",
                RoleArn={"Fn::GetAtt": ["MachineRole", "Arn"]},
            ),
            MachineRole=_r("AWS::IAM::Role"),
            Policy=_r(
                "AWS::IAM::Policy",
                Roles=[{"Ref": "MachineRole"}],
                PolicyDocument={
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": "lambda:InvokeFunction",
                            "Resource": {"Fn::GetAtt": ["Fn", "Arn"]},
                        }
                    ]
                },
            ),
        )
    )
    edges = {(e.source, e.target, e.label) for e in graph.edges}
    assert ("kds_Stream", "fh_Hose", "source") in edges
    assert ("fh_Hose", "s3_Bucket", "delivers") in edges
    assert ("q_Queue", "pipe_Pipe", "source") in edges
    assert ("pipe_Pipe", "sfn_Machine", "target") in edges
    assert ("sfn_Machine", "fn_Fn", "InvokeFunction") in edges
    assert graph.nodes["kds_Stream"].detail == "Kinesis on-demand"
    assert graph.nodes["sfn_Machine"].detail == "Step Functions Express"
    # a template without construct paths is labelled with logical ids
    assert graph.nodes["q_Queue"].label == "Queue"


def test_function_urls_async_dlqs_and_scheduler_targets_are_drawn():
    graph = build_graph(
        _template(
            Fn=_r(
                "AWS::Lambda::Function",
                DeadLetterConfig={"TargetArn": {"Fn::GetAtt": ["Dlq", "Arn"]}},
            ),
            Dlq=_r("AWS::SQS::Queue"),
            Url=_r(
                "AWS::Lambda::Url",
                TargetFunctionArn={"Fn::GetAtt": ["Fn", "Arn"]},
                AuthType="AWS_IAM",
            ),
            Nightly=_r(
                "AWS::Scheduler::Schedule",
                ScheduleExpression="rate(1 day)",
                Target={"Arn": {"Fn::GetAtt": ["Fn", "Arn"]}, "RoleArn": "arn:aws:iam::1:role/r"},
            ),
        )
    )
    edges = {(graph.nodes[e.source].label, e.target, e.kind, e.label) for e in graph.edges}
    assert ("Fn", "q_Dlq", FAILURE, "async DLQ") in edges
    assert ("clients", "fn_Fn", "data", "HTTPS AWS_IAM") in edges
    assert ("schedule", "fn_Fn", "data", "") in edges
