"""EventStore, StreamProjector and OutboxPublisher: defaults, options and synth-time errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Match, Template

from conveyor.constructs.event_sourcing import (
    EventStore,
    OutboxPublisher,
    StreamProjector,
    filter_pattern,
)

CODE = lambda_.Code.from_inline("def handler(event, context):\n    return {}\n")


def code(**overrides: Any) -> dict[str, Any]:
    return {"code": CODE, "handler": "index.handler", **overrides}


@pytest.fixture(scope="module")
def template(make_app) -> Template:
    stack = Stack(make_app(), "EventSourcingTest")
    store = EventStore(stack, "Store")
    EventStore(stack, "Protected", snapshot_every=50, deletion_protection=True)
    StreamProjector(
        stack,
        "Balances",
        event_store=store,
        event_types=["Opened", "Deposited"],
        rebuild_handler="index.rebuild",
        **code(),
    )
    bus = events.EventBus(stack, "Bus")
    OutboxPublisher(stack, "Outbox", event_store=store, event_bus=bus, source="app.store", **code())
    return Template.from_stack(stack)


def _store_tables(template: Template) -> dict[str, Any]:
    return {
        k: v
        for k, v in template.find_resources("AWS::DynamoDB::Table").items()
        if len(v["Properties"]["KeySchema"]) == 2
    }


def test_the_store_is_keyed_by_aggregate_and_version_with_a_stream_of_new_images(template):
    template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "KeySchema": [
                {"AttributeName": "aggregateId", "KeyType": "HASH"},
                {"AttributeName": "version", "KeyType": "RANGE"},
            ],
            "AttributeDefinitions": Match.array_with(
                [{"AttributeName": "version", "AttributeType": "N"}]
            ),
            "StreamSpecification": {"StreamViewType": "NEW_IMAGE"},
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "SSESpecification": {
                "SSEEnabled": True,
                "SSEType": "KMS",
                "KMSMasterKeyId": {"Fn::GetAtt": [Match.string_like_regexp("^StoreKey"), "Arn"]},
            },
        },
    )


def test_deletion_protection_and_snapshots_only_when_asked(template):
    stores = _store_tables(template)
    protection = {
        logical: props["Properties"].get("DeletionProtectionEnabled", False)
        for logical, props in stores.items()
    }
    assert sorted(protection.values()) == [False, True]
    snapshots = [
        t
        for logical, t in template.find_resources("AWS::DynamoDB::Table").items()
        if logical.startswith("ProtectedProtectedSnapshots")
    ]
    assert len(snapshots) == 1
    assert snapshots[0]["Properties"]["DeletionProtectionEnabled"] is True
    assert not any(k.startswith("StoreStoreSnapshots") for k in template.to_json()["Resources"])


def test_the_projection_mapping_keeps_the_shard_moving_and_filters_on_event_types(template):
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "FunctionName": {"Ref": Match.string_like_regexp("^BalancesBalancesFunction")},
            "BisectBatchOnFunctionError": True,
            "MaximumRetryAttempts": 3,
            "MaximumRecordAgeInSeconds": 3600,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "StartingPosition": "TRIM_HORIZON",
            "DestinationConfig": {
                "OnFailure": {
                    "Destination": {
                        "Fn::GetAtt": [Match.string_like_regexp("^BalancesFailureQueue"), "Arn"]
                    }
                }
            },
            "FilterCriteria": {
                "Filters": [
                    {
                        "Pattern": json.dumps(
                            {
                                "eventName": ["INSERT"],
                                "dynamodb": {"NewImage": {"type": {"S": ["Opened", "Deposited"]}}},
                            }
                        )
                    }
                ]
            },
        },
    )


def test_the_outbox_publishes_every_insert_and_may_put_events_on_its_bus(template):
    template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "FunctionName": {"Ref": Match.string_like_regexp("^OutboxOutboxFunction")},
            "FilterCriteria": {"Filters": [{"Pattern": json.dumps({"eventName": ["INSERT"]})}]},
            "ParallelizationFactor": 1,
        },
    )
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Environment": {
                "Variables": Match.object_like(
                    {"OUTBOX_SOURCE": "app.store", "OUTBOX_EVENT_BUS": {"Ref": Match.any_value()}}
                )
            }
        },
    )
    template.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Action": "events:PutEvents",
                                "Resource": {
                                    "Fn::GetAtt": [Match.string_like_regexp("^Bus"), "Arn"]
                                },
                            }
                        )
                    ]
                )
            }
        },
    )


def test_the_rebuild_function_writes_a_fresh_read_model_from_the_store(template):
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": "index.rebuild",
            "Timeout": 900,
            "Environment": {
                "Variables": {
                    "EVENT_STORE_TABLE": {"Ref": Match.string_like_regexp("^StoreStoreEvents")},
                    "REBUILD_TABLE": {
                        "Ref": Match.string_like_regexp("^BalancesRebuildBalancesRebuildReadModel")
                    },
                }
            },
        },
    )


def _own_functions(template: Template) -> list[dict[str, Any]]:
    """The constructs' functions (not CDK's custom-resource providers)."""
    return [
        resource
        for resource in template.find_resources("AWS::Lambda::Function").values()
        if resource["Properties"].get("Handler", "").startswith("index.")
    ]


def _key_of(reference: dict[str, Any]) -> str:
    logical: str = reference["Fn::GetAtt"][0]
    assert reference == {"Fn::GetAtt": [logical, "Arn"]}
    return logical


def test_every_function_encrypts_its_logs_and_variables_with_the_store_key(template):
    resources = template.to_json()["Resources"]
    functions = _own_functions(template)
    handlers = sorted(f["Properties"]["Handler"] for f in functions)
    assert handlers == ["index.handler", "index.handler", "index.rebuild"]  # projector, outbox
    for function in functions:
        properties = function["Properties"]
        assert _key_of(properties["KmsKeyArn"]).startswith("StoreKey")
        group = resources[properties["LoggingConfig"]["LogGroup"]["Ref"]]["Properties"]
        assert _key_of(group["KmsKeyId"]).startswith("StoreKey")
    # CloudWatch Logs may use the store key, for this account's log groups only
    template.has_resource_properties(
        "AWS::KMS::Key",
        {
            "KeyPolicy": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Sid": "AllowCloudWatchLogsOfThisAccount",
                                "Condition": {
                                    "ArnLike": {
                                        "kms:EncryptionContext:aws:logs:arn": Match.any_value()
                                    }
                                },
                            }
                        )
                    ]
                )
            }
        },
    )


def test_no_function_dlq_is_explained_by_how_each_function_is_invoked(template):
    for resource in _own_functions(template):
        handler = resource["Properties"]["Handler"]
        skips = {s["id"]: s["comment"] for s in resource["Metadata"]["checkov"]["skip"]}
        expected = "operator" if handler == "index.rebuild" else "on-failure queue"
        assert expected in skips["CKV_AWS_116"], handler


def test_the_failure_queues_and_the_iterator_age_are_alarmed(template):
    alarms = template.find_resources("AWS::CloudWatch::Alarm")
    names = sorted(logical.split("Alarm")[0] for logical in alarms)
    assert sum("FailureQueue" in n for n in names) == 2
    assert sum("IteratorAge" in n for n in names) == 2


def test_filter_pattern_without_types_matches_every_insert():
    assert filter_pattern(None) == {"eventName": ["INSERT"]}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"event_types": []}, "event_types must name at least one event type"),
        ({"event_types": [" "]}, "event_types must be non-empty strings"),
        ({"retry_attempts": -1}, "retry_attempts must be between 0 and 10000"),
        ({"batch_size": 0}, "batch_size must be between 1 and 10000"),
        ({"max_record_age": Duration.days(2)}, "max_record_age must be between 60 seconds and 24"),
        ({"parallelization_factor": 11}, "parallelization_factor must be between 1 and 10"),
        ({"max_batching_window": Duration.seconds(301)}, "max_batching_window must be between"),
        (
            {"starting_position": lambda_.StartingPosition.AT_TIMESTAMP},
            "AT_TIMESTAMP is Kinesis only",
        ),
        ({"event_types": ["x" * 5000]}, "Lambda allows 4096"),
    ],
)
def test_projector_settings_that_break_a_service_rule_fail_at_synth(make_app, overrides, message):
    stack = Stack(make_app(), "BadProjector")
    store = EventStore(stack, "Store")
    settings = {"event_types": ["Opened"], **code(), **overrides}
    with pytest.raises(ValueError, match=message) as raised:
        StreamProjector(stack, "Bad", event_store=store, **settings)
    assert "BadProjector/Bad" in str(raised.value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"source": "aws.dynamodb"}, "must not start with 'aws.'"),
        ({"source": ""}, "source must be set"),
        ({"event_types": []}, "or be None"),
    ],
)
def test_outbox_settings_that_break_a_rule_fail_at_synth(make_app, overrides, message):
    stack = Stack(make_app(), "BadOutbox")
    store = EventStore(stack, "Store")
    bus = events.EventBus(stack, "Bus")
    settings = {"source": "app.store", **code(), **overrides}
    with pytest.raises(ValueError, match=message):
        OutboxPublisher(stack, "Bad", event_store=store, event_bus=bus, **settings)


def test_a_snapshot_interval_out_of_range_fails_at_synth(make_app):
    stack = Stack(make_app(), "BadStore")
    with pytest.raises(ValueError, match="BadStore/Store: snapshot_every must be between 0"):
        EventStore(stack, "Store", snapshot_every=-1)
