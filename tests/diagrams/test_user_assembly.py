"""Both commands on a user's own CDK app (stack and construct names that are not Conveyor's)."""

from __future__ import annotations

from pathlib import Path

import pytest
from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs

from conveyor.cli import main


@pytest.fixture(scope="module")
def assembly(make_app, tmp_path_factory) -> Path:
    outdir = tmp_path_factory.mktemp("user.out")
    app = make_app(outdir=str(outdir))
    stack = Stack(app, "Shop")
    dlq = sqs.Queue(stack, "Poison")
    queue = sqs.Queue(
        stack,
        "Work",
        visibility_timeout=Duration.seconds(60),
        dead_letter_queue=sqs.DeadLetterQueue(queue=dlq, max_receive_count=3),
    )
    worker = lambda_.Function(
        stack,
        "Worker",
        runtime=lambda_.Runtime.PYTHON_3_12,
        handler="index.handler",
        code=lambda_.Code.from_inline("def handler(event, context):\n    return {}\n"),
        memory_size=512,
        architecture=lambda_.Architecture.ARM_64,
    )
    worker.add_event_source(sources.SqsEventSource(queue, batch_size=5))
    topic = sns.Topic(stack, "Orders")
    topic.add_subscription(
        subscriptions.SqsSubscription(
            queue,
            filter_policy={"kind": sns.SubscriptionFilter.string_filter(allowlist=["paid"])},
        )
    )
    bus = events.EventBus(stack, "Bus")
    audit = sqs.Queue(stack, "Audit")
    events.Rule(
        stack,
        "Everything",
        event_bus=bus,
        event_pattern=events.EventPattern(source=["shop"]),
        targets=[targets.SqsQueue(audit)],
    )
    app.synth()
    return outdir


def test_diagram_draws_a_users_stack(assembly, capsys):
    assert main(["diagram", "Shop", "--assembly", str(assembly)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("flowchart LR\n")
    assert 'sns_Orders -->|"kind=paid"| q_Work' in out
    assert 'q_Work -->|"batch 5"| fn_Worker' in out
    assert 'q_Work -.->|"after 3 receives"| q_Poison' in out
    assert 'bus_Bus -->|"source=shop"| q_Audit' in out
    assert "λ arm64 512 MB" in out


def test_diagram_writes_dot_files_for_every_stack(assembly, tmp_path, capsys):
    assert (
        main(["diagram", "--assembly", str(assembly), "--format", "dot", "-o", str(tmp_path)]) == 0
    )
    assert (tmp_path / "Shop.dot").read_text().startswith('digraph "Shop"')


def test_an_unknown_stack_or_assembly_is_a_message_naming_what_exists(assembly, tmp_path, capsys):
    assert main(["diagram", "Nope", "--assembly", str(assembly)]) == 2
    assert "no stack 'Nope' in" in (out := capsys.readouterr().out)
    assert "(stacks: Shop)" in out
    assert main(["cost", "--assembly", str(tmp_path)]) == 2
    assert "is not a cloud assembly (no manifest.json)" in capsys.readouterr().out


def test_cost_estimates_a_users_stack(assembly, capsys):
    code = main(
        [
            "cost",
            "Shop",
            "--assembly",
            str(assembly),
            "--events",
            "1000000",
            "--region",
            "us-east-1",
            "--per-event",
            "Work=0.5",
            "--format",
            "json",
        ]
    )
    assert code == 0
    import json

    report = json.loads(capsys.readouterr().out)
    lines = {(line["resource"], line["item"]): line for line in report["lines"]}
    # half the published events match the filter: 500,000 messages, batches of 5
    assert lines[("Work", "SendMessage (standard)")]["quantity"] == 500_000
    assert lines[("Worker", "invocations")]["quantity"] == 100_000
    assert lines[("Orders", "Publish")]["cost"] == pytest.approx(0.50)
    assert lines[("Bus", "custom events")]["cost"] == pytest.approx(1.00)
    assert report["retrieved"] == "2026-12-02"


def test_update_readme_rewrites_generated_blocks_and_check_detects_stale_ones(
    assembly, tmp_path, capsys
):
    readme = tmp_path / "README.md"
    readme.write_text(
        "# Shop\n\n<!-- generated: conveyor diagram Shop -->\n```mermaid\nflowchart LR\n```\n"
    )
    args = ["diagram", "--assembly", str(assembly), "--update-readme", str(readme)]
    assert main([*args, "--check"]) == 1
    assert main(args) == 0
    assert 'q_Work -->|"batch 5"| fn_Worker' in readme.read_text()
    assert main([*args, "--check"]) == 0
    assert "1 generated diagrams, up to date" in capsys.readouterr().out
